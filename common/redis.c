/*
 * redis.c - see redis.h.
 *
 * We drive hiredis's blocking context ourselves (append, write, read loop)
 * instead of redisCommand() so that: every command is kept encoded and can be
 * resent after a reconnect; the reader's unread buffer is capped (hiredis 0.14
 * buffers a whole bulk string before its object callbacks run, and has no
 * maxelements); and errors get our wording, never the password.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "xmem.h"

#define DEF_CONNECT_TIMEOUT_MS 2000
#define DEF_COMMAND_TIMEOUT_MS 2000
#define DEF_BACKOFF_BASE_MS    50
#define DEF_BACKOFF_MAX_MS     5000

struct redis {
	redisContext *c; /* NULL while disconnected */
	struct redis_url url;
	struct redis_opts o;

	/* Reply guard: hiredis's default object functions wrapped by ours. */
	redisReplyObjectFunctions guard_fn;
	const redisReplyObjectFunctions *orig_fn;
	int guard_tripped;

	/* Reconnect backoff: while now < next_attempt_ms, fail fast. */
	int64_t next_attempt_ms;
	int failures; /* consecutive failed reconnects */
	uint64_t rng;
	unsigned long reconnects;
	int up; /* last known state, for sfk_redis_up and the outage warning */

	enum sfk_err err;
	char errstr[REDIS_ERRSTR_MAX];
};

struct redis_pipe {
	char **cmds; /* encoded RESP, from redisFormatCommand* */
	size_t *lens;
	size_t n, cap;
};

/* ---- URL ---------------------------------------------------------------- */

static void seterr(char *errstr, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void seterr(char *errstr, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errstr || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errstr, errlen, fmt, ap); /* truncation is fine for a message */
	va_end(ap);
}

