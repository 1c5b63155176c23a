/*
 * flywheel.h - one flywheel record per worker decision (topic sfk.flywheel).
 *
 * A record is an OpenAI chat-completions request/response pair, so it loads
 * into a strict index (NVIDIA data-flywheel blueprint); schema:
 * schemas/flywheel.schema.json. Top level is exactly {timestamp, client_id,
 * workload_id, request, response}:
 *   request  = {model, messages: [{role:"system"}, {role:"user", content: the
 *               lead's facts as compact JSON with sorted keys}],
 *               metadata: {decision_id, event_id, lead_id, policy_version}}
 *   response = {id:"chatcmpl-<decision id>", object:"chat.completion",
 *               created: timestamp, model, choices:[{index:0, message:{role:
 *               "assistant", content: the decision as compact JSON}, finish_reason:"stop"}]}
 */
#ifndef SFK_FLYWHEEL_H
#define SFK_FLYWHEEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"
#include "jschema.h"

#define FLYWHEEL_ID_MAX     80           /* decision id: "<workload>-<32 hex>" fits */
#define FLYWHEEL_RECORD_MAX (256 * 1024) /* serialized record; larger ones are refused */

/* What a record is built from. Strings and JSON borrowed. */
struct flywheel_in {
	int64_t timestamp;         /* epoch seconds (the decision time) */
	const char *client_id;     /* SFK_CLIENT_ID, non-empty */
	const char *workload_id;   /* "lead.route" */
	const char *model;         /* "rules:routing_policy@1.2.0" or the LLM's model name */
	const char *system_prompt; /* non-empty */
	json_t *facts;             /* object: the lead's facts (user message) */
	json_t *decision;          /* object: the decision (assistant message) */
	const char *decision_id;
	const char *event_id;
	const char *lead_id;        /* "" allowed when unknown */
	const char *policy_version; /* "" allowed for policy-less workloads */
};

/*
 * Deterministic decision id for (workload, event id): "<workload with '.'
 * -> '_'>-" + first 16 bytes of SHA-256("<workload>\n<event id>") as hex, so a
 * redelivered event yields the same id (and the same Kafka key). Returns 0,
 * or -1 if it does not fit len (FLYWHEEL_ID_MAX always fits ids <= 40 chars).
 */
int flywheel_decision_id(const char *workload_id, const char *event_id, char *buf, size_t len);

/*
 * Build the record. Returns a new reference, or NULL with errstr set when an
 * input is missing (NULL/empty required string, facts/decision not objects).
 */
json_t *flywheel_build(const struct flywheel_in *in, char *errstr, size_t errlen);

/*
 * Validate a record against the schema (s from jschema_load of
 * schemas/flywheel.schema.json) plus what a schema cannot say: created ==
 * timestamp, choices[0].message.content and the user message parse as JSON
 * objects. Returns the number of problems; *errors (may be NULL) gets a new
 * array of "path: problem" strings or NULL when valid.
 */
int flywheel_validate(const struct jschema *s, json_t *rec, json_t **errors);

/* Serialize compactly (the Kafka value). Returns a new string (free()) or NULL. */
char *flywheel_dump(json_t *rec, size_t *len);

#endif
