/*
 * soql.c - SOQL subset: lexer, recursive-descent parser, Salesforce-shaped
 * error messages, date arithmetic. Binding and evaluation live in
 * soql_eval.c. Grammar (keywords case-insensitive):
 *
 *   query   := SELECT (COUNT '(' ')' | field {',' field}) FROM name [alias]
 *              [WHERE cond] [ORDER BY key {',' key}] [LIMIT int] [OFFSET int]
 *   cond    := unary {AND unary} | unary {OR unary}   -- never mixed, like SOQL
 *   unary   := NOT unary | '(' cond ')' | field op value
 *              | field [NOT] IN '(' value {',' value} ')' | field LIKE string
 *   key     := field [ASC|DESC] [NULLS (FIRST|LAST)]
 *
 * Salesforce refuses "a OR b AND c" (unexpected token: 'AND'): a condition
 * mixing AND and OR must be parenthesised, so there is no precedence to get
 * wrong. We do the same.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soql_int.h"
#include "xmem.h"

/* Salesforce's message snippet: the tokens within this many characters
 * before and after the error position (derived from real error bodies). */
#define SNIPPET_BEFORE 30
#define SNIPPET_AFTER  31
/* Never copy more than this much of one token into a message. */
#define TOKEN_CLIP 100

enum tok_kind {
	T_EOF,
	T_IDENT,
	T_STRING,
	T_NUMBER,
	T_DATE,
	T_DATETIME,
	T_LPAREN,
	T_RPAREN,
	T_COMMA,
	T_COLON,
	T_EQ,
	T_NE,
	T_LT,
	T_LE,
	T_GT,
	T_GE,
	T_BAD /* a character no token starts with */
};

struct tok {
	enum tok_kind kind;
	size_t pos, len;
};

struct parser {
	const char *s;
	size_t len;
	struct tok *toks;
	size_t ntoks, i;
	int depth;
	struct soql_query *q;
	struct soql_error *err;
};

/* ---- errors ---------------------------------------------------------- */

static int is_word(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '.' || c >= 0x80;
}

static void errcpy(char *dst, size_t size, const char *src)
{
	int n = snprintf(dst, size, "%s", src);

	(void)n; /* truncation of an error text is acceptable */
}

/* Replace bytes that are not valid UTF-8 with '?': messages become JSON
 * strings, and snippets may cut a character or quote a stray byte. */