/* Copy [s, s+n) into dst[cap] as a C string; -1 if it does not fit. */
static int copyn(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
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

/* copyn with URL %XX decoding (user names and passwords are often encoded);
 * -1 if it does not fit, an escape is malformed or decodes to NUL. */
static int unescape(char *dst, size_t cap, const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return 0;
}

/* Parse a decimal in [lo, hi] spanning exactly [s, s+n). */
static int parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
	char buf[16], *end;
	long v;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

enum sfk_err redis_url_parse(const char *url, struct redis_url *out, char *errstr, size_t errlen)
{
	static const char scheme[] = "redis://";
	const char *p, *at, *hostend, *slash, *colon, *end;
	size_t len;

	memset(out, 0, sizeof(*out));
	out->port = 6379;
	if (!url || !*url) {
		seterr(errstr, errlen, "REDIS_URL is empty");
		return SFK_ERR_CONFIG;
	}
	len = strnlen(url, REDIS_URL_MAX + 1);
	if (len > REDIS_URL_MAX) {
		seterr(errstr, errlen, "REDIS_URL is longer than %d bytes", REDIS_URL_MAX);
		return SFK_ERR_CONFIG;
	}
	if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0) {
		/* Name the scheme only: the rest may hold a password. */
		const char *sep = strstr(url, "://");
		if (sep && sep - url < 16)
			seterr(errstr, errlen,
			       "REDIS_URL: unsupported scheme \"%.*s://\" (only redis:// is "
			       "supported%s)",
			       (int)(sep - url), url,
			       strncasecmp(url, "rediss", 6) == 0 ? "; TLS is not built in" : "");
		else
			seterr(errstr, errlen,
			       "REDIS_URL: missing scheme, expected redis://host:port[/db]");
		return SFK_ERR_CONFIG;
	}
	p = url + sizeof(scheme) - 1;
	end = url + len;

	/* userinfo: the LAST '@' ends it (host, port and db never hold one, so a
	 * raw '@' or '/' in a password still parses). */
	at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	slash = memchr(at ? at + 1 : p, '/', (size_t)(end - (at ? at + 1 : p)));
	if (at) {
		const char *c = memchr(p, ':', (size_t)(at - p));
		if (!c) {
			/* "redis://secret@host": Redis has no password-less user form.
			 * Treat the lone field as a password, like redis-cli does. */
			c = p - 1;
		}
		if (c >= p && unescape(out->user, sizeof(out->user), p, (size_t)(c - p)) < 0) {
			seterr(errstr, errlen,
			       "REDIS_URL: user name is longer than %d bytes or has a bad "
			       "%%-escape",
			       REDIS_USER_MAX - 1);
			return SFK_ERR_CONFIG;
		}
		if (unescape(out->password, sizeof(out->password), c + 1, (size_t)(at - c - 1)) <
		    0) {
			seterr(errstr, errlen,
			       "REDIS_URL: password is longer than %d bytes or has a bad %%-escape",
			       REDIS_PASSWORD_MAX - 1);
			return SFK_ERR_CONFIG;
		}
		p = at + 1;
	}

	/* host[:port] up to the path */
	hostend = slash ? slash : end;
	if (p < hostend && *p == '[') {
		const char *rb = memchr(p, ']', (size_t)(hostend - p));
		if (!rb) {
			seterr(errstr, errlen, "REDIS_URL: unterminated [ipv6] host");
			return SFK_ERR_CONFIG;
		}
		if (copyn(out->host, sizeof(out->host), p + 1, (size_t)(rb - p - 1)) < 0)
			goto toolong;
		colon = rb + 1 < hostend ? rb + 1 : NULL;
		if (colon && *colon != ':') {
			seterr(errstr, errlen, "REDIS_URL: unexpected text after [ipv6] host");
			return SFK_ERR_CONFIG;
		}
	} else {
		colon = memchr(p, ':', (size_t)(hostend - p));
		if (copyn(out->host, sizeof(out->host), p,
		          (size_t)((colon ? colon : hostend) - p)) < 0)
			goto toolong;
	}
	if (!out->host[0]) {
		seterr(errstr, errlen, "REDIS_URL: missing host");
		return SFK_ERR_CONFIG;
	}
	if (colon &&
	    parse_int(colon + 1, (size_t)(hostend - colon - 1), 1, 65535, &out->port) < 0) {
		seterr(errstr, errlen, "REDIS_URL: port must be a number in 1..65535");
		return SFK_ERR_CONFIG;
	}
	if (slash && slash + 1 < end) {
		if (memchr(slash + 1, '?', (size_t)(end - slash - 1))) {
			seterr(errstr, errlen, "REDIS_URL: query parameters are not supported");
			return SFK_ERR_CONFIG;
		}
		if (parse_int(slash + 1, (size_t)(end - slash - 1), 0, 1 << 20, &out->db) < 0) {
			seterr(errstr, errlen,
			       "REDIS_URL: database must be a number (redis://host:port/0)");
			return SFK_ERR_CONFIG;
		}
	}
	return SFK_OK;
toolong:
	seterr(errstr, errlen, "REDIS_URL: host is longer than %d bytes", REDIS_HOST_MAX - 1);
	return SFK_ERR_CONFIG;
}

/* ---- time, backoff, errors ---------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* After a failed reconnect: wait base * 2^failures (capped), jittered to
 * [d/2, d] so that N replicas that lost Redis together do not return in step. */
static void schedule_backoff(struct redis *r)
{
	int64_t d = r->o.backoff_base_ms;

	for (int i = 0; i < r->failures && d < r->o.backoff_max_ms; i++)
		d *= 2;
	if (d > r->o.backoff_max_ms)
		d = r->o.backoff_max_ms;
	d = d / 2 + (int64_t)(xorshift(&r->rng) % (uint64_t)(d / 2 + 1));
	r->failures++;
	r->next_attempt_ms = now_ms() + d;
}

