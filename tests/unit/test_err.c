/* Unit tests for common/err: every code has a name and a class. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "err.h"

static void every_code_has_a_name_and_class(void **state)
{
	(void)state;
	for (int e = 0; e < SFK_ERR__COUNT; e++) {
		const char *n = sfk_err_str((enum sfk_err)e);
		assert_non_null(n);
		assert_string_not_equal(n, "unknown");
		/* names are unique */
		for (int f = 0; f < e; f++)
			assert_string_not_equal(n, sfk_err_str((enum sfk_err)f));
	}
	assert_string_equal(sfk_err_str(SFK_ERR__COUNT), "unknown");
}

static void classes_drive_decisions(void **state)
{
	(void)state;
	assert_int_equal(sfk_err_class(SFK_OK), SFK_CLASS_NONE);
	assert_int_equal(sfk_err_class(SFK_ERR_LOCK), SFK_CLASS_RETRIABLE);
	assert_int_equal(sfk_err_class(SFK_ERR_HTTP_5XX), SFK_CLASS_RETRIABLE);
	assert_int_equal(sfk_err_class(SFK_ERR_SF_PERMANENT), SFK_CLASS_PERMANENT);
	assert_int_equal(sfk_err_class(SFK_ERR_PARSE), SFK_CLASS_PERMANENT);
	assert_int_equal(sfk_err_class(SFK_ERR_KAFKA_FATAL), SFK_CLASS_FATAL);
	assert_int_equal(sfk_err_class(SFK_ERR_CONFIG), SFK_CLASS_FATAL);
	assert_int_equal(sfk_err_class((enum sfk_err)9999), SFK_CLASS_FATAL);
	assert_string_equal(sfk_err_class_str(SFK_CLASS_PERMANENT), "permanent");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(every_code_has_a_name_and_class),
	        cmocka_unit_test(classes_drive_decisions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
