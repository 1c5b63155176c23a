/*
 * resync.h - full resync of one entity after a GAP_OVERFLOW event.
 *
 * Salesforce's advice for an overflow: the changes of that transaction are
 * not delivered, so read the entity back. Every record (all fields the
 * describe lists, compound address/location fields through their parts)
 * is queried through REST and published as SNAPSHOT envelopes with
 * flags.resynced, in transactions of `chunk` records. Deleted records are
 * not detected (that would need a store of known ids).
 */
#ifndef SFK_BRIDGE_RESYNC_H
#define SFK_BRIDGE_RESYNC_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "publish.h"
#include "sf_rest.h"

/* Longest SELECT list we build (Salesforce allows far more; the query URI
 * limit is the binding one). */
#define RESYNC_SOQL_MAX      16384
#define RESYNC_DEFAULT_CHUNK 500

/*
 * Resync entity (an API name) as of the overflow event replay_id. Stops
 * early (SFK_OK, partial) when *stop is set. *total: records published.
 * Errors: describe/query failures (sf_rest codes), SOQL too long
 * (SFK_ERR_TOO_LARGE), publish failures (their codes); errstr says which.
 */
enum sfk_err resync_entity(struct sf_rest *rest, struct publisher *p, const char *entity,
                           int64_t replay_id, size_t chunk, volatile sig_atomic_t *stop,
                           size_t *total, char *errstr, size_t errlen);

/* The SOQL for entity from its describe (borrowed): new string (free()), or
 * NULL (errstr) if a field name is unusable or the text exceeds RESYNC_SOQL_MAX. */
char *resync_soql(const char *entity, json_t *describe, char *errstr, size_t errlen);

#endif
