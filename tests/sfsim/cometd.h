/*
 * cometd.h - sfk-sim's Bayeux server for CDC, as Salesforce runs it:
 * POST /cometd/<ver>, long-polling only, the replay extension, BAYEUX_BROWSER
 * session cookie, Salesforce's error texts ("403::Unknown client",
 * "400::The replayId {N} you provided was invalid. ..."). The core takes a
 * request (body, auth outcome, cookie) and returns the HTTP answer, so unit
 * tests drive it without sockets; /meta/connect blocks on a condition
 * variable until events arrive, the hold timeout passes or the client goes.
 */
#ifndef SFK_SIM_COMETD_H
#define SFK_SIM_COMETD_H

#include <stddef.h>
#include <stdint.h>

#include "cdc.h"

#define SIM_MODULE_COMETD 1

/* Salesforce's maximum CometD POST body (bigger: 413). */
#define COMETD_BODY_MAX 32768
/* Subscriptions one client may hold. */
#define COMETD_MAX_SUBS 64
/* The session cookie set at handshake and required afterwards. */
#define COMETD_COOKIE "BAYEUX_BROWSER"

struct cometd_config {
	long connect_timeout_ms; /* how long /meta/connect is held (110,000) */
	long client_timeout_ms;  /* forget a client that does not come back (40,000) */
	size_t max_batch_events; /* events per connect response (1,000) */
	size_t max_batch_bytes;  /* soft byte cap per connect response (4 MB) */
	size_t max_clients;      /* concurrent clients (2,000, Performance edition) */
	long linger_ms;          /* after waiting, gather a burst this long (5) */
	uint64_t seed;
	/* Polled at least once a second while a connect waits; NULL = never. */
	int (*stopping)(void *ctx);
	void *stopping_ctx;
};

/* Defaults as above. */
void cometd_config_default(struct cometd_config *cfg);

struct cometd;

/* New server reading events from bus (borrowed; must outlive the server;
 * the server installs itself as the bus listener). Never NULL. */
struct cometd *cometd_new(const struct cometd_config *cfg, struct cdc *bus);
/* Accepts NULL; clears *cp. No request may be in progress. */
void cometd_free(struct cometd **cp);

enum cometd_auth {
	COMETD_AUTH_OK = 0,
	COMETD_AUTH_MISSING, /* no Authorization header */
	COMETD_AUTH_INVALID  /* expired/unknown token */
};

struct cometd_request {
	const char *version; /* from the path: "66.0" ("" if none) */
	const char *body;    /* borrowed */
	size_t body_len;
	enum cometd_auth auth;
	const char *user_id; /* the token's user when auth is OK */
	const char *cookie;  /* BAYEUX_BROWSER value sent, or NULL */
};

struct cometd_reply {
	int status; /* HTTP status */
	char *body; /* owned by the caller (free()), JSON array */
	size_t body_len;
	char set_cookie[128]; /* Set-Cookie value to send, "" for none */
};

/* Handle one POST (may block for a /meta/connect). Fills *out. */
void cometd_handle(struct cometd *s, const struct cometd_request *req, struct cometd_reply *out);

/* Forget every client now (fault injection): their next request, or the
 * connect they are holding, gets 403::Unknown client. */
void cometd_forget_all(struct cometd *s);

/* {"clients":N,"connects_waiting":N,"messages_delivered":N}; new reference. */
json_t *cometd_stats(struct cometd *s);

/*
 * sim module: reads --opt cometd.timeout_ms, cometd.client_timeout_ms,
 * cometd.max_batch_events, cometd.max_batch_bytes, cometd.max_clients,
 * cometd.linger_ms;
 * registers POST /cometd/<ver> (own auth errors, 32 KB body cap),
 * sim->forget_clients and sim->stream_stats (cdc_stats() plus "cometd":
 * cometd_stats()). Needs cdc_module_init first. 0 or -1.
 */
int cometd_module_init(struct sim *sim);
void cometd_module_fini(struct sim *sim);

#endif
