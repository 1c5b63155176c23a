/*
 * http.c - libmicrohttpd server for sfk-sim: thread per connection (handlers
 * may block), keep-alive, prefix routes, body accumulation with a cap (413),
 * the REST envelope (session check, API limit, Sforce-Limit-Info) and faults.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "control.h"
#include "faults.h"
#include "http.h"
#include "log.h"
#include "org.h"
#include "xmem.h"

struct route {
	char *method;
	char *prefix;
	size_t prefix_len;
	int wildcard;
	unsigned flags;
	size_t max_body;
	sim_handler fn;
	void *ctx;
};

struct http {
	struct MHD_Daemon *daemon;
	struct route routes[SIM_MAX_ROUTES];
	size_t nroutes;
	char *cert;
	char *key;
	/* Start of the current API-usage day (sim clock; 0 = not started). */
	_Atomic int64_t api_day_start;
};

/* DailyApiRequests resets after 24 h of sim time (Salesforce: rolling 24 h). */
#define API_DAY_MS (24LL * 3600 * 1000)

/* Per-request state across libmicrohttpd's callbacks. */
struct reqctx {
	const struct route *route;
	char *body;
	size_t len;
	size_t cap;
	int too_big;
};

static struct http *http_of(struct sim *sim)
{
	if (!sim->http)
		sim->http = xcalloc(1, sizeof(struct http));
	return sim->http;
}

int sim_route(struct sim *sim, const char *method, const char *prefix, unsigned flags,
              size_t max_body, sim_handler fn, void *ctx)
{
	struct http *h = http_of(sim);
	if (h->nroutes >= SIM_MAX_ROUTES)
		return -1;
	struct route *r = &h->routes[h->nroutes++];
	size_t n = strlen(prefix);
	r->method = method ? xstrdup(method) : NULL;
	r->wildcard = n > 0 && prefix[n - 1] == '*';
	r->prefix = xstrndup(prefix, r->wildcard ? n - 1 : n);
	r->prefix_len = strlen(r->prefix);
	r->flags = flags;
	r->max_body = max_body ? max_body : SIM_HTTP_BODY_MAX;
	r->fn = fn;
	r->ctx = ctx;
	return 0;
}

static const struct route *match(struct http *h, const char *method, const char *path)
{
	const struct route *best = NULL;
	for (size_t i = 0; i < h->nroutes; i++) {
		const struct route *r = &h->routes[i];
		if (r->method && strcmp(r->method, method) != 0)
			continue;
		if (strncmp(path, r->prefix, r->prefix_len) != 0)
			continue;
		char next = path[r->prefix_len];
		if (!r->wildcard && next != '\0' && next != '/' &&
		    r->prefix[r->prefix_len - 1] != '/')
			continue;
		if (!best || r->prefix_len > best->prefix_len)
			best = r;
	}
	return best;
}

/* ---- request accessors ------------------------------------------------------------- */

const char *sim_req_query(const struct sim_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn_, MHD_GET_ARGUMENT_KIND, name);
}

const char *sim_req_header(const struct sim_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn_, MHD_HEADER_KIND, name);
}

const char *sim_req_cookie(const struct sim_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn_, MHD_COOKIE_KIND, name);
}

int sim_req_session(struct sim *sim, const struct sim_req *req, char user_id[19])
{
	const char *a = sim_req_header(req, "Authorization");
	if (!a)
		return -1;
	/* Salesforce accepts "Bearer" and the older "OAuth" scheme. */
	if (strncasecmp(a, "Bearer ", 7) == 0)
		a += 7;
	else if (strncasecmp(a, "OAuth ", 6) == 0)
		a += 6;
	else
		return -1;
	while (*a == ' ')
		a++;
	return auth_session(sim, a, user_id);
}

int sim_stopping(struct sim *sim)
{
	return sim->stop != 0;
}

/* ---- response helpers --------------------------------------------------------------- */

