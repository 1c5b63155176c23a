/*
 * kafka.c - producer, consumer, admin and configuration over librdkafka.
 *
 * librdkafka does the protocol work; this file fixes the project's choices
 * (idempotence, murmur2_random, read_committed, manual commits, eager
 * rebalancing) and turns librdkafka's error model (codes, error objects with
 * retriable / txn_requires_abort / fatal flags, rd_kafka_fatal_error()) into
 * enum sfk_err. Callbacks (delivery reports, rebalance, stats) run inside
 * the caller's poll/flush/close calls, on the caller's thread; only the log
 * and error callbacks may run on librdkafka's threads.
 */
#include "kafka.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "log.h"
#include "metrics.h"
#include "xmem.h"

extern char **environ;

/* Longest librdkafka property name we derive from an environment variable. */
#define KAFKA_PROP_MAX 128
/* Per-attempt budget of init_transactions and how often retriable errors
 * of the transactional calls are retried before giving up (SFK_ERR_KAFKA). */
#define TXN_INIT_TIMEOUT_MS 30000
#define TXN_MAX_ATTEMPTS    5
/* How long kafka_produce() waits for room in a full local queue. */
#define PRODUCE_QUEUE_WAIT_MS 5000

#define LAG_METRIC            "sfk_kafka_consumer_lag"
#define LAG_HELP                                                                                   \
	"Records not yet committed by this consumer (high watermark - committed offset), "         \
	"summed over its assigned partitions of each topic"

struct kafka_producer {
	rd_kafka_t *rk;
	int transactional;
	int in_txn; /* a transaction was begun and not yet committed/aborted */
	/* First delivery failure since the last flush (dr_msg_cb runs inside
	 * rd_kafka_poll/flush on the caller's thread: no lock needed). */
	rd_kafka_resp_err_t dr_err;
	char dr_errstr[KAFKA_ERRSTR_MAX];
	long dr_failed;
};

struct kafka_consumer {
	rd_kafka_t *rk;
	struct kafka_revoke_hook hook;
	atomic_int joined; /* the first assignment (possibly empty) arrived */
	int cooperative;   /* partition.assignment.strategy names cooperative-sticky */
};

struct kafka_admin {
	rd_kafka_t *rk;
};

/* ---- small helpers ------------------------------------------------------ */

static void errf(char *errstr, size_t errsize, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void errf(char *errstr, size_t errsize, const char *fmt, ...)
{
	va_list ap;
	if (!errstr || errsize == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(errstr, errsize, fmt, ap) < 0)
		errstr[0] = '\0';
	va_end(ap);
}

/* Append to a NUL-terminated buffer; silently truncates (the count returned
 * by the conf functions stays exact even when the text does not fit). */
static void appendf(char *buf, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	size_t used;
	if (!buf || size == 0)
		return;
	used = strnlen(buf, size);
	if (used >= size - 1)
		return;
	va_start(ap, fmt);
	if (vsnprintf(buf + used, size - used, fmt, ap) < 0)
		buf[used] = '\0';
	va_end(ap);
}

static int is_fenced(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR__FENCED || err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
	       err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

enum sfk_err kafka_err_map(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR: return SFK_OK;
	case RD_KAFKA_RESP_ERR__FENCED:
	case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
	case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH: return SFK_ERR_FENCED;
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: return SFK_ERR_TOO_LARGE;
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT: return SFK_ERR_TIMEOUT;
	case RD_KAFKA_RESP_ERR__FATAL:
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
	case RD_KAFKA_RESP_ERR__NOT_CONFIGURED:
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR__SSL:
	case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_INVALID_TRANSACTION_TIMEOUT: return SFK_ERR_KAFKA_FATAL;
	default: return SFK_ERR_KAFKA;
	}
}

/* If the instance has raised a fatal error, describe it and return the
 * fatal code; SFK_OK otherwise. librdkafka's rule: after a fatal error the
 * instance is useless, only destroy remains. */
static enum sfk_err check_fatal(rd_kafka_t *rk, char *errstr, size_t errsize)
{
	char buf[KAFKA_ERRSTR_MAX];
	rd_kafka_resp_err_t err = rd_kafka_fatal_error(rk, buf, sizeof buf);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		return SFK_OK;
	errf(errstr, errsize, "fatal kafka error %s: %s", rd_kafka_err2name(err), buf);
	return is_fenced(err) ? SFK_ERR_FENCED : SFK_ERR_KAFKA_FATAL;
}

/* librdkafka logs through us so that every line is JSON (syslog levels). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* librdkafka logs recoverable connection failures at LOG_ERR (3);
	 * what is really an error reaches the caller as a return code. */
	enum log_level lvl = level <= 2   ? LOG_LVL_ERROR
	                     : level <= 4 ? LOG_LVL_WARN
	                     : level <= 6 ? LOG_LVL_INFO
	                                  : LOG_LVL_DEBUG;
	log_write(lvl, "rdkafka client=%s fac=%s text=%s", rd_kafka_name(rk), fac, buf);
}

/* Client-level errors. Most are transient and librdkafka recovers by itself
 * (broker down, all brokers down); fatal ones are picked up by check_fatal()
 * on the next call, here they are only logged. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)opaque;
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		log_error("kafka fatal error client=%s err=%s reason=%s", rd_kafka_name(rk),
		          rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
	else
		log_warn("kafka error client=%s err=%s reason=%s", rd_kafka_name(rk),
		         rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* ---- configuration ------------------------------------------------------ */

