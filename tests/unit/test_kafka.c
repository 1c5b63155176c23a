/* Unit tests for common/kafka: KAFKA_* pass-through, key=value properties,
 * error reporting with librdkafka's own text, the consumer-lag gauge. No
 * broker needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "metrics.h"

/* What librdkafka itself says about name=value on a fresh conf. */
static void rdkafka_text(const char *name, const char *value, char *out, size_t outsize)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	assert_int_not_equal(rd_kafka_conf_set(conf, name, value, out, outsize), RD_KAFKA_CONF_OK);
	rd_kafka_conf_destroy(conf);
}

static const char *conf_get(rd_kafka_conf_t *conf, const char *name, char *buf, size_t size)
{
	size_t n = size;
	buf[0] = '\0'; /* an unset property leaves buf untouched */
	if (rd_kafka_conf_get(conf, name, buf, &n) != RD_KAFKA_CONF_OK)
		return NULL;
	return buf;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void env_maps_names_to_properties(void **state)
{
	(void)state;
	const char *env[] = {"KAFKA_SECURITY_PROTOCOL=sasl_ssl",
	                     "KAFKA_SASL_MECHANISMS=SCRAM-SHA-512",
	                     "KAFKA_SOCKET_KEEPALIVE_ENABLE=true",
	                     "PATH=/usr/bin",
	                     "SFK_KAFKA_KIND=real",
	                     "MY_KAFKA_SECURITY_PROTOCOL=bogus",
	                     NULL};
	char err[1024], buf[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	assert_int_equal(kafka_conf_apply_env(conf, env, err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_string_equal(conf_get(conf, "security.protocol", buf, sizeof buf), "sasl_ssl");
	assert_string_equal(conf_get(conf, "sasl.mechanisms", buf, sizeof buf), "SCRAM-SHA-512");
	assert_string_equal(conf_get(conf, "socket.keepalive.enable", buf, sizeof buf), "true");
	rd_kafka_conf_destroy(conf);
}

static void env_bootstrap_is_not_passed_through(void **state)
{
	(void)state;
	/* plus what Kubernetes injects for a Service named "kafka" */
	const char *env[] = {"KAFKA_BOOTSTRAP_SERVERS=10.9.8.7:9092",
	                     "KAFKA_PORT=tcp://10.0.0.7:9092",
	                     "KAFKA_PORT_9092_TCP=tcp://10.0.0.7:9092",
	                     "KAFKA_PORT_9092_TCP_PORT=9092",
	                     "KAFKA_SERVICE_HOST=10.0.0.7",
	                     "KAFKA_SERVICE_PORT=9092",
	                     NULL};
	char err[256], buf[256];
	const char *v;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	assert_int_equal(kafka_conf_apply_env(conf, env, err, sizeof err), 0);
	v = conf_get(conf, "bootstrap.servers", buf, sizeof buf);
	assert_true(v == NULL || *v == '\0'); /* never set */
	rd_kafka_conf_destroy(conf);
}

/* Every bad variable is reported, each with librdkafka's own words. */
static void env_reports_every_bad_property(void **state)
{
	(void)state;
	const char *env[] = {"KAFKA_NO_SUCH_PROPERTY=1", "KAFKA_SECURITY_PROTOCOL=carrier_pigeon",
	                     "KAFKA_LINGER_MS=1", /* good one in the middle */
	                     "KAFKA_SOCKET_TIMEOUT_MS=soon", NULL};
	char err[2048], want[512], line[600], buf[64];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	assert_int_equal(kafka_conf_apply_env(conf, env, err, sizeof err), 3);
	assert_int_equal(count_lines(err), 3);

	rdkafka_text("no.such.property", "1", want, sizeof want);
	snprintf(line, sizeof line, "KAFKA_NO_SUCH_PROPERTY: %s\n", want);
	assert_non_null(strstr(err, line));
	rdkafka_text("security.protocol", "carrier_pigeon", want, sizeof want);
	snprintf(line, sizeof line, "KAFKA_SECURITY_PROTOCOL: %s\n", want);
	assert_non_null(strstr(err, line));
	rdkafka_text("socket.timeout.ms", "soon", want, sizeof want);
	snprintf(line, sizeof line, "KAFKA_SOCKET_TIMEOUT_MS: %s\n", want);
	assert_non_null(strstr(err, line));
	/* the good one still applied */
	assert_string_equal(conf_get(conf, "linger.ms", buf, sizeof buf), "1");
	rd_kafka_conf_destroy(conf);
}

/* A mistyped secret variable must not put the secret into the report. */
static void env_report_keeps_values_out(void **state)
{
	(void)state;
	const char *env[] = {"KAFKA_SASL_PASSWRD=hunter2-very-secret", NULL};
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	assert_int_equal(kafka_conf_apply_env(conf, env, err, sizeof err), 1);
	assert_non_null(strstr(err, "KAFKA_SASL_PASSWRD"));
	assert_null(strstr(err, "hunter2"));
	rd_kafka_conf_destroy(conf);
}

/* A buffer too small for the text still gets an exact count. */
static void env_count_exact_when_buffer_small(void **state)
{
	(void)state;
	const char *env[] = {"KAFKA_A_B=1", "KAFKA_C_D=2", "KAFKA_E_F=3", NULL};
	char err[20];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	memset(err, 'x', sizeof err);
	assert_int_equal(kafka_conf_apply_env(conf, env, err, sizeof err), 3);
	assert_true(strlen(err) < sizeof err);
	assert_true(strncmp(err, "KAFKA_A_B: ", 11) == 0);
	rd_kafka_conf_destroy(conf);
}

static void pairs_report_every_bad_entry(void **state)
{
	(void)state;
	const char *pairs[] = {"linger.ms=7", "no-equals-sign", "nope.nope=1",
	                       "compression.codec=zip", NULL};
	char err[1024], want[512], line[600], buf[64];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	assert_int_equal(kafka_conf_apply_pairs(conf, pairs, err, sizeof err), 3);
	assert_int_equal(count_lines(err), 3);
	assert_non_null(strstr(err, "no-equals-sign: expected key=value\n"));
	rdkafka_text("nope.nope", "1", want, sizeof want);
	snprintf(line, sizeof line, "nope.nope: %s\n", want);
	assert_non_null(strstr(err, line));
	rdkafka_text("compression.codec", "zip", want, sizeof want);
	snprintf(line, sizeof line, "compression.codec: %s\n", want);
	assert_non_null(strstr(err, line));
	assert_string_equal(conf_get(conf, "linger.ms", buf, sizeof buf), "7");
	rd_kafka_conf_destroy(conf);
}

/* kafka_conf_new layers bootstrap, environment and props and refuses the
 * whole configuration when anything is wrong, listing all problems. */
static void conf_new_layers_and_refuses(void **state)
{
	(void)state;
	const char *props[] = {"client.id=unit", "bogus.prop=1", NULL};
	const char *good[] = {"client.id=unit", NULL};
	char err[1024], buf[256];
	rd_kafka_conf_t *conf;

	setenv("KAFKA_SECURITY_PROTOCOL", "nonsense", 1);
	conf = kafka_conf_new("127.0.0.1:9", props, err, sizeof err);
	assert_null(conf);
	assert_int_equal(count_lines(err), 2);
	assert_non_null(strstr(err, "KAFKA_SECURITY_PROTOCOL: "));
	assert_non_null(strstr(err, "bogus.prop: "));

	setenv("KAFKA_SECURITY_PROTOCOL", "plaintext", 1);
	conf = kafka_conf_new("127.0.0.1:9", good, err, sizeof err);
	assert_non_null(conf);
	assert_string_equal(conf_get(conf, "bootstrap.servers", buf, sizeof buf), "127.0.0.1:9");
	assert_string_equal(conf_get(conf, "security.protocol", buf, sizeof buf), "plaintext");
	assert_string_equal(conf_get(conf, "client.id", buf, sizeof buf), "unit");
	rd_kafka_conf_destroy(conf);
	unsetenv("KAFKA_SECURITY_PROTOCOL");

	assert_null(kafka_conf_new("", NULL, err, sizeof err));
	assert_non_null(strstr(err, "KAFKA_BOOTSTRAP_SERVERS"));
}

/* Client constructors refuse bad configuration up front (fatal class). */
static void clients_refuse_bad_config(void **state)
{
	(void)state;
	const char *props[] = {"acks=maybe", "socket.timeout.ms=x", NULL};
	char err[1024];

	assert_null(kafka_producer_new("127.0.0.1:9", NULL, props, err, sizeof err));
	assert_int_equal(count_lines(err), 2);
	assert_null(kafka_consumer_new("127.0.0.1:9", "g", props, NULL, err, sizeof err));
	assert_int_equal(count_lines(err), 2);
	assert_null(kafka_consumer_new("127.0.0.1:9", "", NULL, NULL, err, sizeof err));
	assert_null(kafka_admin_new(NULL, NULL, err, sizeof err));
}

static void err_classes(void **state)
{
	(void)state;
	assert_int_equal(kafka_err_map(RD_KAFKA_RESP_ERR_NO_ERROR), SFK_OK);
	assert_int_equal(sfk_err_class(kafka_err_map(RD_KAFKA_RESP_ERR__TRANSPORT)),
	                 SFK_CLASS_RETRIABLE);
	assert_int_equal(sfk_err_class(kafka_err_map(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)),
	                 SFK_CLASS_RETRIABLE);
	assert_int_equal(kafka_err_map(RD_KAFKA_RESP_ERR__FATAL), SFK_ERR_KAFKA_FATAL);
	assert_int_equal(kafka_err_map(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED),
	                 SFK_ERR_KAFKA_FATAL);
	assert_int_equal(kafka_err_map(RD_KAFKA_RESP_ERR_PRODUCER_FENCED), SFK_ERR_FENCED);
	assert_int_equal(sfk_err_class(kafka_err_map(RD_KAFKA_RESP_ERR__FENCED)), SFK_CLASS_FATAL);
	assert_int_equal(sfk_err_class(kafka_err_map(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)),
	                 SFK_CLASS_PERMANENT);
}

/* The lag gauge sums the assigned partitions of each topic, ignoring the
 * internal -1 partition, unassigned partitions and unknown (-1) lags. */
static void stats_feed_lag_gauge(void **state)
{
	(void)state;
	static const char stats[] =
	        "{\"name\":\"c#consumer-1\",\"type\":\"consumer\",\"topics\":{"
	        "\"sfk.wl.route\":{\"topic\":\"sfk.wl.route\",\"partitions\":{"
	        "\"0\":{\"partition\":0,\"desired\":true,\"consumer_lag\":5},"
	        "\"1\":{\"partition\":1,\"desired\":true,\"consumer_lag\":7},"
	        "\"2\":{\"partition\":2,\"desired\":true,\"consumer_lag\":-1},"
	        "\"3\":{\"partition\":3,\"desired\":false,\"consumer_lag\":100},"
	        "\"-1\":{\"partition\":-1,\"desired\":false,\"consumer_lag\":-1}}},"
	        "\"sfk.flywheel\":{\"topic\":\"sfk.flywheel\",\"partitions\":{"
	        "\"0\":{\"partition\":0,\"desired\":true,\"consumer_lag\":3}}}}}";
	struct metric *g;
	char *text;
	size_t len;

	metrics_reset();
	assert_int_equal(kafka_stats_update_lag(stats, strlen(stats)), SFK_OK);
	g = metrics_gauge("sfk_kafka_consumer_lag", "x", "topic");
	assert_true(metric_value(g, "sfk.wl.route") == 12.0);
	assert_true(metric_value(g, "sfk.flywheel") == 3.0);
	text = metrics_render(&len);
	assert_non_null(strstr(text, "sfk_kafka_consumer_lag{topic=\"sfk.wl.route\"} 12"));
	free(text);

	assert_int_equal(kafka_stats_update_lag("{not json", 9), SFK_ERR_PARSE);
	metrics_reset();
}

/* A fatal error raised inside librdkafka reaches the caller as the fatal
 * class, with librdkafka's reason; fencing as SFK_ERR_FENCED. No broker is
 * needed: nothing listens on port 9 and nothing is sent. */
static void fatal_errors_surface(void **state)
{
	(void)state;
	char err[KAFKA_ERRSTR_MAX];
	struct kafka_producer *p = kafka_producer_new("127.0.0.1:9", NULL, NULL, err, sizeof err);
	struct kafka_header h = {"entity", "Lead", 4};

	assert_non_null(p);
	assert_int_equal(kafka_produce(p, "t", "k", 1, "v", 1, &h, 1, err, sizeof err), SFK_OK);
	rd_kafka_test_fatal_error(kafka_producer_handle(p),
	                          RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "unit test");
	assert_int_equal(kafka_produce(p, "t", "k", 1, "v", 1, NULL, 0, err, sizeof err),
	                 SFK_ERR_KAFKA_FATAL);
	assert_non_null(strstr(err, "unit test"));
	assert_int_equal(kafka_producer_flush(p, 100, err, sizeof err), SFK_ERR_KAFKA_FATAL);
	kafka_producer_destroy(&p);
	assert_null(p);
	kafka_producer_destroy(&p); /* NULL is fine */

	p = kafka_producer_new("127.0.0.1:9", NULL, NULL, err, sizeof err);
	assert_non_null(p);
	rd_kafka_test_fatal_error(kafka_producer_handle(p), RD_KAFKA_RESP_ERR__FENCED, "fenced");
	assert_int_equal(kafka_produce(p, "t", NULL, 0, "v", 1, NULL, 0, err, sizeof err),
	                 SFK_ERR_FENCED);
	assert_int_equal(sfk_err_class(SFK_ERR_FENCED), SFK_CLASS_FATAL);
	kafka_producer_destroy(&p);
}

/* Argument errors are permanent and say why. */
static void produce_rejects_bad_arguments(void **state)
{
	(void)state;
	char err[KAFKA_ERRSTR_MAX], longname[KAFKA_TOPIC_MAX + 2];
	struct kafka_header h[KAFKA_HEADERS_MAX + 1];
	struct kafka_producer *p = kafka_producer_new("127.0.0.1:9", NULL, NULL, err, sizeof err);

	assert_non_null(p);
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_int_equal(kafka_produce(p, longname, NULL, 0, "v", 1, NULL, 0, err, sizeof err),
	                 SFK_ERR_INVALID);
	assert_int_equal(kafka_produce(p, "", NULL, 0, "v", 1, NULL, 0, err, sizeof err),
	                 SFK_ERR_INVALID);
	for (size_t i = 0; i < KAFKA_HEADERS_MAX + 1; i++)
		h[i] = (struct kafka_header){"h", "v", 1};
	assert_int_equal(
	        kafka_produce(p, "t", NULL, 0, "v", 1, h, KAFKA_HEADERS_MAX + 1, err, sizeof err),
	        SFK_ERR_INVALID);
	assert_non_null(strstr(err, "headers"));
	/* not transactional: the txn calls refuse */
	assert_int_equal(kafka_producer_txn_begin(p, err, sizeof err), SFK_ERR_INVALID);
	/* nothing queued: destroy does not wait */
	kafka_producer_destroy(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(env_maps_names_to_properties),
	        cmocka_unit_test(env_bootstrap_is_not_passed_through),
	        cmocka_unit_test(env_reports_every_bad_property),
	        cmocka_unit_test(env_report_keeps_values_out),
	        cmocka_unit_test(env_count_exact_when_buffer_small),
	        cmocka_unit_test(pairs_report_every_bad_entry),
	        cmocka_unit_test(conf_new_layers_and_refuses),
	        cmocka_unit_test(clients_refuse_bad_config),
	        cmocka_unit_test(err_classes),
	        cmocka_unit_test(stats_feed_lag_gauge),
	        cmocka_unit_test(fatal_errors_surface),
	        cmocka_unit_test(produce_rejects_bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
