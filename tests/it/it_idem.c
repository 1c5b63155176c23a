/*
 * Integration tests for common/idem against a real Redis ($REDIS_URL):
 * batch claim outcomes, owner-only complete/release, lease expiry, and two
 * processes racing for the same claim 1,000 times (exactly one wins each).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "idem.h"
#include "redis.h"

static const char *url;
static long long epoch; /* unique per run: reruns never see old keys */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct redis *conn(void)
{
	char err[256];
	struct redis *r = redis_connect_url(url, NULL, err, sizeof(err));
	if (!r)
		fail_msg("connect: %s", err);
	return r;
}

static struct idem *claimer(struct redis *r, const char *workload, int lease_ms)
{
	char err[256];
	struct idem_opts o = {.lease_ms = lease_ms, .done_ttl_s = 3600};
	struct idem *m = idem_new(r, workload, epoch, &o, err, sizeof(err));
	if (!m)
		fail_msg("idem_new: %s", err);
	return m;
}

/* The raw value stored for event_id ("" if none); pttl gets PTTL. */
static void stored(struct redis *r, struct idem *m, const char *event_id, char *val, size_t len,
                   long long *pttl)
{
	char key[IDEM_KEY_MAX];
	assert_int_equal(idem_key(m, event_id, key, sizeof(key)), 0);
	redisReply *rep = redis_cmd(r, "GET %s", key);
	assert_non_null(rep);
	snprintf(val, len, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
	freeReplyObject(rep);
	rep = redis_cmd(r, "PTTL %s", key);
	assert_non_null(rep);
	*pttl = rep->integer;
	freeReplyObject(rep);
}

static void key_layout(void **state)
{
	(void)state;
	struct redis *r = conn();
	struct idem *m = claimer(r, "lead.route", 0);
	char key[IDEM_KEY_MAX], want[128];
	assert_int_equal(idem_key(m, "Lead:00Q000000000001AAA:42", key, sizeof(key)), 0);
	snprintf(want, sizeof(want), "sfk:idem:lead.route:%lld:Lead:00Q000000000001AAA:42", epoch);
	assert_string_equal(key, want);
	assert_int_equal(idem_key(m, "", key, sizeof(key)), -1);
	assert_int_equal(strlen(idem_owner(m)), IDEM_OWNER_LEN);

	char err[128];
	assert_null(idem_new(r, "bad:workload", 0, NULL, err, sizeof(err)));
	assert_null(idem_new(r, "", 0, NULL, err, sizeof(err)));
	idem_free(m);
	redis_free(r);
}

static void batch_claim_outcomes(void **state)
{
	(void)state;
	struct redis *r = conn();
	struct idem *x = claimer(r, "it.batch", 30000);
	struct idem *y = claimer(r, "it.batch", 30000);
	const char *xs[2] = {"ev-done", "ev-held"};
	enum idem_outcome out[5];

	assert_int_equal(idem_claim_batch(x, 2, xs, out), SFK_OK);
	assert_int_equal(out[0], IDEM_CLAIMED);
	assert_int_equal(out[1], IDEM_CLAIMED);
	assert_int_equal(idem_complete(x, "ev-done"), SFK_OK);

	/* One call, every outcome; a repeated id in a batch is ours the 2nd time. */
	const char *ys[5] = {"ev-done", "ev-held", "ev-free", "ev-free", "ev-other"};
	assert_int_equal(idem_claim_batch(y, 5, ys, out), SFK_OK);
	assert_int_equal(out[0], IDEM_DONE);
	assert_int_equal(out[1], IDEM_BUSY);
	assert_int_equal(out[2], IDEM_CLAIMED);
	assert_int_equal(out[3], IDEM_CLAIMED);
	assert_int_equal(out[4], IDEM_CLAIMED);

	char val[128];
	long long pttl;
	stored(r, y, "ev-free", val, sizeof(val), &pttl);
	assert_string_equal(val, idem_owner(y));
	assert_true(pttl > 0 && pttl <= 30000);
	stored(r, y, "ev-done", val, sizeof(val), &pttl);
	assert_string_equal(val, "done");
	assert_true(pttl > 30000 && pttl <= 3600 * 1000);
	stored(r, y, "ev-held", val, sizeof(val), &pttl);
	assert_string_equal(val, idem_owner(x));

	/* The single-id form agrees. */
	assert_int_equal(idem_claim(y, "ev-done"), SFK_ERR_DUPLICATE);
	assert_int_equal(idem_claim(y, "ev-held"), SFK_ERR_BUSY);
	assert_int_equal(idem_claim(y, "ev-free"), SFK_OK); /* re-claim: ours */

	/* A big batch in one call. */
	enum { N = IDEM_BATCH_MAX };
	static char ids[N][32];
	static const char *pids[N];
	static enum idem_outcome outs[N];
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "bulk-%d", i);
		pids[i] = ids[i];
	}
	assert_int_equal(idem_claim_batch(y, N, pids, outs), SFK_OK);
	for (int i = 0; i < N; i++)
		assert_int_equal(outs[i], IDEM_CLAIMED);
	static enum sfk_err res[N];
	assert_int_equal(idem_complete_batch(y, N, pids, res), SFK_OK);
	for (int i = 0; i < N; i++)
		assert_int_equal(res[i], SFK_OK);
	assert_int_equal(idem_claim_batch(x, N, pids, outs), SFK_OK);
	for (int i = 0; i < N; i++)
		assert_int_equal(outs[i], IDEM_DONE);

	assert_int_equal(idem_claim_batch(y, N + 1, pids, outs), SFK_ERR_INVALID);
	const char *empty[1] = {""};
	assert_int_equal(idem_claim_batch(y, 1, empty, outs), SFK_ERR_INVALID);

	idem_free(x);
	idem_free(y);
	redis_free(r);
}