static int is_named(const char *name, size_t nlen, const char *want)
{
	return nlen == strlen(want) && strncmp(name, want, nlen) == 0;
}

/* Kubernetes injects KAFKA_PORT, KAFKA_PORT_9092_TCP..., KAFKA_SERVICE_HOST
 * ... into every pod of a namespace holding a Service named "kafka"
 * (enableServiceLinks). They are no librdkafka properties (none starts with
 * "port" or "service."); refusing to start over them would be absurd. */
static int is_service_link(const char *name, size_t nlen)
{
	return is_named(name, nlen, "PORT") || (nlen > 5 && strncmp(name, "PORT_", 5) == 0) ||
	       (nlen > 8 && strncmp(name, "SERVICE_", 8) == 0);
}

/* TLS verification of the brokers is librdkafka's default; turning it off
 * takes an explicit KAFKA_* setting, and that must never go unnoticed. */
static void warn_if_insecure(const char *prop, const char *val)
{
	static const char *const off[] = {"false", "f", "0", "no", "off"};
	int insecure = 0;
	if (strcmp(prop, "enable.ssl.certificate.verification") == 0) {
		for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
			insecure |= strcasecmp(val, off[i]) == 0;
	} else if (strcmp(prop, "ssl.endpoint.identification.algorithm") == 0) {
		insecure = strcasecmp(val, "none") == 0;
	}
	if (insecure)
		log_warn("kafka TLS verification is OFF property=%s value=%s", prop, val);
}

static int apply_env(rd_kafka_conf_t *conf, const char *const *envp, char *errbuf, size_t errsize)
{
	int bad = 0;
	if (!envp)
		envp = (const char *const *)environ;
	for (; envp && *envp; envp++) {
		const char *e = *envp, *eq, *name;
		char prop[KAFKA_PROP_MAX], err[KAFKA_ERRSTR_MAX];
		size_t nlen;
		if (strncmp(e, "KAFKA_", 6) != 0 || !(eq = strchr(e, '=')))
			continue;
		name = e + 6;
		nlen = (size_t)(eq - name);
		if (nlen == 0 || is_named(name, nlen, "BOOTSTRAP_SERVERS") ||
		    is_service_link(name, nlen))
			continue;
		if (nlen >= sizeof prop) {
			appendf(errbuf, errsize, "KAFKA_%.*s: name too long\n", (int)nlen, name);
			bad++;
			continue;
		}
		for (size_t i = 0; i < nlen; i++)
			prop[i] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
		prop[nlen] = '\0';
		if (rd_kafka_conf_set(conf, prop, eq + 1, err, sizeof err) != RD_KAFKA_CONF_OK) {
			/* librdkafka's text names the property and, for enum and
			 * number properties only, the value: never a secret. */
			appendf(errbuf, errsize, "KAFKA_%.*s: %s\n", (int)nlen, name, err);
			bad++;
		} else {
			warn_if_insecure(prop, eq + 1);
		}
	}
	return bad;
}

static int apply_pairs(rd_kafka_conf_t *conf, const char *const *pairs, char *errbuf,
                       size_t errsize)
{
	int bad = 0;
	for (; pairs && *pairs; pairs++) {
		const char *eq = strchr(*pairs, '=');
		char key[KAFKA_PROP_MAX], err[KAFKA_ERRSTR_MAX];
		size_t klen;
		if (!eq || eq == *pairs) {
			appendf(errbuf, errsize, "%.*s: expected key=value\n", KAFKA_PROP_MAX,
			        *pairs);
			bad++;
			continue;
		}
		klen = (size_t)(eq - *pairs);
		if (klen >= sizeof key) {
			appendf(errbuf, errsize, "%.*s: name too long\n", KAFKA_PROP_MAX, *pairs);
			bad++;
			continue;
		}
		memcpy(key, *pairs, klen);
		key[klen] = '\0';
		if (rd_kafka_conf_set(conf, key, eq + 1, err, sizeof err) != RD_KAFKA_CONF_OK) {
			appendf(errbuf, errsize, "%s: %s\n", key, err);
			bad++;
		} else {
			warn_if_insecure(key, eq + 1);
		}
	}
	return bad;
}

int kafka_conf_apply_env(rd_kafka_conf_t *conf, const char *const *envp, char *errbuf,
                         size_t errsize)
{
	if (errbuf && errsize)
		errbuf[0] = '\0';
	return apply_env(conf, envp, errbuf, errsize);
}

int kafka_conf_apply_pairs(rd_kafka_conf_t *conf, const char *const *pairs, char *errbuf,
                           size_t errsize)
{
	if (errbuf && errsize)
		errbuf[0] = '\0';
	return apply_pairs(conf, pairs, errbuf, errsize);
}

/*
 * Build a conf in layers: defaults (overridable), bootstrap.servers, the
 * KAFKA_* environment, the caller's props, then invariants, which nothing
 * may override (they carry the delivery guarantees of DESIGN.md section 3).
 */
