/*
 * jschema.h - a JSON Schema validator (the subset our schemas/ use).
 *
 * Policies, flywheel records and event envelopes are validated against the
 * JSON Schemas in schemas/. Every problem is reported with its JSON path
 * ("$.pools[2].weight: 0 is less than the minimum 1"), not only the first.
 * Supported keywords: type, enum, const, properties, required,
 * additionalProperties, patternProperties, propertyNames, minProperties,
 * maxProperties, items, prefixItems, minItems, maxItems, uniqueItems,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf,
 * minLength, maxLength, pattern (POSIX ERE), format (date-time, date,
 * email, uri), allOf, anyOf, oneOf, not, if/then/else, $ref to "#/..." and
 * $defs/definitions. Unknown keywords are ignored, as the spec says.
 */
#ifndef SFK_JSCHEMA_H
#define SFK_JSCHEMA_H

#include <jansson.h>
#include <stddef.h>

struct jschema;

/* Load a schema file. Returns a new schema or NULL with errstr set. */
struct jschema *jschema_load(const char *path, char *errstr, size_t errlen);
/* Wrap a schema document (borrowed; a reference is taken). Never NULL. */
struct jschema *jschema_new(json_t *schema);
void jschema_free(struct jschema *s);

/*
 * Validate instance (borrowed). Returns the number of problems (0 = valid).
 * When errors is not NULL, *errors receives a new JSON array of strings, one
 * "path: problem" per problem (at most JSCHEMA_MAX_ERRORS), else NULL.
 */
#define JSCHEMA_MAX_ERRORS 100
int jschema_validate(const struct jschema *s, json_t *instance, json_t **errors);

#endif
