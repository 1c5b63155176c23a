/*
 * admin.c - libmicrohttpd server with exact-path routes and JSON errors.
 *
 * Request flow (MHD calls the access handler several times per request):
 *   URI log callback   -> allocate struct conn, keep the raw URI (for the query)
 *   1st handler call   -> headers only: reject a declared body over the cap (413)
 *   next calls         -> append body chunks up to max_body, drop the rest
 *   last call (size 0) -> route, run the handler, queue its response
 *   completed callback -> free struct conn
 * Routes and readiness checks live in fixed arrays that only grow, so a
 * request copies one entry under the lock and runs the handler without it.
 */
#include "admin.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

#include "log.h"
#include "metrics.h"
#include "xmem.h"

#define ADMIN_MAX_ROUTES 32
#define ADMIN_MAX_CHECKS 32
#define ADMIN_ADDR_MAX   256 /* "host:port" as configured */

struct route {
	char method[16];
	char path[256];
	admin_handler_fn fn;
	void *ctx;
};

struct check {
	char name[64];
	admin_ready_fn fn;
	void *ctx;
};

struct admin {
	struct admin_opts opts;
	char addr[ADMIN_ADDR_MAX];
	struct sockaddr_storage sa;
	socklen_t salen;
	struct MHD_Daemon *d;
	pthread_mutex_t mu; /* guards routes[] and checks[] appends */
	struct route routes[ADMIN_MAX_ROUTES];
	size_t nroutes;
	struct check checks[ADMIN_MAX_CHECKS];
	size_t nchecks;
	atomic_bool alive;
};

/* Per-request state, created by the URI log callback. */
struct conn {
	char *uri; /* raw request target, for the query string */
	bool started;
	bool too_big;
	bool answered; /* a response was queued early (413 on Content-Length) */
	char *body;
	size_t len, cap;
};

static void set_err(char *errstr, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *errstr, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!errstr || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(errstr, errlen, fmt, ap);
	va_end(ap);
}

/* ---- response helpers ---- */

/* A JSON string for text that may not be UTF-8 (a decoded URL path, a
 * reason from a library): bytes >= 0x80 become '?' when it is not. */
static json_t *text(const char *s)
{
	json_t *j = json_string(s ? s : "");
	if (j)
		return j;
	char *copy = xstrdup(s);
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

void admin_resp_text(struct admin_resp *resp, int status, const char *content_type,
                     const char *text)
{
	free(resp->body);
	resp->body_len = text ? strlen(text) : 0;
	resp->body = xstrndup(text ? text : "", resp->body_len);
	resp->status = status;
	if (content_type)
		snprintf(resp->content_type, sizeof resp->content_type, "%s", content_type);
}

void admin_resp_json(struct admin_resp *resp, int status, void *jv)
{
	json_t *j = jv;
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	free(resp->body);
	resp->body = s ? s : xstrdup("{}");
	resp->body_len = strlen(resp->body);
	resp->status = status;
	snprintf(resp->content_type, sizeof resp->content_type, "application/json");
	json_decref(j);
}

void admin_resp_error(struct admin_resp *resp, int status, const char *code, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", code ? code : "error");
	if (msg)
		json_object_set_new(j, "message", text(msg));
	admin_resp_json(resp, status, j);
}

void admin_resp_header(struct admin_resp *resp, const char *name, const char *value)
{
	if (resp->nheaders >= ADMIN_MAX_RESP_HEADERS)
		return;
	resp->headers[resp->nheaders][0] = xstrdup(name);
	resp->headers[resp->nheaders][1] = xstrdup(value);
	resp->nheaders++;
}

static void resp_clear(struct admin_resp *resp)
{
	free(resp->body);
	for (int i = 0; i < resp->nheaders; i++) {
		free(resp->headers[i][0]);
		free(resp->headers[i][1]);
	}
	memset(resp, 0, sizeof *resp);
}

const char *admin_req_header(const struct admin_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->priv_, MHD_HEADER_KIND, name);
}

const char *admin_req_arg(const struct admin_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->priv_, MHD_GET_ARGUMENT_KIND, name);
}

/* Queue resp on mc; takes resp's body and headers. */
static enum MHD_Result send_resp(struct MHD_Connection *mc, struct admin_resp *resp)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	        resp->body_len, resp->body ? resp->body : (void *)"",
	        resp->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		resp_clear(resp);
		return MHD_NO;
	}
	resp->body = NULL; /* MHD frees it now */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        resp->content_type[0] ? resp->content_type : "application/json");
	for (int i = 0; i < resp->nheaders; i++)
		MHD_add_response_header(r, resp->headers[i][0], resp->headers[i][1]);
	enum MHD_Result ret = MHD_queue_response(mc, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	resp_clear(resp);
	return ret;
}

