/*
 * fuzz_webhook.c - inbound webhook request handling (bridge/webhook.c,
 * webhook_evaluate: headers + body -> CDC messages). Input: three lines
 * (X-Sfk-Timestamp, X-Sfk-Signature, X-Sfk-Delivery; a line "-" = header
 * absent, a signature line "sign" = the correct signature, so the fuzzer
 * also reaches the body parser) then the body. Invariants: a refusal has a
 * 4xx status, a code and a reason that never holds the secret; accepted
 * batches hold 1..WEBHOOK_MAX_EVENTS messages that normalize_message takes
 * (or refuses only for its size cap, which publish dead-letters).
 * Linked with every bridge/ source but main.c (tests/fuzz/CMakeLists.txt).
 */
#include <string.h>

#include "fuzz.h"
#include "../../bridge/normalize.h"
#include "../../bridge/webhook.h"

#define NOW_S   1700000000LL
#define SECRET  "fuzz-webhook-secret-0123456789"
#define HDR_MAX 256

/* Next line of [*p, end) into out (NUL-terminated, cut at HDR_MAX); NULL
 * for "-". Advances *p past the newline. */
static const char *take_line(const char **p, const char *end, char *out)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = (size_t)((nl ? nl : end) - *p);
	memcpy(out, *p, n < HDR_MAX ? n : HDR_MAX);
	out[n < HDR_MAX ? n : HDR_MAX] = '\0';
	*p = nl ? nl + 1 : end;
	return strcmp(out, "-") == 0 ? NULL : out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char ts[HDR_MAX + 1], sig[HDR_MAX + 1], dlv[HDR_MAX + 1];
	char good[sizeof WEBHOOK_SIG_PREFIX + WEBHOOK_SIG_HEX_LEN];
	struct webhook_policy pol = {.secret = SECRET, .secret_len = strlen(SECRET)};
	struct webhook_request rq;
	struct webhook_reject why;
	json_t *msgs, *m;
	size_t i;

	memset(&rq, 0, sizeof rq);
	rq.timestamp = take_line(&p, end, ts);
	rq.signature = take_line(&p, end, sig);
	rq.delivery = take_line(&p, end, dlv);
	rq.body = p;
	rq.body_len = (size_t)(end - p);
	if (rq.signature && strcmp(rq.signature, "sign") == 0 && rq.timestamp) {
		FUZZ_CHECK(webhook_sign(pol.secret, pol.secret_len, rq.timestamp, rq.body,
		                        rq.body_len, good) == 0);
		rq.signature = good;
	}
	memset(&why, 0, sizeof why);
	msgs = webhook_evaluate(&pol, &rq, NOW_S, &why);
	if (!msgs) {
		FUZZ_CHECK(why.status == 400 || why.status == 401 || why.status == 413);
		FUZZ_CHECK(why.error && why.error[0]);
		FUZZ_CHECK(memchr(why.reason, '\0', sizeof why.reason) != NULL);
		FUZZ_CHECK(why.reason[0] != '\0');
		/* A reason may quote the request; only a secret the request did
		 * not carry is a leak. */
		FUZZ_CHECK(strstr(why.reason, SECRET) == NULL ||
		           memmem(data, size, SECRET, strlen(SECRET)) != NULL);
		return 0;
	}
	FUZZ_CHECK(json_is_array(msgs));
	FUZZ_CHECK(json_array_size(msgs) >= 1 && json_array_size(msgs) <= WEBHOOK_MAX_EVENTS);
	json_array_foreach(msgs, i, m)
	{
		struct normalize_opts o = {.topic_prefix = "sfk."};
		struct normalize_result r;
		char err[512] = "";
		enum sfk_err rc = normalize_message(&o, m, &r, err, sizeof err);
		if (rc != SFK_OK && rc != SFK_ERR_TOO_LARGE)
			fprintf(stderr, "message %zu refused by normalize: %s\n", i, err);
		FUZZ_CHECK(rc == SFK_OK || rc == SFK_ERR_TOO_LARGE);
		normalize_result_free(&r);
	}
	json_decref(msgs);
	return 0;
}
