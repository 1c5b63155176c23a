/*
 * Unit tests for common/redis against a hostile peer: a forked child on a
 * loopback port answers our command with crafted bytes (a huge array header,
 * an oversized bulk, a reply dripped a byte at a time, too-deep nesting,
 * garbage). Every case must end in an error with detail - no crash, no huge
 * allocation, no wait past the command timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct peer {
	pid_t pid;
	int port;
};

/*
 * Listen on a free loopback port; the child accepts one connection, reads
 * (up to 512 bytes of) the request, writes reply (len bytes) in chunks of
 * `chunk` bytes with gap_ms between them, then either waits for the client
 * to hang up or (hangup) closes at once - with unread request bytes still
 * queued, that close is a TCP reset.
 */
static struct peer peer_start_ex(const char *reply, size_t len, size_t chunk, int gap_ms,
                                 int hangup)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	struct peer p;
	int ls = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(ls >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 1), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	p.port = ntohs(a.sin_port);
	p.pid = fork();
	assert_true(p.pid >= 0);
	if (p.pid == 0) {
		char buf[512];
		int c = accept(ls, NULL, NULL);
		if (c < 0 || read(c, buf, sizeof(buf)) <= 0)
			_exit(1);
		for (size_t off = 0; off < len; off += chunk) {
			size_t n = len - off < chunk ? len - off : chunk;
			if (write(c, reply + off, n) != (ssize_t)n)
				_exit(0); /* client gave up: expected for some cases */
			if (gap_ms) {
				struct timespec ts = {gap_ms / 1000, (gap_ms % 1000) * 1000000L};
				nanosleep(&ts, NULL);
			}
		}
		if (hangup) {
			close(c);
			_exit(0);
		}
		while (read(c, buf, sizeof(buf)) > 0) {
		}
		_exit(0);
	}
	close(ls);
	return p;
}

static struct peer peer_start(const char *reply, size_t len, size_t chunk, int gap_ms)
{
	return peer_start_ex(reply, len, chunk, gap_ms, 0);
}

static void peer_stop(struct peer p)
{
	int st;
	kill(p.pid, SIGKILL);
	waitpid(p.pid, &st, 0);
}

/* Connect to the peer and run one GET; it must fail with want. */
static void expect_failure(struct peer p, const struct redis_opts *o, enum sfk_err want,
                           const char *detail, int64_t max_ms)
{
	char url[64], err[256];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", p.port);
	struct redis *r = redis_connect_url(url, o, err, sizeof(err));
	if (!r)
		fail_msg("connect: %s", err);
	int64_t t0 = now_ms();
	redisReply *rep = redis_cmd_flags(r, REDIS_NORETRY, "GET k");
	int64_t dt = now_ms() - t0;
	if (rep) {
		freeReplyObject(rep);
		fail_msg("hostile reply was accepted");
	}
	assert_int_equal(redis_err(r), want);
	if (!strstr(redis_errstr(r), detail))
		fail_msg("detail \"%s\" lacks \"%s\"", redis_errstr(r), detail);
	if (dt > max_ms)
		fail_msg("took %lld ms (max %lld)", (long long)dt, (long long)max_ms);
	assert_false(redis_connected(r)); /* unknown state: dropped */
	redis_free(r);
	peer_stop(p);
}

static void huge_array_header_is_refused(void **state)
{
	(void)state;
	/* 2e9 elements: hiredis would calloc 16 GB before reading one. */
	static const char rep[] = "*2000000000\r\n";
	expect_failure(peer_start(rep, sizeof(rep) - 1, sizeof(rep), 0), NULL, SFK_ERR_TOO_LARGE,
	               "size cap", 2000);
}

