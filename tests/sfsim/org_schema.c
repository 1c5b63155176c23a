/*
 * org_schema.c - the emulated org's object and field table (what describe shows,
 * what SOQL binds to, what writes are validated against). Field sets follow
 * the Salesforce Object Reference for Lead, Task, EmailMessage,
 * EmailMessageRelation, User and Group, plus the custom Lead fields of
 * DESIGN.md section 2, and the Account and Contact a Lead conversion makes
 * (their common fields only).
 */
#include <string.h>
#include <strings.h>

#include "org.h"
#include "xmem.h"

#define C   SIM_FF_CREATE
#define U   SIM_FF_UPDATE
#define N   SIM_FF_NIL
#define CU  (SIM_FF_CREATE | SIM_FF_UPDATE)
#define CUN (SIM_FF_CREATE | SIM_FF_UPDATE | SIM_FF_NIL)
#define X   (SIM_FF_CUSTOM | SIM_FF_CREATE | SIM_FF_UPDATE | SIM_FF_NIL)
#define RO  0u

static const char *const lead_status[] = {"Open - Not Contacted", "Working - Contacted",
                                          "Closed - Converted", "Closed - Not Converted", NULL};
static const char *const lead_source[] = {
        "Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other", NULL};
static const char *const industry[] = {"Agriculture",     "Apparel",       "Banking",
                                       "Biotechnology",   "Chemicals",     "Communications",
                                       "Construction",    "Consulting",    "Education",
                                       "Electronics",     "Energy",        "Engineering",
                                       "Entertainment",   "Environmental", "Finance",
                                       "Food & Beverage", "Government",    "Healthcare",
                                       "Hospitality",     "Insurance",     "Machinery",
                                       "Manufacturing",   "Media",         "Not For Profit",
                                       "Other",           "Recreation",    "Retail",
                                       "Shipping",        "Technology",    "Telecommunications",
                                       "Transportation",  "Utilities",     NULL};
static const char *const rating[] = {"Hot", "Warm", "Cold", NULL};
static const char *const salutation[] = {"Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", NULL};
static const char *const fr_source[] = {"Task",    "Call",  "Email", "EmailMessage",
                                        "Meeting", "Other", NULL};
static const char *const task_status[] = {
        "Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred", NULL};
static const char *const task_priority[] = {"Normal", "High", "Low", NULL};
static const char *const task_type[] = {"Call", "Email", "Meeting", "Other", NULL};
static const char *const task_subtype[] = {"Task", "Email",    "ListEmail", "Cadence",
                                           "Call", "LinkedIn", NULL};
static const char *const em_status[] = {"0", "1", "2", "3", "4", "5", NULL};
static const char *const emr_type[] = {"ToAddress",   "CcAddress",    "BccAddress",
                                       "FromAddress", "OtherAddress", NULL};
static const char *const emr_objtype[] = {"Contact", "Lead", "User", NULL};
static const char *const group_type[] = {"Queue", "Regular", NULL};

#define SYSTEM_FIELDS                                                                              \
	{"CreatedDate", "Created Date", SIM_F_DATETIME, RO, 0, 0, NULL, NULL, NULL, NULL},         \
	        {"CreatedById",                                                                    \
	         "Created By ID",                                                                  \
	         SIM_F_REFERENCE,                                                                  \
	         RO,                                                                               \
	         18,                                                                               \
	         0,                                                                                \
	         "User",                                                                           \
	         "CreatedBy",                                                                      \
	         NULL,                                                                             \
	         NULL},                                                                            \
	        {"LastModifiedDate",                                                               \
	         "Last Modified Date",                                                             \
	         SIM_F_DATETIME,                                                                   \
	         RO,                                                                               \
	         0,                                                                                \
	         0,                                                                                \
	         NULL,                                                                             \
	         NULL,                                                                             \
	         NULL,                                                                             \
	         NULL},                                                                            \
	        {"LastModifiedById",                                                               \
	         "Last Modified By ID",                                                            \
	         SIM_F_REFERENCE,                                                                  \
	         RO,                                                                               \
	         18,                                                                               \
	         0,                                                                                \
	         "User",                                                                           \
	         "LastModifiedBy",                                                                 \
	         NULL,                                                                             \
	         NULL},                                                                            \
	        {"SystemModstamp",                                                                 \
	         "System Modstamp",                                                                \
	         SIM_F_DATETIME,                                                                   \
	         RO,                                                                               \
	         0,                                                                                \
	         0,                                                                                \
	         NULL,                                                                             \
	         NULL,                                                                             \
	         NULL,                                                                             \
	         NULL},                                                                            \
	{                                                                                          \
		"IsDeleted", "Deleted", SIM_F_BOOLEAN, RO, 0, 0, NULL, NULL, NULL, NULL            \
	}