static rd_kafka_conf_t *conf_build(const char *const *defaults, const char *bootstrap,
                                   const char *const *props, const char *const *invariants,
                                   char *errstr, size_t errsize)
{
	rd_kafka_conf_t *conf;
	int bad = 0;
	char err[KAFKA_ERRSTR_MAX];

	if (errstr && errsize)
		errstr[0] = '\0';
	if (!bootstrap || !*bootstrap) {
		errf(errstr, errsize, "KAFKA_BOOTSTRAP_SERVERS: not set");
		return NULL;
	}
	conf = rd_kafka_conf_new();
	bad += apply_pairs(conf, defaults, errstr, errsize);
	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) !=
	    RD_KAFKA_CONF_OK) {
		appendf(errstr, errsize, "KAFKA_BOOTSTRAP_SERVERS: %s\n", err);
		bad++;
	}
	bad += apply_env(conf, NULL, errstr, errsize);
	bad += apply_pairs(conf, props, errstr, errsize);
	bad += apply_pairs(conf, invariants, errstr, errsize);
	if (bad) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	return conf;
}

rd_kafka_conf_t *kafka_conf_new(const char *bootstrap, const char *const *props, char *errstr,
                                size_t errsize)
{
	return conf_build(NULL, bootstrap, props, NULL, errstr, errsize);
}

/* ---- producer ----------------------------------------------------------- */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka_producer *p = opaque;
	(void)rk;
	/* Purges are our own doing (abort_transaction), not failed deliveries:
	 * counting them would taint the next transaction's flush. */
	if (!m->err || m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
	    m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
		return;
	p->dr_failed++;
	if (p->dr_err) /* never lose the first error */
		return;
	p->dr_err = m->err;
	snprintf(p->dr_errstr, sizeof p->dr_errstr, "delivery to %s [%d] failed: %s",
	         m->rkt ? rd_kafka_topic_name(m->rkt) : "?", (int)m->partition,
	         rd_kafka_err2str(m->err));
}

struct kafka_producer *kafka_producer_new(const char *bootstrap, const char *transactional_id,
                                          const char *const *props, char *errstr, size_t errsize)
{
	/* Eager roundrobin, not cooperative-sticky: librdkafka 2.0.2 (Debian 12)
	 * has cooperative bugs fixed only in 2.3/2.4 - an abort when a member
	 * closes before its first assignment (#4312), and a member that keeps
	 * partitions it no longer consumes after "Unknown member" during a
	 * rebalance (seen by tests/chaos: lag stuck until the process restarted).
	 * The eager protocol's stop-the-world pause is short for our group sizes,
	 * and KAFKA_PARTITION_ASSIGNMENT_STRATEGY still overrides it. */
	static const char *const defaults[] = {"client.id=sfk", NULL};
	/* Java-compatible partitioning and idempotence are part of the
	 * Kafka contract (DESIGN.md section 3). */
	static const char *const invariants[] = {"enable.idempotence=true",
	                                         "partitioner=murmur2_random", NULL};
	struct kafka_producer *p = xcalloc(1, sizeof *p);
	rd_kafka_conf_t *conf;
	char err[KAFKA_ERRSTR_MAX];

	conf = conf_build(defaults, bootstrap, props, invariants, errstr, errsize);
	if (!conf)
		goto fail;
	if (transactional_id) {
		if (rd_kafka_conf_set(conf, "transactional.id", transactional_id, err,
		                      sizeof err) != RD_KAFKA_CONF_OK) {
			errf(errstr, errsize, "transactional.id: %s", err);
			rd_kafka_conf_destroy(conf);
			goto fail;
		}
		p->transactional = 1;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
	rd_kafka_conf_set_opaque(conf, p);
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!p->rk) {
		/* rd_kafka_new() leaves conf with us when it fails. */
		errf(errstr, errsize, "producer: %s", err);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	return p;
fail:
	free(p);
	return NULL;
}

rd_kafka_t *kafka_producer_handle(struct kafka_producer *p)
{
	return p->rk;
}

void kafka_producer_poll(struct kafka_producer *p)
{
	rd_kafka_poll(p->rk, 0);
}

enum sfk_err kafka_produce(struct kafka_producer *p, const char *topic, const void *key,
                           size_t keylen, const void *value, size_t valuelen,
                           const struct kafka_header *hdrs, size_t nhdrs, char *errstr,
                           size_t errsize)
{
	/* rd_kafka_produceva() rather than producev(): the RD_KAFKA_V_*
	 * macros use GNU statement expressions, which clang -Wpedantic
	 * rejects. Header entries are copied by librdkafka. */
	rd_kafka_vu_t vu[4 + KAFKA_HEADERS_MAX];
	size_t n = 0;
	rd_kafka_error_t *e;
	rd_kafka_resp_err_t err;
	enum sfk_err rc;
	struct timespec start, now;

	if (!topic || !*topic || strlen(topic) > KAFKA_TOPIC_MAX) {
		errf(errstr, errsize, "produce: bad topic name");
		return SFK_ERR_INVALID;
	}
	if (nhdrs > KAFKA_HEADERS_MAX) {
		errf(errstr, errsize, "produce: %zu headers, at most %d", nhdrs, KAFKA_HEADERS_MAX);
		return SFK_ERR_INVALID;
	}
	vu[n].vtype = RD_KAFKA_VTYPE_TOPIC;
	vu[n++].u.cstr = topic;
	vu[n].vtype = RD_KAFKA_VTYPE_KEY;
	vu[n].u.mem.ptr = (void *)key;
	vu[n++].u.mem.size = key ? keylen : 0;
	vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
	vu[n].u.mem.ptr = (void *)value;
	vu[n++].u.mem.size = value ? valuelen : 0;
	vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
	vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
	for (size_t i = 0; i < nhdrs; i++, n++) {
		vu[n].vtype = RD_KAFKA_VTYPE_HEADER;
		vu[n].u.header.name = hdrs[i].name;
		vu[n].u.header.val = hdrs[i].value;
		vu[n].u.header.size = hdrs[i].value ? (ssize_t)hdrs[i].len : 0;
	}

	if ((rc = check_fatal(p->rk, errstr, errsize)) != SFK_OK)
		return rc;
	rd_kafka_poll(p->rk, 0); /* serve delivery reports of earlier records */
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		e = rd_kafka_produceva(p->rk, vu, n);
		if (!e)
			return SFK_OK;
		err = rd_kafka_error_code(e);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_error_destroy(e);
		e = NULL;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >=
		    PRODUCE_QUEUE_WAIT_MS)
			break;
		rd_kafka_poll(p->rk, 100); /* deliveries make room */
	}
	if ((rc = check_fatal(p->rk, errstr, errsize)) != SFK_OK)
		goto out;
	errf(errstr, errsize, "produce to %s: %s", topic,
	     e ? rd_kafka_error_string(e) : rd_kafka_err2str(err));
	if (err == RD_KAFKA_RESP_ERR__STATE)
		rc = SFK_ERR_INVALID; /* e.g. transactional producer outside a transaction */
	else if ((rc = kafka_err_map(err)) == SFK_ERR_TIMEOUT)
		rc = SFK_ERR_KAFKA;