static void set_body(struct sim_resp *resp, int status, char *body, size_t len)
{
	free(resp->body);
	resp->status = status;
	resp->body = body;
	resp->body_len = len;
}

void sim_resp_json(struct sim_resp *resp, int status, json_t *json)
{
	char *s = json ? json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(json);
	resp->content_type = "application/json;charset=UTF-8";
	if (!s)
		s = xstrdup("null");
	set_body(resp, status, s, strlen(s));
}

void sim_resp_error(struct sim_resp *resp, int status, const char *code, const char *msg,
                    const char *field)
{
	json_t *e = json_object();
	if (field && field[0])
		json_object_set_new(e, "fields", json_pack("[s]", field));
	json_t *m = json_string(msg);
	if (!m) {
		/* A message cut mid-character by a fixed buffer: drop the tail. */
		size_t n = strlen(msg);
		while (n > 0 && !m)
			m = json_stringn(msg, --n);
	}
	json_object_set_new(e, "message", m ? m : json_string(""));
	json_object_set_new(e, "errorCode", json_string(code));
	sim_resp_json(resp, status, json_pack("[o]", e));
}

void sim_resp_text(struct sim_resp *resp, int status, const char *content_type, const char *text)
{
	resp->content_type = content_type;
	set_body(resp, status, xstrdup(text), strlen(text));
}

void sim_resp_header(struct sim_resp *resp, const char *name, const char *value)
{
	if (resp->nheaders >= SIM_RESP_MAX_HEADERS)
		return;
	resp->headers[resp->nheaders].name = xstrdup(name);
	resp->headers[resp->nheaders].value = xstrdup(value);
	resp->nheaders++;
}

static void resp_free(struct sim_resp *resp)
{
	free(resp->body);
	for (size_t i = 0; i < resp->nheaders; i++) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
	}
}

/* ---- dispatch ------------------------------------------------------------------------ */

/* Path template for stats: id-like segments become {id}, versions vXX.X. */
static void path_template(const char *path, char *out, size_t size)
{
	size_t o = 0;
	const char *p = path;
	while (*p && o + 1 < size) {
		if (*p != '/') {
			out[o++] = *p++;
			continue;
		}
		out[o++] = *p++;
		const char *seg = p;
		size_t n = strcspn(seg, "/");
		int digits = 0, alnum = 1;
		for (size_t i = 0; i < n; i++) {
			if (isdigit((unsigned char)seg[i]))
				digits++;
			else if (!isalpha((unsigned char)seg[i]))
				alnum = 0;
		}
		const char *rep = NULL;
		if (n > 1 && seg[0] == 'v' && isdigit((unsigned char)seg[1]) &&
		    strncmp(path, "/services/data/", 15) == 0 && seg == path + 15)
			rep = "vXX.X";
		else if ((n == 15 || n == 18) && alnum && digits > 0)
			rep = "{id}";
		else if (n > 18 && seg[0] == '0' && strchr(seg, '-') && n < 40)
			rep = "{locator}";
		if (rep) {
			int w = snprintf(out + o, size - o, "%s", rep);
			if (w < 0 || (size_t)w >= size - o)
				break;
			o += (size_t)w;
			p = seg + n;
		}
	}
	out[o < size ? o : size - 1] = '\0';
}

static void api_version_of(const char *path, char out[8])
{
	out[0] = '\0';
	if (strncmp(path, "/services/data/v", 16) != 0)
		return;
	const char *v = path + 16;
	size_t n = strcspn(v, "/");
	if (n > 0 && n < 8) {
		memcpy(out, v, n);
		out[n] = '\0';
	}
}

static void add_limit_info(struct sim *sim, struct sim_resp *resp)
{
	char v[64];
	snprintf(v, sizeof(v), "api-usage=%ld/%ld", atomic_load(&sim->api_used),
	         sim->cfg.api_limit);
	sim_resp_header(resp, "Sforce-Limit-Info", v);
}

