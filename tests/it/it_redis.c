/*
 * Integration tests for common/redis against a real Redis ($REDIS_URL, from
 * `eval "$(tests/stack/up)"`): pipelines, EVALSHA after SCRIPT FLUSH, AUTH and
 * SELECT, reply caps, command timeout, reconnect after the server drops us.
 *
 * Also the worker for it_redis_restart.sh: `it_redis --restart-loop STOPFILE`
 * runs commands in a loop, one "ok" line per success, until STOPFILE exists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "redis.h"

static char url[REDIS_URL_MAX];
static struct redis_url base;
static char prefix[64]; /* per run, so reruns and parallel runs never collide */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct redis *conn(const char *u, const struct redis_opts *o)
{
	char err[256];
	struct redis *r = redis_connect_url(u, o, err, sizeof(err));
	if (!r)
		fail_msg("connect: %s", err);
	return r;
}

/* URL for the same server with another user/password/db. */
static void url_with(char *buf, size_t len, const char *userinfo, int db)
{
	int n = snprintf(buf, len, "redis://%s%s%s:%d/%d", userinfo ? userinfo : "",
	                 userinfo ? "@" : "", base.host, base.port, db);
	assert_true(n > 0 && (size_t)n < len);
}

/* The process's sfk_redis_up gauge. */
static double up(void)
{
	return metric_value(metrics_gauge("sfk_redis_up", "", NULL));
}

/* Make the server drop victim's connection (only that one: the server may be
 * shared with other tests). */
static void kill_client(struct redis *admin, struct redis *victim)
{
	redisReply *rep = redis_cmd(victim, "CLIENT ID");
	assert_non_null(rep);
	long long id = rep->integer;
	freeReplyObject(rep);
	rep = redis_cmd(admin, "CLIENT KILL ID %lld", id);
	if (!rep)
		fail_msg("CLIENT KILL: %s", redis_errstr(admin));
	assert_int_equal(rep->integer, 1);
	freeReplyObject(rep);
}

static void cmd_and_argv_roundtrip(void **state)
{
	(void)state;
	struct redis *r = conn(url, NULL);
	char key[128];
	snprintf(key, sizeof(key), "%s:bin", prefix);
	const char *argv[3] = {"SET", key, "a\0b"};
	size_t lens[3] = {3, strlen(key), 3};

	redisReply *rep = redis_cmdargv(r, REDIS_RETRY, 3, argv, lens);
	assert_non_null(rep);
	freeReplyObject(rep);
	rep = redis_cmd(r, "GET %s", key);
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STRING);
	assert_int_equal(rep->len, 3);
	assert_memory_equal(rep->str, "a\0b", 3);
	freeReplyObject(rep);

	/* An error reply is a failure with Redis's text as the detail. */
	assert_null(redis_cmd(r, "INCR %s", key));
	assert_int_equal(redis_err(r), SFK_ERR_REDIS);
	assert_non_null(strstr(redis_errstr(r), "not an integer"));
	/* ... and the connection is still fine. */
	rep = redis_cmd(r, "DEL %s", key);
	assert_non_null(rep);
	assert_int_equal(rep->integer, 1);
	freeReplyObject(rep);
	assert_int_equal(redis_reconnects(r), 0);
	redis_free(r);
}