static void rseterr(struct redis *r, enum sfk_err e, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void rseterr(struct redis *r, enum sfk_err e, const char *fmt, ...)
{
	va_list ap;
	int n;

	r->err = e;
	n = snprintf(r->errstr, sizeof(r->errstr), "redis %s:%d: ", r->url.host, r->url.port);
	if (n < 0 || (size_t)n >= sizeof(r->errstr))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(r->errstr + n, sizeof(r->errstr) - (size_t)n, fmt, ap);
	va_end(ap);
}

/*
 * sfk_redis_up: 1 after a successful (re)connect, 0 after a connection
 * failure. Looked up on every change (rare) rather than cached, so a test's
 * metrics_reset() cannot leave us a dangling family. With several connections
 * in one process it shows the most recent change, which is what /readyz and
 * an alert want: "Redis was reachable the last time we looked".
 */
static void set_up(struct redis *r, int up)
{
	/* One warning per outage, not one per failed call. */
	if (!up && r->up)
		log_warn("redis connection lost detail=%s", r->errstr);
	r->up = up;
	metric_set(metrics_gauge("sfk_redis_up",
	                         "1 if Redis answered the last connection attempt, else 0", NULL),
	           up);
}

static void disconnect(struct redis *r)
{
	if (r->c) {
		redisFree(r->c);
		r->c = NULL;
	}
}

/* ---- reply guard -------------------------------------------------------- */

static void *guard_string(const redisReadTask *t, char *s, size_t len)
{
	struct redis *r = t->privdata;

	if (len > r->o.max_reply_bytes) {
		r->guard_tripped = 1;
		return NULL; /* hiredis turns NULL into a reader error */
	}
	return r->orig_fn->createString(t, s, len);
}

static void *guard_array(const redisReadTask *t, int elements)
{
	struct redis *r = t->privdata;

	if (elements < 0 || (size_t)elements > r->o.max_reply_elements) {
		r->guard_tripped = 1;
		return NULL;
	}
	return r->orig_fn->createArray(t, elements);
}

static void *guard_integer(const redisReadTask *t, long long v)
{
	return ((struct redis *)t->privdata)->orig_fn->createInteger(t, v);
}

static void *guard_nil(const redisReadTask *t)
{
	return ((struct redis *)t->privdata)->orig_fn->createNil(t);
}

static void install_guard(struct redis *r)
{
	r->orig_fn = r->c->reader->fn;
	r->guard_fn.createString = guard_string;
	r->guard_fn.createArray = guard_array;
	r->guard_fn.createInteger = guard_integer;
	r->guard_fn.createNil = guard_nil;
	r->guard_fn.freeObject = r->orig_fn->freeObject;
	r->c->reader->fn = &r->guard_fn;
	r->c->reader->privdata = r;
}

/* ---- raw I/O ------------------------------------------------------------ */

/* Map a hiredis context error (or our guard) to our wording. */
static void io_error(struct redis *r, int saved_errno, const char *what)
{
	if (r->guard_tripped)
		rseterr(r, SFK_ERR_TOO_LARGE,
		        "%s: reply exceeds the size cap (%zu bytes / %zu elements)", what,
		        r->o.max_reply_bytes, r->o.max_reply_elements);
	else if (r->c && (r->c->err == REDIS_ERR_IO || r->c->err == 0) &&
	         (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
		rseterr(r, SFK_ERR_REDIS, "%s: timeout after %d ms", what, r->o.command_timeout_ms);
	else if (r->c && r->c->err == REDIS_ERR_EOF)
		rseterr(r, SFK_ERR_REDIS, "%s: connection closed by server", what);
	else if (r->c && r->c->err)
		rseterr(r, SFK_ERR_REDIS, "%s: %s", what, r->c->errstr);
	else
		rseterr(r, SFK_ERR_REDIS, "%s: connection lost", what);
}

/*
 * Send n encoded commands and read n replies. Returns 0 with every replies[i]
 * set, or -1 with the error set and the connection dropped (its state is
 * unknown: a reply may still be in flight).
 */
static int roundtrip(struct redis *r, char **cmds, const size_t *lens, size_t n,
                     redisReply **replies)
{
	redisContext *c = r->c;
	int done = 0, e;
	size_t got = 0;
	/* SO_RCVTIMEO/SO_SNDTIMEO bound each read and write; this bounds their
	 * sum, so a server that drips bytes cannot hold us past the timeout. */
	int64_t deadline = now_ms() + r->o.command_timeout_ms;

	r->guard_tripped = 0;
	for (size_t i = 0; i < n; i++)
		if (redisAppendFormattedCommand(c, cmds[i], lens[i]) != REDIS_OK)
			goto fail;
	while (!done) {
		errno = 0;
		if (redisBufferWrite(c, &done) != REDIS_OK)
			goto fail;
		if (!done && now_ms() > deadline) {
			errno = EAGAIN; /* a server that does not read */
			goto fail;
		}
	}
	while (got < n) {
		void *rep = NULL;

		if (redisGetReplyFromReader(c, &rep) != REDIS_OK)
			goto fail;
		if (rep) {
			replies[got++] = rep;
			continue;
		}
		if (c->reader->len - c->reader->pos > r->o.max_reply_bytes) {
			r->guard_tripped = 1;
			goto fail;
		}
		if (now_ms() > deadline) {
			errno = EAGAIN; /* reported as a timeout */
			goto fail;
		}
		errno = 0;
		if (redisBufferRead(c) != REDIS_OK)
			goto fail;
	}
	return 0;
fail:
	e = errno;
	io_error(r, e, n > 1 ? "pipeline" : "command");
	if (r->err != SFK_ERR_TOO_LARGE)
		set_up(r, 0);
	for (size_t i = 0; i < got; i++) {
		freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
	disconnect(r);
	return -1;
}

/* One command over the raw connection; error replies are returned as replies. */
static redisReply *simple(struct redis *r, int argc, const char **argv)
{
	char *cmd = NULL;
	long long len;
	redisReply *rep = NULL;
	size_t slen;

	len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
	if (len < 0) {
		rseterr(r, SFK_ERR_NOMEM, "cannot encode command");
		return NULL;
	}
	slen = (size_t)len;
	if (roundtrip(r, &cmd, &slen, 1, &rep) < 0)
		rep = NULL;
	redisFreeCommand(cmd);
	return rep;
}

/* Connect, set timeouts, AUTH, SELECT. 0 or -1 (error set, r->c NULL). */
static int connect_now(struct redis *r)
{
	struct timeval ctv = {r->o.connect_timeout_ms / 1000,
	                      (r->o.connect_timeout_ms % 1000) * 1000};
	struct timeval tv = {r->o.command_timeout_ms / 1000,
	                     (r->o.command_timeout_ms % 1000) * 1000};
	redisReply *rep;
	char dbbuf[16];

	disconnect(r);
	r->c = redisConnectWithTimeout(r->url.host, r->url.port, ctv);
	if (!r->c) {
		rseterr(r, SFK_ERR_NOMEM, "connect: out of memory");
		return -1;
	}
	if (r->c->err) {
		rseterr(r, SFK_ERR_REDIS, "connect: %s", r->c->errstr);
		goto fail;
	}
	if (redisSetTimeout(r->c, tv) != REDIS_OK) {
		rseterr(r, SFK_ERR_REDIS, "set timeout: %s", r->c->errstr);
		goto fail;
	}
	redisEnableKeepAlive(r->c);
	install_guard(r);

	if (r->url.password[0]) {
		const char *argv[3] = {"AUTH", r->url.user, r->url.password};
		if (r->url.user[0])
			rep = simple(r, 3, argv);
		else {
			argv[1] = r->url.password;
			rep = simple(r, 2, argv);
		}
		if (!rep)
			goto fail;
		if (rep->type == REDIS_REPLY_ERROR) {
			/* Redis's text ("WRONGPASS invalid username-password pair")
			 * never contains the password itself. */
			rseterr(r, SFK_ERR_REDIS, "AUTH failed: %.120s", rep->str);
			freeReplyObject(rep);
			goto fail;
		}
		freeReplyObject(rep);
	}
	if (r->url.db != 0) {
		const char *argv[2] = {"SELECT", dbbuf};
		snprintf(dbbuf, sizeof(dbbuf), "%d", r->url.db); /* fits: db <= 2^20 */
		rep = simple(r, 2, argv);
		if (!rep)
			goto fail;
		if (rep->type == REDIS_REPLY_ERROR) {
			rseterr(r, SFK_ERR_REDIS, "SELECT %d failed: %.120s", r->url.db, rep->str);
			freeReplyObject(rep);
			goto fail;
		}
		freeReplyObject(rep);
	}
	set_up(r, 1);
	return 0;
fail:
	set_up(r, 0);
	disconnect(r);
	return -1;
}

/* Reconnect unless in backoff. 0 or -1 (error set). */
static int reconnect(struct redis *r)
{
	int64_t now = now_ms();

	if (now < r->next_attempt_ms) {
		rseterr(r, SFK_ERR_REDIS, "down; reconnect backoff, next attempt in %" PRId64 " ms",
		        r->next_attempt_ms - now);
		return -1;
	}
	if (connect_now(r) < 0) {
		schedule_backoff(r);
		return -1;
	}
	log_info("redis reconnected host=%s port=%d", r->url.host, r->url.port);
	r->failures = 0;
	r->next_attempt_ms = 0;
	r->reconnects++;
	return 0;
}

/*
 * A connection the server closed while idle (Redis restarted, idle timeout)
 * is readable with no reply pending. Find out before sending, so that even a
 * REDIS_NORETRY command gets a fresh connection instead of a failure.
 */
static void drop_if_stale(struct redis *r)
{
	struct pollfd pfd;

	if (!r->c)
		return;
	pfd.fd = r->c->fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (poll(&pfd, 1, 0) != 0)
		disconnect(r);
}

/*
 * The one path every command takes: (re)connect if needed, round trip, and on
 * a connection failure retry ONCE unless REDIS_NORETRY. A reply over the caps
 * is not retried (it would be just as large).
 */
static int execute(struct redis *r, int flags, char **cmds, const size_t *lens, size_t n,
                   redisReply **replies)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		drop_if_stale(r);
		if (!r->c && reconnect(r) < 0)
			return -1;
		if (roundtrip(r, cmds, lens, n, replies) == 0) {
			r->err = SFK_OK;
			r->errstr[0] = '\0';
			return 0;
		}
		if (r->err == SFK_ERR_TOO_LARGE || (flags & REDIS_NORETRY))
			break;
		/* The first reconnect after a drop is immediate (no backoff). */
	}
	return -1;
}

/* ---- public: connection ------------------------------------------------- */

static void apply_defaults(struct redis_opts *o)
{
	if (o->connect_timeout_ms <= 0)
		o->connect_timeout_ms = DEF_CONNECT_TIMEOUT_MS;
	if (o->command_timeout_ms <= 0)
		o->command_timeout_ms = DEF_COMMAND_TIMEOUT_MS;
	if (o->backoff_base_ms <= 0)
		o->backoff_base_ms = DEF_BACKOFF_BASE_MS;
	if (o->backoff_max_ms <= 0)
		o->backoff_max_ms = DEF_BACKOFF_MAX_MS;
	if (o->backoff_max_ms < o->backoff_base_ms)
		o->backoff_max_ms = o->backoff_base_ms;
	if (o->max_reply_bytes == 0)
		o->max_reply_bytes = REDIS_REPLY_MAX_BYTES;
	if (o->max_reply_elements == 0)
		o->max_reply_elements = REDIS_REPLY_MAX_ELEMENTS;
}

struct redis *redis_connect_url(const char *url, const struct redis_opts *o, char *errstr,
                                size_t errlen)
{
	struct redis *r = xcalloc(1, sizeof(*r));

	if (redis_url_parse(url, &r->url, errstr, errlen) != SFK_OK)
		goto fail;
	if (o)
		r->o = *o;
	apply_defaults(&r->o);
	if (r->url.password[0])
		log_redact(r->url.password);
	r->rng = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r;
	if (r->rng == 0)
		r->rng = 0x9e3779b97f4a7c15ull;
	if (connect_now(r) < 0) {
		seterr(errstr, errlen, "%s", r->errstr);
		goto fail;
	}
	return r;
fail:
	redis_free(r);
	return NULL;
}

struct redis *redis_connect_env(const struct redis_opts *o, char *errstr, size_t errlen)
{
	const char *url = getenv("REDIS_URL");

	if (!url || !*url) {
		seterr(errstr, errlen, "REDIS_URL is not set (expected redis://host:port/db)");
		return NULL;
	}
	return redis_connect_url(url, o, errstr, errlen);
}

void redis_free(struct redis *r)
{
	if (!r)
		return;
	disconnect(r);
	OPENSSL_cleanse(r->url.password, sizeof(r->url.password));
	free(r);
}

enum sfk_err redis_err(const struct redis *r)
{
	return r->err;
}
const char *redis_errstr(const struct redis *r)
{
	return r->errstr;
}
int redis_connected(const struct redis *r)
{
	return r->c != NULL;
}
unsigned long redis_reconnects(const struct redis *r)
{
	return r->reconnects;
}

/* ---- public: commands --------------------------------------------------- */

/* Run one encoded command; turns error replies into NULL + errstr. */
static redisReply *run_one(struct redis *r, int flags, char *cmd, long long len)
{
	redisReply *rep = NULL;
	size_t slen;

	if (len < 0) {
		rseterr(r, SFK_ERR_INVALID, "cannot encode command (bad format?)");
		return NULL;
	}
	slen = (size_t)len;
	if (execute(r, flags, &cmd, &slen, 1, &rep) < 0)
		rep = NULL;
	redisFreeCommand(cmd);
	if (rep && rep->type == REDIS_REPLY_ERROR) {
		rseterr(r, SFK_ERR_REDIS, "error reply: %.160s", rep->str);
		freeReplyObject(rep);
		rep = NULL;
	}
	return rep;
}

redisReply *redis_cmd(struct redis *r, const char *fmt, ...)
{
	char *cmd = NULL;
	long long len;
	va_list ap;

	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	return run_one(r, REDIS_RETRY, cmd, len);
}

redisReply *redis_cmd_flags(struct redis *r, int flags, const char *fmt, ...)
{
	char *cmd = NULL;
	long long len;
	va_list ap;

	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	return run_one(r, flags, cmd, len);
}

redisReply *redis_cmdargv(struct redis *r, int flags, int argc, const char **argv,
                          const size_t *argvlen)
{
	char *cmd = NULL;
	long long len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);

	return run_one(r, flags, cmd, len);
}

/* ---- public: pipelines -------------------------------------------------- */

struct redis_pipe *redis_pipe_new(void)
{
	return xcalloc(1, sizeof(struct redis_pipe));
}

void redis_pipe_clear(struct redis_pipe *p)
{
	for (size_t i = 0; i < p->n; i++)
		redisFreeCommand(p->cmds[i]);
	p->n = 0;
}

void redis_pipe_free(struct redis_pipe *p)
{
	if (!p)
		return;
	redis_pipe_clear(p);
	free(p->cmds);
	free(p->lens);
	free(p);
}

static int pipe_push(struct redis_pipe *p, char *cmd, long long len)
{
	if (len < 0)
		return -1;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->cmds = xrealloc(p->cmds, p->cap * sizeof(*p->cmds));
		p->lens = xrealloc(p->lens, p->cap * sizeof(*p->lens));
	}
	p->cmds[p->n] = cmd;
	p->lens[p->n] = (size_t)len;
	p->n++;
	return 0;
}

