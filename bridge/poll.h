/*
 * poll.h - polling source (--source poll) for orgs without Change Data Capture.
 *
 * Per entity: queryAll on SystemModstamp from a watermark kept in the
 * checkpoint topic (key poll:<entity>, written in the transaction of the
 * records it covers), ordered by SystemModstamp, Id. Records become the same
 * envelope as CDC events: CREATE when CreatedDate == SystemModstamp, else
 * UPDATE, DELETE for recycle-bin records (IsDeleted), fanned out per the rules.
 */
#ifndef SFK_BRIDGE_POLL_H
#define SFK_BRIDGE_POLL_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "resync.h"
#include "sf_rest.h"

/* poll:<entity> value {"entity":..,"cursor":{..},"committed_at":ms}: new string (free()). */
char *poll_value(const char *entity, const struct resync_cursor *c, int64_t now_ms);
/* Parse such a value (borrowed) into *c. 0, or -1 if malformed. */
int poll_parse(json_t *v, struct resync_cursor *c);

/*
 * First watermark of entity when poll:<entity> does not exist: earliest = from
 * the start (every record), latest = the newest SystemModstamp now (with the
 * ids at that second), recorded in its own transaction so a restart starts
 * from the same point. SFK_OK or a query / sink error (errstr).
 */
enum sfk_err poll_start(struct sf_rest *rest, const struct resync_out *o, const char *entity,
                        int earliest, struct resync_cursor *c, char *errstr, size_t errlen);

/*
 * One poll of entity from *c: every record changed since, in transactions of
 * chunk records, each also moving poll:<entity>. *c advances with the commits.
 * *n: records published. SFK_OK, or the query / sink error (errstr).
 */
enum sfk_err poll_once(struct sf_rest *rest, const struct resync_out *o, const char *entity,
                       struct resync_cursor *c, size_t chunk, volatile sig_atomic_t *stop,
                       size_t *n, char *errstr, size_t errlen);

#endif