static void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p != '\0') {
		size_t n, i;
		unsigned cp;

		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xE0) == 0xC0)
			n = 2, cp = *p & 0x1Fu;
		else if ((*p & 0xF0) == 0xE0)
			n = 3, cp = *p & 0x0Fu;
		else if ((*p & 0xF8) == 0xF0)
			n = 4, cp = *p & 0x07u;
		else
			n = 0, cp = 0;
		for (i = 1; n != 0 && i < n; i++) {
			if ((p[i] & 0xC0) != 0x80) {
				n = 0;
				break;
			}
			cp = (cp << 6) | (p[i] & 0x3Fu);
		}
		/* reject overlong forms, surrogates and values past U+10FFFF */
		if (n == 0 || (n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
		    (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

void soql_err_plain(struct soql_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	errcpy(err->code, sizeof(err->code), code);
	va_start(ap, fmt);
	if (vsnprintf(err->message, sizeof(err->message), fmt, ap) < 0)
		err->message[0] = '\0';
	va_end(ap);
	utf8_sanitize(err->message);
	err->row = 0;
	err->column = 0;
}

void soql_err_at(struct soql_error *err, const char *code, const char *text, size_t len, size_t pos,
                 const char *fmt, ...)
{
	char reason[512];
	va_list ap;
	size_t line_start = 0, line_end, s, e, i;
	int row = 1, n;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	if (vsnprintf(reason, sizeof(reason), fmt, ap) < 0)
		reason[0] = '\0';
	va_end(ap);
	if (pos > len)
		pos = len;
	for (i = 0; i < pos; i++) {
		if (text[i] == '\n') {
			row++;
			line_start = i + 1;
		}
	}
	line_end = pos;
	while (line_end < len && text[line_end] != '\n' && text[line_end] != '\r')
		line_end++;

	/* Window start: the token containing pos-30 (never before the line). */
	s = pos - line_start > SNIPPET_BEFORE ? pos - SNIPPET_BEFORE : line_start;
	for (i = 0; s > line_start && i < TOKEN_CLIP && is_word((unsigned char)text[s]) &&
	            is_word((unsigned char)text[s - 1]);
	     i++)
		s--;
	while (s < pos && isspace((unsigned char)text[s]))
		s++;
	/* Window end: through the token containing pos+31. */
	e = line_end - pos > SNIPPET_AFTER ? pos + SNIPPET_AFTER : line_end;
	if (e < line_end) {
		if (isspace((unsigned char)text[e])) {
			while (e > pos && isspace((unsigned char)text[e - 1]))
				e--;
		} else if (is_word((unsigned char)text[e])) {
			for (i = 0;
			     e < line_end && i < TOKEN_CLIP && is_word((unsigned char)text[e]); i++)
				e++;
		} else {
			e++;
		}
	}
	errcpy(err->code, sizeof(err->code), code);
	n = snprintf(err->message, sizeof(err->message),
	             "\n%.*s\n%*s^\nERROR at Row:%d:Column:%zu\n%s", (int)(e - s), text + s,
	             (int)(pos - s), "", row, pos - line_start + 1, reason);
	if (n < 0)
		err->message[0] = '\0';
	utf8_sanitize(err->message);
	err->row = row;
	err->column = (int)(pos - line_start + 1);
}

int soql_strcasecmp(const char *a, const char *b)
{
	unsigned char ca, cb;

	do {
		ca = (unsigned char)tolower((unsigned char)*a++);
		cb = (unsigned char)tolower((unsigned char)*b++);
	} while (ca != '\0' && ca == cb);
	return (int)ca - (int)cb;
}

/* ---- lexer ----------------------------------------------------------- */

static size_t lex_ident(const char *s, size_t len, size_t i)
{
	while (i < len) {
		if (isalnum((unsigned char)s[i]) || s[i] == '_') {
			i++;
		} else if (s[i] == '.' && i + 1 < len &&
		           (isalpha((unsigned char)s[i + 1]) || s[i + 1] == '_')) {
			i++;
		} else {
			break;
		}
	}
	return i;
}

/* A date or datetime literal starts "dddd-d". Scan its maximal extent;
 * validity is checked by the parser so the error names the whole text. */
static size_t lex_datetime(const char *s, size_t len, size_t i, enum tok_kind *kind)
{
	while (i < len && (isdigit((unsigned char)s[i]) || s[i] == '-'))
		i++;
	*kind = T_DATE;
	if (i + 1 < len && (s[i] == 'T' || s[i] == 't') && isdigit((unsigned char)s[i + 1])) {
		*kind = T_DATETIME;
		i++;
		while (i < len && (isdigit((unsigned char)s[i]) || s[i] == ':' || s[i] == '.'))
			i++;
		if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
			i++;
		} else if (i < len && (s[i] == '+' || s[i] == '-')) {
			i++;
			while (i < len && (isdigit((unsigned char)s[i]) || s[i] == ':'))
				i++;
		}
	}
	return i;
}

static int lex(struct parser *p)
{
	const char *s = p->s;
	size_t len = p->len, i = 0, cap = 64;

	p->toks = xmalloc(cap * sizeof(*p->toks));
	p->ntoks = 0;
	for (;;) {
		struct tok t = {T_EOF, 0, 0};

		while (i < len && isspace((unsigned char)s[i]))
			i++;
		t.pos = i;
		if (i >= len) {
			t.kind = T_EOF;
		} else if (isalpha((unsigned char)s[i]) || s[i] == '_') {
			t.kind = T_IDENT;
			i = lex_ident(s, len, i);
		} else if (s[i] == '\'') {
			for (i++; i < len && s[i] != '\''; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
			}
			if (i >= len) {
				size_t ls = len;
				int row = 1;

				while (ls > 0 && s[ls - 1] != '\n')
					ls--;
				for (size_t k = 0; k < ls; k++)
					row += s[k] == '\n';
				/* ANTLR's wording, 0-based column (as Salesforce shows it) */
				soql_err_at(
				        p->err, "MALFORMED_QUERY", s, len, len,
				        "line %d:%zu mismatched character '<EOF>' expecting '''",
				        row, len - ls);
				return -1;
			}
			i++;
			t.kind = T_STRING;
		} else if (isdigit((unsigned char)s[i]) ||
		           ((s[i] == '-' || s[i] == '+') && i + 1 < len &&
		            isdigit((unsigned char)s[i + 1]))) {
			size_t j = i + (s[i] == '-' || s[i] == '+');
			size_t k = j;

			while (k < len && isdigit((unsigned char)s[k]))
				k++;
			if (j == i && k - j == 4 && k + 1 < len && s[k] == '-' &&
			    isdigit((unsigned char)s[k + 1])) {
				i = lex_datetime(s, len, i, &t.kind);
			} else {
				t.kind = T_NUMBER;
				i = k;
				if (i + 1 < len && s[i] == '.' &&
				    isdigit((unsigned char)s[i + 1])) {
					for (i++; i < len && isdigit((unsigned char)s[i]); i++)
						;
				}
			}
		} else {
			i++;
			switch (s[t.pos]) {
			case '(': t.kind = T_LPAREN; break;
			case ')': t.kind = T_RPAREN; break;
			case ',': t.kind = T_COMMA; break;
			case ':': t.kind = T_COLON; break;
			case '=': t.kind = T_EQ; break;
			case '!':
				t.kind = T_BAD;
				if (i < len && s[i] == '=') {
					t.kind = T_NE;
					i++;
				}
				break;
			case '<':
				t.kind = T_LT;
				if (i < len && s[i] == '=') {
					t.kind = T_LE;
					i++;
				} else if (i < len && s[i] == '>') {
					t.kind = T_NE;
					i++;
				}
				break;
			case '>':
				t.kind = T_GT;
				if (i < len && s[i] == '=') {
					t.kind = T_GE;
					i++;
				}
				break;
			default:
				/* one whole UTF-8 character, so the message quotes it */
				while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
					i++;
				t.kind = T_BAD;
				break;
			}
		}
		t.len = i - t.pos;
		if (p->ntoks == cap) {
			cap *= 2;
			p->toks = xrealloc(p->toks, cap * sizeof(*p->toks));
		}
		p->toks[p->ntoks++] = t;
		if (t.kind == T_EOF)
			return 0;
	}
}

/* ---- parser helpers -------------------------------------------------- */

static const struct tok *peek(const struct parser *p)
{
	return &p->toks[p->i];
}

static const struct tok *peek2(const struct parser *p)
{
	return p->i + 1 < p->ntoks ? &p->toks[p->i + 1] : &p->toks[p->ntoks - 1];
}

static void advance(struct parser *p)
{
	if (p->toks[p->i].kind != T_EOF)
		p->i++;
}

static int is_kw(const struct parser *p, const struct tok *t, const char *kw)
{
	size_t n = strlen(kw);

	return t->kind == T_IDENT && t->len == n && strncasecmp(p->s + t->pos, kw, n) == 0;
}

static int unexpected(struct parser *p, const struct tok *t)
{
	if (t->kind == T_EOF)
		soql_err_at(p->err, "MALFORMED_QUERY", p->s, p->len, t->pos,
		            "unexpected token: '<EOF>'");
	else
		soql_err_at(p->err, "MALFORMED_QUERY", p->s, p->len, t->pos,
		            "unexpected token: '%.*s'",
		            (int)(t->len > TOKEN_CLIP ? TOKEN_CLIP : t->len), p->s + t->pos);
	return -1;
}

static int expect_kw(struct parser *p, const char *kw)
{
	if (!is_kw(p, peek(p), kw))
		return unexpected(p, peek(p));
	advance(p);
	return 0;
}

static int expect(struct parser *p, enum tok_kind k)
{
	if (peek(p)->kind != k)
		return unexpected(p, peek(p));
	advance(p);
	return 0;
}

/* Words that end a clause and so cannot be an object alias. */
static int is_reserved(const struct parser *p, const struct tok *t)
{
	static const char *const kws[] = {
	        "WHERE",  "ORDER", "LIMIT", "OFFSET", "GROUP", "HAVING", "WITH", "FOR",  "USING",
	        "UPDATE", "ALL",   "AND",   "OR",     "NOT",   "SELECT", "FROM", "LIKE", "IN",
	        "NULL",   "TRUE",  "FALSE", "ASC",    "DESC",  "NULLS",  "BY"};
	size_t i;

	for (i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
		if (is_kw(p, t, kws[i]))
			return 1;
	}
	return 0;
}

static int parse_fref(struct parser *p, struct fref *f)
{
	const struct tok *t = peek(p);

	if (t->kind != T_IDENT || is_reserved(p, t) || t->len > SOQL_MAX_NAME * 2 + 1)
		return unexpected(p, t);
	memset(f, 0, sizeof(*f));
	f->path = xstrndup(p->s + t->pos, t->len);
	f->pos = t->pos;
	f->len = t->len;
	advance(p);
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits at s (n available) -> code unit, or -1. */
static long hex4(const char *s, size_t n)
{
	long v = 0;
	size_t i;

	if (n < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		int h = hexval(s[i]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static size_t put_utf8(char *o, unsigned long cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Decode a string literal (the len bytes between the quotes at pos) with
 * SOQL's escapes: \n \r \t \b \f (either case), \' \" \\, \uXXXX (surrogate
 * pairs combine), and \_ \% (meaningful in LIKE). For a LIKE pattern
 * (like != 0) the result keeps exactly three escapes, \\ \% \_, so the
 * matcher can tell a literal % or _ from a wildcard; otherwise \_ and \%
 * decode to the bare character. NULL (and err) on a bad escape or NUL.
 * Output never exceeds the input length (each escape is >= its output).
 */
static char *decode_string(struct parser *p, size_t pos, size_t len, int like)
{
	const char *s = p->s + pos;
	char *out = xmalloc(len + 1);
	size_t i, o = 0, esc = 0;
	long u, lo;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		esc = i++;
		switch (s[i]) {
		case '\'': out[o++] = '\''; break;
		case '"': out[o++] = '"'; break;
		case 'n':
		case 'N': out[o++] = '\n'; break;
		case 'r':
		case 'R': out[o++] = '\r'; break;
		case 't':
		case 'T': out[o++] = '\t'; break;
		case 'b':
		case 'B': out[o++] = '\b'; break;
		case 'f':
		case 'F': out[o++] = '\f'; break;
		case '\\':
		case '_':
		case '%':
			if (like)
				out[o++] = '\\';
			out[o++] = s[i];
			break;
		case 'u':
			u = hex4(s + i + 1, len - i - 1);
			if (u < 0 || u == 0 || (u >= 0xDC00 && u <= 0xDFFF))
				goto bad;
			i += 4;
			if (u >= 0xD800 && u <= 0xDBFF) {
				if (i + 2 >= len || s[i + 1] != '\\' || s[i + 2] != 'u')
					goto bad;
				lo = hex4(s + i + 3, len - i - 3);
				if (lo < 0xDC00 || lo > 0xDFFF)
					goto bad;
				i += 6;
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
			}
			o += put_utf8(out + o, (unsigned long)u);
			break;
		default: goto bad;
		}
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	soql_err_at(p->err, "MALFORMED_QUERY", p->s, p->len, pos - 1,
	            "Invalid string literal '%.*s'. Illegal character sequence '%.*s' in string "
	            "literal.",
	            (int)(len > TOKEN_CLIP ? TOKEN_CLIP : len), s,
	            s[esc + 1] == 'u' ? (int)(len - esc < 6 ? len - esc : 6) : 2, s + esc);
	return NULL;
}

static const struct {
	const char *name;
	enum datefn fn;
	int takes_n;
} datefns[] = {
        {"TODAY", DF_TODAY, 0},
        {"YESTERDAY", DF_YESTERDAY, 0},
        {"TOMORROW", DF_TOMORROW, 0},
        {"LAST_WEEK", DF_LAST_WEEK, 0},
        {"THIS_WEEK", DF_THIS_WEEK, 0},
        {"NEXT_WEEK", DF_NEXT_WEEK, 0},
        {"LAST_MONTH", DF_LAST_MONTH, 0},
        {"THIS_MONTH", DF_THIS_MONTH, 0},
        {"NEXT_MONTH", DF_NEXT_MONTH, 0},
        {"LAST_YEAR", DF_LAST_YEAR, 0},
        {"THIS_YEAR", DF_THIS_YEAR, 0},
        {"NEXT_YEAR", DF_NEXT_YEAR, 0},
        {"LAST_90_DAYS", DF_LAST_90_DAYS, 0},
        {"NEXT_90_DAYS", DF_NEXT_90_DAYS, 0},
        {"LAST_N_DAYS", DF_LAST_N_DAYS, 1},
        {"NEXT_N_DAYS", DF_NEXT_N_DAYS, 1},
        {"N_DAYS_AGO", DF_N_DAYS_AGO, 1},
};

/* Non-negative integer token -> value (<= max); -1 with err otherwise. */
static int parse_uint(struct parser *p, long max, long *out)
{
	const struct tok *t = peek(p);
	char buf[32];
	char *end;
	long long v;

	if (t->kind != T_NUMBER || t->len >= sizeof(buf) || !isdigit((unsigned char)p->s[t->pos]))
		return unexpected(p, t);
	memcpy(buf, p->s + t->pos, t->len);
	buf[t->len] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return unexpected(p, t);
	*out = (long)v;
	advance(p);
	return 0;
}

/* like: the value is a LIKE pattern (see decode_string). */
static int parse_value(struct parser *p, struct value *v, int like)
{
	const struct tok *t = peek(p);
	size_t i;

	memset(v, 0, sizeof(*v));
	v->pos = t->pos;
	v->len = t->len;
	switch (t->kind) {
	case T_STRING:
		v->kind = V_STR;
		v->str = decode_string(p, t->pos + 1, t->len - 2, like);
		if (v->str == NULL)
			return -1;
		advance(p);
		return 0;
	case T_NUMBER: {
		char buf[64];
		char *end;

		if (t->len >= sizeof(buf))
			return unexpected(p, t);
		memcpy(buf, p->s + t->pos, t->len);
		buf[t->len] = '\0';
		errno = 0;
		v->num = strtod(buf, &end);
		if (errno != 0 || *end != '\0')
			return unexpected(p, t);
		v->kind = V_NUM;
		advance(p);
		return 0;
	}
	case T_DATE:
		v->kind = V_DATE;
		if (soql_parse_date(p->s + t->pos, t->len, &v->lo)) {
			soql_err_at(p->err, "MALFORMED_QUERY", p->s, p->len, t->pos,
			            "Invalid date: %.*s",
			            (int)(t->len > TOKEN_CLIP ? TOKEN_CLIP : t->len),
			            p->s + t->pos);
			return -1;
		}
		v->hi = v->lo + 1;
		advance(p);
		return 0;
	case T_DATETIME:
		v->kind = V_DATETIME;
		if (soql_parse_datetime(p->s + t->pos, t->len, &v->lo)) {
			soql_err_at(p->err, "MALFORMED_QUERY", p->s, p->len, t->pos,
			            "Invalid datetime: %.*s",
			            (int)(t->len > TOKEN_CLIP ? TOKEN_CLIP : t->len),
			            p->s + t->pos);
			return -1;
		}
		v->hi = v->lo + 1;
		advance(p);
		return 0;
	case T_IDENT:
		if (is_kw(p, t, "NULL")) {
			v->kind = V_NULL;
			advance(p);
			return 0;
		}
		if (is_kw(p, t, "TRUE") || is_kw(p, t, "FALSE")) {
			v->kind = V_BOOL;
			v->b = is_kw(p, t, "TRUE");
			advance(p);
			return 0;
		}
		for (i = 0; i < sizeof(datefns) / sizeof(datefns[0]); i++) {
			if (!is_kw(p, t, datefns[i].name))
				continue;
			v->kind = V_DATEFN;
			v->fn = datefns[i].fn;
			advance(p);
			if (datefns[i].takes_n) {
				if (expect(p, T_COLON) || parse_uint(p, 1000000, &v->n))
					return -1;
				v->len = p->toks[p->i - 1].pos + p->toks[p->i - 1].len - v->pos;
			}
			return 0;
		}
		return unexpected(p, t);
	default: return unexpected(p, t);
	}
}

static struct node *new_node(enum nkind kind)
{
	struct node *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	return n;
}

static void free_value(struct value *v)
{
	free(v->str);
}

static void free_fref(struct fref *f)
{
	free(f->path);
	free(f->name);
	free(f->rel);
	free(f->rel_object);
	free(f->rel_idfield);
	free(f->display);
}

static void free_node(struct node *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->nkids; i++)
		free_node(n->kids[i]);
	free(n->kids);
	free_fref(&n->f);
	for (i = 0; i < n->nvals; i++)
		free_value(&n->vals[i]);
	free(n->vals);
	free(n);
}

static void add_kid(struct node *n, struct node *kid)
{
	n->kids = xrealloc(n->kids, (n->nkids + 1) * sizeof(*n->kids));
	n->kids[n->nkids++] = kid;
}

static struct node *parse_cond(struct parser *p);

static int too_deep(struct parser *p)
{
	if (++p->depth <= SOQL_MAX_DEPTH)
		return 0;
	soql_err_plain(p->err, "QUERY_TOO_COMPLICATED",
	               "Query is either selecting too many fields or the filter conditions are too "
	               "complicated.");
	return 1;
}

static struct node *parse_comparison(struct parser *p)
{
	struct node *n = new_node(N_CMP);
	const struct tok *t;

	if (parse_fref(p, &n->f))
		goto fail;
	t = peek(p);
	n->op_pos = t->pos;
	switch (t->kind) {
	case T_EQ: n->op = OP_EQ; break;
	case T_NE: n->op = OP_NE; break;
	case T_LT: n->op = OP_LT; break;
	case T_LE: n->op = OP_LE; break;
	case T_GT: n->op = OP_GT; break;
	case T_GE: n->op = OP_GE; break;
	default:
		if (is_kw(p, t, "LIKE")) {
			n->op = OP_LIKE;
		} else if (is_kw(p, t, "IN")) {
			n->op = OP_IN;
		} else if (is_kw(p, t, "NOT") && is_kw(p, peek2(p), "IN")) {
			n->op = OP_NOT_IN;
			advance(p);
		} else {
			unexpected(p, t);
			goto fail;
		}
	}
	advance(p);
	if (n->op == OP_LIKE && peek(p)->kind != T_STRING) {
		unexpected(p, peek(p));
		goto fail;
	}
	if (n->op == OP_IN || n->op == OP_NOT_IN) {
		if (expect(p, T_LPAREN))
			goto fail;
		for (;;) {
			n->vals = xrealloc(n->vals, (n->nvals + 1) * sizeof(*n->vals));
			if (parse_value(p, &n->vals[n->nvals], 0)) {
				goto fail;
			}
			n->nvals++;
			if (peek(p)->kind != T_COMMA)
				break;
			advance(p);
		}
		if (expect(p, T_RPAREN))
			goto fail;
		return n;
	}
	n->vals = xmalloc(sizeof(*n->vals));
	if (parse_value(p, &n->vals[0], n->op == OP_LIKE))
		goto fail;
	n->nvals = 1;
	return n;
fail:
	free_node(n);
	return NULL;
}

static struct node *parse_unary(struct parser *p)
{
	struct node *n = NULL, *kid;

	if (too_deep(p))
		return NULL;
	if (is_kw(p, peek(p), "NOT")) {
		advance(p);
		kid = parse_unary(p);
		if (kid != NULL) {
			n = new_node(N_NOT);
			add_kid(n, kid);
		}
	} else if (peek(p)->kind == T_LPAREN) {
		advance(p);
		n = parse_cond(p);
		if (n != NULL && expect(p, T_RPAREN)) {
			free_node(n);
			n = NULL;
		}
	} else {
		n = parse_comparison(p);
	}
	p->depth--;
	return n;
}

static struct node *parse_cond(struct parser *p)
{
	struct node *first, *n;
	const char *kw, *other;

	first = parse_unary(p);
	if (first == NULL)
		return NULL;
	if (is_kw(p, peek(p), "AND")) {
		kw = "AND", other = "OR";
	} else if (is_kw(p, peek(p), "OR")) {
		kw = "OR", other = "AND";
	} else {
		return first;
	}
	n = new_node(kw[0] == 'A' ? N_AND : N_OR);
	add_kid(n, first);
	while (is_kw(p, peek(p), kw)) {
		struct node *kid;

		advance(p);
		kid = parse_unary(p);
		if (kid == NULL)
			goto fail;
		add_kid(n, kid);
	}
	if (is_kw(p, peek(p), other)) {
		unexpected(p, peek(p));
		goto fail;
	}
	return n;
fail:
	free_node(n);
	return NULL;
}

static int parse_select_list(struct parser *p)
{
	struct soql_query *q = p->q;

	if (is_kw(p, peek(p), "COUNT") && peek2(p)->kind == T_LPAREN) {
		advance(p);
		advance(p);
		if (expect(p, T_RPAREN))
			return -1;
		q->is_count = 1;
		return 0;
	}
	for (;;) {
		q->fields = xrealloc(q->fields, (q->nfields + 1) * sizeof(*q->fields));
		if (parse_fref(p, &q->fields[q->nfields]))
			return -1;
		q->nfields++;
		if (peek(p)->kind != T_COMMA)
			return 0;
		advance(p);
	}
}

static int parse_order_by(struct parser *p)
{
	struct soql_query *q = p->q;

	for (;;) {
		struct order *o;

		q->order = xrealloc(q->order, (q->norder + 1) * sizeof(*q->order));
		o = &q->order[q->norder];
		memset(o, 0, sizeof(*o));
		if (parse_fref(p, &o->f))
			return -1;
		q->norder++;
		if (is_kw(p, peek(p), "ASC")) {
			advance(p);
		} else if (is_kw(p, peek(p), "DESC")) {
			o->desc = 1;
			advance(p);
		}
		/* Salesforce: ASC sorts nulls first, DESC nulls last. */
		o->nulls_last = o->desc;
		if (is_kw(p, peek(p), "NULLS")) {
			advance(p);
			if (is_kw(p, peek(p), "FIRST")) {
				o->nulls_last = 0;
			} else if (is_kw(p, peek(p), "LAST")) {
				o->nulls_last = 1;
			} else {
				return unexpected(p, peek(p));
			}
			advance(p);
		}
		if (peek(p)->kind != T_COMMA)
			return 0;
		advance(p);
	}
}

static int parse_query(struct parser *p)
{
	struct soql_query *q = p->q;
	const struct tok *t;

	if (expect_kw(p, "SELECT") || parse_select_list(p) || expect_kw(p, "FROM"))
		return -1;
	/* Any identifier names the object, reserved word or not: Salesforce
	 * has objects called Group (queues) and Order.  Only what follows it is
	 * read as a clause keyword (FROM Group GROUP BY ... stays unsupported). */
	t = peek(p);
	if (t->kind != T_IDENT || t->len > SOQL_MAX_NAME)
		return unexpected(p, t);
	q->object = xstrndup(p->s + t->pos, t->len);
	q->object_pos = t->pos;
	q->object_len = t->len;
	advance(p);
	t = peek(p);
	if (t->kind == T_IDENT && !is_reserved(p, t) &&
	    memchr(p->s + t->pos, '.', t->len) == NULL) {
		q->alias = xstrndup(p->s + t->pos, t->len);
		advance(p);
	}
	if (is_kw(p, peek(p), "WHERE")) {
		advance(p);
		q->where = parse_cond(p);
		if (q->where == NULL)
			return -1;
	}
	if (is_kw(p, peek(p), "ORDER")) {
		advance(p);
		if (expect_kw(p, "BY") || parse_order_by(p))
			return -1;
	}
	if (is_kw(p, peek(p), "LIMIT")) {
		advance(p);
		if (parse_uint(p, 2147483647L, &q->limit))
			return -1;
	}
	if (is_kw(p, peek(p), "OFFSET")) {
		advance(p);
		if (parse_uint(p, 2147483647L, &q->offset))
			return -1;
		if (q->offset > SOQL_MAX_OFFSET) {
			soql_err_plain(p->err, "NUMBER_OUTSIDE_VALID_RANGE",
			               "Maximum SOQL offset allowed is %d", SOQL_MAX_OFFSET);
			return -1;
		}
	}
	if (peek(p)->kind != T_EOF)
		return unexpected(p, peek(p));
	return 0;
}

/* ---- API ------------------------------------------------------------- */

struct soql_query *soql_parse_n(const char *text, size_t len, struct soql_error *err)
{
	struct parser p;
	struct soql_query *q = NULL;

	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if (text == NULL) {
		soql_err_plain(err, "MALFORMED_QUERY", "empty query");
		return NULL;
	}
	if (len > SOQL_MAX_QUERY_LEN) {
		soql_err_plain(err, "MALFORMED_QUERY",
		               "SOQL statement is %zu characters long; the maximum is %d", len,
		               SOQL_MAX_QUERY_LEN);
		return NULL;
	}
	memset(&p, 0, sizeof(p));
	p.s = text;
	p.len = len;
	p.err = err;
	if (memchr(text, '\0', len) != NULL) {
		soql_err_at(err, "MALFORMED_QUERY", text, len,
		            (size_t)((const char *)memchr(text, '\0', len) - text),
		            "unexpected token: '\\0'");
		return NULL;
	}
	q = xcalloc(1, sizeof(*q));
	q->text = xstrndup(text, len);
	q->len = len;
	q->limit = -1;
	q->offset = -1;
	p.q = q;
	p.s = q->text;
	if (lex(&p) || parse_query(&p)) {
		soql_free(q);
		q = NULL;
	}
	free(p.toks);
	return q;
}

struct soql_query *soql_parse(const char *text, struct soql_error *err)
{
	return soql_parse_n(text, text != NULL ? strnlen(text, SOQL_MAX_QUERY_LEN + 1) : 0, err);
}

const char *soql_object(const struct soql_query *q)
{
	return q->object;
}

int soql_is_count(const struct soql_query *q)
{
	return q->is_count;
}

size_t soql_nfields(const struct soql_query *q)
{
	return q->nfields;
}

const char *soql_field(const struct soql_query *q, size_t i)
{
	if (i >= q->nfields)
		return NULL;
	return q->fields[i].display != NULL ? q->fields[i].display : q->fields[i].path;
}

long soql_limit(const struct soql_query *q)
{
	return q->limit;
}

long soql_offset(const struct soql_query *q)
{
	return q->offset;
}

void soql_free(struct soql_query *q)
{
	size_t i;

	if (q == NULL)
		return;
	for (i = 0; i < q->nfields; i++)
		free_fref(&q->fields[i]);
	free(q->fields);
	for (i = 0; i < q->norder; i++)
		free_fref(&q->order[i].f);
	free(q->order);
	free_node(q->where);
	free(q->alias);
	free(q->object);
	free(q->text);
	free(q);
}
