/*
 * cometd.h - Bayeux long-polling client for Salesforce Streaming API (CDC).
 *
 * Handshake (replay extension), subscribe from the caller's checkpoints,
 * connect long-polls honouring advice, and the recoveries Salesforce needs:
 * 403::Unknown client -> handshake + resubscribe from the checkpoint, 401 ->
 * a NEW token then handshake, transport errors -> jittered backoff, stalled
 * connects -> watchdog reconnect. An invalid/expired replay id is handed back
 * to the caller (its policy: resync, latest or fail). The pure parts (request
 * building, response parsing, verdicts on replies) are public for tests.
 */
#ifndef SFK_BRIDGE_COMETD_H
#define SFK_BRIDGE_COMETD_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Largest response body accepted (EMP-Connector's buffer is 10 MB). */
#define COMETD_MAX_RESPONSE_BYTES (10u * 1024u * 1024u)
/* Salesforce rejects bigger POST bodies (413). */
#define COMETD_MAX_REQUEST_BYTES 32768
#define COMETD_MAX_CHANNELS      32
#define COMETD_CHANNEL_MAX       128
#define COMETD_CLIENT_ID_MAX     128
#define COMETD_TOKEN_MAX         4096
/* The connect hold Salesforce advises (110 s) and the most we accept. */
#define COMETD_DEFAULT_TIMEOUT_MS 110000L
#define COMETD_MAX_TIMEOUT_MS     600000L

/* ---- pure parts ------------------------------------------------------- */

/* What a reply tells the client to do. */
enum cometd_action {
	COMETD_ACT_OK = 0,
	COMETD_ACT_RETRY,          /* transient: back off, retry the same step */
	COMETD_ACT_HANDSHAKE,      /* session gone: handshake + resubscribe */
	COMETD_ACT_REAUTH,         /* 401: get a NEW token, then handshake */
	COMETD_ACT_REPLAY_INVALID, /* 400::The replayId {N} you provided was invalid */
	COMETD_ACT_FATAL           /* cannot go on (reconnect none, permission, bug) */
};

/* A verdict on one meta reply (or a whole HTTP answer). */
struct cometd_verdict {
	enum cometd_action action;
	int slow;                         /* retry after a long pause (org limits, too busy) */
	long interval_ms;                 /* advice.interval, -1 if absent */
	long timeout_ms;                  /* advice.timeout, -1 if absent */
	int64_t replay_id;                /* for COMETD_ACT_REPLAY_INVALID: the N in {N}, else 0 */
	char channel[COMETD_CHANNEL_MAX]; /* subscription concerned, "" if none */
	char reason[256];                 /* the error text ("403::Unknown client"), "" if OK */
};

/* "successful":true reply -> OK; else classify error, ext.sfdc.failureReason
 * and advice.reconnect (retry / handshake / none). reply borrowed. */
void cometd_verdict_of(json_t *reply, struct cometd_verdict *v);

/*
 * Parse one HTTP answer. body[0..len) borrowed. On SFK_OK *msgs is a new JSON
 * array of objects. An HTML page, non-array JSON or non-object elements give
 * SFK_ERR_PARSE with errstr naming the problem (body excerpts are never
 * copied: they may echo a token).
 */
enum sfk_err cometd_parse_response(const char *body, size_t len, json_t **msgs, char *errstr,
                                   size_t errlen);

/* Request builders; each returns a new JSON array holding the message(s).
 * id_seq is incremented per message (Bayeux "id"). */
json_t *cometd_req_handshake(unsigned long *id_seq);
/* One /meta/subscribe per channel; every message carries the whole replay
 * map {channel: replay id} (as EMP-Connector does: a map missing the
 * subscribed channel is refused). channels[i] pairs with replay[i]. */
json_t *cometd_req_subscribe(unsigned long *id_seq, const char *client_id,
                             const char *const *channels, const int64_t *replay, size_t n);
json_t *cometd_req_connect(unsigned long *id_seq, const char *client_id);
json_t *cometd_req_disconnect(unsigned long *id_seq, const char *client_id);

/* Full-jitter exponential backoff: uniform in [0, min(max, base * 2^attempt)]
 * using *rng (xorshift state, never 0). */
long cometd_backoff_ms(unsigned attempt, long base_ms, long max_ms, uint64_t *rng);

/* ---- the client ------------------------------------------------------- */

