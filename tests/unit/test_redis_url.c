/* Unit tests for common/redis: REDIS_URL parsing and error wording (no server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis.h"

static struct redis_url parse_ok(const char *url)
{
	struct redis_url u;
	char err[256] = "";

	if (redis_url_parse(url, &u, err, sizeof(err)) != SFK_OK)
		fail_msg("rejected %s: %s", url, err);
	return u;
}

/* Parse must fail; returns the message, which must never hold secret. */
static const char *parse_bad(const char *url, const char *secret)
{
	static char err[256];
	struct redis_url u;

	err[0] = '\0';
	assert_int_equal(redis_url_parse(url, &u, err, sizeof(err)), SFK_ERR_CONFIG);
	assert_true(err[0] != '\0');
	if (secret && strstr(err, secret))
		fail_msg("error echoes the password: %s", err);
	return err;
}

static void plain_host_port_db(void **state)
{
	(void)state;
	struct redis_url u = parse_ok("redis://127.0.0.1:6390/0");
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 6390);
	assert_int_equal(u.db, 0);
	assert_string_equal(u.user, "");
	assert_string_equal(u.password, "");

	u = parse_ok("redis://cache.internal");
	assert_string_equal(u.host, "cache.internal");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);

	u = parse_ok("redis://cache:7000/");
	assert_int_equal(u.port, 7000);
	assert_int_equal(u.db, 0);

	u = parse_ok("REDIS://h:1/15");
	assert_int_equal(u.db, 15);
}

static void password_forms(void **state)
{
	(void)state;
	struct redis_url u = parse_ok("redis://:s3cret-pw@10.0.0.5:6379/2");
	assert_string_equal(u.user, "");
	assert_string_equal(u.password, "s3cret-pw");
	assert_string_equal(u.host, "10.0.0.5");
	assert_int_equal(u.db, 2);

	/* ACL user (Redis 6+): AUTH user password. '@' and ':' inside the
	 * password: the last '@' before the path ends the userinfo. */
	u = parse_ok("redis://sfk:p@ss:w0rd@redis:6380/3");
	assert_string_equal(u.user, "sfk");
	assert_string_equal(u.password, "p@ss:w0rd");
	assert_string_equal(u.host, "redis");
	assert_int_equal(u.port, 6380);
	assert_int_equal(u.db, 3);

	/* Percent-encoded, as secret generators write them; and raw '/' / '@'. */
	u = parse_ok("redis://sfk%40ops:p%2Fw%3Ad%25@redis:6379/1");
	assert_string_equal(u.user, "sfk@ops");
	assert_string_equal(u.password, "p/w:d%");
	assert_int_equal(u.db, 1);
	u = parse_ok("redis://:a/b@c@redis:6379/2");
	assert_string_equal(u.password, "a/b@c");
	assert_string_equal(u.host, "redis");
	assert_int_equal(u.db, 2);
	const char *e = parse_bad("redis://:hunter22pw%zz@redis:6379/0", "hunter22pw");
	assert_non_null(strstr(e, "escape"));
	parse_bad("redis://:hunter22pw%4@redis:6379/0", "hunter22pw");
	parse_bad("redis://:hunter22pw%00@redis:6379/0", "hunter22pw");

	/* redis-cli style: a lone userinfo field is the password. */
	u = parse_ok("redis://justapassword@redis:6379/0");
	assert_string_equal(u.user, "");
	assert_string_equal(u.password, "justapassword");
}

static void ipv6_host(void **state)
{
	(void)state;
	struct redis_url u = parse_ok("redis://[::1]:6381/4");
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 6381);
	assert_int_equal(u.db, 4);
	parse_bad("redis://[::1:6381/4", NULL);
}

static void other_schemes_rejected_by_name(void **state)
{
	(void)state;
	const char *e = parse_bad("rediss://:hunter22pw@redis:6380/0", "hunter22pw");
	assert_non_null(strstr(e, "rediss://"));
	assert_non_null(strstr(e, "TLS"));
	e = parse_bad("http://:hunter22pw@redis:6379", "hunter22pw");
	assert_non_null(strstr(e, "unsupported scheme"));
	e = parse_bad("unix:///var/run/redis.sock", NULL);
	assert_non_null(strstr(e, "unix://"));
	e = parse_bad("127.0.0.1:6379", NULL);
	assert_non_null(strstr(e, "scheme"));
	parse_bad("", NULL);
	parse_bad(NULL, NULL);
}

static void bad_parts_rejected_without_password(void **state)
{
	(void)state;
	const char *e = parse_bad("redis://:hunter22pw@redis:port/0", "hunter22pw");
	assert_non_null(strstr(e, "port"));
	parse_bad("redis://:hunter22pw@redis:0/0", "hunter22pw");
	parse_bad("redis://:hunter22pw@redis:65536/0", "hunter22pw");
	parse_bad("redis://:hunter22pw@redis:-1/0", "hunter22pw");
	e = parse_bad("redis://:hunter22pw@redis:6379/zero", "hunter22pw");
	assert_non_null(strstr(e, "database"));
	parse_bad("redis://:hunter22pw@redis:6379/1?timeout=5", "hunter22pw");
	e = parse_bad("redis://:hunter22pw@:6379/0", "hunter22pw");
	assert_non_null(strstr(e, "host"));
	parse_bad("redis://", NULL);

	char big[REDIS_URL_MAX + 64];
	memset(big, 'a', sizeof(big));
	memcpy(big, "redis://", 8);
	big[sizeof(big) - 1] = '\0';
	parse_bad(big, NULL);
}

/* A closed port: the caller gets NULL and a reason, quickly, without the password. */
static void connect_refused_is_an_error_not_a_hang(void **state)
{
	(void)state;
	struct redis_opts o = {.connect_timeout_ms = 500};
	char err[256] = "";
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct redis *r =
	        redis_connect_url("redis://:hunter22pw@127.0.0.1:1/0", &o, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_null(r);
	assert_true(err[0] != '\0');
	assert_null(strstr(err, "hunter22pw"));
	assert_non_null(strstr(err, "127.0.0.1:1"));
	assert_true(t1.tv_sec - t0.tv_sec < 3);
}

static void connect_env_requires_redis_url(void **state)
{
	(void)state;
	char err[256] = "";
	unsetenv("REDIS_URL");
	assert_null(redis_connect_env(NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "REDIS_URL is not set"));
}

/* The script SHA1 is the one Redis computes (SCRIPT LOAD "return 1"). */
static void script_sha1_matches_redis(void **state)
{
	(void)state;
	struct redis_script s = REDIS_SCRIPT("return 1");
	redis_script_init(&s);
	/* sha1("return 1"), as printed by `redis-cli SCRIPT LOAD "return 1"` */
	assert_string_equal(s.sha1, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(plain_host_port_db),
	        cmocka_unit_test(password_forms),
	        cmocka_unit_test(ipv6_host),
	        cmocka_unit_test(other_schemes_rejected_by_name),
	        cmocka_unit_test(bad_parts_rejected_without_password),
	        cmocka_unit_test(connect_refused_is_an_error_not_a_hang),
	        cmocka_unit_test(connect_env_requires_redis_url),
	        cmocka_unit_test(script_sha1_matches_redis),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