/* ---- built-in routes ---- */

static void h_metrics(const struct admin_req *req, struct admin_resp *resp, void *ctx)
{
	size_t len;
	resp->body = metrics_render(&len);
	resp->body_len = len;
	snprintf(resp->content_type, sizeof resp->content_type,
	         "text/plain; version=0.0.4; charset=utf-8");
}

static void h_healthz(const struct admin_req *req, struct admin_resp *resp, void *ctx)
{
	struct admin *srv = ctx;
	if (atomic_load(&srv->alive))
		admin_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
	else
		admin_resp_json(resp, 503, json_pack("{s:s}", "status", "unhealthy"));
}

static void h_readyz(const struct admin_req *req, struct admin_resp *resp, void *ctx)
{
	struct admin *srv = ctx;
	struct check checks[ADMIN_MAX_CHECKS];
	pthread_mutex_lock(&srv->mu);
	size_t n = srv->nchecks;
	memcpy(checks, srv->checks, n * sizeof checks[0]);
	pthread_mutex_unlock(&srv->mu);

	json_t *all = json_object(), *failing = json_array();
	for (size_t i = 0; i < n; i++) {
		char reason[ADMIN_READY_REASON_MAX] = "";
		bool ok = checks[i].fn(checks[i].ctx, reason, sizeof reason);
		reason[sizeof reason - 1] = '\0';
		json_t *one = json_pack("{s:s}", "status", ok ? "ok" : "fail");
		if (!ok) {
			json_object_set_new(one, "reason", text(reason[0] ? reason : "not ready"));
			json_array_append_new(failing, text(checks[i].name));
		}
		json_object_set_new(all, checks[i].name, one);
	}
	bool ready = json_array_size(failing) == 0;
	json_t *body =
	        json_pack("{s:s, s:o}", "status", ready ? "ready" : "not_ready", "checks", all);
	if (ready)
		json_decref(failing);
	else
		json_object_set_new(body, "failing", failing);
	admin_resp_json(resp, ready ? 200 : 503, body);
}

/* ---- setup ---- */

/* "host:port", "[v6]:port", ":port" -> sockaddr. */
static int parse_addr(struct admin *srv, const char *addr, char *errstr, size_t errlen)
{
	char host[ADMIN_ADDR_MAX];
	const char *port;
	if (strlen(addr) >= sizeof host) {
		set_err(errstr, errlen, "admin address too long");
		return -1;
	}
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (!close || close[1] != ':') {
			set_err(errstr, errlen, "admin address '%s': expected [v6addr]:port", addr);
			return -1;
		}
		snprintf(host, sizeof host, "%.*s", (int)(close - addr - 1), addr + 1);
		port = close + 2;
	} else {
		const char *colon = strrchr(addr, ':');
		if (!colon) {
			set_err(errstr, errlen, "admin address '%s': expected host:port", addr);
			return -1;
		}
		snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
		port = colon + 1;
	}
	char *end;
	errno = 0;
	long p = strtol(port, &end, 10);
	if (!*port || *end || errno || p < 0 || p > 65535) {
		set_err(errstr, errlen, "admin address '%s': bad port", addr);
		return -1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		set_err(errstr, errlen, "admin address '%s': %s", addr, gai_strerror(rc));
		return -1;
	}
	memcpy(&srv->sa, res->ai_addr, res->ai_addrlen);
	srv->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

struct admin *admin_new(const struct admin_opts *opts, char *errstr, size_t errlen)
{
	struct admin *srv = xcalloc(1, sizeof *srv);
	if (opts)
		srv->opts = *opts;
	snprintf(srv->addr, sizeof srv->addr, "%s",
	         srv->opts.addr && *srv->opts.addr ? srv->opts.addr : "127.0.0.1:0");
	srv->opts.addr = srv->addr;
	if (!srv->opts.max_body)
		srv->opts.max_body = ADMIN_DEFAULT_MAX_BODY;
	if (!srv->opts.mem_limit)
		srv->opts.mem_limit = ADMIN_DEFAULT_MEM_LIMIT;
	if (!srv->opts.max_conn)
		srv->opts.max_conn = ADMIN_DEFAULT_MAX_CONN;
	if (!srv->opts.timeout_s)
		srv->opts.timeout_s = ADMIN_DEFAULT_TIMEOUT_S;
	pthread_mutex_init(&srv->mu, NULL);
	atomic_init(&srv->alive, true);
	if (parse_addr(srv, srv->addr, errstr, errlen) < 0) {
		pthread_mutex_destroy(&srv->mu);
		free(srv);
		return NULL;
	}
	if (!srv->opts.no_builtin_routes) {
		admin_route(srv, "GET", "/metrics", h_metrics, srv);
		admin_route(srv, "GET", "/healthz", h_healthz, srv);
		admin_route(srv, "GET", "/readyz", h_readyz, srv);
	}
	return srv;
}

