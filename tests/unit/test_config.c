/* Unit tests for common/config: sources, every problem reported, secrets, standard flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

#define SECRET "s3cr3t-T0ken-value"

static const char *g_bootstrap, *g_level, *g_key, *g_url, *g_token, *g_name;
static long long g_batch, g_timeout;
static bool g_dry;

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};

static const struct config_entry table[] = {
        {"kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STRING, NULL, CONFIG_REQUIRED,
         "Kafka brokers, host:port[,host:port]", .dest = &g_bootstrap},
        {"log-level", "LOG_LEVEL", CONFIG_ENUM, "info", 0, "Minimum log level", &g_level,
         .allowed = levels},
        {"batch-size", "SFK_BATCH_SIZE", CONFIG_INT, "200", 0, "Records per Salesforce call",
         &g_batch, .min = 1, .max = 200},
        {"timeout", "SFK_TIMEOUT", CONFIG_DURATION, "5s", 0, "Request timeout", &g_timeout,
         .min = 100, .max = 60000},
        {"dry-run", "SFK_DRY_RUN", CONFIG_BOOL, "false", 0, "Do not write to Salesforce",
         .dest = &g_dry},
        {"sf-private-key-path", "SF_PRIVATE_KEY_PATH", CONFIG_PATH, NULL, 0,
         "PEM private key for the JWT bearer flow", .dest = &g_key},
        {"redis-url", "REDIS_URL", CONFIG_URL, "redis://127.0.0.1:6379/0", 0, "Redis",
         .dest = &g_url},
        {"api-token", "SFK_API_TOKEN", CONFIG_STRING, "default-" SECRET, CONFIG_SECRET,
         "Token for the thing", .dest = &g_token},
        {"name", NULL, CONFIG_STRING, "anon", 0, "Flag-only setting", .dest = &g_name},
};
#define NTABLE (sizeof table / sizeof table[0])

static const char *const envs[] = {
        "KAFKA_BOOTSTRAP_SERVERS", "LOG_LEVEL", "SFK_BATCH_SIZE", "SFK_TIMEOUT", "SFK_DRY_RUN",
        "SF_PRIVATE_KEY_PATH",     "REDIS_URL", "SFK_API_TOKEN"};

static int clean_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++)
		unsetenv(envs[i]);
	return 0;
}

/* Parse argv (NULL-terminated, argv[0] added) in this process. */
static struct config *parse(const char **args, int *nproblems)
{
	char *argv[32] = {(char *)"prog"};
	int argc = 1;
	for (; args && args[argc - 1]; argc++)
		argv[argc] = (char *)args[argc - 1];
	struct config *c = config_new("sfk-test", table, NTABLE);
	int n = config_parse(c, argc, argv);
	if (nproblems)
		*nproblems = n;
	return c;
}

struct run {
	int status;
	char out[16384];
	char err[16384];
};

static void slurp(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
}

