/*
 * redis.h - one Redis connection (hiredis) that survives Redis restarts.
 *
 * Connects from REDIS_URL, runs AUTH and SELECT on every (re)connect, bounds
 * every call by connect/command timeouts and every reply by a size cap, runs
 * Lua scripts by SHA1 (EVALSHA, falling back to EVAL on NOSCRIPT) and
 * pipelines N commands in one round trip. Not thread-safe: one per thread.
 */
#ifndef SFK_REDIS_H
#define SFK_REDIS_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "err.h"

/* Named maxima for everything that arrives from the network. */
#define REDIS_REPLY_MAX_BYTES    (16u * 1024 * 1024) /* unread reply bytes buffered */
#define REDIS_REPLY_MAX_ELEMENTS (1024u * 1024)      /* elements of one array reply */
#define REDIS_URL_MAX            1024
#define REDIS_HOST_MAX           256
#define REDIS_USER_MAX           128
#define REDIS_PASSWORD_MAX       512
#define REDIS_ERRSTR_MAX         256

/* A parsed REDIS_URL. password is a secret: never log it. */
struct redis_url {
	char host[REDIS_HOST_MAX];
	int port;                          /* default 6379 */
	char user[REDIS_USER_MAX];         /* "" = none (AUTH password) */
	char password[REDIS_PASSWORD_MAX]; /* "" = no AUTH */
	int db;                            /* default 0 */
};

/*
 * Parse "redis://[[user]:password@]host[:port][/db]" (host may be [ipv6]).
 * user and password may be %XX-encoded; the last '@' ends them.
 * Any other scheme (rediss://, unix://, http://...) is rejected with a message
 * naming the problem. Error messages never contain the password.
 * Returns SFK_OK or SFK_ERR_CONFIG (detail in errstr).
 */
enum sfk_err redis_url_parse(const char *url, struct redis_url *out, char *errstr, size_t errlen);

/* Options; zero means "the default" for every field. */
struct redis_opts {
	int connect_timeout_ms;    /* default 2000 */
	int command_timeout_ms;    /* default 2000; per read/write on the socket */
	int backoff_base_ms;       /* default 50: first reconnect delay after a failed reconnect */
	int backoff_max_ms;        /* default 5000 */
	size_t max_reply_bytes;    /* default REDIS_REPLY_MAX_BYTES */
	size_t max_reply_elements; /* default REDIS_REPLY_MAX_ELEMENTS */
};

struct redis; /* connection + its URL, options, last error, backoff state */

/*
 * Parse url and connect (AUTH, SELECT). Returns a new connection (free with
 * redis_free) or NULL with the reason in errstr (never the password).
 * o may be NULL (all defaults). The first connect is not retried: a caller at
 * start-up decides whether to wait for Redis.
 * Every connection sets the gauge sfk_redis_up (metrics.h): 1 after a
 * successful connect, 0 after a connection failure. A connection is dropped
 * on its first I/O error, so it never writes twice to a reset socket
 * (SIGPIPE); daemons still ignore SIGPIPE as usual.
 */
struct redis *redis_connect_url(const char *url, const struct redis_opts *o, char *errstr,
                                size_t errlen);
/* Same, with the URL from $REDIS_URL; a missing variable is SFK_ERR_CONFIG-style
 * failure ("REDIS_URL is not set"). */
struct redis *redis_connect_env(const struct redis_opts *o, char *errstr, size_t errlen);

/* Accepts NULL. Closes the socket and wipes the password. */
void redis_free(struct redis *r);

/* Flags for the calls below. */
#define REDIS_RETRY 0 /* default: on a connection error, reconnect and retry ONCE */
/* The command is not idempotent (INCR...): never resend it once it may have
 * reached Redis. (A connection found dead before sending is still replaced.) */
#define REDIS_NORETRY 1

