/*
 * sfk-sim - a Salesforce emulator for tests and the demo: JWT bearer OAuth,
 * REST (query, sobjects, collections, describe, limits, emailSimple), CometD
 * CDC (when the streaming modules are built in) and a /sim control API.
 * Prints SF_SIM_URL=<url> on stdout once listening; stops on SIGINT/SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "control.h"
#include "faults.h"
#include "http.h"
#include "log.h"
#include "org.h"
#include "rest.h"
#include "xmem.h"

#if defined(__has_include)
/* Header and source both: a module mid-way (header only) is left out. */
#if __has_include("cdc.h") && __has_include("cdc.c")
#include "cdc.h"
#endif
#if __has_include("cometd.h") && __has_include("cometd.c")
#include "cometd.h"
#endif
#if __has_include("traffic.h") && __has_include("traffic.c")
#include "traffic.h"
#endif
#endif

/* Largest PEM file we read. */
#define PEM_MAX   (256 * 1024)
#define MAX_USERS 64
#define MAX_APPS  8

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: sfk-sim [options]\n"
	        "  --listen HOST:PORT     bind address (port 0 = ephemeral; default 127.0.0.1:0)\n"
	        "  --app ID:CERT_PEM      connected app: client id and its X.509 cert "
	        "(repeatable)\n"
	        "  --user USERNAME        pre-authorized user (repeatable; first = default user)\n"
	        "  --seed N               deterministic users, queues, ids, faults (default 1)\n"
	        "  --control              enable the /sim/* control API\n"
	        "  --api-limit N          DailyApiRequests Max (default 100000)\n"
	        "  --token-ttl SECONDS    access token lifetime (default 7200)\n"
	        "  --tls-cert PEM         serve HTTPS with this certificate (with --tls-key)\n"
	        "  --tls-key PEM          private key for --tls-cert\n"
	        "  --sandbox              expect JWT aud https://test.salesforce.com\n"
	        "  --opt KEY=VALUE        option for the streaming modules (repeatable)\n"
	        "  --traffic FILE         start the traffic generator with this JSON profile\n"
	        "                         (same keys as POST /sim/traffic) once the modules are "
	        "up\n"
	        "  --log-level LEVEL      debug, info, warn, error (default info)\n"
	        "  --help, --version\n");
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = xmalloc(PEM_MAX + 1);
	size_t n = fread(buf, 1, PEM_MAX + 1, f);
	fclose(f);
	if (n > PEM_MAX) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = (long)v;
	return 0;
}

static int init_modules(struct sim *sim)
{
	int rc = 0;
#ifdef SIM_MODULE_CDC
	rc |= cdc_module_init(sim);
#endif
#ifdef SIM_MODULE_COMETD
	rc |= cometd_module_init(sim);
#endif
#ifdef SIM_MODULE_TRAFFIC
	rc |= traffic_module_init(sim);
#endif
	(void)sim;
	return rc ? -1 : 0;
}

static void fini_modules(struct sim *sim)
{
#ifdef SIM_MODULE_TRAFFIC
	traffic_module_fini(sim);
#endif
#ifdef SIM_MODULE_COMETD
	cometd_module_fini(sim);
#endif
#ifdef SIM_MODULE_CDC
	cdc_module_fini(sim);
#endif
	(void)sim;
}