static void only_the_owner_completes_or_releases(void **state)
{
	(void)state;
	struct redis *r = conn();
	struct idem *x = claimer(r, "it.owner", 30000);
	struct idem *y = claimer(r, "it.owner", 30000);
	char val[128];
	long long pttl;

	assert_int_equal(idem_claim(x, "ev"), SFK_OK);
	assert_int_equal(idem_complete(y, "ev"), SFK_ERR_FENCED);
	assert_int_equal(idem_release(y, "ev"), SFK_ERR_FENCED);
	stored(r, x, "ev", val, sizeof(val), &pttl);
	assert_string_equal(val, idem_owner(x)); /* untouched */

	assert_int_equal(idem_release(x, "ev"), SFK_OK);
	stored(r, x, "ev", val, sizeof(val), &pttl);
	assert_string_equal(val, "");
	assert_int_equal(idem_release(x, "ev"), SFK_OK); /* twice: no-op */

	/* Released: another replica can take it and finish it. */
	assert_int_equal(idem_claim(y, "ev"), SFK_OK);
	assert_int_equal(idem_complete(y, "ev"), SFK_OK);
	assert_int_equal(idem_complete(y, "ev"), SFK_OK); /* twice: still done */
	assert_int_equal(idem_claim(x, "ev"), SFK_ERR_DUPLICATE);
	assert_int_equal(idem_release(x, "ev"), SFK_ERR_FENCED); /* done stays done */
	stored(r, x, "ev", val, sizeof(val), &pttl);
	assert_string_equal(val, "done");
	assert_true(pttl > 3590 * 1000);

	/* Another epoch is another key space (deliberate replay). */
	char err[128];
	struct idem *replay = idem_new(r, "it.owner", epoch + 1, NULL, err, sizeof(err));
	assert_non_null(replay);
	assert_int_equal(idem_claim(replay, "ev"), SFK_OK);
	assert_int_equal(idem_release(replay, "ev"), SFK_OK);
	idem_free(replay);
	idem_free(x);
	idem_free(y);
	redis_free(r);
}