static const struct sim_field lead_fields[] = {
        {"Id", "Lead ID", SIM_F_ID, RO, 18, 0, NULL, NULL, NULL, NULL},
        {"Salutation", "Salutation", SIM_F_PICKLIST, CUN, 40, 0, NULL, NULL, salutation, NULL},
        {"FirstName", "First Name", SIM_F_STRING, CUN, 40, 0, NULL, NULL, NULL, NULL},
        {"LastName", "Last Name", SIM_F_STRING, CU | SIM_FF_REQUIRED, 80, 0, NULL, NULL, NULL,
         NULL},
        {"Name", "Full Name", SIM_F_STRING, SIM_FF_NAME, 121, 0, NULL, NULL, NULL, NULL},
        {"Title", "Title", SIM_F_STRING, CUN, 128, 0, NULL, NULL, NULL, NULL},
        {"Company", "Company", SIM_F_STRING, CU | SIM_FF_REQUIRED, 255, 0, NULL, NULL, NULL, NULL},
        {"Street", "Street", SIM_F_TEXTAREA, CUN, 255, 0, NULL, NULL, NULL, NULL},
        {"City", "City", SIM_F_STRING, CUN, 40, 0, NULL, NULL, NULL, NULL},
        {"State", "State/Province", SIM_F_STRING, CUN, 80, 0, NULL, NULL, NULL, NULL},
        {"PostalCode", "Zip/Postal Code", SIM_F_STRING, CUN, 20, 0, NULL, NULL, NULL, NULL},
        {"Country", "Country", SIM_F_STRING, CUN, 80, 0, NULL, NULL, NULL, NULL},
        {"Phone", "Phone", SIM_F_PHONE, CUN, 40, 0, NULL, NULL, NULL, NULL},
        {"MobilePhone", "Mobile Phone", SIM_F_PHONE, CUN, 40, 0, NULL, NULL, NULL, NULL},
        {"Email", "Email", SIM_F_EMAIL, CUN, 80, 0, NULL, NULL, NULL, NULL},
        {"Website", "Website", SIM_F_URL, CUN, 255, 0, NULL, NULL, NULL, NULL},
        {"Description", "Description", SIM_F_TEXTAREA, CUN, 32000, 0, NULL, NULL, NULL, NULL},
        {"LeadSource", "Lead Source", SIM_F_PICKLIST, CUN, 255, 0, NULL, NULL, lead_source, NULL},
        {"Status", "Status", SIM_F_PICKLIST, CU | SIM_FF_REQUIRED, 255, 0, NULL, NULL, lead_status,
         "Open - Not Contacted"},
        {"Industry", "Industry", SIM_F_PICKLIST, CUN, 255, 0, NULL, NULL, industry, NULL},
        {"Rating", "Rating", SIM_F_PICKLIST, CUN, 255, 0, NULL, NULL, rating, NULL},
        {"AnnualRevenue", "Annual Revenue", SIM_F_DOUBLE, CUN, 18, 0, NULL, NULL, NULL, NULL},
        {"NumberOfEmployees", "Employees", SIM_F_INT, CUN, 8, 0, NULL, NULL, NULL, NULL},
        {"OwnerId", "Owner ID", SIM_F_REFERENCE, CU, 18, 0, "Group,User", "Owner", NULL, NULL},
        {"IsConverted", "Converted", SIM_F_BOOLEAN, RO, 0, 0, NULL, NULL, NULL, NULL},
        {"ConvertedDate", "Converted Date", SIM_F_DATE, RO | N, 0, 0, NULL, NULL, NULL, NULL},
        {"ConvertedAccountId", "Converted Account ID", SIM_F_REFERENCE, RO | N, 18, 0, "Account",
         "ConvertedAccount", NULL, NULL},
        {"ConvertedContactId", "Converted Contact ID", SIM_F_REFERENCE, RO | N, 18, 0, "Contact",
         "ConvertedContact", NULL, NULL},
        {"ConvertedOpportunityId", "Converted Opportunity ID", SIM_F_REFERENCE, RO | N, 18, 0,
         "Opportunity", "ConvertedOpportunity", NULL, NULL},
        {"IsUnreadByOwner", "Unread By Owner", SIM_F_BOOLEAN, CU, 0, 0, NULL, NULL, NULL, NULL},
        {"LastActivityDate", "Last Activity", SIM_F_DATE, RO | N, 0, 0, NULL, NULL, NULL, NULL},
        SYSTEM_FIELDS,
        {"Owner_Assigned_At__c", "Owner Assigned At", SIM_F_DATETIME, X, 0, 0, NULL, NULL, NULL,
         NULL},
        {"Assignment_Latency_Minutes__c", "Assignment Latency (Minutes)", SIM_F_DOUBLE, X, 18, 2,
         NULL, NULL, NULL, NULL},
        {"Routing_Reason__c", "Routing Reason", SIM_F_STRING, X, 255, 0, NULL, NULL, NULL, NULL},
        {"Routing_Policy_Version__c", "Routing Policy Version", SIM_F_STRING, X, 64, 0, NULL, NULL,
         NULL, NULL},
        {"First_Response_At__c", "First Response At", SIM_F_DATETIME, X, 0, 0, NULL, NULL, NULL,
         NULL},
        {"First_Response_User__c", "First Response User", SIM_F_REFERENCE, X, 18, 0, "User",
         "First_Response_User__r", NULL, NULL},
        {"First_Response_Source__c", "First Response Source", SIM_F_PICKLIST, X, 255, 0, NULL, NULL,
         fr_source, NULL},
        {"Time_to_First_Response__c", "Time to First Response (Minutes)", SIM_F_DOUBLE, X, 18, 2,
         NULL, NULL, NULL, NULL},
        {"Template_Recommended__c", "Template Recommended", SIM_F_STRING, X, 255, 0, NULL, NULL,
         NULL, NULL},
        {"Template_Intent__c", "Template Intent", SIM_F_STRING, X, 255, 0, NULL, NULL, NULL, NULL},
        {"Template_Confidence__c", "Template Confidence", SIM_F_DOUBLE, X, 5, 4, NULL, NULL, NULL,
         NULL},
        {"Template_Applied__c", "Template Applied", SIM_F_BOOLEAN, X & ~SIM_FF_NIL, 0, 0, NULL,
         NULL, NULL, NULL},
        {"SLA_Breached__c", "SLA Breached", SIM_F_BOOLEAN, X & ~SIM_FF_NIL, 0, 0, NULL, NULL, NULL,
         NULL},
        {"SLA_Escalations__c", "SLA Escalations", SIM_F_DOUBLE, X, 18, 0, NULL, NULL, NULL, NULL},
};

