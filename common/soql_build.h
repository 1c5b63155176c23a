/*
 * soql_build.h - building SOQL text safely: literal escaping and IN-lists.
 *
 * Nothing user-controlled reaches a SOQL statement unescaped: string values go
 * through soql_escape(), record ids are validated with sfid before they are
 * quoted, and long IN (...) lists are split so that every resulting
 * GET .../query?q=<url-encoded SOQL> stays within Salesforce's URI limit.
 * Pure functions, no I/O. (Named soql_build so it does not clash with the
 * emulator's tests/sfsim/soql.h.)
 */
#ifndef SFK_SOQL_BUILD_H
#define SFK_SOQL_BUILD_H

#include <stddef.h>

#include "err.h"

/* Salesforce rejects request URIs longer than this with 414 (incl. URL-encoding). */
#define SOQL_URI_MAX 16384

/*
 * Escape s for use inside a SOQL single-quoted string literal (the quotes are
 * not added): backslash-escapes ' " \ and newline, CR, tab, backspace and
 * form feed (\n \r \t \b \f); other control characters become \uXXXX.
 * Returns a new string (free()).
 */
char *soql_escape(const char *s);

/* Same as soql_escape, and also escapes the LIKE wildcards _ and % (\_ \%)
 * so the value matches literally inside a LIKE pattern. New string. */
char *soql_escape_like(const char *s);

/* s as a quoted literal: "'" + soql_escape(s) + "'". New string. */
char *soql_quote(const char *s);

/* Bytes s takes once URL-encoded the way sf_rest encodes the q= parameter
 * (unreserved A-Z a-z 0-9 - . _ ~ stay, everything else is %XX). */
size_t soql_urlencoded_len(const char *s);
/* URL-encode s (same rules). New string. */
char *soql_urlencode(const char *s);

/* A list of SOQL statements produced by the IN-list builder. */
struct soql_list {
	char **q; /* n statements, each owned by the list */
	size_t n;
};
/* Frees the statements and resets the list to empty. NULL ok. */
void soql_list_free(struct soql_list *l);

/*
 * Build "<head>('v1','v2',...)<tail>" statements covering every value, in
 * order, each value escaped and quoted, splitting into several statements so
 * that uri_overhead + soql_urlencoded_len(statement) <= max_uri for each.
 *   head: e.g. "SELECT Id, OwnerId FROM Lead WHERE Id IN " (trusted SOQL text)
 *   tail: e.g. " AND IsConverted = false" or "" (trusted SOQL text)
 *   uri_overhead: bytes of the URL before the q= value (scheme, host,
 *                 "/services/data/vXX.X/query?q="); max_uri: 0 = SOQL_URI_MAX.
 * values are borrowed. n == 0 gives an empty list and SFK_OK.
 * Returns SFK_OK and fills *out (caller frees with soql_list_free), or
 * SFK_ERR_TOO_LARGE when even a single value does not fit (detail in errstr).
 */
enum sfk_err soql_build_in(const char *head, const char *tail, const char *const *values, size_t n,
                           size_t uri_overhead, size_t max_uri, struct soql_list *out, char *errstr,
                           size_t errlen);

/*
 * As soql_build_in for Salesforce record ids: every id is first validated
 * (15 or 18 characters, 18-character checksum, via sfid); one bad id fails
 * the whole call with SFK_ERR_INVALID naming its position (not its text,
 * which may be anything) and nothing is built.
 */
enum sfk_err soql_build_in_ids(const char *head, const char *tail, const char *const *ids, size_t n,
                               size_t uri_overhead, size_t max_uri, struct soql_list *out,
                               char *errstr, size_t errlen);

#endif
