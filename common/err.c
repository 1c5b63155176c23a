#include "err.h"

static const struct {
	const char *name;
	enum sfk_err_class cls;
} errtab[SFK_ERR__COUNT] = {
        [SFK_OK] = {"ok", SFK_CLASS_NONE},
        [SFK_ERR_NOMEM] = {"nomem", SFK_CLASS_FATAL},
        [SFK_ERR_INVALID] = {"invalid", SFK_CLASS_PERMANENT},
        [SFK_ERR_CONFIG] = {"config", SFK_CLASS_FATAL},
        [SFK_ERR_IO] = {"io", SFK_CLASS_RETRIABLE},
        [SFK_ERR_TRANSPORT] = {"transport", SFK_CLASS_RETRIABLE},
        [SFK_ERR_TIMEOUT] = {"timeout", SFK_CLASS_RETRIABLE},
        [SFK_ERR_HTTP_5XX] = {"http_5xx", SFK_CLASS_RETRIABLE},
        [SFK_ERR_LOCK] = {"lock", SFK_CLASS_RETRIABLE},
        [SFK_ERR_LIMIT] = {"limit", SFK_CLASS_RETRIABLE},
        [SFK_ERR_AUTH] = {"auth", SFK_CLASS_RETRIABLE},
        [SFK_ERR_GRANT] = {"grant", SFK_CLASS_FATAL},
        [SFK_ERR_SF_PERMANENT] = {"sf_permanent", SFK_CLASS_PERMANENT},
        [SFK_ERR_NOT_FOUND] = {"not_found", SFK_CLASS_PERMANENT},
        [SFK_ERR_PARSE] = {"parse", SFK_CLASS_PERMANENT},
        [SFK_ERR_TOO_LARGE] = {"too_large", SFK_CLASS_PERMANENT},
        [SFK_ERR_POLICY] = {"policy", SFK_CLASS_PERMANENT},
        [SFK_ERR_KAFKA] = {"kafka", SFK_CLASS_RETRIABLE},
        [SFK_ERR_KAFKA_FATAL] = {"kafka_fatal", SFK_CLASS_FATAL},
        [SFK_ERR_REDIS] = {"redis", SFK_CLASS_RETRIABLE},
        [SFK_ERR_DUPLICATE] = {"duplicate", SFK_CLASS_NONE},
        [SFK_ERR_BUSY] = {"busy", SFK_CLASS_RETRIABLE},
        [SFK_ERR_FENCED] = {"fenced", SFK_CLASS_FATAL},
        [SFK_ERR_INTERNAL] = {"internal", SFK_CLASS_FATAL},
};

const char *sfk_err_str(enum sfk_err e)
{
	if ((unsigned)e >= SFK_ERR__COUNT || !errtab[e].name)
		return "unknown";
	return errtab[e].name;
}

enum sfk_err_class sfk_err_class(enum sfk_err e)
{
	if ((unsigned)e >= SFK_ERR__COUNT)
		return SFK_CLASS_FATAL; /* an unknown code is a bug */
	return errtab[e].cls;
}

const char *sfk_err_class_str(enum sfk_err_class c)
{
	switch (c) {
	case SFK_CLASS_NONE: return "none";
	case SFK_CLASS_RETRIABLE: return "retriable";
	case SFK_CLASS_PERMANENT: return "permanent";
	case SFK_CLASS_FATAL: return "fatal";
	}
	return "fatal";
}