static const struct sim_field task_fields[] = {
        {"Id", "Activity ID", SIM_F_ID, RO, 18, 0, NULL, NULL, NULL, NULL},
        {"WhoId", "Name ID", SIM_F_REFERENCE, CUN, 18, 0, "Contact,Lead", "Who", NULL, NULL},
        {"WhatId", "Related To ID", SIM_F_REFERENCE, CUN, 18, 0, "Account,Case,Opportunity", "What",
         NULL, NULL},
        {"Subject", "Subject", SIM_F_STRING, CUN, 255, 0, NULL, NULL, NULL, NULL},
        {"ActivityDate", "Due Date Only", SIM_F_DATE, CUN, 0, 0, NULL, NULL, NULL, NULL},
        {"Status", "Status", SIM_F_PICKLIST, CU | SIM_FF_REQUIRED, 255, 0, NULL, NULL, task_status,
         "Not Started"},
        {"Priority", "Priority", SIM_F_PICKLIST, CU | SIM_FF_REQUIRED, 255, 0, NULL, NULL,
         task_priority, "Normal"},
        {"OwnerId", "Assigned To ID", SIM_F_REFERENCE, CU, 18, 0, "Group,User", "Owner", NULL,
         NULL},
        {"Description", "Description", SIM_F_TEXTAREA, CUN, 32000, 0, NULL, NULL, NULL, NULL},
        {"Type", "Type", SIM_F_PICKLIST, CUN, 255, 0, NULL, NULL, task_type, NULL},
        {"TaskSubtype", "Task Subtype", SIM_F_PICKLIST, C | N, 255, 0, NULL, NULL, task_subtype,
         "Task"},
        {"IsClosed", "Closed", SIM_F_BOOLEAN, RO, 0, 0, NULL, NULL, NULL, NULL},
        {"CompletedDateTime", "Completed Date/Time", SIM_F_DATETIME, RO | N, 0, 0, NULL, NULL, NULL,
         NULL},
        {"CallType", "Call Type", SIM_F_PICKLIST, CUN, 255, 0, NULL, NULL, NULL, NULL},
        {"CallDurationInSeconds", "Call Duration", SIM_F_INT, CUN, 8, 0, NULL, NULL, NULL, NULL},
        SYSTEM_FIELDS,
};