int main(int argc, char **argv)
{
	static struct sim sim; /* large and long-lived: not on the stack */
	struct sim_config cfg;
	const char *listen = "127.0.0.1:0", *tls_cert = NULL, *tls_key = NULL;
	const char *traffic_file = NULL;
	const char *users[MAX_USERS], *apps[MAX_APPS];
	size_t nusers = 0, napps = 0;
	char *cert_pem = NULL, *key_pem = NULL;
	int errors = 0, port = 0, rc = 1;
	long v;

	enum {
		O_LISTEN = 256,
		O_APP,
		O_USER,
		O_SEED,
		O_CONTROL,
		O_LIMIT,
		O_TTL,
		O_CERT,
		O_KEY,
		O_SANDBOX,
		O_OPT,
		O_LOG,
		O_TRAFFIC,
		O_HELP,
		O_VERSION
	};
	static const struct option opts[] = {
	        {"listen", required_argument, NULL, O_LISTEN},
	        {"app", required_argument, NULL, O_APP},
	        {"user", required_argument, NULL, O_USER},
	        {"seed", required_argument, NULL, O_SEED},
	        {"control", no_argument, NULL, O_CONTROL},
	        {"api-limit", required_argument, NULL, O_LIMIT},
	        {"token-ttl", required_argument, NULL, O_TTL},
	        {"tls-cert", required_argument, NULL, O_CERT},
	        {"tls-key", required_argument, NULL, O_KEY},
	        {"sandbox", no_argument, NULL, O_SANDBOX},
	        {"opt", required_argument, NULL, O_OPT},
	        {"log-level", required_argument, NULL, O_LOG},
	        {"traffic", required_argument, NULL, O_TRAFFIC},
	        {"help", no_argument, NULL, O_HELP},
	        {"version", no_argument, NULL, O_VERSION},
	        {NULL, 0, NULL, 0},
	};

	log_init("sfk-sim");
	memset(&cfg, 0, sizeof(cfg));
	cfg.seed = 1;
	cfg.api_limit = 100000;
	cfg.token_ttl_s = 7200;
	cfg.opts = json_object();

	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN: listen = optarg; break;
		case O_APP:
			if (napps < MAX_APPS)
				apps[napps++] = optarg;
			else
				errors++;
			break;
		case O_USER:
			if (nusers < MAX_USERS)
				users[nusers++] = optarg;
			else
				errors++;
			break;
		case O_SEED:
			if (parse_long(optarg, 0, 1000000000L, &v) < 0) {
				fprintf(stderr, "sfk-sim: --seed must be an integer >= 0\n");
				errors++;
			} else {
				cfg.seed = (uint64_t)v;
			}
			break;
		case O_CONTROL: cfg.control = 1; break;
		case O_LIMIT:
			if (parse_long(optarg, 1, 1000000000L, &v) < 0) {
				fprintf(stderr,
				        "sfk-sim: --api-limit must be a positive integer\n");
				errors++;
			} else {
				cfg.api_limit = v;
			}
			break;
		case O_TTL:
			if (parse_long(optarg, 1, 86400L * 30, &v) < 0) {
				fprintf(stderr,
				        "sfk-sim: --token-ttl must be 1..2592000 seconds\n");
				errors++;
			} else {
				cfg.token_ttl_s = v;
			}
			break;
		case O_CERT: tls_cert = optarg; break;
		case O_KEY: tls_key = optarg; break;
		case O_SANDBOX: cfg.sandbox = 1; break;
		case O_OPT: {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg) {
				fprintf(stderr, "sfk-sim: --opt wants KEY=VALUE\n");
				errors++;
			} else {
				char *k = xstrndup(optarg, (size_t)(eq - optarg));
				json_object_set_new(cfg.opts, k, json_string(eq + 1));
				free(k);
			}
			break;
		}
		case O_LOG: {
			enum log_level lvl;
			if (log_level_parse(optarg, &lvl) < 0) {
				fprintf(stderr, "sfk-sim: bad --log-level\n");
				errors++;
			} else {
				log_set_level(lvl);
			}
			break;
		}
		case O_TRAFFIC: traffic_file = optarg; break;
		case O_HELP:
			usage(stdout);
			json_decref(cfg.opts);
			return 0;
		case O_VERSION:
			printf("sfk-sim %s\n", SFK_VERSION);
			json_decref(cfg.opts);
			return 0;
		default:
			usage(stderr);
			json_decref(cfg.opts);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sfk-sim: unexpected argument: %s\n", argv[optind]);
		errors++;
	}
	if (traffic_file && json_object_get(cfg.opts, "traffic.file")) {
		fprintf(stderr, "sfk-sim: --traffic and --opt traffic.file are exclusive\n");
		errors++;
	}
#ifndef SIM_MODULE_TRAFFIC
	if (traffic_file) {
		fprintf(stderr, "sfk-sim: --traffic: built without the traffic generator\n");
		errors++;
	}
#endif
	if (!tls_cert != !tls_key) {
		fprintf(stderr, "sfk-sim: --tls-cert and --tls-key go together\n");
		errors++;
	}
	if (tls_cert && (!(cert_pem = read_file(tls_cert)) || !(key_pem = read_file(tls_key)))) {
		fprintf(stderr, "sfk-sim: cannot read TLS certificate or key\n");
		errors++;
	}
	if (errors) {
		json_decref(cfg.opts);
		free(cert_pem);
		free(key_pem);
		return 2;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (org_init(&sim, &cfg, users, nusers) < 0 || auth_init(&sim) < 0 ||
	    faults_init(&sim) < 0 || control_init(&sim) < 0)
		goto out;
	for (size_t i = 0; i < nusers; i++)
		auth_add_user(&sim, users[i]);
	for (size_t i = 0; i < napps; i++)
		if (auth_add_app(&sim, apps[i]) < 0)
			goto out;
	if (auth_routes(&sim) < 0 || rest_init(&sim) < 0 || init_modules(&sim) < 0) {
		log_error("route registration failed");
		goto out;
	}
#ifdef SIM_MODULE_TRAFFIC
	/* After the modules: the generator needs the org, CDC and its routes. */
	if (traffic_file && traffic_start_file(&sim, traffic_file) < 0)
		goto out;
#endif
	if (http_start(&sim, listen, cert_pem, key_pem, &port) < 0)
		goto out;
	{
		char host[64];
		const char *colon = strrchr(listen, ':');
		snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
		if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
			snprintf(host, sizeof(host), "127.0.0.1");
		snprintf(sim.cfg.instance_url, sizeof(sim.cfg.instance_url), "%s://%s:%d",
		         cert_pem ? "https" : "http", host, port);
	}
	printf("SF_SIM_URL=%s\n", sim.cfg.instance_url);
	fflush(stdout);
	log_info("listening url=%s org_id=%s control=%d seed=%llu", sim.cfg.instance_url,
	         sim.org_id, sim.cfg.control, (unsigned long long)sim.cfg.seed);

	while (!stop_flag) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
	log_info("shutting down");
	sim.stop = 1;
	/* Wake long polls waiting on the org condition so they see stop. */
	org_lock(&sim);
	org_unlock(&sim);
	rc = 0;
out:
	http_stop(&sim);
	fini_modules(&sim);
	rest_fini(&sim);
	control_fini(&sim);
	faults_fini(&sim);
	auth_fini(&sim);
	org_fini(&sim);
	free(cert_pem);
	free(key_pem);
	return rc;
}