out:
	if (e)
		rd_kafka_error_destroy(e);
	return rc;
}

enum sfk_err kafka_producer_flush(struct kafka_producer *p, int timeout_ms, char *errstr,
                                  size_t errsize)
{
	enum sfk_err rc;
	rd_kafka_flush(p->rk, timeout_ms);
	if ((rc = check_fatal(p->rk, errstr, errsize)) != SFK_OK)
		return rc;
	if (p->dr_err) {
		rc = kafka_err_map(p->dr_err);
		if (rc == SFK_ERR_TIMEOUT) /* message.timeout.ms: not delivered, retry */
			rc = SFK_ERR_KAFKA;
		errf(errstr, errsize, "%s (%ld failed)", p->dr_errstr, p->dr_failed);
		p->dr_err = RD_KAFKA_RESP_ERR_NO_ERROR;
		p->dr_failed = 0;
		return rc;
	}
	if (rd_kafka_outq_len(p->rk) > 0) {
		errf(errstr, errsize, "flush: %d records still in flight after %d ms",
		     rd_kafka_outq_len(p->rk), timeout_ms);
		return SFK_ERR_TIMEOUT;
	}
	return SFK_OK;
}

/* ---- transactions ------------------------------------------------------- */

enum txn_verdict { TXN_OK, TXN_RETRY, TXN_ABORT, TXN_FATAL };

/* Classify a transactional error object as librdkafka documents it
 * ("Error handling example" in rdkafka.h): fatal, abortable, retriable, and
 * anything else treated as fatal. Consumes e. */
static enum txn_verdict txn_classify(struct kafka_producer *p, rd_kafka_error_t *e,
                                     const char *what, enum sfk_err *rc, char *errstr,
                                     size_t errsize)
{
	enum txn_verdict v;
	if (!e)
		return TXN_OK;
	errf(errstr, errsize, "%s: %s: %s", what, rd_kafka_error_name(e), rd_kafka_error_string(e));
	if (rd_kafka_error_is_fatal(e)) {
		v = TXN_FATAL;
		if (check_fatal(p->rk, NULL, 0) != SFK_OK)
			*rc = check_fatal(p->rk, errstr, errsize);
		else
			*rc = is_fenced(rd_kafka_error_code(e)) ? SFK_ERR_FENCED
			                                        : SFK_ERR_KAFKA_FATAL;
	} else if (rd_kafka_error_txn_requires_abort(e)) {
		v = TXN_ABORT;
		*rc = SFK_ERR_KAFKA;
	} else if (rd_kafka_error_is_retriable(e)) {
		v = TXN_RETRY;
		*rc = SFK_ERR_KAFKA;
	} else {
		v = TXN_FATAL;
		*rc = is_fenced(rd_kafka_error_code(e)) ? SFK_ERR_FENCED : SFK_ERR_KAFKA_FATAL;
	}
	log_warn("kafka transaction error op=%s verdict=%s err=%s text=%s", what,
	         v == TXN_ABORT   ? "abort"
	         : v == TXN_RETRY ? "retry"
	                          : "fatal",
	         rd_kafka_error_name(e), rd_kafka_error_string(e));
	rd_kafka_error_destroy(e);
	return v;
}

static void backoff(int attempt)
{
	struct timespec ts = {0, (long)(100 + 200 * attempt) * 1000000L};
	nanosleep(&ts, NULL);
}

static enum sfk_err need_txn_producer(struct kafka_producer *p, char *errstr, size_t errsize)
{
	if (p->transactional)
		return SFK_OK;
	errf(errstr, errsize, "not a transactional producer");
	return SFK_ERR_INVALID;
}