static const struct sim_field em_fields[] = {
        {"Id", "Email Message ID", SIM_F_ID, RO, 18, 0, NULL, NULL, NULL, NULL},
        {"ParentId", "Case ID", SIM_F_REFERENCE, C | N, 18, 0, "Case", "Parent", NULL, NULL},
        {"ActivityId", "Activity ID", SIM_F_REFERENCE, RO | N, 18, 0, "Task", "Activity", NULL,
         NULL},
        {"RelatedToId", "Related To ID", SIM_F_REFERENCE, CUN, 18, 0, "Account,Case,Opportunity",
         "RelatedTo", NULL, NULL},
        {"Subject", "Subject", SIM_F_STRING, CUN, 3000, 0, NULL, NULL, NULL, NULL},
        {"TextBody", "Text Body", SIM_F_TEXTAREA, CUN, 131072, 0, NULL, NULL, NULL, NULL},
        {"HtmlBody", "HTML Body", SIM_F_TEXTAREA, CUN, 131072, 0, NULL, NULL, NULL, NULL},
        {"FromName", "From Name", SIM_F_STRING, CUN, 1000, 0, NULL, NULL, NULL, NULL},
        {"FromAddress", "From Address", SIM_F_EMAIL, CUN, 1000, 0, NULL, NULL, NULL, NULL},
        {"FromId", "From ID", SIM_F_REFERENCE, CUN, 18, 0, "Contact,Lead,User", "From", NULL, NULL},
        {"ToAddress", "To Address", SIM_F_STRING, CUN, 4000, 0, NULL, NULL, NULL, NULL},
        {"CcAddress", "CC Address", SIM_F_STRING, CUN, 4000, 0, NULL, NULL, NULL, NULL},
        {"BccAddress", "BCC Address", SIM_F_STRING, CUN, 4000, 0, NULL, NULL, NULL, NULL},
        {"Incoming", "Is Incoming", SIM_F_BOOLEAN, C, 0, 0, NULL, NULL, NULL, NULL},
        {"Status", "Status", SIM_F_PICKLIST, CU | SIM_FF_REQUIRED, 40, 0, NULL, NULL, em_status,
         NULL},
        {"MessageDate", "Message Date", SIM_F_DATETIME, CUN, 0, 0, NULL, NULL, NULL, NULL},
        {"ThreadIdentifier", "Thread Identifier", SIM_F_STRING, CUN, 255, 0, NULL, NULL, NULL,
         NULL},
        {"MessageIdentifier", "Message ID", SIM_F_STRING, CUN, 255, 0, NULL, NULL, NULL, NULL},
        {"HasAttachment", "Has Attachment", SIM_F_BOOLEAN, RO, 0, 0, NULL, NULL, NULL, NULL},
        SYSTEM_FIELDS,
};

