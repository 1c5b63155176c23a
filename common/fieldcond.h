/*
 * fieldcond.h - conditions over a record's fields: the `when` of the fan-out
 * rules (policies/workloads.json) and of the notification subscriptions
 * (policies/notifications.json). Leaves test one field ("a.b" reaches into a
 * compound field): eq, in, prefix, exists, gte, lt, with if_absent for a field
 * the event does not carry; all / any / not combine them. The JSON schemas
 * check the shape; these functions only read it.
 */
#ifndef SFK_FIELDCOND_H
#define SFK_FIELDCOND_H

#include <jansson.h>

#define FIELDCOND_MAX_DEPTH 16 /* nesting of all/any/not the loaders accept */

/* 1 when cond (borrowed) nests all/any/not at most FIELDCOND_MAX_DEPTH deep. */
int fieldcond_depth_ok(json_t *cond);

/* 1 when fields (borrowed object, may be NULL) satisfy cond (borrowed); a
 * condition deeper than FIELDCOND_MAX_DEPTH or of no known form is false. */
int fieldcond_eval(json_t *cond, json_t *fields);

/* fields[name], or fields[a][b] for "a.b" (borrowed); NULL when absent. */
json_t *fieldcond_field(json_t *fields, const char *name);

#endif