static void lease_expires(void **state)
{
	(void)state;
	struct redis *r = conn();
	struct idem *x = claimer(r, "it.lease", 200);
	struct idem *y = claimer(r, "it.lease", 200);

	assert_int_equal(idem_claim(x, "ev"), SFK_OK);
	assert_int_equal(idem_claim(y, "ev"), SFK_ERR_BUSY);
	/* x stalls past its lease: y gets the claim (poll, 5 s deadline). */
	int64_t deadline = now_ms() + 5000;
	enum sfk_err e;
	while ((e = idem_claim(y, "ev")) == SFK_ERR_BUSY && now_ms() < deadline) {
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(e, SFK_OK);
	/* x wakes up: it no longer owns the claim. */
	assert_int_equal(idem_complete(x, "ev"), SFK_ERR_FENCED);
	assert_int_equal(idem_complete(y, "ev"), SFK_OK);

	/* Expired and nobody took it: the late owner's complete still records done. */
	assert_int_equal(idem_claim(x, "ev2"), SFK_OK);
	char key[IDEM_KEY_MAX];
	idem_key(x, "ev2", key, sizeof(key));
	redisReply *rep = redis_cmd(r, "DEL %s", key); /* what expiry does */
	freeReplyObject(rep);
	assert_int_equal(idem_complete(x, "ev2"), SFK_OK);
	assert_int_equal(idem_claim(y, "ev2"), SFK_ERR_DUPLICATE);
	idem_free(x);
	idem_free(y);
	redis_free(r);
}

/* ---- two processes racing ------------------------------------------------ */

enum { ROUNDS = 1000 };

/* Child: per byte on go_fd, claim "race-<round>" and report W(on), L(ost) or E. */
static void race_child(int go_fd, int res_fd)
{
	char err[256], id[64], b;
	struct redis *r = redis_connect_url(url, NULL, err, sizeof(err));
	struct idem *m = r ? idem_new(r, "it.race", epoch, NULL, err, sizeof(err)) : NULL;
	int round = 0;

	if (!m) {
		fprintf(stderr, "race child: %s\n", err);
		_exit(2);
	}
	while (read(go_fd, &b, 1) == 1) {
		snprintf(id, sizeof(id), "race-%d", round++);
		enum sfk_err e = idem_claim(m, id);
		char out = e == SFK_OK ? 'W' : e == SFK_ERR_BUSY ? 'L' : 'E';
		if (out == 'E')
			fprintf(stderr, "race child: %s: %s\n", sfk_err_str(e), redis_errstr(r));
		if (write(res_fd, &out, 1) != 1)
			_exit(3);
	}
	idem_free(m);
	redis_free(r);
	_exit(0);
}

static void two_processes_exactly_one_wins(void **state)
{
	(void)state;
	int go[2][2], res[2][2];
	pid_t pid[2];
	int wins[2] = {0, 0};
	char failure[256] = "";

	for (int c = 0; c < 2; c++) {
		assert_int_equal(pipe(go[c]), 0);
		assert_int_equal(pipe(res[c]), 0);
		pid[c] = fork();
		assert_true(pid[c] >= 0);
		if (pid[c] == 0) {
			close(go[c][1]);
			close(res[c][0]);
			/* The second child must not hold the first one's pipe ends,
			 * or the first never sees EOF on its start pipe. */
			for (int o = 0; o < c; o++) {
				close(go[o][1]);
				close(res[o][0]);
			}
			race_child(go[c][0], res[c][1]);
		}
		close(go[c][0]);
		close(res[c][1]);
	}
	for (int round = 0; round < ROUNDS && !failure[0]; round++) {
		char got[2];
		/* Start signal to both, then wait for both answers. */
		for (int c = 0; c < 2; c++)
			if (write(go[c][1], "g", 1) != 1)
				snprintf(failure, sizeof(failure), "child %d gone", c);
		for (int c = 0; c < 2 && !failure[0]; c++)
			if (read(res[c][0], &got[c], 1) != 1)
				snprintf(failure, sizeof(failure), "round %d: child %d died", round,
				         c);
		if (failure[0])
			break;
		int w = (got[0] == 'W') + (got[1] == 'W');
		int l = (got[0] == 'L') + (got[1] == 'L');
		if (w != 1 || l != 1)
			snprintf(failure, sizeof(failure),
			         "round %d: outcomes %c %c (want one W, one L)", round, got[0],
			         got[1]);
		wins[0] += got[0] == 'W';
		wins[1] += got[1] == 'W';
	}
	for (int c = 0; c < 2; c++) {
		int st;
		close(go[c][1]);
		if (failure[0])
			kill(pid[c], SIGKILL);
		assert_int_equal(waitpid(pid[c], &st, 0), pid[c]);
		if (!failure[0] && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
			snprintf(failure, sizeof(failure), "child %d exited with status %d", c, st);
		close(res[c][0]);
	}
	if (failure[0])
		fail_msg("%s", failure);
	assert_int_equal(wins[0] + wins[1], ROUNDS);
	printf("race: %d rounds, wins %d / %d\n", ROUNDS, wins[0], wins[1]);
}

int main(void)
{
	url = getenv("REDIS_URL");
	if (!url || !*url) {
		fprintf(stderr, "it_idem: REDIS_URL is not set; run under "
		                "eval \"$(tests/stack/up)\"\n");
		return 1;
	}
	epoch = (long long)time(NULL) * 100000 + getpid() % 100000;

	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(key_layout),
	        cmocka_unit_test(batch_claim_outcomes),
	        cmocka_unit_test(only_the_owner_completes_or_releases),
	        cmocka_unit_test(lease_expires),
	        cmocka_unit_test(two_processes_exactly_one_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
