/*
 * http.h - sfk-sim's HTTP(S) server: libmicrohttpd, one thread per connection
 * (handlers may block, e.g. a CometD long poll for up to 110 s), keep-alive,
 * prefix routing. Handlers see a parsed request and fill a response; the
 * server adds Sforce-Limit-Info on authenticated REST routes and applies the
 * fault plan (latency, 5xx, dropped connections) before calling them.
 */
#ifndef SFK_SIM_HTTP_H
#define SFK_SIM_HTTP_H

#include <jansson.h>
#include <stddef.h>

struct sim;

/* Default cap on a request body (bytes); a route may set its own. Bigger
 * bodies get 413 before the handler runs. */
#define SIM_HTTP_BODY_MAX (64u * 1024u * 1024u)
/* Extra response headers a handler may add. */
#define SIM_RESP_MAX_HEADERS 8
/* Routes the server can hold. */
#define SIM_MAX_ROUTES 64

struct sim_req {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* URL path, decoded, without the query string */
	const char *body;   /* NUL-terminated copy of the body ("" when none) */
	size_t body_len;
	const char *remote; /* "127.0.0.1:54321" */
	void *route_ctx;    /* the ctx given to sim_route() */
	/* Set by the server for SIM_ROUTE_AUTH routes: the session's user id and
	 * the API version from the path ("61.0"), "" otherwise. */
	char user_id[19];
	char api_version[8];
	void *conn_; /* private: the libmicrohttpd connection */
};

/* Accessors; returned strings are borrowed, valid until the handler returns;
 * NULL when absent. Names are case-insensitive for headers and cookies. */
const char *sim_req_query(const struct sim_req *req, const char *name);
const char *sim_req_header(const struct sim_req *req, const char *name);
const char *sim_req_cookie(const struct sim_req *req, const char *name);

struct sim_resp_header {
	char *name;  /* owned */
	char *value; /* owned */
};

struct sim_resp {
	int status;               /* default 200 */
	const char *content_type; /* static string; default "application/json;charset=UTF-8" */
	char *body;               /* owned (malloc); NULL = empty body */
	size_t body_len;
	struct sim_resp_header headers[SIM_RESP_MAX_HEADERS];
	size_t nheaders;
	/* Set to 1 to cut the connection half-way through the answer (after the
	 * headers and half the body; with no body, before any byte). Faults. */
	int drop;
};

/* Response helpers. Each replaces any body already set. */
/* json: takes ownership (also on failure); serialized compact. */
void sim_resp_json(struct sim_resp *resp, int status, json_t *json);
/* Salesforce REST error array: [{"message": msg, "errorCode": code}] plus
 * "fields": [field] when field is non-NULL. */
void sim_resp_error(struct sim_resp *resp, int status, const char *code, const char *msg,
                    const char *field);
/* text is copied; content_type must be a static string. */
void sim_resp_text(struct sim_resp *resp, int status, const char *content_type, const char *text);
/* Adds a header (both strings copied); ignored past SIM_RESP_MAX_HEADERS. */
void sim_resp_header(struct sim_resp *resp, const char *name, const char *value);

/* A handler may block (long poll); it must poll sim_stopping(sim) at least
 * every second or so while it waits so shutdown is prompt. */
typedef void (*sim_handler)(struct sim *sim, const struct sim_req *req, struct sim_resp *resp);

enum sim_route_flags {
	/* Only served with --control (else 404 NOT_FOUND). */
	SIM_ROUTE_CONTROL = 1u << 0,
	/* Needs "Authorization: Bearer <token>" of a live session: else 401
	 * INVALID_SESSION_ID; counts against the API limit (403
	 * REQUEST_LIMIT_EXCEEDED past it) and answers with Sforce-Limit-Info. A
	 * route that wants its own auth errors (CometD) leaves this off and calls
	 * sim_req_session(). */
	SIM_ROUTE_AUTH = 1u << 1,
};

/*
 * Register a route before http_start(). method NULL matches any method;
 * prefix matches the path when equal or followed by '/' (longest wins);
 * a trailing '*' in prefix matches any continuation ("/cometd/" followed by *).
 * max_body 0 = SIM_HTTP_BODY_MAX. Returns 0, -1 when the table is full.
 */
int sim_route(struct sim *sim, const char *method, const char *prefix, unsigned flags,
              size_t max_body, sim_handler fn, void *ctx);

/* Validate the request's "Authorization: Bearer" token: 0 and the session's
 * user id in user_id, -1 if missing/expired/unknown. Does not count API use. */
int sim_req_session(struct sim *sim, const struct sim_req *req, char user_id[19]);

/* 1 once shutdown began (signal or test teardown). */
int sim_stopping(struct sim *sim);

/*
 * Server lifecycle (main.c). listen is "HOST:PORT" (port 0 = ephemeral);
 * cert_pem/key_pem NULL = plain HTTP. On success *port gets the bound port.
 * Returns 0 or -1 with a log line.
 */
int http_start(struct sim *sim, const char *listen, const char *cert_pem, const char *key_pem,
               int *port);
void http_stop(struct sim *sim);

/*
 * Module contract for the streaming side (cdc.h, cometd.h, traffic.h): a
 * header that defines SIM_MODULE_<NAME> (e.g. `#define SIM_MODULE_CDC 1`)
 * promises `int <name>_module_init(struct sim *)` (register routes/hooks;
 * called after the org and auth exist, before http_start; 0 = ok) and
 * `void <name>_module_fini(struct sim *)` (called after http_stop). main.c
 * calls them for cdc, cometd and traffic, in that order (fini in reverse).
 */

#endif