int redis_pipe_add(struct redis_pipe *p, const char *fmt, ...)
{
	char *cmd = NULL;
	long long len;
	va_list ap;

	va_start(ap, fmt);
	len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	return pipe_push(p, cmd, len);
}

int redis_pipe_addargv(struct redis_pipe *p, int argc, const char **argv, const size_t *argvlen)
{
	char *cmd = NULL;
	long long len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);

	return pipe_push(p, cmd, len);
}

size_t redis_pipe_len(const struct redis_pipe *p)
{
	return p->n;
}

enum sfk_err redis_pipe_exec(struct redis *r, struct redis_pipe *p, int flags, redisReply **replies)
{
	for (size_t i = 0; i < p->n; i++)
		replies[i] = NULL;
	if (p->n == 0)
		return SFK_OK;
	if (execute(r, flags, p->cmds, p->lens, p->n, replies) < 0)
		return r->err;
	return SFK_OK;
}

/* ---- public: scripts ---------------------------------------------------- */

/* Guards the lazy SHA1 of statically defined scripts shared by threads. */
static pthread_mutex_t script_mu = PTHREAD_MUTEX_INITIALIZER;

void redis_script_init(struct redis_script *s)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[41];

	pthread_mutex_lock(&script_mu);
	if (!s->sha1[0]) {
		if (!EVP_Digest(s->body, strlen(s->body), md, &mdlen, EVP_sha1(), NULL) ||
		    mdlen != 20) {
			/* Only without a working libcrypto: EVAL still works (below). */
			pthread_mutex_unlock(&script_mu);
			return;
		}
		for (unsigned i = 0; i < 20; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		memcpy(s->sha1, hex, sizeof(hex));
	}
	pthread_mutex_unlock(&script_mu);
}