static const struct sim_field emr_fields[] = {
        {"Id", "Email Message Relation ID", SIM_F_ID, RO, 18, 0, NULL, NULL, NULL, NULL},
        {"EmailMessageId", "Email Message ID", SIM_F_REFERENCE, C | SIM_FF_REQUIRED, 18, 0,
         "EmailMessage", "EmailMessage", NULL, NULL},
        {"RelationId", "Relation ID", SIM_F_REFERENCE, CUN, 18, 0, "Contact,Lead,User", "Relation",
         NULL, NULL},
        {"RelationAddress", "Relation Address", SIM_F_STRING, CUN, 1000, 0, NULL, NULL, NULL, NULL},
        {"RelationType", "Relation Type", SIM_F_PICKLIST, CU | SIM_FF_REQUIRED, 40, 0, NULL, NULL,
         emr_type, NULL},
        {"RelationObjectType", "Relation Object Type", SIM_F_PICKLIST, RO | N, 40, 0, NULL, NULL,
         emr_objtype, NULL},
        SYSTEM_FIELDS,
};

static const struct sim_field account_fields[] = {
        {"Id", "Account ID", SIM_F_ID, RO, 18, 0, NULL, NULL, NULL, NULL},
        {"Name", "Account Name", SIM_F_STRING, CU | SIM_FF_REQUIRED, 255, 0, NULL, NULL, NULL,
         NULL},
        {"Industry", "Industry", SIM_F_PICKLIST, CUN, 255, 0, NULL, NULL, industry, NULL},
        {"NumberOfEmployees", "Employees", SIM_F_INT, CUN, 8, 0, NULL, NULL, NULL, NULL},
        {"BillingCountry", "Billing Country", SIM_F_STRING, CUN, 80, 0, NULL, NULL, NULL, NULL},
        {"OwnerId", "Owner ID", SIM_F_REFERENCE, CU, 18, 0, "User", "Owner", NULL, NULL},
        SYSTEM_FIELDS,
};

static const struct sim_field contact_fields[] = {
        {"Id", "Contact ID", SIM_F_ID, RO, 18, 0, NULL, NULL, NULL, NULL},
        {"AccountId", "Account ID", SIM_F_REFERENCE, CUN, 18, 0, "Account", "Account", NULL, NULL},
        {"Salutation", "Salutation", SIM_F_PICKLIST, CUN, 40, 0, NULL, NULL, salutation, NULL},
        {"FirstName", "First Name", SIM_F_STRING, CUN, 40, 0, NULL, NULL, NULL, NULL},
        {"LastName", "Last Name", SIM_F_STRING, CU | SIM_FF_REQUIRED, 80, 0, NULL, NULL, NULL,
         NULL},
        {"Name", "Full Name", SIM_F_STRING, SIM_FF_NAME, 121, 0, NULL, NULL, NULL, NULL},
        {"Title", "Title", SIM_F_STRING, CUN, 128, 0, NULL, NULL, NULL, NULL},
        {"Email", "Email", SIM_F_EMAIL, CUN, 80, 0, NULL, NULL, NULL, NULL},
        {"Phone", "Business Phone", SIM_F_PHONE, CUN, 40, 0, NULL, NULL, NULL, NULL},
        {"LeadSource", "Lead Source", SIM_F_PICKLIST, CUN, 255, 0, NULL, NULL, lead_source, NULL},
        {"OwnerId", "Owner ID", SIM_F_REFERENCE, CU, 18, 0, "User", "Owner", NULL, NULL},
        SYSTEM_FIELDS,
};