/* Run config_load() in a child like a real main() would, capture output and exit status. */
static void run_main(struct run *r, const char **args)
{
	int o[2], e[2];
	assert_int_equal(pipe(o), 0);
	assert_int_equal(pipe(e), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(o[1], 1);
		dup2(e[1], 2);
		close(o[0]);
		close(e[0]);
		char *argv[32] = {(char *)"prog"};
		int argc = 1;
		for (; args[argc - 1]; argc++)
			argv[argc] = (char *)args[argc - 1];
		struct config *c = config_new("sfk-test", table, NTABLE);
		int rc = config_load(c, argc, argv);
		config_free(&c);
		fflush(stdout);
		fflush(stderr);
		_exit(rc == CONFIG_RUN ? 100 : rc);
	}
	close(o[1]);
	close(e[1]);
	/* stdout and stderr are small: read one after the other */
	slurp(o[0], r->out, sizeof r->out);
	slurp(e[0], r->err, sizeof r->err);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	r->status = WEXITSTATUS(st);
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void defaults_env_flags_precedence(void **state)
{
	(void)state;
	setenv("KAFKA_BOOTSTRAP_SERVERS", "env:9092", 1);
	setenv("LOG_LEVEL", "warn", 1);
	setenv("SFK_BATCH_SIZE", "50", 1);
	setenv("SFK_TIMEOUT", "", 1); /* empty = unset: default stays */
	int n;
	const char *args[] = {"--log-level", "debug", "--batch-size=7", "--dry-run", "pos1",
	                      "--name=bob",  "--",    "--not-a-flag",   NULL};
	struct config *c = parse(args, &n);
	assert_int_equal(n, 0);
	assert_string_equal(g_bootstrap, "env:9092"); /* env */
	assert_string_equal(g_level, "debug");        /* flag beats env */
	assert_int_equal(g_batch, 7);                 /* --name=value */
	assert_int_equal(g_timeout, 5000);            /* default */
	assert_true(g_dry);                           /* bare bool flag */
	assert_string_equal(g_url, "redis://127.0.0.1:6379/0");
	assert_null(g_key); /* no default, unset */
	assert_string_equal(g_name, "bob");
	assert_string_equal(config_str(c, "log-level"), "debug");
	assert_int_equal(config_int(c, "batch-size"), 7);
	assert_int_equal(config_ms(c, "timeout"), 5000);
	assert_true(config_bool(c, "dry-run"));
	assert_true(config_is_set(c, "log-level"));
	assert_false(config_is_set(c, "timeout"));
	assert_true(config_has(c, "timeout"));
	assert_false(config_has(c, "sf-private-key-path"));
	assert_int_equal(config_nargs(c), 2);
	assert_string_equal(config_arg(c, 0), "pos1");
	assert_string_equal(config_arg(c, 1), "--not-a-flag");
	assert_null(config_arg(c, 2));
	config_free(&c);
	assert_null(c);
}

static void reports_every_problem(void **state)
{
	(void)state;
	setenv("SFK_BATCH_SIZE", "lots", 1);
	int n;
	const char *args[] = {"--log-level=loud", "--bogus", "3", "--timeout", "2h", NULL};
	struct config *c = parse(args, &n);
	/* KAFKA_BOOTSTRAP_SERVERS missing, bad enum, unknown flag, bad int, out of range */
	assert_int_equal(n, 5);
	assert_int_equal(config_nproblems(c), 5);
	const char *want[] = {
	        "--bogus: unknown flag (see --help)",
	        ("--kafka-bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS): required setting is missing "
	         "(set KAFKA_BOOTSTRAP_SERVERS or pass --kafka-bootstrap-servers)"),
	        "--log-level (LOG_LEVEL): 'loud' is not one of: debug, info, warn, error",
	        "--batch-size (SFK_BATCH_SIZE): 'lots' is not an integer",
	        "--timeout (SFK_TIMEOUT): 2h is out of range [100ms, 1m]",
	};
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(config_problem_str(c, i), want[i]);
	/* positional "3" after the unknown flag stays a positional */
	assert_int_equal(config_nargs(c), 1);
	config_free(&c);
}

static void check_config_exit_status_and_lines(void **state)
{
	(void)state;
	struct run r;
	setenv("SFK_BATCH_SIZE", "0", 1);
	setenv("LOG_LEVEL", "verbose", 1);
	const char *bad[] = {"--check-config", NULL};
	run_main(&r, bad);
	assert_int_equal(r.status, 78);
	assert_string_equal(r.out, "");
	assert_int_equal(count_lines(r.err), 3);
	assert_non_null(strstr(r.err, "--kafka-bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS): "
	                              "required setting is missing"));
	assert_non_null(strstr(r.err, "--log-level (LOG_LEVEL): 'verbose' is not one of: debug, "
	                              "info, warn, error\n"));
	assert_non_null(
	        strstr(r.err, "--batch-size (SFK_BATCH_SIZE): 0 is out of range [1, 200]\n"));

	/* without --check-config the same problems stop the process */
	const char *none[] = {NULL};
	run_main(&r, none);
	assert_int_equal(r.status, 78);
	assert_int_equal(count_lines(r.err), 3);

	clean_env(NULL);
	setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", 1);
	run_main(&r, bad);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "configuration OK\n");
	assert_string_equal(r.err, "");
	run_main(&r, none);
	assert_int_equal(r.status, 100); /* CONFIG_RUN: go on */
}

static void help_lists_every_setting(void **state)
{
	(void)state;
	struct run r;
	/* --help wins even with problems (required setting missing here) */
	const char *args[] = {"--help", NULL};
	run_main(&r, args);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "Usage: sfk-test"));
	for (size_t i = 0; i < NTABLE; i++) {
		char flag[96];
		snprintf(flag, sizeof flag, "\n  --%s", table[i].name);
		const char *at = strstr(r.out, flag);
		assert_non_null(at);
		at += strlen(flag);
		assert_true(*at == ' ' || *at == '['); /* " <type>" or "[=<bool>]" */
		assert_non_null(strstr(r.out, table[i].help));
		if (table[i].env) {
			char env[96];
			snprintf(env, sizeof env, "env: %s", table[i].env);
			assert_non_null(strstr(r.out, env));
		}
	}
	assert_non_null(strstr(r.out, "default: 200"));
	assert_non_null(strstr(r.out, "<debug|info|warn|error>"));
	assert_non_null(strstr(r.out, "default: <secret>"));
	assert_non_null(strstr(r.out, "--check-config"));
	assert_null(strstr(r.out, SECRET));
}

static void version_flag(void **state)
{
	(void)state;
	struct run r;
	const char *args[] = {"--version", NULL};
	run_main(&r, args);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "sfk-test " SFK_VERSION "\n");
}