enum sfk_err kafka_producer_txn_init(struct kafka_producer *p, char *errstr, size_t errsize)
{
	enum sfk_err rc = need_txn_producer(p, errstr, errsize);
	for (int attempt = 0; rc == SFK_OK && attempt < TXN_MAX_ATTEMPTS; attempt++) {
		rd_kafka_error_t *e = rd_kafka_init_transactions(p->rk, TXN_INIT_TIMEOUT_MS);
		/* init is resumable: a retry continues the same operation. An
		 * abortable error here cannot happen; treat it like retriable. */
		switch (txn_classify(p, e, "init_transactions", &rc, errstr, errsize)) {
		case TXN_OK: return SFK_OK;
		case TXN_FATAL: return rc;
		default: rc = SFK_OK; backoff(attempt);
		}
	}
	return rc == SFK_OK ? SFK_ERR_KAFKA : rc;
}

enum sfk_err kafka_producer_txn_begin(struct kafka_producer *p, char *errstr, size_t errsize)
{
	enum sfk_err rc = need_txn_producer(p, errstr, errsize);
	if (rc != SFK_OK)
		return rc;
	if (txn_classify(p, rd_kafka_begin_transaction(p->rk), "begin_transaction", &rc, errstr,
	                 errsize) == TXN_OK) {
		/* a failure of an earlier, aborted transaction is not this one's */
		p->dr_err = RD_KAFKA_RESP_ERR_NO_ERROR;
		p->dr_failed = 0;
		p->in_txn = 1;
		return SFK_OK;
	}
	return rc;
}

enum sfk_err kafka_producer_txn_abort(struct kafka_producer *p, char *errstr, size_t errsize)
{
	enum sfk_err rc = need_txn_producer(p, errstr, errsize);
	for (int attempt = 0; rc == SFK_OK && attempt < TXN_MAX_ATTEMPTS; attempt++) {
		/* -1: the remaining transaction time, as librdkafka recommends. */
		rd_kafka_error_t *e = rd_kafka_abort_transaction(p->rk, -1);
		switch (txn_classify(p, e, "abort_transaction", &rc, errstr, errsize)) {
		case TXN_OK: p->in_txn = 0; return SFK_OK;
		case TXN_RETRY:
			rc = SFK_OK;
			backoff(attempt);
			break;
		default: return rc == SFK_ERR_KAFKA ? SFK_ERR_KAFKA_FATAL : rc;
		}
	}
	return rc == SFK_OK ? SFK_ERR_KAFKA : rc;
}

enum sfk_err kafka_producer_txn_commit(struct kafka_producer *p, char *errstr, size_t errsize)
{
	enum sfk_err rc = need_txn_producer(p, errstr, errsize);
	for (int attempt = 0; rc == SFK_OK && attempt < TXN_MAX_ATTEMPTS; attempt++) {
		rd_kafka_error_t *e = rd_kafka_commit_transaction(p->rk, -1);
		char why[KAFKA_ERRSTR_MAX];
		switch (txn_classify(p, e, "commit_transaction", &rc, why, sizeof why)) {
		case TXN_OK: p->in_txn = 0; return SFK_OK;
		case TXN_RETRY:
			rc = SFK_OK;
			backoff(attempt);
			break; /* resumable */
		case TXN_FATAL: errf(errstr, errsize, "%s", why); return rc;
		case TXN_ABORT:
			/* The transaction cannot commit; abort it so the producer
			 * can start over. The caller redoes the whole batch. */
			rc = kafka_producer_txn_abort(p, errstr, errsize);
			if (rc != SFK_OK)
				return rc;
			errf(errstr, errsize, "transaction aborted: %s", why);
			return SFK_ERR_KAFKA;
		}
	}
	if (rc == SFK_OK)
		errf(errstr, errsize, "commit_transaction: still retriable after %d attempts",
		     TXN_MAX_ATTEMPTS);
	return rc == SFK_OK ? SFK_ERR_KAFKA : rc;
}