static const struct sim_field user_fields[] = {
        {"Id", "User ID", SIM_F_ID, RO, 18, 0, NULL, NULL, NULL, NULL},
        {"Username", "Username", SIM_F_STRING, CU | SIM_FF_REQUIRED, 80, 0, NULL, NULL, NULL, NULL},
        {"FirstName", "First Name", SIM_F_STRING, CUN, 40, 0, NULL, NULL, NULL, NULL},
        {"LastName", "Last Name", SIM_F_STRING, CU | SIM_FF_REQUIRED, 80, 0, NULL, NULL, NULL,
         NULL},
        {"Name", "Full Name", SIM_F_STRING, SIM_FF_NAME, 121, 0, NULL, NULL, NULL, NULL},
        {"Alias", "Alias", SIM_F_STRING, CU, 8, 0, NULL, NULL, NULL, NULL},
        {"Email", "Email", SIM_F_EMAIL, CU | SIM_FF_REQUIRED, 128, 0, NULL, NULL, NULL, NULL},
        {"IsActive", "Active", SIM_F_BOOLEAN, CU, 0, 0, NULL, NULL, NULL, NULL},
        {"UserType", "User Type", SIM_F_PICKLIST, RO, 40, 0, NULL, NULL, NULL, NULL},
        {"TimeZoneSidKey", "Time Zone", SIM_F_PICKLIST, CU, 40, 0, NULL, NULL, NULL, NULL},
        {"Department", "Department", SIM_F_STRING, CUN, 80, 0, NULL, NULL, NULL, NULL},
        {"Country", "Country", SIM_F_STRING, CUN, 80, 0, NULL, NULL, NULL, NULL},
        {"CreatedDate", "Created Date", SIM_F_DATETIME, RO, 0, 0, NULL, NULL, NULL, NULL},
        {"CreatedById", "Created By ID", SIM_F_REFERENCE, RO, 18, 0, "User", "CreatedBy", NULL,
         NULL},
        {"LastModifiedDate", "Last Modified Date", SIM_F_DATETIME, RO, 0, 0, NULL, NULL, NULL,
         NULL},
        {"LastModifiedById", "Last Modified By ID", SIM_F_REFERENCE, RO, 18, 0, "User",
         "LastModifiedBy", NULL, NULL},
        {"SystemModstamp", "System Modstamp", SIM_F_DATETIME, RO, 0, 0, NULL, NULL, NULL, NULL},
};

static const struct sim_field group_fields[] = {
        {"Id", "Group ID", SIM_F_ID, RO, 18, 0, NULL, NULL, NULL, NULL},
        {"Name", "Name", SIM_F_STRING, CU | SIM_FF_REQUIRED | SIM_FF_NAME, 40, 0, NULL, NULL, NULL,
         NULL},
        {"DeveloperName", "Developer Name", SIM_F_STRING, CUN, 80, 0, NULL, NULL, NULL, NULL},
        {"Type", "Type", SIM_F_PICKLIST, C, 40, 0, NULL, NULL, group_type, "Regular"},
        {"Email", "Email", SIM_F_EMAIL, CUN, 255, 0, NULL, NULL, NULL, NULL},
        {"CreatedDate", "Created Date", SIM_F_DATETIME, RO, 0, 0, NULL, NULL, NULL, NULL},
        {"CreatedById", "Created By ID", SIM_F_REFERENCE, RO, 18, 0, "User", "CreatedBy", NULL,
         NULL},
        {"LastModifiedDate", "Last Modified Date", SIM_F_DATETIME, RO, 0, 0, NULL, NULL, NULL,
         NULL},
        {"LastModifiedById", "Last Modified By ID", SIM_F_REFERENCE, RO, 18, 0, "User",
         "LastModifiedBy", NULL, NULL},
        {"SystemModstamp", "System Modstamp", SIM_F_DATETIME, RO, 0, 0, NULL, NULL, NULL, NULL},
};

