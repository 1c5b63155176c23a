/*
 * err.h - the project's one error enum.
 *
 * Every fallible function returns an enum sfk_err (SFK_OK = 0) and puts human
 * detail in a caller's errstr buffer or in its object. Each code has a class
 * the caller can act on: retry it, dead-letter it, or stop the process.
 * Append-only: new codes go last, values never change (they reach logs/DLQ).
 */
#ifndef SFK_ERR_H
#define SFK_ERR_H

enum sfk_err {
	SFK_OK = 0,
	SFK_ERR_NOMEM,        /* fatal */
	SFK_ERR_INVALID,      /* permanent: bad argument or bad input */
	SFK_ERR_CONFIG,       /* fatal: bad configuration */
	SFK_ERR_IO,           /* retriable: local I/O */
	SFK_ERR_TRANSPORT,    /* retriable: connection refused/reset, DNS, TLS */
	SFK_ERR_TIMEOUT,      /* retriable */
	SFK_ERR_HTTP_5XX,     /* retriable: server error, SERVER_UNAVAILABLE */
	SFK_ERR_LOCK,         /* retriable: UNABLE_TO_LOCK_ROW */
	SFK_ERR_LIMIT,        /* retriable (slowly): REQUEST_LIMIT_EXCEEDED */
	SFK_ERR_AUTH,         /* retriable once: INVALID_SESSION_ID (new token) */
	SFK_ERR_GRANT,        /* fatal: token endpoint refused us (invalid_grant) */
	SFK_ERR_SF_PERMANENT, /* permanent: MALFORMED_ID, INVALID_FIELD, ... */
	SFK_ERR_NOT_FOUND,    /* permanent */
	SFK_ERR_PARSE,        /* permanent: malformed JSON or payload */
	SFK_ERR_TOO_LARGE,    /* permanent: over a named size cap */
	SFK_ERR_POLICY,       /* permanent: policy rejects the input */
	SFK_ERR_KAFKA,        /* retriable: transient Kafka error */
	SFK_ERR_KAFKA_FATAL,  /* fatal: librdkafka fatal error, fenced producer */
	SFK_ERR_REDIS,        /* retriable: Redis unreachable or error reply */
	SFK_ERR_DUPLICATE,    /* none: already done (idempotency) */
	SFK_ERR_BUSY,         /* retriable: claimed by someone else right now */
	SFK_ERR_FENCED,       /* fatal: lost a lease or transactional fencing */
	SFK_ERR_INTERNAL,     /* fatal: a bug */
	SFK_ERR__COUNT        /* keep last */
};

enum sfk_err_class {
	SFK_CLASS_NONE = 0,  /* SFK_OK, SFK_ERR_DUPLICATE */
	SFK_CLASS_RETRIABLE, /* try again later, with backoff */
	SFK_CLASS_PERMANENT, /* the input is bad: dead-letter it */
	SFK_CLASS_FATAL      /* the process cannot go on: exit non-zero */
};

/* Short stable name ("SFK_ERR_LOCK" -> "lock"); static storage, never NULL. */
const char *sfk_err_str(enum sfk_err e);
enum sfk_err_class sfk_err_class(enum sfk_err e);
/* "none", "retriable", "permanent", "fatal"; static storage. */
const char *sfk_err_class_str(enum sfk_err_class c);

#endif