void kafka_producer_destroy(struct kafka_producer **pp)
{
	struct kafka_producer *p = pp ? *pp : NULL;
	char err[KAFKA_ERRSTR_MAX];
	if (!p)
		return;
	if (p->in_txn && check_fatal(p->rk, NULL, 0) == SFK_OK) {
		rd_kafka_error_t *e = rd_kafka_abort_transaction(p->rk, KAFKA_SHUTDOWN_TIMEOUT_MS);
		if (e) {
			log_warn("kafka shutdown: abort failed err=%s", rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
		}
	} else if (!p->transactional) {
		if (kafka_producer_flush(p, KAFKA_SHUTDOWN_TIMEOUT_MS, err, sizeof err) != SFK_OK)
			log_warn("kafka shutdown: flush failed err=%s", err);
	}
	if (rd_kafka_outq_len(p->rk) > 0)
		log_warn("kafka shutdown: records not delivered count=%d",
		         rd_kafka_outq_len(p->rk));
	rd_kafka_destroy(p->rk);
	free(p);
	*pp = NULL;
}

/* ---- consumer ----------------------------------------------------------- */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kafka_consumer *c = opaque;
	/* Eager protocol only if a caller overrode partition.assignment.strategy. */
	int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *e = NULL;
	rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;

	switch (err) {
	case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
		atomic_store(&c->joined, 1);
		log_info("kafka partitions assigned count=%d protocol=%s", parts->cnt,
		         rd_kafka_rebalance_protocol(rk));
		if (coop)
			e = rd_kafka_incremental_assign(rk, parts);
		else
			aerr = rd_kafka_assign(rk, parts);
		break;
	case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS: {
		int lost = rd_kafka_assignment_lost(rk);
		log_info("kafka partitions revoked count=%d lost=%d", parts->cnt, lost);
		/* Before they go: the caller finishes and commits its work. */
		if (c->hook.fn)
			c->hook.fn(c, parts, lost, c->hook.opaque);
		if (coop)
			e = rd_kafka_incremental_unassign(rk, parts);
		else
			aerr = rd_kafka_assign(rk, NULL);
		break;
	}
	default:
		log_error("kafka rebalance failed err=%s", rd_kafka_err2str(err));
		aerr = rd_kafka_assign(rk, NULL);
		break;
	}
	if (e) {
		log_error("kafka (un)assign failed err=%s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	} else if (aerr) {
		log_error("kafka (un)assign failed err=%s", rd_kafka_err2str(aerr));
	}
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (kafka_stats_update_lag(json, len) != SFK_OK)
		log_warn("kafka statistics not understood");
	return 0; /* librdkafka frees json */
}

enum sfk_err kafka_stats_update_lag(const char *json, size_t len)
{
	json_error_t jerr;
	json_t *root = json_loadb(json, len, 0, &jerr), *topics, *t;
	const char *tname;
	struct metric *gauge;

	if (!root || !json_is_object(topics = json_object_get(root, "topics"))) {
		json_decref(root);
		return SFK_ERR_PARSE;
	}
	gauge = metrics_gauge(LAG_METRIC, LAG_HELP, "topic");
	json_object_foreach(topics, tname, t)
	{
		json_t *parts = json_object_get(t, "partitions"), *pt;
		const char *pid;
		double sum = 0;
		json_object_foreach(parts, pid, pt)
		{
			json_int_t lag = json_integer_value(json_object_get(pt, "consumer_lag"));
			/* Partition -1 is librdkafka's internal UA partition;
			 * "desired" marks the ones assigned to us. Lag -1 means
			 * unknown (nothing committed or fetched yet). */
			if (strcmp(pid, "-1") == 0 || !json_is_true(json_object_get(pt, "desired")))
				continue;
			if (lag > 0)
				sum += (double)lag;
		}
		metric_set(gauge, sum, tname);
	}
	json_decref(root);
	return SFK_OK;
}

struct kafka_consumer *kafka_consumer_new(const char *bootstrap, const char *group,
                                          const char *const *props,
                                          const struct kafka_revoke_hook *hook, char *errstr,
                                          size_t errsize)
{
	static const char *const defaults[] = {
	        "client.id=sfk", "partition.assignment.strategy=roundrobin",
	        "auto.offset.reset=earliest", "statistics.interval.ms=5000", NULL};
	/* At-least-once with effects before commits (DESIGN.md section 3). */
	static const char *const invariants[] = {"enable.auto.commit=false",
	                                         "enable.auto.offset.store=false",
	                                         "isolation.level=read_committed", NULL};
	struct kafka_consumer *c = xcalloc(1, sizeof *c);
	rd_kafka_conf_t *conf;
	char err[KAFKA_ERRSTR_MAX];

	if (!group || !*group) {
		errf(errstr, errsize, "consumer: empty group id");
		goto fail;
	}
	conf = conf_build(defaults, bootstrap, props, invariants, errstr, errsize);
	if (!conf)
		goto fail;
	if (rd_kafka_conf_set(conf, "group.id", group, err, sizeof err) != RD_KAFKA_CONF_OK) {
		errf(errstr, errsize, "group.id: %s", err);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	if (hook)
		c->hook = *hook;
	{
		char strat[256] = "";
		size_t slen = sizeof strat;
		if (rd_kafka_conf_get(conf, "partition.assignment.strategy", strat, &slen) ==
		    RD_KAFKA_CONF_OK)
			c->cooperative = strstr(strat, "cooperative") != NULL;
	}
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_stats_cb(conf, stats_cb);
	rd_kafka_conf_set_opaque(conf, c);
	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!c->rk) {
		errf(errstr, errsize, "consumer: %s", err);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	/* One queue: stats and errors are served by kafka_consumer_poll(). */
	rd_kafka_poll_set_consumer(c->rk);
	return c;
fail:
	free(c);
	return NULL;
}

rd_kafka_t *kafka_consumer_handle(struct kafka_consumer *c)
{
	return c->rk;
}

enum sfk_err kafka_consumer_subscribe(struct kafka_consumer *c, const char *const *topics, size_t n,
                                      char *errstr, size_t errsize)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
	rd_kafka_resp_err_t err;
	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(c->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (err) {
		errf(errstr, errsize, "subscribe: %s", rd_kafka_err2str(err));
		return kafka_err_map(err);
	}
	return SFK_OK;
}

enum sfk_err kafka_consumer_poll(struct kafka_consumer *c, int timeout_ms, rd_kafka_message_t **msg,
                                 char *errstr, size_t errsize)
{
	rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
	enum sfk_err rc;

	*msg = NULL;
	if (m && !m->err) {
		*msg = m;
		return SFK_OK;
	}
	if ((rc = check_fatal(c->rk, errstr, errsize)) != SFK_OK) {
		if (m)
			rd_kafka_message_destroy(m);
		return rc;
	}
	if (!m || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (m)
			rd_kafka_message_destroy(m);
		return SFK_OK;
	}
	errf(errstr, errsize, "consume %s [%d]: %s", m->rkt ? rd_kafka_topic_name(m->rkt) : "-",
	     (int)m->partition, rd_kafka_message_errstr(m));
	log_warn("kafka consumer error err=%s text=%s", rd_kafka_err2name(m->err),
	         rd_kafka_message_errstr(m));
	rc = kafka_err_map(m->err);
	if (rc != SFK_ERR_KAFKA_FATAL && rc != SFK_ERR_FENCED)
		rc = SFK_ERR_KAFKA;
	rd_kafka_message_destroy(m);
	return rc;
}

enum sfk_err kafka_consumer_store(struct kafka_consumer *c, const rd_kafka_message_t *msg,
                                  char *errstr, size_t errsize)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_t *tp;
	rd_kafka_resp_err_t err;

	tp = rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(msg->rkt), msg->partition);
	tp->offset = msg->offset + 1; /* the next record to read, as Kafka commits */
	err = rd_kafka_offsets_store(c->rk, l);
	if (!err)
		err = tp->err;
	rd_kafka_topic_partition_list_destroy(l);
	if (err) {
		/* __STATE: the partition was revoked meanwhile; its new owner
		 * will redo the record (idempotent effects make that safe). */
		errf(errstr, errsize, "store offset: %s", rd_kafka_err2str(err));
		return kafka_err_map(err);
	}
	return SFK_OK;
}