/* A validator that fails on the secret, the way a real one might. */
static void token_check(struct config *c, const struct config_entry *e)
{
	if (strlen(*(const char **)e->dest) < 64)
		config_problem(c, e, "token too short");
}

static void secrets_never_printed(void **state)
{
	(void)state;
	static const struct config_entry sec[] = {
	        {"api-token", "SFK_API_TOKEN", CONFIG_STRING, NULL, CONFIG_SECRET | CONFIG_REQUIRED,
	         "Token", &g_token, .check = token_check},
	        {"pin", "SFK_PIN", CONFIG_INT, NULL, CONFIG_SECRET, "A secret number", NULL,
	         .min = 1, .max = 9},
	        {"mode", "SFK_MODE", CONFIG_ENUM, NULL, CONFIG_SECRET, "A secret enum", NULL,
	         .allowed = levels},
	        {"key", "SFK_KEY", CONFIG_PATH, NULL, CONFIG_SECRET, "A secret path", .dest = NULL},
	        {"redis-url", "REDIS_URL", CONFIG_URL, NULL, 0, "Redis", .dest = NULL},
	};
	setenv("SFK_API_TOKEN", SECRET, 1);
	char *argv[] = {(char *)"prog",
	                (char *)"--pin=" SECRET,
	                (char *)"--mode",
	                (char *)SECRET,
	                (char *)"--key",
	                (char *)"/nonexistent/" SECRET,
	                (char *)"--redis-url=redis://user:" SECRET "@"};
	struct config *c = config_new("sfk-test", sec, 5);
	int n = config_parse(c, 7, argv);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < config_nproblems(c); i++) {
		assert_null(strstr(config_problem_str(c, i), SECRET));
		assert_non_null(strstr(config_problem_str(c, i), "--"));
	}
	assert_string_equal(config_problem_str(c, 0),
	                    "--pin (SFK_PIN): '<secret>' is not an integer");
	assert_string_equal(config_problem_str(c, 3),
	                    "--redis-url (REDIS_URL): 'redis://user:<secret>@' is not a URL "
	                    "(scheme://host[:port][/path])");
	assert_string_equal(config_problem_str(c, 4),
	                    "--api-token (SFK_API_TOKEN): token too short");
	char *dump = config_dump(c);
	assert_null(strstr(dump, SECRET));
	assert_non_null(strstr(dump, "api-token=<secret> (env)"));
	free(dump);
	char *usage = config_usage(c);
	assert_null(strstr(usage, SECRET));
	free(usage);
	config_free(&c);

	/* a valid URL with a password is dumped without it */
	setenv("REDIS_URL", "redis://:" SECRET "@127.0.0.1:6379/0", 1);
	c = parse(NULL, NULL);
	dump = config_dump(c);
	assert_null(strstr(dump, SECRET));
	assert_non_null(strstr(dump, "redis-url=redis://:<secret>@127.0.0.1:6379/0 (env)"));
	free(dump);
	config_free(&c);
	unsetenv("SFK_API_TOKEN");
}

static void check_config_output_hides_secrets(void **state)
{
	(void)state;
	struct run r;
	setenv("SFK_API_TOKEN", SECRET, 1);
	const char *args[] = {"--check-config", "--batch-size", "lots", NULL};
	run_main(&r, args);
	assert_int_equal(r.status, 78);
	/* batch-size is not secret, so its bad value is quoted; the token never is */
	assert_non_null(strstr(r.err, "'lots' is not an integer"));
	assert_null(strstr(r.out, SECRET));
	assert_null(strstr(r.err, SECRET));
	const char *args2[] = {"--check-config", "--kafka-bootstrap-servers", "k:9092", NULL};
	run_main(&r, args2);
	assert_int_equal(r.status, 0);
	assert_null(strstr(r.out, SECRET));
	assert_null(strstr(r.err, SECRET));
	unsetenv("SFK_API_TOKEN");
}

static void cross_field(struct config *c, void *ctx)
{
	int *calls = ctx;
	(*calls)++;
	if (config_int(c, "batch-size") > 100 && config_bool(c, "dry-run"))
		config_problem(c, NULL, "--batch-size over 100 makes no sense with --dry-run");
}

static void whole_config_validator(void **state)
{
	(void)state;
	int calls = 0;
	char *argv[] = {(char *)"p", (char *)"--kafka-bootstrap-servers=k:1", (char *)"--dry-run"};
	struct config *c = config_new("sfk-test", table, NTABLE);
	config_set_validator(c, cross_field, &calls);
	assert_int_equal(config_parse(c, 3, argv), 1);
	assert_int_equal(calls, 1);
	assert_string_equal(config_problem_str(c, 0),
	                    "--batch-size over 100 makes no sense with --dry-run");
	config_free(&c);
}