redisReply *redis_eval(struct redis *r, struct redis_script *s, int flags, int nkeys,
                       const char **keys, int nargs, const char **args)
{
	int argc = 3 + nkeys + nargs;
	const char **argv = xmalloc((size_t)argc * sizeof(*argv));
	char nk[16], *cmd = NULL;
	redisReply *rep = NULL;
	long long len;
	size_t slen;

	redis_script_init(s);
	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[0] = "EVALSHA";
	argv[1] = s->sha1;
	argv[2] = nk;
	for (int i = 0; i < nkeys; i++)
		argv[3 + i] = keys[i];
	for (int i = 0; i < nargs; i++)
		argv[3 + nkeys + i] = args[i];

	if (s->sha1[0]) {
		len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
		if (len < 0) {
			rseterr(r, SFK_ERR_NOMEM, "cannot encode EVALSHA");
			goto out;
		}
		slen = (size_t)len;
		if (execute(r, flags, &cmd, &slen, 1, &rep) < 0)
			goto out;
		redisFreeCommand(cmd);
		cmd = NULL;
		/* NOSCRIPT: the server forgot it (restart, SCRIPT FLUSH, failover). */
		if (rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOSCRIPT", 8) != 0)
			goto out;
		freeReplyObject(rep);
		rep = NULL;
	}
	/* EVAL runs the body and caches it, so the next EVALSHA hits. */
	argv[0] = "EVAL";
	argv[1] = s->body;
	len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
	if (len < 0) {
		rseterr(r, SFK_ERR_NOMEM, "cannot encode EVAL");
		goto out;
	}
	slen = (size_t)len;
	if (execute(r, flags, &cmd, &slen, 1, &rep) < 0)
		rep = NULL;
out:
	if (rep && rep->type == REDIS_REPLY_ERROR) {
		rseterr(r, SFK_ERR_REDIS, "script %.12s: %.160s", s->sha1, rep->str);
		freeReplyObject(rep);
		rep = NULL;
	}
	if (cmd)
		redisFreeCommand(cmd);
	free(argv);
	return rep;
}
