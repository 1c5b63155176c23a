#include "soql_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfid.h"
#include "xmem.h"

/* Worst case per input byte is \uXXXX: 6 bytes. */
static char *escape(const char *s, int like)
{
	size_t len = strlen(s);
	char *out = xmalloc(len * 6 + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		char e = 0;
		switch (c) {
		case '\'': e = '\''; break;
		case '"': e = '"'; break;
		case '\\': e = '\\'; break;
		case '\n': e = 'n'; break;
		case '\r': e = 'r'; break;
		case '\t': e = 't'; break;
		case '\b': e = 'b'; break;
		case '\f': e = 'f'; break;
		case '_':
		case '%':
			if (like)
				e = (char)c;
			break;
		default: break;
		}
		if (e) {
			*o++ = '\\';
			*o++ = e;
		} else if (c < 0x20 || c == 0x7f) {
			o += snprintf(o, 7, "\\u%04x", c);
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	return out;
}

char *soql_escape(const char *s)
{
	return escape(s, 0);
}

char *soql_escape_like(const char *s)
{
	return escape(s, 1);
}

char *soql_quote(const char *s)
{
	char *e = soql_escape(s);
	char *q = xasprintf("'%s'", e);
	free(e);
	return q;
}

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

size_t soql_urlencoded_len(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += unreserved(*p) ? 1 : 3;
	return n;
}

char *soql_urlencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(soql_urlencoded_len(s) + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (unreserved(*p)) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

void soql_list_free(struct soql_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->q[i]);
	free(l->q);
	l->q = NULL;
	l->n = 0;
}

/* A growable string for one statement under construction. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

static void list_push(struct soql_list *l, char *q)
{
	l->q = xrealloc(l->q, (l->n + 1) * sizeof *l->q);
	l->q[l->n++] = q;
}

enum sfk_err soql_build_in(const char *head, const char *tail, const char *const *values, size_t n,
                           size_t uri_overhead, size_t max_uri, struct soql_list *out, char *errstr,
                           size_t errlen)
{
	enum sfk_err rc = SFK_OK;
	struct sbuf b = {0};
	out->q = NULL;
	out->n = 0;
	if (max_uri == 0)
		max_uri = SOQL_URI_MAX;
	/* Fixed cost of one statement: overhead + head + "(" + ")" + tail. */
	size_t fixed = uri_overhead + soql_urlencoded_len(head) + soql_urlencoded_len("()") +
	               soql_urlencoded_len(tail);
	size_t comma = soql_urlencoded_len(",");
	size_t used = 0, count = 0; /* encoded bytes of the values in b, values in b */
	for (size_t i = 0; i < n; i++) {
		char *lit = soql_quote(values[i]);
		size_t cost = soql_urlencoded_len(lit);
		if (fixed + cost > max_uri) {
			snprintf(errstr, errlen,
			         "value %zu alone makes a query URI of %zu bytes (limit %zu)", i,
			         fixed + cost, max_uri);
			free(lit);
			rc = SFK_ERR_TOO_LARGE;
			goto out;
		}
		if (count > 0 && fixed + used + comma + cost > max_uri) {
			sb_add(&b, ")");
			sb_add(&b, tail);
			list_push(out, b.p);
			memset(&b, 0, sizeof b);
			used = count = 0;
		}
		if (count == 0) {
			sb_add(&b, head);
			sb_add(&b, "(");
		} else {
			sb_add(&b, ",");
			used += comma;
		}
		sb_add(&b, lit);
		used += cost;
		count++;
		free(lit);
	}
	if (count > 0) {
		sb_add(&b, ")");
		sb_add(&b, tail);
		list_push(out, b.p);
		b.p = NULL;
	}
out:
	free(b.p);
	if (rc != SFK_OK)
		soql_list_free(out);
	return rc;
}

enum sfk_err soql_build_in_ids(const char *head, const char *tail, const char *const *ids, size_t n,
                               size_t uri_overhead, size_t max_uri, struct soql_list *out,
                               char *errstr, size_t errlen)
{
	out->q = NULL;
	out->n = 0;
	for (size_t i = 0; i < n; i++)
		if (!sfid_valid(ids[i])) {
			/* Not the text: it may be anything, including an injection attempt. */
			snprintf(errstr, errlen, "value %zu is not a valid Salesforce record id",
			         i);
			return SFK_ERR_INVALID;
		}
	return soql_build_in(head, tail, ids, n, uri_overhead, max_uri, out, errstr, errlen);
}