static void missing_values_and_bad_bools(void **state)
{
	(void)state;
	int n;
	const char *args[] = {"--kafka-bootstrap-servers=k",
	                      "--dry-run=perhaps",
	                      "--log-level",
	                      "--sf-private-key-path",
	                      "/nonexistent/key.pem",
	                      "-x",
	                      NULL};
	struct config *c = parse(args, &n);
	assert_int_equal(n, 4);
	assert_string_equal(config_problem_str(c, 0),
	                    "--log-level (LOG_LEVEL): flag needs a value");
	assert_string_equal(config_problem_str(c, 1), "-x: unknown flag (see --help)");
	assert_string_equal(config_problem_str(c, 2),
	                    "--dry-run (SFK_DRY_RUN): 'perhaps' is not a boolean (true/false, 1/0, "
	                    "yes/no, on/off)");
	assert_string_equal(
	        config_problem_str(c, 3),
	        "--sf-private-key-path (SF_PRIVATE_KEY_PATH): '/nonexistent/key.pem' is "
	        "not readable: No such file or directory");
	config_free(&c);

	/* an existing readable path is accepted */
	char path[] = "/tmp/test_config_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	const char *ok[] = {"--kafka-bootstrap-servers=k", "--sf-private-key-path", path, NULL};
	c = parse(ok, &n);
	assert_int_equal(n, 0);
	assert_string_equal(config_str(c, "sf-private-key-path"), path);
	config_free(&c);
	unlink(path);
}

static void durations(void **state)
{
	(void)state;
	const struct {
		const char *in;
		long long ms;
	} good[] = {{"0", 0},        {"500ms", 500},   {"5s", 5000},     {"2m", 120000},
	            {"1h", 3600000}, {"1m30s", 90000}, {"1d", 86400000}, {"1s500ms", 1500}};
	const char *bad[] = {"", "5", "5x", "-5s", "1.5s", "s", "5 s", "99999999999999999999d"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		long long v = -1;
		assert_int_equal(config_parse_duration_ms(good[i].in, &v), 0);
		assert_int_equal(v, good[i].ms);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long long v;
		assert_int_equal(config_parse_duration_ms(bad[i], &v), -1);
	}
}

static const char *g_login;
static const struct config_entry sf_table[] = {
        {"sf-login-url", "SF_LOGIN_URL", CONFIG_URL, "https://login.salesforce.com", 0,
         "Token endpoint host and JWT aud", .dest = &g_login},
};
static const struct config_entry dup_table[] = {
        {"log-level", "OTHER_LOG_LEVEL", CONFIG_STRING, NULL, 0, "Clash", .dest = NULL},
};

static void add_dup(void)
{
	struct config *c = config_new("sfk-test", table, NTABLE);
	config_add_table(c, dup_table, 1);
}

static void module_tables_combine(void **state)
{
	(void)state;
	setenv("SF_LOGIN_URL", "notaurl", 1);
	char *argv[] = {(char *)"p", (char *)"--kafka-bootstrap-servers=k"};
	struct config *c = config_new("sfk-test", table, NTABLE);
	config_add_table(c, sf_table, 1);
	assert_int_equal(config_parse(c, 2, argv), 1);
	assert_string_equal(config_problem_str(c, 0),
	                    "--sf-login-url (SF_LOGIN_URL): 'notaurl' is not a URL "
	                    "(scheme://host[:port][/path])");
	char *u = config_usage(c);
	assert_non_null(strstr(u, "\n  --sf-login-url <url>\n"));
	assert_non_null(strstr(u, "\n  --kafka-bootstrap-servers <string>\n"));
	free(u);
	config_free(&c);
	unsetenv("SF_LOGIN_URL");
	c = config_new("sfk-test", table, NTABLE);
	config_add_table(c, sf_table, 1);
	assert_int_equal(config_parse(c, 2, argv), 0);
	assert_string_equal(g_login, "https://login.salesforce.com");
	config_free(&c);

	/* the same setting name twice is a programming error */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		freopen("/dev/null", "w", stderr);
		add_dup();
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(defaults_env_flags_precedence, clean_env),
	        cmocka_unit_test_setup(reports_every_problem, clean_env),
	        cmocka_unit_test_setup(check_config_exit_status_and_lines, clean_env),
	        cmocka_unit_test_setup(help_lists_every_setting, clean_env),
	        cmocka_unit_test_setup(version_flag, clean_env),
	        cmocka_unit_test_setup(secrets_never_printed, clean_env),
	        cmocka_unit_test_setup(check_config_output_hides_secrets, clean_env),
	        cmocka_unit_test_setup(whole_config_validator, clean_env),
	        cmocka_unit_test_setup(missing_values_and_bad_bools, clean_env),
	        cmocka_unit_test_setup(durations, clean_env),
	        cmocka_unit_test_setup(module_tables_combine, clean_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