#define NF(a) (sizeof(a) / sizeof((a)[0]))

/* "0Er" for EmailMessageRelation is quoted, not confirmed (see common/sfid.c). */
static const struct sim_object objects[] = {
        {"Lead", "Lead", "Leads", "00Q", lead_fields, NF(lead_fields), 0},
        {"Task", "Task", "Tasks", "00T", task_fields, NF(task_fields), 0},
        {"EmailMessage", "Email Message", "Email Messages", "02s", em_fields, NF(em_fields), 0},
        {"EmailMessageRelation", "Email Message Relation", "Email Message Relations", "0Er",
         emr_fields, NF(emr_fields), 0},
        {"User", "User", "Users", "005", user_fields, NF(user_fields), 0},
        {"Group", "Group", "Groups", "00G", group_fields, NF(group_fields), 0},
        {"Account", "Account", "Accounts", "001", account_fields, NF(account_fields), 0},
        {"Contact", "Contact", "Contacts", "003", contact_fields, NF(contact_fields), 0},
};

size_t org_nobjects(void)
{
	return NF(objects);
}

const struct sim_object *org_object_at(size_t i)
{
	return i < NF(objects) ? &objects[i] : NULL;
}

const struct sim_object *org_object(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < NF(objects); i++)
		if (strcasecmp(objects[i].name, name) == 0)
			return &objects[i];
	return NULL;
}

const struct sim_object *org_object_by_prefix(const char *id)
{
	if (!id || strnlen(id, 3) < 3)
		return NULL;
	for (size_t i = 0; i < NF(objects); i++)
		if (memcmp(objects[i].key_prefix, id, 3) == 0)
			return &objects[i];
	return NULL;
}

const struct sim_field *org_field(const struct sim_object *obj, const char *name)
{
	if (!obj || !name)
		return NULL;
	for (size_t i = 0; i < obj->nfields; i++)
		if (strcasecmp(obj->fields[i].name, name) == 0)
			return &obj->fields[i];
	return NULL;
}

const char *org_ftype_name(enum sim_ftype t)
{
	switch (t) {
	case SIM_F_ID: return "id";
	case SIM_F_REFERENCE: return "reference";
	case SIM_F_STRING: return "string";
	case SIM_F_TEXTAREA: return "textarea";
	case SIM_F_EMAIL: return "email";
	case SIM_F_PHONE: return "phone";
	case SIM_F_URL: return "url";
	case SIM_F_PICKLIST: return "picklist";
	case SIM_F_BOOLEAN: return "boolean";
	case SIM_F_INT: return "int";
	case SIM_F_DOUBLE: return "double";
	case SIM_F_DATE: return "date";
	case SIM_F_DATETIME: return "datetime";
	}
	return "anyType";
}

static const char *soap_type(enum sim_ftype t)
{
	switch (t) {
	case SIM_F_ID:
	case SIM_F_REFERENCE: return "tns:ID";
	case SIM_F_BOOLEAN: return "xsd:boolean";
	case SIM_F_INT: return "xsd:int";
	case SIM_F_DOUBLE: return "xsd:double";
	case SIM_F_DATE: return "xsd:date";
	case SIM_F_DATETIME: return "xsd:dateTime";
	default: return "xsd:string";
	}
}

