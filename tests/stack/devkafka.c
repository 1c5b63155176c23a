/*
 * sfk-devkafka - librdkafka's mock cluster as a standalone dev broker.
 *
 * The mock cluster (rdkafka_mock.h) lives inside an rd_kafka_t created with
 * test.mock.num.brokers; this process only keeps that instance alive, prints
 * `KAFKA_BOOTSTRAP_SERVERS=<list>` on stdout (one flushed line, for
 * tests/stack/lib/kafka.sh) and waits for SIGTERM/SIGINT. Everything lives
 * in memory: a restart loses all topics and offsets.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "log.h"

#define DEFAULT_BROKERS 3
#define MAX_BROKERS     9

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: sfk-devkafka [--brokers N]\n"
	        "Runs librdkafka's in-memory mock Kafka cluster (default %d brokers) and\n"
	        "prints KAFKA_BOOTSTRAP_SERVERS=<list> on stdout. Stops on SIGTERM/SIGINT.\n",
	        DEFAULT_BROKERS);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	log_write(level <= 3   ? LOG_LVL_ERROR
	          : level == 4 ? LOG_LVL_WARN
	                       : LOG_LVL_DEBUG,
	          "rdkafka fac=%s text=%s", fac, buf);
}

int main(int argc, char **argv)
{
	long brokers = DEFAULT_BROKERS;
	char errstr[512], nbuf[16];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
	struct sigaction sa;

	log_init("sfk-devkafka");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("sfk-devkafka %s (librdkafka %s)\n", SFK_VERSION,
			       rd_kafka_version_str());
			return 0;
		} else if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			brokers = strtol(argv[++i], &end, 10);
			if (errno || *end || brokers < 1 || brokers > MAX_BROKERS) {
				fprintf(stderr, "sfk-devkafka: --brokers wants 1..%d\n",
				        MAX_BROKERS);
				return 2;
			}
		} else {
			usage(stderr);
			return 2;
		}
	}

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	conf = rd_kafka_conf_new();
	snprintf(nbuf, sizeof nbuf, "%ld", brokers);
	if (rd_kafka_conf_set(conf, "test.mock.num.brokers", nbuf, errstr, sizeof errstr) !=
	    RD_KAFKA_CONF_OK) {
		log_error("mock cluster config failed err=%s", errstr);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!rk) {
		log_error("mock cluster start failed err=%s", errstr);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	mc = rd_kafka_handle_mock_cluster(rk);
	if (!mc) {
		log_error("mock cluster start failed err=no mock cluster handle");
		rd_kafka_destroy(rk);
		return 1;
	}
	printf("KAFKA_BOOTSTRAP_SERVERS=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	log_info("mock kafka cluster up brokers=%ld librdkafka=%s bootstrap=%s", brokers,
	         rd_kafka_version_str(), rd_kafka_mock_cluster_bootstraps(mc));

	while (!stop)
		rd_kafka_poll(rk, 200); /* bounded wait, then look at the flag */

	log_info("mock kafka cluster stopping");
	rd_kafka_destroy(rk);
	return 0;
}
