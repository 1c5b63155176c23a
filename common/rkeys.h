/*
 * rkeys.h - every Redis key the project uses, in one place.
 *
 * Redis keys (DESIGN.md §4). All keys start with "sfk:"; a module that adds a
 * key adds its line here first. No key is ever written without a TTL except
 * the round-robin pointers (bounded in number by the policy).
 *
 * key                                      value                              TTL
 * ---------------------------------------- ---------------------------------- -------------------
 * sfk:tok:<hash>                           JSON {"access_token","instance_url",  token lifetime
 *   <hash> = hex SHA-256 of                 "issued_at"} - the cached OAuth     (session timeout,
 *   login URL + client id + username        token shared by all processes       minus a margin)
 * sfk:tok:<hash>:lock                      owner token (random hex); single-   short (seconds):
 *                                           flight refresh lock, SET NX PX      PX lease
 *   (token cache, common/sf_auth*: it owns the exact format; a 401 deletes the
 *    token only if it is still the one that failed: compare-and-delete, Lua)
 * sfk:idem:<workload>:<epoch>:<event id>   owner token (claimed: 32 hex chars)  claim: lease_ms
 *                                           or the literal "done"              (default 30 s);
 *                                                                              done: >= topic
 *                                                                              retention (7 d)
 *   (common/idem.h; <epoch> is a decimal integer an operator bumps to re-apply
 *    history deliberately; <event id> = entity + record id + replay id [+ idx])
 * sfk:rr:<policy version>:<pool>           integer pointer (INCR) / per-owner  pointer: none;
 *                                           daily cap counters                 caps: until end of
 *                                           (sfk:rr:<ver>:<pool>:cap:<YYYY-MM-DD>:<owner>) day +
 * margin (routing; same input + policy + pointer state = same owner) sfk:ttfr:<lead id> earliest
 * first response seen:       >= topic retention
 *                                           "<epoch ms>|<source>|<user id>",
 *                                           replaced only by an earlier one (Lua)
 *   (lead.first_touch_detect; <lead id> is the 18-char id, see sfid_to18)
 * sfk:lease:bridge                         "<fencing token>:<owner token>"     lease (seconds),
 *                                           fencing token from INCR of          renewed by the
 *                                           sfk:lease:bridge:fence (no TTL)     active bridge
 *   (bridge leadership: one active, hot standby)
 *
 * Formats marked by another module's name are that module's contract; keep
 * this table in step when it changes.
 */
#ifndef SFK_RKEYS_H
#define SFK_RKEYS_H

#define RKEY_PREFIX       "sfk:"
#define RKEY_TOK          "sfk:tok:"
#define RKEY_IDEM         "sfk:idem:"
#define RKEY_RR           "sfk:rr:"
#define RKEY_TTFR         "sfk:ttfr:"
#define RKEY_LEASE_BRIDGE "sfk:lease:bridge"

#endif