void admin_check_addr(struct config *c, const struct config_entry *e)
{
	const char *addr = config_str(c, e->name);
	struct admin probe;
	char err[ADMIN_ADDR_MAX + 128];
	if (addr && parse_addr(&probe, addr, err, sizeof err) < 0)
		config_problem(c, e, "%s", err);
}

void admin_route(struct admin *srv, const char *method, const char *path, admin_handler_fn fn,
                 void *ctx)
{
	pthread_mutex_lock(&srv->mu);
	if (srv->nroutes == ADMIN_MAX_ROUTES || strlen(method) >= sizeof srv->routes[0].method ||
	    strlen(path) >= sizeof srv->routes[0].path) {
		pthread_mutex_unlock(&srv->mu);
		log_error("admin_route: too many routes or name too long path=%s", path);
		abort(); /* a programming error */
	}
	struct route *r = &srv->routes[srv->nroutes];
	snprintf(r->method, sizeof r->method, "%s", method);
	snprintf(r->path, sizeof r->path, "%s", path);
	r->fn = fn;
	r->ctx = ctx;
	srv->nroutes++;
	pthread_mutex_unlock(&srv->mu);
}

void admin_ready_check(struct admin *srv, const char *name, admin_ready_fn fn, void *ctx)
{
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.')) {
			log_error("admin_ready_check: bad check name name=%s", name);
			abort(); /* names are JSON keys chosen by our code */
		}
	pthread_mutex_lock(&srv->mu);
	if (srv->nchecks == ADMIN_MAX_CHECKS) {
		pthread_mutex_unlock(&srv->mu);
		log_error("admin_ready_check: too many checks name=%s", name);
		abort();
	}
	struct check *c = &srv->checks[srv->nchecks];
	snprintf(c->name, sizeof c->name, "%s", name);
	c->fn = fn;
	c->ctx = ctx;
	srv->nchecks++;
	pthread_mutex_unlock(&srv->mu);
}

void admin_set_alive(struct admin *srv, bool alive)
{
	atomic_store(&srv->alive, alive);
}