enum sfk_err kafka_consumer_commit(struct kafka_consumer *c, char *errstr, size_t errsize)
{
	rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
	enum sfk_err rc;
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
		return SFK_OK;
	if ((rc = check_fatal(c->rk, errstr, errsize)) != SFK_OK)
		return rc;
	errf(errstr, errsize, "commit: %s", rd_kafka_err2str(err));
	rc = kafka_err_map(err);
	return rc == SFK_ERR_TIMEOUT ? SFK_ERR_KAFKA : rc;
}

void kafka_consumer_close(struct kafka_consumer **pc)
{
	struct kafka_consumer *c = pc ? *pc : NULL;
	rd_kafka_resp_err_t err;
	if (!c)
		return;
	/* librdkafka before 2.3.0 aborts (rdkafka_sticky_assignor.c: Assertion
	 * `assignor_state') when a cooperative-sticky member closes before its
	 * first assignment (confluentinc/librdkafka#4312): e.g. a replica stopped
	 * right after it started. Wait for that assignment (it comes even when it
	 * is empty); nothing is consumed meanwhile (polled messages are dropped
	 * uncommitted and redelivered to the group). */
	if (c->cooperative && !atomic_load(&c->joined) && rd_kafka_version() < 0x020300ff) {
		struct timespec t0, t;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		log_info("kafka consumer close waits for the first assignment max_ms=%d",
		         KAFKA_CLOSE_JOIN_WAIT_MS);
		for (;;) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
			if (m)
				rd_kafka_message_destroy(m);
			if (atomic_load(&c->joined))
				break;
			clock_gettime(CLOCK_MONOTONIC, &t);
			if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >=
			    KAFKA_CLOSE_JOIN_WAIT_MS) {
				log_warn("kafka consumer closing before its first assignment "
				         "(librdkafka %s may abort)",
				         rd_kafka_version_str());
				break;
			}
		}
	}
	/* Leaves the group: the final revoke runs the hook, which commits. */
	err = rd_kafka_consumer_close(c->rk);
	if (err)
		log_warn("kafka consumer close err=%s", rd_kafka_err2str(err));
	rd_kafka_destroy(c->rk);
	free(c);
	*pc = NULL;
}

/* ---- admin -------------------------------------------------------------- */

struct kafka_admin *kafka_admin_new(const char *bootstrap, const char *const *props, char *errstr,
                                    size_t errsize)
{
	struct kafka_admin *a;
	rd_kafka_conf_t *conf = conf_build(NULL, bootstrap, props, NULL, errstr, errsize);
	char err[KAFKA_ERRSTR_MAX];
	rd_kafka_t *rk;
	if (!conf)
		return NULL;
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!rk) {
		errf(errstr, errsize, "admin: %s", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	a = xcalloc(1, sizeof *a);
	a->rk = rk;
	return a;
}

void kafka_admin_destroy(struct kafka_admin **pa)
{
	if (!pa || !*pa)
		return;
	rd_kafka_destroy((*pa)->rk);
	free(*pa);
	*pa = NULL;
}

static enum sfk_err topic_err_map(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
	case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
	case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
	case RD_KAFKA_RESP_ERR_INVALID_REPLICA_ASSIGNMENT:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
	case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
	case RD_KAFKA_RESP_ERR_INVALID_REQUEST: return SFK_ERR_INVALID;
	default: return kafka_err_map(err);
	}
}