static void oversized_bulk_is_refused_before_it_is_buffered(void **state)
{
	(void)state;
	/* Claims 1 GB, sends 64 KB of it: we must stop at our 4 KB cap rather
	 * than buffer until the whole gigabyte arrives. */
	size_t len = 64 * 1024;
	char *rep = malloc(len);
	assert_non_null(rep);
	memset(rep, 'x', len);
	memcpy(rep, "$1000000000\r\n", 13);
	struct redis_opts o = {.max_reply_bytes = 4096};
	expect_failure(peer_start(rep, len, 1024, 0), &o, SFK_ERR_TOO_LARGE, "size cap", 2000);
	free(rep);
}

static void dripping_reply_hits_the_command_timeout(void **state)
{
	(void)state;
	/* One byte every 100 ms: each read succeeds, the sum must not. */
	static const char rep[] = "+OOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOK\r\n";
	struct redis_opts o = {.command_timeout_ms = 300};
	expect_failure(peer_start(rep, sizeof(rep) - 1, 1, 100), &o, SFK_ERR_REDIS, "timeout",
	               1000);
}

static void silent_server_hits_the_command_timeout(void **state)
{
	(void)state;
	struct redis_opts o = {.command_timeout_ms = 250};
	expect_failure(peer_start("", 0, 1, 0), &o, SFK_ERR_REDIS, "timeout", 1000);
}

static void too_deep_nesting_is_a_protocol_error(void **state)
{
	(void)state;
	char rep[256] = "";
	size_t n = 0;
	for (int i = 0; i < 12; i++)
		n += (size_t)snprintf(rep + n, sizeof(rep) - n, "*1\r\n");
	n += (size_t)snprintf(rep + n, sizeof(rep) - n, ":1\r\n");
	expect_failure(peer_start(rep, n, n, 0), NULL, SFK_ERR_REDIS, "nested", 2000);
}

static void garbage_is_a_protocol_error(void **state)
{
	(void)state;
	static const char rep[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
	expect_failure(peer_start(rep, sizeof(rep) - 1, sizeof(rep), 0), NULL, SFK_ERR_REDIS,
	               "Protocol error", 2000);
}

static void server_hangs_up_mid_reply(void **state)
{
	(void)state;
	static const char rep[] = "$10\r\nabc";
	expect_failure(peer_start_ex(rep, sizeof(rep) - 1, sizeof(rep), 0, 1), NULL, SFK_ERR_REDIS,
	               "closed", 2000);
}

/*
 * The peer reads 512 bytes of an 8 MB pipeline and resets the connection.
 * The first write after the reset fails with ECONNRESET (no signal); only a
 * second write would raise SIGPIPE, and we drop the connection on the first
 * error. This process does not ignore SIGPIPE, so a regression kills it.
 */
static void reset_during_large_write_does_not_kill_us(void **state)
{
	(void)state;
	char url[64], err[256];
	struct peer p = peer_start_ex("", 0, 1, 0, 1);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", p.port);
	struct redis *r = redis_connect_url(url, NULL, err, sizeof(err));
	assert_non_null(r);
	struct redis_pipe *pipe = redis_pipe_new();
	static char val[64 * 1024];
	memset(val, 'v', sizeof(val) - 1);
	for (int i = 0; i < 128; i++)
		assert_int_equal(redis_pipe_add(pipe, "SET k%d %s", i, val), 0);
	redisReply *reps[128];
	assert_int_not_equal(redis_pipe_exec(r, pipe, REDIS_NORETRY, reps), SFK_OK);
	assert_int_equal(redis_err(r), SFK_ERR_REDIS);
	assert_null(reps[0]);
	redis_pipe_free(pipe);
	redis_free(r);
	peer_stop(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(huge_array_header_is_refused),
	        cmocka_unit_test(oversized_bulk_is_refused_before_it_is_buffered),
	        cmocka_unit_test(dripping_reply_hits_the_command_timeout),
	        cmocka_unit_test(silent_server_hits_the_command_timeout),
	        cmocka_unit_test(too_deep_nesting_is_a_protocol_error),
	        cmocka_unit_test(garbage_is_a_protocol_error),
	        cmocka_unit_test(server_hangs_up_mid_reply),
	        cmocka_unit_test(reset_during_large_write_does_not_kill_us),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
