/* Unit tests for common/log: JSON lines, fields, redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Capture one log line through a pipe and parse it. */
static json_t *capture(enum log_level lvl, const char *text)
{
	int fds[2];
	char buf[LOG_LINE_MAX + 1024];
	assert_int_equal(pipe(fds), 0);
	log_set_fd(fds[1]);
	log_write(lvl, "%s", text);
	log_set_fd(2);
	close(fds[1]);
	ssize_t n = read(fds[0], buf, sizeof buf - 1);
	close(fds[0]);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_int_equal(buf[n - 1], '\n');
	assert_non_null(strchr(buf, '\n'));
	assert_ptr_equal(strchr(buf, '\n'), buf + n - 1); /* exactly one line */
	json_error_t err;
	json_t *j = json_loads(buf, 0, &err);
	assert_non_null(j);
	return j;
}

static void fields_become_json(void **state)
{
	(void)state;
	log_init("sfk-test");
	json_t *j = capture(LOG_LVL_INFO,
	                    "subscribed channel=/data/LeadChangeEvent replay_id=42 note=a b c");
	assert_string_equal(json_string_value(json_object_get(j, "msg")), "subscribed");
	assert_string_equal(json_string_value(json_object_get(j, "role")), "sfk-test");
	assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
	assert_string_equal(json_string_value(json_object_get(j, "channel")),
	                    "/data/LeadChangeEvent");
	assert_int_equal(json_integer_value(json_object_get(j, "replay_id")), 42);
	assert_string_equal(json_string_value(json_object_get(j, "note")), "a b c");
	assert_non_null(json_object_get(j, "ts"));
	json_decref(j);
}

static void escapes_and_control_chars(void **state)
{
	(void)state;
	json_t *j = capture(LOG_LVL_WARN, "bad input err=quote\" back\\ nl\n\x01");
	assert_string_equal(json_string_value(json_object_get(j, "err")),
	                    "quote\" back\\ nl\n\x01");
	json_decref(j);
}

static void secrets_are_redacted(void **state)
{
	(void)state;
	log_redact("00Dxx0000001gPL!AQ4AQFakeTokenValue");
	json_t *j = capture(LOG_LVL_ERROR,
	                    "request failed header=Bearer 00Dxx0000001gPL!AQ4AQFakeTokenValue");
	const char *h = json_string_value(json_object_get(j, "header"));
	assert_null(strstr(h, "FakeTokenValue"));
	assert_non_null(strstr(h, "[redacted]"));
	json_decref(j);
	log_unredact("00Dxx0000001gPL!AQ4AQFakeTokenValue");
}

static void below_level_is_silent(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	log_set_fd(fds[1]);
	log_set_level(LOG_LVL_WARN);
	log_info("not shown");
	log_set_level(LOG_LVL_INFO);
	log_set_fd(2);
	close(fds[1]);
	char c;
	assert_int_equal(read(fds[0], &c, 1), 0);
	close(fds[0]);
	enum log_level l;
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("loud", &l), -1);
}

static void oversized_line_stays_one_json_object(void **state)
{
	(void)state;
	static char big[20000] = "big value=";
	memset(big + 10, 'x', sizeof big - 11);
	json_t *j = capture(LOG_LVL_INFO, big);
	assert_true(strlen(json_string_value(json_object_get(j, "value"))) < LOG_LINE_MAX);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(fields_become_json),
	        cmocka_unit_test(escapes_and_control_chars),
	        cmocka_unit_test(secrets_are_redacted),
	        cmocka_unit_test(below_level_is_silent),
	        cmocka_unit_test(oversized_line_stays_one_json_object),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