static json_t *describe_field(const struct sim_field *f)
{
	json_t *pl = json_array();
	json_t *refs = json_array();
	int is_str = f->type != SIM_F_BOOLEAN && f->type != SIM_F_INT && f->type != SIM_F_DOUBLE &&
	             f->type != SIM_F_DATE && f->type != SIM_F_DATETIME;

	if (f->picklist)
		for (size_t i = 0; f->picklist[i]; i++)
			json_array_append_new(
			        pl, json_pack("{s:b,s:b,s:s,s:n,s:s}", "active", 1, "defaultValue",
			                      f->default_value &&
			                              strcmp(f->default_value, f->picklist[i]) == 0,
			                      "label", f->picklist[i], "validFor", "value",
			                      f->picklist[i]));
	if (f->reference_to) {
		const char *p = f->reference_to;
		while (*p) {
			const char *comma = strchr(p, ',');
			size_t n = comma ? (size_t)(comma - p) : strlen(p);
			json_array_append_new(refs, json_stringn(p, n));
			p += n;
			if (*p == ',')
				p++;
		}
	}
	return json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,"
	                 "s:b,s:b,s:o,s:o,s:o,s:b,s:b,s:b}",
	                 "name", f->name, "label", f->label, "type", org_ftype_name(f->type),
	                 "soapType", soap_type(f->type), "length", is_str ? f->length : 0,
	                 "byteLength", is_str ? f->length * 3 : 0, "precision",
	                 (f->type == SIM_F_DOUBLE || f->type == SIM_F_INT) ? f->length : 0, "scale",
	                 f->type == SIM_F_DOUBLE ? f->scale : 0, "createable",
	                 (f->flags & SIM_FF_CREATE) != 0, "updateable",
	                 (f->flags & SIM_FF_UPDATE) != 0, "nillable", (f->flags & SIM_FF_NIL) != 0,
	                 "custom", (f->flags & SIM_FF_CUSTOM) != 0, "nameField",
	                 (f->flags & SIM_FF_NAME) != 0, "idLookup",
	                 f->type == SIM_F_ID || strcmp(f->name, "Email") == 0, "filterable", 1,
	                 "sortable", f->type != SIM_F_TEXTAREA, "groupable",
	                 f->type != SIM_F_TEXTAREA && f->type != SIM_F_DOUBLE, "defaultedOnCreate",
	                 f->default_value != NULL || strcmp(f->name, "OwnerId") == 0 ||
	                         f->type == SIM_F_BOOLEAN,
	                 "calculated", 0, "restrictedPicklist",
	                 strcmp(f->name, "TaskSubtype") == 0 ||
	                         (f->picklist == em_status || f->picklist == emr_type),
	                 "picklistValues", pl, "referenceTo", refs, "relationshipName",
	                 f->relationship ? json_string(f->relationship) : json_null(), "unique", 0,
	                 "polymorphicForeignKey", f->reference_to && strchr(f->reference_to, ','),
	                 "externalId", 0);
}

json_t *org_describe(const struct sim_object *obj, const char *api_version)
{
	json_t *fields = json_array();
	char base[128];

	for (size_t i = 0; i < obj->nfields; i++)
		json_array_append_new(fields, describe_field(&obj->fields[i]));
	snprintf(base, sizeof(base), "/services/data/v%s/sobjects/%s", api_version, obj->name);
	json_t *urls =
	        json_pack("{s:s+,s:s+,s:s+,s:s,s:s}", "rowTemplate", base, "/{ID}", "defaultValues",
	                  base, "/defaultValues?recordTypeId&fields", "describe", base, "/describe",
	                  "sobject", base, "uiNewRecord", "/lightning/o/new");
	return json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:o,s:o,s:o,"
	                 "s:[],s:[]}",
	                 "name", obj->name, "label", obj->label, "labelPlural", obj->label_plural,
	                 "keyPrefix", obj->key_prefix, "custom", obj->custom, "createable", 1,
	                 "updateable", 1, "deletable", 1, "undeletable", 1, "queryable", 1,
	                 "retrieveable", 1, "searchable", 1, "triggerable", 1, "replicateable", 1,
	                 "layoutable", 1, "fields", fields, "urls", urls, "childRelationships",
	                 json_array(), "recordTypeInfos", "supportedScopes");
}
