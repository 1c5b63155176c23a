/*
 * sfk-devkafka - librdkafka's mock cluster as a standalone dev broker.
 *
 * The mock cluster (rdkafka_mock.h) lives inside an rd_kafka_t created with
 * test.mock.num.brokers; this process only keeps that instance alive, prints
 * `KAFKA_BOOTSTRAP_SERVERS=<list>` on stdout (one flushed line, for
 * tests/stack/lib/kafka.sh) and waits for SIGTERM/SIGINT. Everything lives
 * in memory: a restart loses all topics and offsets.
 *
 * What librdkafka 2.0.2's mock does (checked by tests/it/it_kafka_mock.sh):
 * produce/fetch, idempotent producer, consumer groups with manual commits
 * and cooperative-sticky rebalancing, the transactional API (commit makes
 * records visible). What it does not: CreateTopics and other admin APIs
 * (topics are auto-created on first use with 4 partitions, or pre-created
 * here with --topic), and transaction markers: aborted records remain
 * visible to read_committed consumers.
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
#define MAX_TOPICS      64
#define MAX_PARTITIONS  1000

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

struct topic {
	char name[250]; /* Kafka's limit is 249 */
	int partitions;
};

/* "name" or "name:partitions" */
static int parse_topic(const char *arg, struct topic *t)
{
	const char *colon = strrchr(arg, ':');
	size_t nlen = colon ? (size_t)(colon - arg) : strlen(arg);
	t->partitions = 1;
	if (nlen == 0 || nlen >= sizeof t->name)
		return -1;
	memcpy(t->name, arg, nlen);
	t->name[nlen] = '\0';
	if (colon) {
		char *end;
		long v;
		errno = 0;
		v = strtol(colon + 1, &end, 10);
		if (errno || *end || end == colon + 1 || v < 1 || v > MAX_PARTITIONS)
			return -1;
		t->partitions = (int)v;
	}
	return 0;
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
	struct topic topics[MAX_TOPICS];
	int ntopics = 0;
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
		} else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
			if (ntopics == MAX_TOPICS ||
			    parse_topic(argv[++i], &topics[ntopics]) != 0) {
				fprintf(stderr,
				        "sfk-devkafka: --topic wants NAME[:1..%d], at most %d\n",
				        MAX_PARTITIONS, MAX_TOPICS);
				return 2;
			}
			ntopics++;
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
	for (int i = 0; i < ntopics; i++) {
		int rf = brokers < 3 ? (int)brokers : 3;
		rd_kafka_resp_err_t err =
		        rd_kafka_mock_topic_create(mc, topics[i].name, topics[i].partitions, rf);
		if (err) {
			log_error("mock topic create failed topic=%s err=%s", topics[i].name,
			          rd_kafka_err2str(err));
			rd_kafka_destroy(rk);
			return 1;
		}
	}
	/* Topics exist before anyone can learn the address. */
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
