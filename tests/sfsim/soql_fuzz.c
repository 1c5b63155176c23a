/*
 * soql_fuzz.c - soql_fuzz_one(): the whole pipeline (parse, bind, run) on
 * arbitrary bytes against a fixed toy Lead/User schema and three records.
 * A libFuzzer target only has to call it from LLVMFuzzerTestOneInput.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soql.h"

static const struct {
	const char *object;
	const char *name;
	enum soql_type type;
} toy_fields[] = {
        {"Lead", "Id", SOQL_T_ID},
        {"Lead", "Name", SOQL_T_STRING},
        {"Lead", "Email", SOQL_T_STRING},
        {"Lead", "Company", SOQL_T_STRING},
        {"Lead", "Status", SOQL_T_STRING},
        {"Lead", "NumberOfEmployees", SOQL_T_NUMBER},
        {"Lead", "IsConverted", SOQL_T_BOOLEAN},
        {"Lead", "CreatedDate", SOQL_T_DATETIME},
        {"Lead", "LastActivityDate", SOQL_T_DATE},
        {"Lead", "OwnerId", SOQL_T_ID},
        {"User", "Id", SOQL_T_ID},
        {"User", "Name", SOQL_T_STRING},
};

static int copy_name(char *dst, size_t size, const char *src)
{
	int n = snprintf(dst, size, "%s", src);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int toy_object(void *ctx, const char *name, char *canon, size_t canon_size)
{
	(void)ctx;
	if (strcasecmp(name, "Lead") == 0)
		return copy_name(canon, canon_size, "Lead");
	if (strcasecmp(name, "User") == 0)
		return copy_name(canon, canon_size, "User");
	return -1;
}

static int toy_field(void *ctx, const char *object, const char *name, char *canon,
                     size_t canon_size, enum soql_type *type)
{
	size_t i;

	(void)ctx;
	for (i = 0; i < sizeof(toy_fields) / sizeof(toy_fields[0]); i++) {
		if (strcmp(toy_fields[i].object, object) == 0 &&
		    strcasecmp(toy_fields[i].name, name) == 0) {
			*type = toy_fields[i].type;
			return copy_name(canon, canon_size, toy_fields[i].name);
		}
	}
	return -1;
}

static int toy_relationship(void *ctx, const char *object, const char *rel, char *canon,
                            size_t canon_size, char *target, size_t target_size, char *idfield,
                            size_t idfield_size)
{
	(void)ctx;
	if (strcmp(object, "Lead") != 0 || strcasecmp(rel, "Owner") != 0)
		return -1;
	if (copy_name(canon, canon_size, "Owner") || copy_name(target, target_size, "User") ||
	    copy_name(idfield, idfield_size, "OwnerId"))
		return -1;
	return 0;
}

static json_t *toy_lookup(void *ctx, const char *object, const char *id)
{
	json_t *users = ctx;
	json_t *u;
	size_t i;

	if (strcmp(object, "User") != 0)
		return NULL;
	json_array_foreach(users, i, u)
	{
		if (strncmp(json_string_value(json_object_get(u, "Id")), id, 15) == 0)
			return u;
	}
	return NULL;
}

static const char toy_leads[] =
        "[{\"Id\":\"00Q000000000001AAA\",\"Name\":\"Ada\",\"Email\":\"ada@example.com\","
        "\"Company\":\"Acme\",\"Status\":\"Open\",\"NumberOfEmployees\":10,\"IsConverted\":false,"
        "\"CreatedDate\":\"2026-11-20T10:15:00.000+0000\",\"LastActivityDate\":\"2026-11-19\","
        "\"OwnerId\":\"005000000000001AAA\"},"
        "{\"Id\":\"00Q000000000002AAA\",\"Name\":\"Bob\",\"Email\":null,\"Company\":\"Initech\","
        "\"Status\":\"Working\",\"NumberOfEmployees\":2.5,\"IsConverted\":true,"
        "\"CreatedDate\":\"2025-01-01T00:00:00Z\",\"LastActivityDate\":null,\"OwnerId\":null},"
        "{\"Id\":\"00Q000000000003AAA\",\"Name\":\"_%\\\\'\",\"Company\":\"\"}]";

static const char toy_users[] = "[{\"Id\":\"005000000000001AAA\",\"Name\":\"Owner One\"}]";

int soql_fuzz_one(const uint8_t *data, size_t size)
{
	static const struct soql_schema schema = {toy_object, toy_field, toy_relationship};
	struct soql_error err;
	struct soql_query *q;
	json_t *leads = NULL, *users = NULL, *out = NULL;
	struct soql_env env = {0};
	size_t total = 0;

	q = soql_parse_n((const char *)data, size, &err);
	if (q == NULL)
		goto out;
	if (soql_bind(q, &schema, NULL, &err))
		goto out;
	leads = json_loads(toy_leads, 0, NULL);
	users = json_loads(toy_users, 0, NULL);
	if (leads == NULL || users == NULL)
		abort();      /* the fixture is a constant: a bug, not an input */
	env.now = 1795256100; /* 2026-11-21T10:15:00Z */
	env.lookup = toy_lookup;
	env.lookup_ctx = users;
	env.url_prefix = "/services/data/v60.0";
	out = soql_run(q, leads, &env, &total);
	if (out == NULL || (!soql_is_count(q) && json_array_size(out) != total))
		abort();
out:
	json_decref(out);
	json_decref(users);
	json_decref(leads);
	soql_free(q);
	return 0;
}
