/*
 * first_touch.h - the lead.first_touch_detect workload: the earliest response
 * (closed Task of a configured Type/TaskSubtype, or sent outbound
 * EmailMessage) to every Lead, written back as First_Response_* and
 * Time_to_First_Response__c, never replacing an earlier one with a later one
 * (DESIGN.md section 2). The pure parts are declared here for unit tests.
 */
#ifndef SFK_FIRST_TOUCH_H
#define SFK_FIRST_TOUCH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "workload.h"

#define FT_SOURCE_MAX 16 /* "Task", "EmailMessage" */
#define FT_VALUE_MAX  96 /* Redis value "<ms>|<source>|<user>|<ref>" */
#define FT_DATE_MAX   32 /* "2026-11-20T09:15:02.000Z" */
#define FT_LIST_MAX   32 /* configured Task Types / TaskSubtypes */

extern const struct workload_ops first_touch_ops;

/* Dry run (sfk decide, sfk replay --shadow), after init(): decide() computes
 * the Redis minimum without storing it. 0, or -1 without state. */
int first_touch_dry_run(struct wl_ctx *ctx);

/* One response to a Lead. at_ms < 0: none. user/ref "" when unknown. */
struct ft_resp {
	int64_t at_ms;
	char source[FT_SOURCE_MAX]; /* "Task" or "EmailMessage" */
	char user[19];              /* the responding User (18 chars) */
	char ref[19];               /* the Task / EmailMessage id */
};

/* Which Tasks count as a response: Type in types OR TaskSubtype in subtypes
 * (NULL-terminated lists, borrowed). */
struct ft_taskset {
	const char *const *types;
	const char *const *subtypes;
};

/* Salesforce dateTime ("2026-11-20T09:15:02.000Z", "...+0000", "...+01:00",
 * fraction optional) -> epoch ms; a JSON integer is taken as epoch ms.
 * Returns -1 for anything else. */
int64_t ft_parse_datetime(const char *s);
int64_t ft_json_datetime(json_t *v);
/* epoch ms -> "YYYY-MM-DDTHH:MM:SS.mmmZ". Returns 0, -1 if it does not fit. */
int ft_format_datetime(int64_t ms, char *buf, size_t len);

/* "<ms>|<source>|<user>|<ref>" (the sfk:ttfr:<lead> value). 0 or -1. */
int ft_resp_format(const struct ft_resp *r, char *buf, size_t len);
/* Inverse; 0, or -1 (r->at_ms = -1) when s is not such a value. */
int ft_resp_parse(const char *s, struct ft_resp *r);

/* 1 if a is a response strictly earlier than b (b absent or at_ms < 0 counts
 * as "no response yet"), else 0. Ties keep what is there. */
int ft_earlier(const struct ft_resp *a, const struct ft_resp *b);

/*
 * A Lead's effective earliest response from what Redis returned (the Lua
 * min; may be absent), the batch's earliest and Salesforce's stored value
 * (each may be NULL/at_ms < 0): the minimum, ties keeping the earlier
 * holder in that order. Returns 1 when it must be written (strictly earlier
 * than stored), else 0. *eff gets the minimum (at_ms -1 if none).
 */
int ft_resolve(const struct ft_resp *redis, const struct ft_resp *batch,
               const struct ft_resp *stored, struct ft_resp *eff);

/* Minutes from created_ms to resp_ms, rounded to 2 decimals (the field's
 * scale), never negative (a response logged before the Lead existed is 0). */
double ft_ttfr_minutes(int64_t resp_ms, int64_t created_ms);

/*
 * Is this Task record (borrowed; CDC fields or a SOQL row, with "Id") a
 * response to a Lead? Closed (IsClosed true, or Status "Completed", or a
 * CompletedDateTime), WhoId on a Lead (00Q), and of a counted Type/TaskSubtype.
 * Fills *out (at = CompletedDateTime, else CreatedDate; user = OwnerId, else
 * CreatedById) and lead (18 chars). Returns 1, or 0 with the reason in why.
 */
int ft_task_response(json_t *task, const struct ft_taskset *set, struct ft_resp *out, char lead[19],
                     const char **why);

/*
 * Is this EmailMessage record (borrowed, with "Id") a sent outbound email
 * (Status "3", Incoming false)? Fills *out (at = MessageDate, else
 * CreatedDate; user = CreatedById, else fallback_user). 1, or 0 with why.
 */
int ft_email_response(json_t *email, const char *fallback_user, struct ft_resp *out,
                      const char **why);

/*
 * The Lead an email answers: an EmailMessageRelation of email_id whose
 * RelationId is a Lead and whose RelationType is To/Cc/BccAddress (the
 * smallest such Lead id, so every replica picks the same); else the Lead in
 * WhoId of its Task (activity_id looked up in tasks: object 18-char id ->
 * Task row). Never RelatedToId. relations: array of rows (borrowed).
 * Returns 1 (relation), 2 (task) with lead filled, or 0.
 */
int ft_email_lead(const char *email_id, const char *activity_id, json_t *relations, json_t *tasks,
                  char lead[19]);

/* Segment label of a Lead from NumberOfEmployees (NULL/absent: "UNKNOWN"). */
const char *ft_segment(json_t *employees, long long mm_min, long long ent_min);

#endif