/*
 * Access tokens come from the caller (the Salesforce client's shared cache).
 * force_new = 1 after the server refused the previous token: invalidate it
 * and mint a new one. Writes the token (NUL-terminated) into buf. Returns
 * SFK_OK, a retriable error (the client backs off) or a fatal one (stop).
 */
struct cometd_token_provider {
	enum sfk_err (*get)(void *ctx, int force_new, char *buf, size_t size, char *errstr,
	                    size_t errlen);
	void *ctx;
};

struct cometd_handler {
	/*
	 * Replay id to subscribe channel from: the last COMMITTED checkpoint,
	 * or -1 (new events only) / -2 (all retained) when there is none. Asked
	 * before every subscribe (after every re-handshake). The client never
	 * subscribes with a negative id once it has delivered a committed
	 * event on the channel: it then uses the last committed replay id.
	 */
	int64_t (*replay_from)(void *ctx, const char *channel);
	/*
	 * The data messages of one connect response, in order (a JSON array,
	 * borrowed for the call). Return SFK_OK once they are durably handled
	 * (committed). Any other code: the client drops the session and resumes
	 * from replay_from(); a fatal-class code stops cometd_run().
	 */
	enum sfk_err (*on_batch)(void *ctx, json_t *messages);
	void *ctx;
};

struct cometd_config {
	const char *url;             /* https://<host>/cometd/<ver> (copied) */
	const char *ca_file;         /* CA bundle (SF_CA_FILE), NULL = system store */
	const char *const *channels; /* copied; at most COMETD_MAX_CHANNELS */
	size_t nchannels;
	size_t max_response_bytes;   /* 0 = COMETD_MAX_RESPONSE_BYTES */
	long connect_timeout_ms;     /* TCP+TLS connect; 0 = 10 s */
	long request_timeout_ms;     /* handshake/subscribe/disconnect; 0 = 30 s */
	long stall_grace_ms;         /* connect watchdog = advised timeout + this; 0 = 15 s */
	long backoff_base_ms;        /* 0 = 500 ms */
	long backoff_max_ms;         /* 0 = 60 s */
	long slow_backoff_ms;        /* org limits, too busy; 0 = 5 min */
	volatile sig_atomic_t *stop; /* set by a signal handler; NULL = never */
	uint64_t seed;               /* jitter; 0 = from the clock */
};

/* Counters (also exported as sfk_cometd_* metrics). */
struct cometd_stats {
	unsigned long handshakes, subscribes, connects, events, batches;
	unsigned long reauths, rehandshakes, transport_errors, stalls, replay_invalid;
};

/* Why cometd_run() returned. */
enum cometd_outcome {
	COMETD_STOPPED = 0,    /* the stop flag was set; disconnected */
	COMETD_REPLAY_INVALID, /* cometd_replay_error() says which channel and id */
	COMETD_FATAL           /* errstr says why */
};

struct cometd;

/* New client (nothing is sent yet). cfg, tp, h copied. NULL with errstr on a
 * bad configuration (no channels, too many, channel too long, bad URL). */
struct cometd *cometd_new(const struct cometd_config *cfg, const struct cometd_token_provider *tp,
                          const struct cometd_handler *h, char *errstr, size_t errlen);

/*
 * Run until stopped or a condition the caller must decide on. Handshakes,
 * subscribes, long-polls, delivers batches and recovers from everything
 * recoverable inside. errstr gets the reason for COMETD_FATAL and
 * COMETD_REPLAY_INVALID. May be called again after COMETD_REPLAY_INVALID
 * (it starts with a fresh handshake and asks replay_from() again).
 */
enum cometd_outcome cometd_run(struct cometd *c, char *errstr, size_t errlen);

/* After COMETD_REPLAY_INVALID: the channel (borrowed) and refused id. */
const char *cometd_replay_error(const struct cometd *c, int64_t *replay_id);

/*
 * The caller's explicit decision after COMETD_REPLAY_INVALID (or a resync):
 * forget the client's own record of channel's checkpoint, so that the next
 * subscribe uses whatever replay_from() returns, even -1 or -2. 0, or -1 if
 * channel is not one of ours.
 */
int cometd_forget_checkpoint(struct cometd *c, const char *channel);

/* 1 while a session is handshaken and subscribed (readiness). Thread-safe. */
int cometd_ready(struct cometd *c);

/* Snapshot of the counters. */
void cometd_get_stats(const struct cometd *c, struct cometd_stats *out);

/* Send /meta/disconnect if a session exists (short timeout), free. Accepts
 * NULL / *cp == NULL; clears *cp. */
void cometd_free(struct cometd **cp);

#endif