/* ---- MHD callbacks ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->uri = xstrdup(uri ? uri : "");
	return c;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct conn *c = *con_cls;
	if (!c)
		return;
	free(c->uri);
	free(c->body);
	free(c);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warn("admin http error=%s", msg);
}

static enum MHD_Result too_large(struct admin *srv, struct MHD_Connection *mc, const char *path)
{
	struct admin_resp resp = {0};
	char reason[96];
	snprintf(reason, sizeof reason, "request body larger than %zu bytes", srv->opts.max_body);
	json_t *j = json_pack("{s:s, s:s, s:I}", "error", "payload_too_large", "reason", reason,
	                      "max_bytes", (json_int_t)srv->opts.max_body);
	if (srv->opts.on_too_large)
		srv->opts.on_too_large(path, srv->opts.too_large_ctx);
	admin_resp_json(&resp, 413, j);
	admin_resp_header(&resp, "Connection", "close");
	return send_resp(mc, &resp);
}

static bool method_matches(const char *route_method, const char *method)
{
	return strcmp(route_method, method) == 0 ||
	       (strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

static enum MHD_Result dispatch(struct admin *srv, struct MHD_Connection *mc, struct conn *c,
                                const char *path, const char *method)
{
	struct admin_resp resp = {.status = 200};
	struct route found;
	bool have = false, path_known = false;
	char allow[256] = "";
	size_t alen = 0;

	pthread_mutex_lock(&srv->mu);
	for (size_t i = 0; i < srv->nroutes; i++) {
		const struct route *r = &srv->routes[i];
		if (strcmp(r->path, path) != 0)
			continue;
		path_known = true;
		if (!have && method_matches(r->method, method)) {
			found = *r;
			have = true;
		}
		int w = snprintf(allow + alen, sizeof allow - alen, "%s%s%s", alen ? ", " : "",
		                 r->method, strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
		if (w > 0 && (size_t)w < sizeof allow - alen)
			alen += (size_t)w;
	}
	pthread_mutex_unlock(&srv->mu);

	if (!path_known) {
		admin_resp_json(&resp, 404,
		                json_pack("{s:s, s:o}", "error", "not_found", "path", text(path)));
		return send_resp(mc, &resp);
	}
	if (!have) {
		admin_resp_json(&resp, 405,
		                json_pack("{s:s, s:o, s:s}", "error", "method_not_allowed",
		                          "method", text(method), "allow", allow));
		admin_resp_header(&resp, "Allow", allow);
		return send_resp(mc, &resp);
	}
	if (c->too_big)
		return too_large(srv, mc, path);

	const char *q = strchr(c->uri, '?');
	struct admin_req req = {
	        .method = method,
	        .path = path,
	        .query = q ? q + 1 : "",
	        .body = c->body ? c->body : "",
	        .body_len = c->len,
	        .priv_ = mc,
	};
	snprintf(resp.content_type, sizeof resp.content_type, "application/json");
	found.fn(&req, &resp, found.ctx);
	if (resp.status < 100 || resp.status > 599) {
		log_error("admin handler returned a bad status path=%s status=%d", path,
		          resp.status);
		resp_clear(&resp);
		admin_resp_error(&resp, 500, "internal", NULL);
	}
	return send_resp(mc, &resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct admin *srv = cls;
	struct conn *c = *con_cls;
	if (!c) /* no URI callback ran: should not happen, be safe */
		return MHD_NO;
	if (c->answered) {
		*upload_data_size = 0; /* discard anything still arriving */
		return MHD_YES;
	}
	if (!c->started) {
		c->started = true;
		const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(cl, &end, 10);
			if (errno || end == cl || n > srv->opts.max_body) {
				/* Answer before reading the body; MHD closes afterwards. */
				c->answered = true;
				return too_large(srv, mc, url);
			}
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		if (!c->too_big && c->len + n <= srv->opts.max_body) {
			if (c->len + n + 1 > c->cap) {
				c->cap = c->len + n + 1 > 2 * c->cap ? c->len + n + 1 : 2 * c->cap;
				c->body = xrealloc(c->body, c->cap);
			}
			memcpy(c->body + c->len, upload_data, n);
			c->len += n;
			c->body[c->len] = '\0';
		} else {
			c->too_big =
			        true; /* chunked body over the cap: drop, answer 413 at the end */
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return dispatch(srv, mc, c, url, method);
}

enum sfk_err admin_start(struct admin *srv, char *errstr, size_t errlen)
{
	if (srv->d)
		return SFK_OK;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	if (srv->sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	unsigned threads = srv->opts.threads > 1 ? srv->opts.threads : 1;
	uint16_t port = 0; /* the real port comes from MHD_OPTION_SOCK_ADDR */
	errno = 0;
	/* The logger goes first so that option warnings reach it too; a pool
	 * size is only given when there is a pool (MHD warns about 1). */
	struct MHD_OptionItem ops[] = {
	        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, srv},
	        {MHD_OPTION_SOCK_ADDR, 0, &srv->sa},
	        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, srv},
	        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
	        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)srv->opts.mem_limit, NULL},
	        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)srv->opts.max_conn, NULL},
	        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)srv->opts.timeout_s, NULL},
	        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads,
	         NULL},
	        {MHD_OPTION_END, 0, NULL},
	};
	srv->d = MHD_start_daemon(flags, port, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, ops,
	                          MHD_OPTION_END);
	if (!srv->d) {
		set_err(errstr, errlen, "admin: cannot listen on %s: %s", srv->addr,
		        errno ? strerror(errno) : "libmicrohttpd refused the options");
		return SFK_ERR_IO;
	}
	log_info("admin listening addr=%s port=%u", srv->addr, admin_port(srv));
	return SFK_OK;
}

unsigned admin_port(const struct admin *srv)
{
	if (!srv || !srv->d)
		return 0;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	return info ? info->port : 0;
}

void admin_free(struct admin **sp)
{
	if (!sp || !*sp)
		return;
	struct admin *srv = *sp;
	if (srv->d)
		MHD_stop_daemon(srv->d);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
	*sp = NULL;
}
