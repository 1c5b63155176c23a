/*
 * admin.h - small HTTP server (libmicrohttpd) for /metrics, /healthz, /readyz
 * and any extra routes a process registers (e.g. the bridge's webhook listener,
 * which is a second struct admin on its own address without the built-ins).
 * Every error is a JSON body; request bodies and headers have named caps.
 */
#ifndef SFK_ADMIN_H
#define SFK_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"

struct admin;

/* Defaults used when an option is 0. */
#define ADMIN_DEFAULT_MAX_BODY  (64u * 1024u) /* request body cap -> 413 above */
#define ADMIN_DEFAULT_MEM_LIMIT (32u * 1024u) /* per-connection memory: caps headers */
#define ADMIN_DEFAULT_MAX_CONN  64u
#define ADMIN_DEFAULT_TIMEOUT_S 10u
#define ADMIN_MAX_RESP_HEADERS  8
#define ADMIN_READY_REASON_MAX  256 /* bytes of a readiness check's reason */

/*
 * The standard setting for a process's admin address, for its config table
 * (config.h): { ..., ADMIN_CONFIG_ENTRY(&addr, ADMIN_DEFAULT_ADDR), ... }.
 * All interfaces by default: kubelet probes and Prometheus come from outside.
 */
#define ADMIN_DEFAULT_ADDR "0.0.0.0:9090"
#define ADMIN_CONFIG_HELP                                                                          \
	"Admin HTTP address for /metrics, /healthz, /readyz (host:port, port 0 = any)"
#define ADMIN_CONFIG_ENTRY(dest_ptr, default_addr)                                                 \
	{                                                                                          \
		"admin-addr", "SFK_ADMIN_ADDR", CONFIG_STRING, (default_addr), CONFIG_REQUIRED,    \
		        ADMIN_CONFIG_HELP, .dest = (dest_ptr), .check = admin_check_addr           \
	}

/* config_check_fn for an address setting: reports a problem unless the value
 * parses and resolves as an admin address (so --check-config catches it). */
void admin_check_addr(struct config *c, const struct config_entry *e);

struct admin_opts {
	const char *addr;       /* "host:port", "[v6]:port" or ":port"; port 0 = ephemeral */
	size_t max_body;        /* request body cap (bytes) */
	size_t mem_limit;       /* MHD_OPTION_CONNECTION_MEMORY_LIMIT (headers must fit) */
	unsigned max_conn;      /* MHD_OPTION_CONNECTION_LIMIT */
	unsigned timeout_s;     /* idle connection timeout */
	unsigned threads;       /* 0/1: one internal polling thread; >1: a thread pool */
	bool no_builtin_routes; /* true: no /metrics, /healthz, /readyz (webhook server) */
	/* Optional: told about each request refused with 413 before any handler
	 * runs (body over max_body), e.g. to count it. Runs on MHD's thread. */
	void (*on_too_large)(const char *path, void *ctx);
	void *too_large_ctx; /* borrowed */
};

/* One request, borrowed by a handler for the duration of the call. */
struct admin_req {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* decoded path without the query: "/hooks/lead" */
	const char *query;  /* raw query after '?', "" if none */
	const char *body;   /* copy of the raw body, NUL-terminated ("" if none); may hold NULs */
	size_t body_len;    /* <= max_body (larger bodies get 413 before the handler) */
	void *priv_;        /* internal */
};

/* A response the handler fills; the server sends it after the handler returns. */
struct admin_resp {
	int status;            /* default 200 */
	char content_type[64]; /* default "application/json" */
	char *body;            /* malloc'd; the server takes ownership (free()s it) */
	size_t body_len;
	int nheaders;
	/* owned name/value pairs; add them with admin_resp_header() */
	char *headers[ADMIN_MAX_RESP_HEADERS][2];
};

/* Handlers run on libmicrohttpd's threads: they must be thread-safe. */
typedef void (*admin_handler_fn)(const struct admin_req *req, struct admin_resp *resp, void *ctx);
/* Readiness check: return true if ready; else write a short reason (no secrets). */
typedef bool (*admin_ready_fn)(void *ctx, char *reason, size_t reason_len);

/*
 * New, not yet listening. opts is copied (addr too). Returns NULL and fills
 * errstr on a bad address. Default addr when opts->addr is NULL: "127.0.0.1:0".
 */
struct admin *admin_new(const struct admin_opts *opts, char *errstr, size_t errlen);

/*
 * Register a route (before or after admin_start; thread-safe). method: "GET",
 * "POST", ...; a GET route also answers HEAD. path: exact match. A path with
 * routes but not for the request's method gets 405 with an Allow header.
 * ctx is borrowed and must outlive the server.
 */
void admin_route(struct admin *srv, const char *method, const char *path, admin_handler_fn fn,
                 void *ctx);

/* Register a readiness check shown in /readyz under name (copied; [A-Za-z0-9_.-]+,
 * else abort). ctx borrowed. Checks run on every /readyz request, on MHD's
 * threads: keep them quick (cached state, or a ping with a short timeout). */
void admin_ready_check(struct admin *srv, const char *name, admin_ready_fn fn, void *ctx);

/* Liveness: /healthz answers 503 {"status":"unhealthy"} after admin_set_alive(srv, false). */
void admin_set_alive(struct admin *srv, bool alive);

/* Start listening (internal thread(s)). SFK_ERR_IO + errstr on bind failure. */
enum sfk_err admin_start(struct admin *srv, char *errstr, size_t errlen);
/* The bound port (useful with port 0); 0 if not started. */
unsigned admin_port(const struct admin *srv);
/* Stop listening and wait for in-flight requests; free everything; clears *srv. NULL ok. */
void admin_free(struct admin **srv);

/* Request accessors. Header names are case-insensitive. Borrowed, valid during the call. */
const char *admin_req_header(const struct admin_req *req, const char *name);
/* A decoded query argument, NULL if absent. */
const char *admin_req_arg(const struct admin_req *req, const char *name);

/* Response helpers. */
/* Copy text into the body and set status and content type (NULL = keep current). */
void admin_resp_text(struct admin_resp *resp, int status, const char *content_type,
                     const char *text);
/* Body = compact JSON of j; takes ownership of j (json_t *; declared void * to keep
 * jansson out of this header). */
void admin_resp_json(struct admin_resp *resp, int status, void *j);
/* {"error":code, "message":msg} (msg may be NULL). */
void admin_resp_error(struct admin_resp *resp, int status, const char *code, const char *msg);
/* Add a response header (copied). Ignored past ADMIN_MAX_RESP_HEADERS. */
void admin_resp_header(struct admin_resp *resp, const char *name, const char *value);

#endif