/* Build one NewTopic from a spec; NULL with a line in errstr if invalid. */
static rd_kafka_NewTopic_t *new_topic(const struct kafka_topic_spec *s, char *errstr,
                                      size_t errsize)
{
	char err[KAFKA_ERRSTR_MAX];
	rd_kafka_NewTopic_t *nt;
	if (!s->name || !*s->name || strlen(s->name) > KAFKA_TOPIC_MAX) {
		appendf(errstr, errsize, "%s: bad topic name\n", s->name ? s->name : "(null)");
		return NULL;
	}
	nt = rd_kafka_NewTopic_new(s->name, s->partitions, s->replication, err, sizeof err);
	if (!nt) {
		appendf(errstr, errsize, "%s: %s\n", s->name, err);
		return NULL;
	}
	for (const char *const *kv = s->config; kv && *kv; kv++) {
		const char *eq = strchr(*kv, '=');
		char key[KAFKA_PROP_MAX];
		rd_kafka_resp_err_t cerr;
		if (!eq || eq == *kv || (size_t)(eq - *kv) >= sizeof key) {
			appendf(errstr, errsize, "%s: bad config entry %.*s (want key=value)\n",
			        s->name, KAFKA_PROP_MAX, *kv);
			rd_kafka_NewTopic_destroy(nt);
			return NULL;
		}
		memcpy(key, *kv, (size_t)(eq - *kv));
		key[eq - *kv] = '\0';
		cerr = rd_kafka_NewTopic_set_config(nt, key, eq + 1);
		if (cerr) {
			appendf(errstr, errsize, "%s: config %s: %s\n", s->name, key,
			        rd_kafka_err2str(cerr));
			rd_kafka_NewTopic_destroy(nt);
			return NULL;
		}
	}
	return nt;
}

enum sfk_err kafka_admin_create_topics(struct kafka_admin *a, const struct kafka_topic_spec *specs,
                                       size_t n, int timeout_ms, char *errstr, size_t errsize)
{
	rd_kafka_NewTopic_t **nts = xcalloc(n ? n : 1, sizeof *nts);
	rd_kafka_AdminOptions_t *opts = NULL;
	rd_kafka_queue_t *q = NULL;
	rd_kafka_event_t *ev = NULL;
	const rd_kafka_topic_result_t **res;
	size_t nres;
	enum sfk_err rc = SFK_OK;
	char err[KAFKA_ERRSTR_MAX];

	if (errstr && errsize)
		errstr[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (!(nts[i] = new_topic(&specs[i], errstr, errsize)))
			rc = SFK_ERR_INVALID;
	if (rc != SFK_OK || n == 0)
		goto out;

	opts = rd_kafka_AdminOptions_new(a->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	if (rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, err, sizeof err) ||
	    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, err, sizeof err)) {
		errf(errstr, errsize, "create topics: %s", err);
		rc = SFK_ERR_INVALID;
		goto out;
	}
	q = rd_kafka_queue_new(a->rk);
	rd_kafka_CreateTopics(a->rk, nts, n, opts, q);
	/* The request times out by itself; the margin only guards a hang. */
	ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
	if (!ev) {
		errf(errstr, errsize, "create topics: no answer within %d ms", timeout_ms);
		rc = SFK_ERR_TIMEOUT;
		goto out;
	}
	if (rd_kafka_event_error(ev)) {
		errf(errstr, errsize, "create topics: %s", rd_kafka_event_error_string(ev));
		rc = kafka_err_map(rd_kafka_event_error(ev));
		goto out;
	}
	res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nres);
	for (size_t i = 0; i < nres; i++) {
		rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(res[i]);
		const char *msg = rd_kafka_topic_result_error_string(res[i]);
		if (!terr || terr == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			continue;
		appendf(errstr, errsize, "%s: %s\n", rd_kafka_topic_result_name(res[i]),
		        msg ? msg : rd_kafka_err2str(terr));
		if (rc == SFK_OK)
			rc = topic_err_map(terr);
	}
out:
	if (ev)
		rd_kafka_event_destroy(ev);
	if (q)
		rd_kafka_queue_destroy(q);
	if (opts)
		rd_kafka_AdminOptions_destroy(opts);
	for (size_t i = 0; i < n; i++)
		if (nts[i])
			rd_kafka_NewTopic_destroy(nts[i]);
	free(nts);
	return rc;
}

enum sfk_err kafka_admin_describe(struct kafka_admin *a, const char *topic, int timeout_ms,
                                  struct kafka_topic_info **out, size_t *n, char *errstr,
                                  size_t errsize)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err;
	struct kafka_topic_info *v;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	/* Always ask for all topics: a metadata request naming one topic may
	 * auto-create it on brokers with auto.create.topics.enable. */
	err = rd_kafka_metadata(a->rk, 1, NULL, &md, timeout_ms);
	if (err) {
		errf(errstr, errsize, "metadata: %s", rd_kafka_err2str(err));
		return kafka_err_map(err) == SFK_ERR_TIMEOUT ? SFK_ERR_TIMEOUT : SFK_ERR_KAFKA;
	}
	v = xcalloc(md->topic_cnt ? (size_t)md->topic_cnt : 1, sizeof *v);
	for (int i = 0; i < md->topic_cnt; i++) {
		const struct rd_kafka_metadata_topic *t = &md->topics[i];
		if (topic && strcmp(topic, t->topic) != 0)
			continue;
		snprintf(v[cnt].name, sizeof v[cnt].name, "%s", t->topic);
		v[cnt].partitions = t->partition_cnt;
		v[cnt].replication = t->partition_cnt > 0 ? t->partitions[0].replica_cnt : 0;
		v[cnt].err = t->err;
		cnt++;
	}
	rd_kafka_metadata_destroy(md);
	if (topic && cnt == 0) {
		free(v);
		errf(errstr, errsize, "topic %s: not found", topic);
		return SFK_ERR_NOT_FOUND;
	}
	*out = v;
	*n = cnt;
	return SFK_OK;
}
