/*
 * TLS verification of the Kafka brokers: on by default (librdkafka's
 * enable.ssl.certificate.verification=true and hostname check "https"), off
 * only through an explicit KAFKA_* setting, which is then logged as a
 * warning. (Salesforce, Elasticsearch: libcurl verification is forced on or
 * left at its default with no off switch; it_security_tls.sh shows all of
 * them refusing a self-signed server.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "kafka.h"
#include "log.h"

#define LOG_MAX 8192

/* Apply envp to a new conf with the log captured; returns the log text
 * (static buffer) and the conf in *out (caller destroys it). */
static const char *apply(const char *const *envp, rd_kafka_conf_t **out)
{
	static char text[LOG_MAX];
	char err[1024];
	int fd = memfd_create("log", 0);
	ssize_t n;

	assert_true(fd >= 0);
	log_set_fd(fd);
	*out = rd_kafka_conf_new();
	assert_int_equal(kafka_conf_apply_env(*out, envp, err, sizeof err), 0);
	log_set_fd(2);
	n = pread(fd, text, sizeof text - 1, 0);
	close(fd);
	text[n > 0 ? n : 0] = '\0';
	return text;
}

static const char *get(rd_kafka_conf_t *c, const char *name)
{
	static char v[256];
	size_t len = sizeof v;
	assert_int_equal(rd_kafka_conf_get(c, name, v, &len), RD_KAFKA_CONF_OK);
	return v;
}

static void test_kafka_verification_on_by_default(void **state)
{
	const char *envp[] = {"KAFKA_SECURITY_PROTOCOL=ssl", NULL};
	rd_kafka_conf_t *c;
	const char *log = apply(envp, &c);
	(void)state;
	assert_string_equal(get(c, "enable.ssl.certificate.verification"), "true");
	assert_string_equal(get(c, "ssl.endpoint.identification.algorithm"), "https");
	assert_null(strstr(log, "verification is OFF"));
	rd_kafka_conf_destroy(c);
}

static void test_kafka_verification_off_is_logged(void **state)
{
	const char *off[][2] = {{"KAFKA_ENABLE_SSL_CERTIFICATE_VERIFICATION=false",
	                         "enable.ssl.certificate.verification"},
	                        {"KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM=none",
	                         "ssl.endpoint.identification.algorithm"}};
	(void)state;
	for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
		const char *envp[] = {off[i][0], NULL};
		rd_kafka_conf_t *c;
		const char *log = apply(envp, &c);
		assert_non_null(strstr(log, "\"level\":\"warn\""));
		assert_non_null(strstr(log, "kafka TLS verification is OFF"));
		assert_non_null(strstr(log, off[i][1]));
		rd_kafka_conf_destroy(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_kafka_verification_on_by_default),
	        cmocka_unit_test(test_kafka_verification_off_is_logged),
	};
	log_init("test");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