static void dispatch(struct sim *sim, const struct route *r, struct sim_req *req,
                     struct sim_resp *resp)
{
	int is_control = strncmp(req->path, "/sim/", 5) == 0 || strcmp(req->path, "/sim") == 0;

	if (!r || ((r->flags & SIM_ROUTE_CONTROL) && !sim->cfg.control)) {
		sim_resp_error(resp, 404, "NOT_FOUND", "The requested resource does not exist",
		               NULL);
		return;
	}
	req->route_ctx = r->ctx;
	if (!is_control && faults_before(sim, req, resp))
		return;
	if (r->flags & SIM_ROUTE_AUTH) {
		api_version_of(req->path, req->api_version);
		if (sim_req_session(sim, req, req->user_id) < 0) {
			sim_resp_error(resp, 401, "INVALID_SESSION_ID",
			               "Session expired or invalid", NULL);
			return;
		}
		int64_t now = sim_now_ms(sim);
		int64_t start = atomic_load(&sim->http->api_day_start);
		if ((start == 0 || now - start >= API_DAY_MS) &&
		    atomic_compare_exchange_strong(&sim->http->api_day_start, &start, now) &&
		    start != 0)
			atomic_store(&sim->api_used, 0);
		long used = atomic_load(&sim->api_used);
		if (used >= sim->cfg.api_limit || faults_limit_forced(sim)) {
			sim_resp_error(resp, 403, "REQUEST_LIMIT_EXCEEDED",
			               "TotalRequests Limit exceeded.", NULL);
			add_limit_info(sim, resp);
			return;
		}
		atomic_fetch_add(&sim->api_used, 1);
		r->fn(sim, req, resp);
		add_limit_info(sim, resp);
		return;
	}
	r->fn(sim, req, resp);
}

/* A response body cut short (fault injection). */
struct cut {
	char *body;
	size_t len; /* bytes sent before the connection is aborted */
};

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct cut *c = cls;
	if (pos >= c->len)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = c->len - (size_t)pos < max ? c->len - (size_t)pos : max;
	memcpy(buf, c->body + pos, n);
	return (ssize_t)n;
}

static void cut_free(void *cls)
{
	struct cut *c = cls;
	free(c->body);
	free(c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct sim *sim = cls;
	struct http *h = sim->http;
	struct reqctx *rc = *con_cls;
	(void)version;

	if (!rc) {
		rc = xcalloc(1, sizeof(*rc));
		rc->route = match(h, method, url);
		*con_cls = rc;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t max = rc->route ? rc->route->max_body : SIM_HTTP_BODY_MAX;
		if (!rc->too_big && rc->len + *upload_data_size > max) {
			rc->too_big = 1;
			free(rc->body);
			rc->body = NULL;
			rc->len = rc->cap = 0;
		}
		if (!rc->too_big) {
			if (rc->len + *upload_data_size + 1 > rc->cap) {
				size_t ncap = rc->cap ? rc->cap * 2 : 4096;
				while (ncap < rc->len + *upload_data_size + 1)
					ncap *= 2;
				rc->body = xrealloc(rc->body, ncap);
				rc->cap = ncap;
			}
			memcpy(rc->body + rc->len, upload_data, *upload_data_size);
			rc->len += *upload_data_size;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}

	struct sim_req req = {.method = method, .path = url, .conn_ = conn};
	struct sim_resp resp = {.status = 200, .content_type = "application/json;charset=UTF-8"};
	char remote[64] = "";
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ci->client_addr;
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(remote, sizeof(remote), "%s:%u", ip, ntohs(sin->sin_port));
	}
	req.remote = remote;
	if (rc->body)
		rc->body[rc->len] = '\0';
	req.body = rc->body ? rc->body : "";
	req.body_len = rc->len;

	if (rc->too_big) {
		sim_resp_error(&resp, 413, "REQUEST_ENTITY_TOO_LARGE",
		               "Maximum Request Size Exceeded", NULL);
	} else {
		dispatch(sim, rc->route, &req, &resp);
	}
	char tmpl[256];
	path_template(url, tmpl, sizeof(tmpl));
	stats_count_api(sim, method, tmpl, resp.drop ? 0 : resp.status);

	if (resp.drop && resp.body_len < 2) {
		resp_free(&resp);
		return MHD_NO; /* libmicrohttpd closes the connection */
	}
	struct MHD_Response *mr;
	if (resp.drop) {
		/* Announce the full length, send half, then abort. */
		struct cut *c = xmalloc(sizeof(*c));
		c->body = resp.body;
		c->len = resp.body_len / 2;
		mr = MHD_create_response_from_callback(resp.body_len, 4096, cut_reader, c,
		                                       cut_free);
	} else {
		mr = MHD_create_response_from_buffer(
		        resp.body_len, resp.body ? resp.body : (void *)"",
		        resp.body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	}
	resp.body = NULL; /* libmicrohttpd owns it now */
	if (resp.body_len)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, resp.content_type);
	for (size_t i = 0; i < resp.nheaders; i++)
		MHD_add_response_header(mr, resp.headers[i].name, resp.headers[i].value);
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)resp.status, mr);
	MHD_destroy_response(mr);
	resp_free(&resp);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct reqctx *rc = *con_cls;
	(void)cls;
	(void)conn;
	(void)toe;
	if (rc) {
		free(rc->body);
		free(rc);
	}
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("libmicrohttpd detail=%s", buf);
}