static void pipeline_n_replies_in_order(void **state)
{
	(void)state;
	enum { N = 500 };
	struct redis *r = conn(url, NULL);
	struct redis_pipe *p = redis_pipe_new();
	redisReply *reps[2 * N + 1];
	char key[128];

	snprintf(key, sizeof(key), "%s:pipe", prefix);
	for (int i = 0; i < N; i++)
		assert_int_equal(redis_pipe_add(p, "RPUSH %s %d", key, i), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(redis_pipe_add(p, "LINDEX %s %d", key, i), 0);
	assert_int_equal(redis_pipe_add(p, "HSET %s x 1", key), 0); /* WRONGTYPE */
	assert_int_equal(redis_pipe_len(p), 2 * N + 1);

	assert_int_equal(redis_pipe_exec(r, p, REDIS_NORETRY, reps), SFK_OK);
	for (int i = 0; i < N; i++) {
		assert_int_equal(reps[i]->type, REDIS_REPLY_INTEGER);
		assert_int_equal(reps[i]->integer, i + 1);
		char want[16];
		snprintf(want, sizeof(want), "%d", i);
		assert_int_equal(reps[N + i]->type, REDIS_REPLY_STRING);
		assert_string_equal(reps[N + i]->str, want);
	}
	/* One failed command does not fail the others. */
	assert_int_equal(reps[2 * N]->type, REDIS_REPLY_ERROR);
	assert_non_null(strstr(reps[2 * N]->str, "WRONGTYPE"));
	for (int i = 0; i < 2 * N + 1; i++)
		freeReplyObject(reps[i]);

	redis_pipe_clear(p);
	assert_int_equal(redis_pipe_len(p), 0);
	assert_int_equal(redis_pipe_add(p, "DEL %s", key), 0);
	assert_int_equal(redis_pipe_exec(r, p, REDIS_RETRY, reps), SFK_OK);
	assert_int_equal(reps[0]->integer, 1);
	freeReplyObject(reps[0]);
	redis_pipe_free(p);
	redis_free(r);
}

static void evalsha_survives_script_flush(void **state)
{
	(void)state;
	/* A body unique to this run, so the server cannot have it cached. */
	char body[256];
	snprintf(body, sizeof(body), "-- %s\nreturn {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}",
	         prefix);
	struct redis_script s = REDIS_SCRIPT(body);
	struct redis *r = conn(url, NULL);
	struct redis *admin = conn(url, NULL);
	const char *keys[1] = {"k1"};
	const char *args[2] = {"hello", "21"};

	for (int round = 0; round < 3; round++) {
		if (round == 2) {
			/* What a Redis restart or failover does to the script cache. */
			redisReply *f = redis_cmd(admin, "SCRIPT FLUSH");
			assert_non_null(f);
			freeReplyObject(f);
		}
		redisReply *rep = redis_eval(r, &s, REDIS_RETRY, 1, keys, 2, args);
		if (!rep)
			fail_msg("round %d: %s", round, redis_errstr(r));
		assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
		assert_int_equal(rep->elements, 3);
		assert_string_equal(rep->element[0]->str, "k1");
		assert_string_equal(rep->element[1]->str, "hello");
		assert_int_equal(rep->element[2]->integer, 42);
		freeReplyObject(rep);

		/* The fallback EVAL cached it again under the SHA1 we computed. */
		rep = redis_cmd(admin, "SCRIPT EXISTS %s", s.sha1);
		assert_non_null(rep);
		assert_int_equal(rep->element[0]->integer, 1);
		freeReplyObject(rep);
	}

	/* A Lua runtime error is a failure with the detail, not a crash. */
	struct redis_script bad = REDIS_SCRIPT("return redis.call('NOSUCHCOMMAND')");
	assert_null(redis_eval(r, &bad, REDIS_RETRY, 0, NULL, 0, NULL));
	assert_int_equal(redis_err(r), SFK_ERR_REDIS);
	assert_non_null(strstr(redis_errstr(r), "script"));
	redis_free(admin);
	redis_free(r);
}

static void select_db_from_url(void **state)
{
	(void)state;
	char u5[REDIS_URL_MAX], key[128];
	url_with(u5, sizeof(u5), NULL, 5);
	snprintf(key, sizeof(key), "%s:db", prefix);
	struct redis *r5 = conn(u5, NULL);
	struct redis *r0 = conn(url, NULL);

	redisReply *rep = redis_cmd(r5, "SET %s five EX 60", key);
	assert_non_null(rep);
	freeReplyObject(rep);
	rep = redis_cmd(r0, "EXISTS %s", key);
	assert_int_equal(rep->integer, base.db == 5 ? 1 : 0);
	freeReplyObject(rep);
	rep = redis_cmd(r0, "SELECT 5");
	freeReplyObject(rep);
	rep = redis_cmd(r0, "GET %s", key);
	assert_string_equal(rep->str, "five");
	freeReplyObject(rep);

	/* SELECT is replayed on reconnect: kill r5's connection, then read. */
	kill_client(r0, r5);
	rep = redis_cmd(r5, "GET %s", key);
	if (!rep)
		fail_msg("after kill: %s", redis_errstr(r5));
	assert_string_equal(rep->str, "five");
	freeReplyObject(rep);
	redis_free(r0);
	redis_free(r5);
}

static void auth_with_acl_user_and_no_password_in_errors(void **state)
{
	(void)state;
	char user[64], userinfo[160], u[REDIS_URL_MAX], err[256];
	snprintf(user, sizeof(user), "sfkit%d", (int)getpid());
	struct redis *admin = conn(url, NULL);
	redisReply *rep = redis_cmd(admin, "ACL SETUSER %s on >Pa55-w0rd-it ~* &* +@all", user);
	if (!rep)
		fail_msg("ACL SETUSER: %s", redis_errstr(admin));
	freeReplyObject(rep);

	snprintf(userinfo, sizeof(userinfo), "%s:Pa55-w0rd-it", user);
	url_with(u, sizeof(u), userinfo, 0);
	struct redis *r = conn(u, NULL);
	rep = redis_cmd(r, "ACL WHOAMI");
	assert_non_null(rep);
	assert_string_equal(rep->str, user);
	freeReplyObject(rep);
	redis_free(r);

	snprintf(userinfo, sizeof(userinfo), "%s:Wrong-pa55word", user);
	url_with(u, sizeof(u), userinfo, 0);
	assert_null(redis_connect_url(u, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "AUTH failed"));
	assert_null(strstr(err, "Wrong-pa55word"));

	rep = redis_cmd(admin, "ACL DELUSER %s", user);
	freeReplyObject(rep);
	redis_free(admin);
}

static void reply_caps_fail_cleanly(void **state)
{
	(void)state;
	struct redis_opts o = {.max_reply_bytes = 4096, .max_reply_elements = 100};
	struct redis *r = conn(url, &o);
	char key[128], big[8192];
	snprintf(key, sizeof(key), "%s:big", prefix);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';

	redisReply *rep = redis_cmd(r, "SET %s %s EX 60", key, big);
	assert_non_null(rep); /* sending large is fine; the cap is on replies */
	freeReplyObject(rep);
	assert_null(redis_cmd(r, "GET %s", key));
	assert_int_equal(redis_err(r), SFK_ERR_TOO_LARGE);

	rep = redis_cmd(r, "DEL %s", key);
	if (!rep)
		fail_msg("after cap: %s", redis_errstr(r));
	freeReplyObject(rep);
	for (int i = 0; i < 150; i++) {
		rep = redis_cmd(r, "RPUSH %s %d", key, i);
		freeReplyObject(rep);
	}
	assert_null(redis_cmd(r, "LRANGE %s 0 -1", key));
	assert_int_equal(redis_err(r), SFK_ERR_TOO_LARGE);
	rep = redis_cmd(r, "LRANGE %s 0 49", key);
	assert_non_null(rep);
	assert_int_equal(rep->elements, 50);
	freeReplyObject(rep);
	rep = redis_cmd(r, "DEL %s", key);
	freeReplyObject(rep);
	redis_free(r);
}

static void command_timeout_bounds_the_wait(void **state)
{
	(void)state;
	struct redis_opts o = {.command_timeout_ms = 200};
	struct redis *r = conn(url, &o);

	char key[128];
	snprintf(key, sizeof(key), "%s:empty", prefix);

	/* The server holds BLPOP for 2 s: r must give up after ~200 ms. */
	int64_t t0 = now_ms();
	redisReply *rep = redis_cmd_flags(r, REDIS_NORETRY, "BLPOP %s 2", key);
	int64_t dt = now_ms() - t0;
	assert_null(rep);
	assert_int_equal(redis_err(r), SFK_ERR_REDIS);
	assert_non_null(strstr(redis_errstr(r), "timeout"));
	assert_true(dt >= 150 && dt < 1200);

	rep = redis_cmd(r, "PING");
	if (!rep)
		fail_msg("after unpause: %s", redis_errstr(r));
	assert_string_equal(rep->str, "PONG");
	freeReplyObject(rep);
	redis_free(r);
}

static void dropped_connection_is_retried_once(void **state)
{
	(void)state;
	struct redis *r = conn(url, NULL);
	struct redis *admin = conn(url, NULL);
	redisReply *rep;

	assert_true(up() == 1);
	for (int i = 0; i < 3; i++) {
		kill_client(admin, r);
		rep = redis_cmd(r, "PING");
		if (!rep)
			fail_msg("PING after kill %d: %s", i, redis_errstr(r));
		freeReplyObject(rep);
	}
	/* kill_client's CLIENT ID ran on the new connection each time. */
	assert_int_equal(redis_reconnects(r), 3);
	/* A non-idempotent command is not resent after the drop: it fails once,
	 * and the next call reconnects. */
	kill_client(admin, r);
	rep = redis_cmd_flags(r, REDIS_NORETRY, "PING");
	if (rep) {
		/* The stale socket was noticed before sending: also correct. */
		freeReplyObject(rep);
	}
	rep = redis_cmd_flags(r, REDIS_NORETRY, "PING");
	assert_non_null(rep);
	freeReplyObject(rep);
	assert_int_equal(redis_reconnects(r), 4);
	redis_free(admin);
	redis_free(r);
}

/* --- worker for it_redis_restart.sh ---------------------------------------- */

static int restart_loop(const char *stopfile)
{
	static struct redis_script incr_by =
	        REDIS_SCRIPT("return redis.call('INCRBY', KEYS[1], ARGV[1])");
	struct redis_opts o = {.connect_timeout_ms = 500,
	                       .command_timeout_ms = 500,
	                       .backoff_base_ms = 20,
	                       .backoff_max_ms = 400};
	char err[256];
	struct redis *r = redis_connect_env(&o, err, sizeof(err));
	long ok = 0, fails = 0;

	if (!r) {
		printf("fatal %s\n", err);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (access(stopfile, F_OK) != 0) {
		const char *keys[1] = {"sfk:it:restart:counter"};
		const char *args[1] = {"1"};
		redisReply *rep = redis_eval(r, &incr_by, REDIS_RETRY, 1, keys, 1, args);
		if (!rep) {
			fails++;
			printf("error up=%g %s\n", up(), redis_errstr(r));
			/* Pace the retry loop: calls fail fast during the backoff. */
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL);
			continue;
		}
		long long v = rep->integer;
		freeReplyObject(rep);
		rep = redis_cmd(r, "SET sfk:it:restart:last %lld", v);
		if (!rep) {
			fails++;
			printf("error %s\n", redis_errstr(r));
			continue;
		}
		freeReplyObject(rep);
		ok++;
		printf("ok %ld counter=%lld reconnects=%lu up=%g\n", ok, v, redis_reconnects(r),
		       up());
	}
	printf("done ok=%ld errors=%ld reconnects=%lu\n", ok, fails, redis_reconnects(r));
	redis_free(r);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--restart-loop") == 0)
		return restart_loop(argv[2]);

	const char *u = getenv("REDIS_URL");
	char err[256];
	if (!u || !*u) {
		fprintf(stderr, "it_redis: REDIS_URL is not set; run under "
		                "eval \"$(tests/stack/up)\"\n");
		return 1;
	}
	if (redis_url_parse(u, &base, err, sizeof(err)) != SFK_OK) {
		fprintf(stderr, "it_redis: bad REDIS_URL: %s\n", err);
		return 1;
	}
	snprintf(url, sizeof(url), "%s", u);
	snprintf(prefix, sizeof(prefix), "sfk:it:%ld:%d", (long)time(NULL), (int)getpid());

	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(cmd_and_argv_roundtrip),
	        cmocka_unit_test(pipeline_n_replies_in_order),
	        cmocka_unit_test(evalsha_survives_script_flush),
	        cmocka_unit_test(select_db_from_url),
	        cmocka_unit_test(auth_with_acl_user_and_no_password_in_errors),
	        cmocka_unit_test(reply_caps_fail_cleanly),
	        cmocka_unit_test(command_timeout_bounds_the_wait),
	        cmocka_unit_test(dropped_connection_is_retried_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