/*
 * Run one command. Returns a new reply (caller frees with freeReplyObject) or
 * NULL on any failure: connection down/reset, timeout, reply over the caps,
 * or an error reply from Redis (-ERR, -WRONGTYPE ...). After NULL,
 * redis_err() says SFK_ERR_REDIS (or SFK_ERR_TOO_LARGE) and redis_errstr()
 * the detail. So a non-NULL reply is never of type REDIS_REPLY_ERROR.
 *
 * Reconnects: a command on a broken connection reconnects (AUTH, SELECT) and,
 * unless REDIS_NORETRY, is sent again ONCE. After a failed reconnect the next
 * attempt waits a jittered exponential backoff (base..max); calls made during
 * that window fail at once ("reconnect backoff") instead of blocking. One
 * attempt waits at most connect_timeout (when it reconnects) plus about
 * command_timeout per round trip (AUTH, SELECT, the command), so a call with
 * its one retry is bounded by roughly 2 * (connect + 3 * command) timeouts.
 */
redisReply *redis_cmd(struct redis *r, const char *fmt, ...);
redisReply *redis_cmd_flags(struct redis *r, int flags, const char *fmt, ...);
/* argvlen may be NULL (all argv are NUL-terminated strings). */
redisReply *redis_cmdargv(struct redis *r, int flags, int argc, const char **argv,
                          const size_t *argvlen);

/* The last failure of r: code and detail (borrowed, valid until the next call on r). */
enum sfk_err redis_err(const struct redis *r);
const char *redis_errstr(const struct redis *r);
/* 1 if the socket is currently believed healthy. */
int redis_connected(const struct redis *r);
/* Number of successful reconnects since redis_connect_url (for tests/metrics). */
unsigned long redis_reconnects(const struct redis *r);

/*
 * Pipelining: queue N commands, then send them all and read N replies in one
 * round trip. The queue holds the encoded commands, so a retry after a
 * reconnect resends all of them (unless REDIS_NORETRY).
 */
struct redis_pipe;
/* New empty pipeline (never NULL; free with redis_pipe_free). */
struct redis_pipe *redis_pipe_new(void);
void redis_pipe_free(struct redis_pipe *p); /* accepts NULL */
/* Queue one command. Returns 0, or -1 if fmt/arguments cannot be encoded. */
int redis_pipe_add(struct redis_pipe *p, const char *fmt, ...);
int redis_pipe_addargv(struct redis_pipe *p, int argc, const char **argv, const size_t *argvlen);
size_t redis_pipe_len(const struct redis_pipe *p);
/* Drop every queued command (reuse the pipeline). */
void redis_pipe_clear(struct redis_pipe *p);
/*
 * Send every queued command and read as many replies into replies[0..n-1]
 * (n = redis_pipe_len(p)). On SFK_OK every replies[i] is a new reply the
 * caller frees; individual ones MAY be REDIS_REPLY_ERROR (the others still
 * ran). On failure no reply is returned (all NULL) and redis_errstr() has the
 * detail. The queue is kept; call redis_pipe_clear() to reuse.
 */
enum sfk_err redis_pipe_exec(struct redis *r, struct redis_pipe *p, int flags,
                             redisReply **replies);

/*
 * A Lua script, run by SHA1 (computed locally with OpenSSL on first use, or by
 * redis_script_init). Define them statically:
 *     static struct redis_script cas = REDIS_SCRIPT("return redis.call('GET', KEYS[1])");
 * body is borrowed (normally a string literal) and must outlive the script.
 */
struct redis_script {
	const char *body;
	char sha1[41]; /* lowercase hex, "" until computed */
};
#define REDIS_SCRIPT(b)                                                                            \
	{                                                                                          \
		.body = (b), .sha1 = ""                                                            \
	}
/* Compute the SHA1 now (optional; thread-safe). */
void redis_script_init(struct redis_script *s);

/*
 * EVALSHA sha nkeys keys... args...; on NOSCRIPT (e.g. Redis restarted or
 * SCRIPT FLUSH) runs EVAL body ... instead, which also caches the script for
 * the next EVALSHA. keys/args are NUL-terminated strings (borrowed). Return
 * and flags as redis_cmd (Lua errors are failures with the detail in
 * redis_errstr).
 */
redisReply *redis_eval(struct redis *r, struct redis_script *s, int flags, int nkeys,
                       const char **keys, int nargs, const char **args);

#endif