int http_start(struct sim *sim, const char *listen, const char *cert_pem, const char *key_pem,
               int *port)
{
	struct http *h = http_of(sim);
	struct sockaddr_in sin;
	const char *colon = strrchr(listen, ':');
	char host[64];
	char *end;
	long p;

	if (!colon || (size_t)(colon - listen) >= sizeof(host)) {
		log_error("bad --listen value=%s", listen);
		return -1;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || p < 0 || p > 65535) {
		log_error("bad --listen port value=%s", listen);
		return -1;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)p);
	const char *ip = host[0] ? host : "0.0.0.0";
	if (strcmp(ip, "localhost") == 0)
		ip = "127.0.0.1";
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1) {
		log_error("bad --listen host value=%s", host);
		return -1;
	}
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	                 MHD_USE_ERROR_LOG | MHD_USE_POLL;
	if (cert_pem) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			log_error("libmicrohttpd built without TLS support");
			return -1;
		}
		flags |= MHD_USE_TLS;
		h->cert = xstrdup(cert_pem);
		h->key = xstrdup(key_pem);
	}
	struct MHD_OptionItem tls_opts[] = {
	        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert},
	        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->key},
	        {MHD_OPTION_END, 0, NULL},
	};
	/* No MHD_OPTION_LISTENING_ADDRESS_REUSE: it sets SO_REUSEPORT, and two
	 * sims that picked the same free port then both listen on it and the
	 * kernel splits one test's connections between them. The default
	 * (SO_REUSEADDR) still allows a restart on a port in TIME_WAIT. */
	h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, sim, MHD_OPTION_SOCK_ADDR,
	                             &sin, MHD_OPTION_NOTIFY_COMPLETED, on_completed, sim,
	                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
	                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)2000,
	                             MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
	                             MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_ARRAY,
	                             cert_pem ? tls_opts : &tls_opts[2], MHD_OPTION_END);
	if (!h->daemon) {
		log_error("cannot start HTTP server listen=%s", listen);
		return -1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	*port = di ? di->port : (int)p;
	return 0;
}

void http_stop(struct sim *sim)
{
	struct http *h = sim->http;
	if (!h)
		return;
	if (h->daemon)
		MHD_stop_daemon(h->daemon);
	for (size_t i = 0; i < h->nroutes; i++) {
		free(h->routes[i].method);
		free(h->routes[i].prefix);
	}
	free(h->cert);
	free(h->key);
	free(h);
	sim->http = NULL;
}
