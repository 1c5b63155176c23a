/*
 * Integration tests for the Salesforce client (common/sf_*) against sfk-sim
 * and real Redis:
 *   - eight processes started together mint exactly one token;
 *   - sessions expired mid-run cost exactly one new token and no failed request;
 *   - 503 bursts and UNABLE_TO_LOCK_ROW are retried to success;
 *   - a permanent error is reported for one record of 200, the other 199 land;
 *   - with Redis stopped requests still succeed (degraded gauge says so);
 *   - no line of the private key's PEM body appears in the captured logs.
 * The tests inject faults, expire every session and count the sim's tokens
 * and API calls exactly, so they never use the shared stack: main() starts a
 * private one (`tests/stack/up --sim --kafka none`, needs SFK_SOURCE_DIR and
 * SFK_BIN_DIR, which ctest sets) and stops it however the process ends. Every
 * process logs to one captured file (children inherit the fd).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "sf_auth.h"
#include "sf_quota.h"
#include "sf_rest.h"
#include "sf_token.h"
#include "sfid.h"
#include "soql_build.h"

#define NPROC                8
#define NRECORDS             200

#define STACK_OUT_MAX        8192   /* bytes of `tests/stack/up` output accepted */
#define STACK_UP_DEADLINE_MS 120000 /* up itself gives up well before this */
#define TEST_DEADLINE_S      180    /* the whole binary: then it fails, never hangs */
#define CHILD_DEADLINE_MS    60000  /* a forked client process, start to exit */

static char log_path[256];
static char lead_ids[NRECORDS][SFID_LEN18 + 1];
static int leads_made;

static int in_child;      /* 1 in a forked client process: never back into cmocka */
static pid_t kids[NPROC]; /* forked client processes not yet reaped */
static int nkids;
static pid_t redis_pid; /* redis_down_requests_succeed's own redis-server */
static char redis_dir[PATH_MAX + 16];

static const char *need(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr,
		        "it_sf_client: %s is not set (the private stack did not export it)\n",
		        name);
		if (in_child)
			_exit(2);
		fail_msg("%s is not set", name);
	}
	return v;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- the private stack ---- */

/* What tests/stack/up --sim must export; cleared first, so a value from an
 * outer (shared) stack can never stand in for a missing one. */
static const char *const stack_vars[] = {
        "SFK_STACK_DIR", "REDIS_URL",           "SF_SIM_URL",     "SF_LOGIN_URL", "SF_TOKEN_URL",
        "SF_CLIENT_ID",  "SF_PRIVATE_KEY_PATH", "SF_API_VERSION", "SF_CA_FILE",   "SF_USERNAME",
};
static char stack_down_path[PATH_MAX];
static char stack_dir[PATH_MAX];
static pid_t stack_owner;

static void stack_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void stack_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("it_sf_client: FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* tests/stack/down on our state directory (only from the process that started it). */
static void stack_down(void)
{
	if (!stack_dir[0] || getpid() != stack_owner)
		return;
	pid_t p = fork();
	if (p == 0) {
		execl(stack_down_path, stack_down_path, stack_dir, (char *)NULL);
		_exit(127);
	}
	if (p > 0)
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
	stack_dir[0] = '\0';
}

/*
 * A detached process (adopted by init, so a ctest timeout that kills our
 * process tree misses it) that runs tests/stack/down once this process is
 * gone, however it ends, SIGKILL included: it waits for EOF on a pipe whose
 * only write end this process holds (close-on-exec, so services and scripts
 * we start do not keep it open).
 */
static int start_reaper(void)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid_t p = fork();
	if (p < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (p == 0) {
		setsid();
		if (fork() != 0)
			_exit(0);
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		if (fds[0] != 3)
			dup2(fds[0], 3);
		closefrom(4); /* our write end, ctest's pipes, sockets */
		char ch;
		ssize_t r;
		while ((r = read(3, &ch, 1)) > 0 || (r < 0 && errno == EINTR))
			;
		execl(stack_down_path, stack_down_path, stack_dir, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
		;
	return 0; /* fds[1] stays open until this process ends */
}

/* Parse "export NAME=value" lines into the environment. Returns 0 or -1. */
static int stack_parse(char *out)
{
	for (char *line = out, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (strncmp(line, "export ", 7) != 0)
			continue;
		char *name = line + 7, *eq = strchr(name, '=');
		if (!eq || eq == name)
			return -1;
		*eq = '\0';
		char *v = eq + 1;
		size_t vl = strlen(v);
		if (vl >= 2 && (v[0] == '\'' || v[0] == '"') && v[vl - 1] == v[0]) {
			v[vl - 1] = '\0';
			v++;
		}
		if (setenv(name, v, 1) != 0)
			return -1;
	}
	return 0;
}

/* Start the private stack and export its addresses. Returns 0, or -1 after
 * saying why on stderr. */
static int stack_up(void)
{
	const char *src = getenv("SFK_SOURCE_DIR"), *bin = getenv("SFK_BIN_DIR");
	char up[PATH_MAX], sim[PATH_MAX], out[STACK_OUT_MAX];
	if (!src || !*src || !bin || !*bin) {
		stack_fail("%s is not set (ctest sets SFK_SOURCE_DIR and SFK_BIN_DIR; by hand: "
		           "SFK_SOURCE_DIR=<checkout> SFK_BIN_DIR=<build>/bin %s)",
		           !src || !*src ? "SFK_SOURCE_DIR" : "SFK_BIN_DIR", "it_sf_client");
		return -1;
	}
	if (snprintf(up, sizeof up, "%s/tests/stack/up", src) >= (int)sizeof up ||
	    snprintf(stack_down_path, sizeof stack_down_path, "%s/tests/stack/down", src) >=
	            (int)sizeof stack_down_path ||
	    snprintf(sim, sizeof sim, "%s/sfk-sim", bin) >= (int)sizeof sim) {
		stack_fail("SFK_SOURCE_DIR or SFK_BIN_DIR is too long");
		return -1;
	}
	if (access(up, X_OK) != 0 || access(stack_down_path, X_OK) != 0) {
		stack_fail("%s or tests/stack/down is missing or not executable", up);
		return -1;
	}
	if (access(sim, X_OK) != 0) {
		stack_fail("sfk-sim is not built: %s (build the tree first)", sim);
		return -1;
	}
	for (size_t i = 0; i < sizeof stack_vars / sizeof stack_vars[0]; i++)
		unsetenv(stack_vars[i]);

	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) {
		stack_fail("pipe: %s", strerror(errno));
		return -1;
	}
	pid_t p = fork();
	if (p < 0) {
		stack_fail("fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (p == 0) {
		dup2(fds[1], 1); /* stderr stays ours: up's progress lines show in the test log */
		execl(up, up, "--sim", "--kafka", "none", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	size_t n = 0;
	int too_long = 0, timed_out = 0;
	long long deadline = mono_ms() + STACK_UP_DEADLINE_MS;
	for (;;) {
		long long left = deadline - mono_ms();
		if (left <= 0) {
			timed_out = 1;
			kill(p, SIGTERM); /* up's trap stops what it started */
			break;
		}
		struct pollfd pf = {.fd = fds[0], .events = POLLIN};
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		ssize_t r = read(fds[0], out + n, sizeof out - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof out - 1) {
			too_long = 1;
			break;
		}
	}
	out[n] = '\0';
	close(fds[0]);
	int st = 0;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	if (timed_out || too_long || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		stack_fail("%s --sim --kafka none %s (its messages are above)", up,
		           timed_out  ? "did not finish in time"
		           : too_long ? "printed more than STACK_OUT_MAX bytes"
		                      : "failed");
		return -1;
	}
	if (stack_parse(out) != 0) {
		stack_fail("cannot parse the output of %s", up);
		return -1;
	}
	const char *dir = getenv("SFK_STACK_DIR");
	if (!dir || snprintf(stack_dir, sizeof stack_dir, "%s", dir) >= (int)sizeof stack_dir) {
		stack_fail("%s printed no usable SFK_STACK_DIR", up);
		return -1;
	}
	stack_owner = getpid();
	atexit(stack_down);
	if (start_reaper() != 0)
		fprintf(stderr, "it_sf_client: warning: no reaper for %s: %s\n", stack_dir,
		        strerror(errno));
	for (size_t i = 0; i < sizeof stack_vars / sizeof stack_vars[0]; i++)
		if (!getenv(stack_vars[i]) || !*getenv(stack_vars[i])) {
			stack_fail("%s --sim did not export %s", up, stack_vars[i]);
			return -1;
		}
	fprintf(stderr, "it_sf_client: private stack in %s (sim %s, redis %s)\n", stack_dir,
	        getenv("SF_SIM_URL"), getenv("REDIS_URL"));
	return 0;
}

/* ---- forked client processes ---- */

/* Kill and reap whatever a test left running (its teardown; also on failure). */
static int reap_leftovers(void **state)
{
	(void)state;
	for (int i = 0; i < nkids; i++) {
		kill(kids[i], SIGKILL);
		while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
			;
	}
	nkids = 0;
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		while (waitpid(redis_pid, NULL, 0) < 0 && errno == EINTR)
			;
		redis_pid = 0;
	}
	redis_dir[0] = '\0'; /* inside the stack directory: tests/stack/down removes it */
	return 0;
}

static void on_deadline(int sig)
{
	static const char msg[] = "it_sf_client: FAIL: the test ran past TEST_DEADLINE_S; "
	                          "stopping (the private stack is stopped by the reaper)\n";
	(void)sig;
	(void)!write(2, msg, sizeof msg - 1);
	for (int i = 0; i < nkids; i++)
		kill(kids[i], SIGKILL);
	if (redis_pid > 0)
		kill(redis_pid, SIGKILL);
	_exit(1);
}

/*
 * Fork a client process that runs fn(arg) and _exit()s with its result. It
 * never returns into cmocka (an assertion or crash there would run the rest
 * of the suite in the child), crashes with the default action, and dies
 * with this process. Returns the pid (recorded for reaping) or -1.
 */
static pid_t fork_client(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	fflush(NULL); /* a child must not repeat our buffered output */
	pid_t p = fork();
	if (p != 0) {
		if (p > 0)
			kids[nkids++] = p;
		return p;
	}
	in_child = 1;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(3);
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGSYS, SIGABRT, SIGALRM};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		signal(sigs[i], SIG_DFL);
	alarm(CHILD_DEADLINE_MS / 1000 + 5); /* a wedged child dies on its own */
	_exit(fn(arg));
}

/* Reap every recorded child by the deadline (stragglers are killed and
 * counted). Returns the number that did not exit with status 0. */
static int wait_children(long long deadline)
{
	int failed = 0;
	for (int i = 0; i < nkids; i++) {
		int st = 0;
		pid_t w;
		while ((w = waitpid(kids[i], &st, WNOHANG)) == 0 && mono_ms() < deadline)
			sleep_ms(10);
		if (w == 0) {
			fprintf(stderr, "it_sf_client: child %d still running at the deadline\n",
			        (int)kids[i]);
			kill(kids[i], SIGKILL);
			while (waitpid(kids[i], &st, 0) < 0 && errno == EINTR)
				;
			failed++;
		} else if (w < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "it_sf_client: child %d %s %d\n", (int)kids[i],
			        w > 0 && WIFSIGNALED(st) ? "killed by signal" : "exited with",
			        w > 0 && WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			failed++;
		}
	}
	nkids = 0;
	return failed;
}

/* ---- the sim's control API ---- */

struct buf {
	char *p;
	size_t n;
};
static size_t on_data(char *d, size_t s, size_t n, void *ud)
{
	struct buf *b = ud;
	b->p = realloc(b->p, b->n + s * n + 1);
	memcpy(b->p + b->n, d, s * n);
	b->n += s * n;
	b->p[b->n] = '\0';
	return s * n;
}

/* method on $SF_SIM_URL + path; returns the parsed JSON body (new reference) or NULL. */
static json_t *sim_call(const char *method, const char *path, const char *body, long *status)
{
	char url[1024];
	struct buf b = {0};
	snprintf(url, sizeof url, "%s%s", need("SF_SIM_URL"), path);
	CURL *h = curl_easy_init();
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	if (getenv("SF_CA_FILE") && *getenv("SF_CA_FILE"))
		curl_easy_setopt(h, CURLOPT_CAINFO, getenv("SF_CA_FILE"));
	CURLcode cc = curl_easy_perform(h);
	long st = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	if (status)
		*status = st;
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	json_t *j = cc == CURLE_OK && b.p ? json_loads(b.p, JSON_DECODE_ANY, NULL) : NULL;
	free(b.p);
	return j;
}

static void sim_faults(const char *spec)
{
	long st = 0;
	json_t *j = sim_call("POST", "/sim/faults", spec, &st);
	assert_int_equal(st, 200);
	json_decref(j);
}

static long long sum_obj(json_t *o)
{
	const char *k;
	json_t *v;
	long long s = 0;
	json_object_foreach(o, k, v) s += json_integer_value(v);
	return s;
}

/* Tokens the sim has issued so far ("ok" outcomes of the token endpoint). */
static long long sim_tokens(void)
{
	json_t *s = sim_call("GET", "/sim/stats", NULL, NULL);
	assert_non_null(s);
	long long n = json_integer_value(json_object_get(json_object_get(s, "tokens"), "ok"));
	json_decref(s);
	return n;
}

static long long sim_api_calls(void)
{
	json_t *s = sim_call("GET", "/sim/stats", NULL, NULL);
	assert_non_null(s);
	long long n = sum_obj(json_object_get(s, "api"));
	json_decref(s);
	return n;
}

static long long sim_status_count(const char *status)
{
	json_t *s = sim_call("GET", "/sim/stats", NULL, NULL);
	assert_non_null(s);
	long long n = json_integer_value(json_object_get(json_object_get(s, "status"), status));
	json_decref(s);
	return n;
}

/* ---- one client, built from the environment ---- */

struct client {
	struct sf_auth *auth;
	struct sf_token_cache *tokens;
	struct sf_rest *rest;
};

static struct sf_quota *g_quota; /* passed to the next client_open, if set */
static int g_batch;
static size_t g_max_response;
static int g_no_ca;    /* 1: do not pass $SF_CA_FILE (TLS must then fail) */
static long g_wait_ms; /* token wait deadline for the next client_open, 0 = default */

static int client_open(struct client *c, const char *redis_url, long retry_total_ms)
{
	char err[512];
	struct sf_auth_conf ac = {
	        .login_url = need("SF_LOGIN_URL"),
	        .token_url = need("SF_TOKEN_URL"),
	        .client_id = need("SF_CLIENT_ID"),
	        .username = need("SF_USERNAME"),
	        .key_path = need("SF_PRIVATE_KEY_PATH"),
	        .ca_file = g_no_ca ? NULL : getenv("SF_CA_FILE"),
	};
	memset(c, 0, sizeof *c);
	c->auth = sf_auth_new(&ac, err, sizeof err);
	if (!c->auth) {
		fprintf(stderr, "sf_auth_new: %s\n", err);
		return -1;
	}
	struct sf_token_conf tc = {
	        .auth = c->auth, .redis_url = redis_url, .ttl_ms = 600000, .wait_ms = g_wait_ms};
	c->tokens = sf_token_new(&tc);
	struct sf_rest_conf rc = {
	        .tokens = c->tokens,
	        .api_version = need("SF_API_VERSION"),
	        .ca_file = g_no_ca ? NULL : getenv("SF_CA_FILE"),
	        .call_client = "sfk-it",
	        .max_response_bytes = g_max_response,
	        .redis_url = redis_url,
	        .retry_base_ms = 20,
	        .retry_max_ms = 500,
	        .retry_total_ms = retry_total_ms,
	        .quota = g_quota,
	        .query_batch_size = g_batch,
	};
	c->rest = sf_rest_new(&rc, err, sizeof err);
	if (!c->rest) {
		fprintf(stderr, "sf_rest_new: %s\n", err);
		return -1;
	}
	return 0;
}

static void client_close(struct client *c)
{
	sf_rest_free(&c->rest);
	sf_token_free(&c->tokens);
	sf_auth_free(&c->auth);
}

static void drop_shared_token(void)
{
	struct client c;
	char err[256];
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	struct redis *r = redis_connect_url(need("REDIS_URL"), NULL, err, sizeof err);
	assert_non_null(r);
	redisReply *rep = redis_cmd(r, "DEL %s", sf_token_key(c.tokens));
	assert_non_null(rep);
	freeReplyObject(rep);
	redis_free(r);
	client_close(&c);
}

/* A gate: children block until the parent closes the write end (or dies). */
static int gate_fds[2] = {-1, -1};

static void gate_close(void)
{
	for (int i = 0; i < 2; i++)
		if (gate_fds[i] >= 0) {
			close(gate_fds[i]);
			gate_fds[i] = -1;
		}
}

/* In a child: 0 once the gate opens, -1 if it stays shut past the deadline. */
static int gate_wait(void)
{
	close(gate_fds[1]);
	struct pollfd pf = {.fd = gate_fds[0], .events = POLLIN};
	long long deadline = mono_ms() + CHILD_DEADLINE_MS / 2;
	for (;;) {
		long long left = deadline - mono_ms();
		if (left <= 0)
			return -1;
		int n = poll(&pf, 1, (int)left);
		if (n > 0)
			return 0; /* EOF (or HUP): the parent closed its end */
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* Kill and reap a test's children and close its gate, also after a failure. */
static int teardown_children(void **state)
{
	gate_close();
	return reap_leftovers(state);
}

/* ---- tests ---- */

/* Child of eight_processes_one_token: one request as soon as the gate opens. */
static int child_one_request(void *arg)
{
	(void)arg;
	struct client c;
	if (client_open(&c, need("REDIS_URL"), 20000) != 0)
		return 2;
	if (gate_wait() != 0) /* all eight start at the same instant */
		return 4;
	json_t *lim = NULL;
	struct sf_error e;
	enum sfk_err rc = sf_rest_limits(c.rest, &lim, &e);
	if (rc != SFK_OK)
		log_error("child request failed err=%s msg=%s", sfk_err_str(rc), e.message);
	json_decref(lim);
	client_close(&c);
	return rc == SFK_OK ? 0 : 1;
}

static void eight_processes_one_token(void **state)
{
	(void)state;
	drop_shared_token();
	long long before = sim_tokens();
	assert_int_equal(pipe(gate_fds), 0);
	for (int i = 0; i < NPROC; i++)
		assert_true(fork_client(child_one_request, NULL) > 0);
	gate_close(); /* open the gate */
	assert_int_equal(wait_children(mono_ms() + CHILD_DEADLINE_MS), 0);
	assert_int_equal(sim_tokens() - before, 1);
}

/* Child of expired_sessions_cost_one_token: requests until the stop file
 * exists (at least 10); every one must succeed. */
static int child_until_stop(void *arg)
{
	const char *stop = arg;
	struct client c;
	struct sf_error e;
	if (client_open(&c, need("REDIS_URL"), 20000) != 0)
		return 2;
	if (gate_wait() != 0)
		return 4;
	int n = 0, bad = 0;
	long long deadline = mono_ms() + CHILD_DEADLINE_MS;
	while ((n < 10 || access(stop, F_OK) != 0) && mono_ms() < deadline) {
		json_t *l = NULL;
		enum sfk_err rc = sf_rest_limits(c.rest, &l, &e);
		json_decref(l);
		if (rc != SFK_OK) {
			log_error("child request failed err=%s msg=%s", sfk_err_str(rc), e.message);
			bad++;
		}
		n++;
	}
	client_close(&c);
	return bad == 0 && mono_ms() < deadline ? 0 : 1;
}

static void expired_sessions_cost_one_token(void **state)
{
	(void)state;
	static char stop[PATH_MAX + 32];
	/* In the private stack's directory: tests/stack/down removes it. */
	snprintf(stop, sizeof stop, "%s/it_sf_client.stop", stack_dir);
	unlink(stop);
	/* Warm the shared cache so every child starts with the same token. */
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	json_t *lim = NULL;
	struct sf_error e;
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK);
	json_decref(lim);
	client_close(&c);

	long long before = sim_tokens();
	assert_int_equal(pipe(gate_fds), 0);
	for (int i = 0; i < NPROC; i++)
		assert_true(fork_client(child_until_stop, stop) > 0);
	long long calls0 = sim_api_calls();
	gate_close();
	long long deadline = mono_ms() + 30000;
	while (sim_api_calls() < calls0 + 4 * NPROC && mono_ms() < deadline)
		sleep_ms(10);
	assert_true(mono_ms() < deadline);
	sim_faults("{\"expire_sessions\":true}");
	long long calls1 = sim_api_calls();
	while (sim_api_calls() < calls1 + 8 * NPROC && mono_ms() < deadline)
		sleep_ms(10);
	assert_true(mono_ms() < deadline);
	int fd = open(stop, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	int failed = wait_children(mono_ms() + CHILD_DEADLINE_MS);
	unlink(stop);
	assert_int_equal(failed, 0);
	assert_int_equal(sim_tokens() - before, 1);
	/* The expiry really bit: the sim answered 401s. */
	assert_true(sim_status_count("401") > 0);
}

/* 200 Leads created as a UI user through the sim's control API. */
static void make_leads(void)
{
	if (leads_made)
		return;
	for (int i = 0; i < NRECORDS; i++) {
		char body[256];
		long st = 0;
		snprintf(body, sizeof body,
		         "{\"LastName\":\"It%03d\",\"Company\":\"Client IT "
		         "%03d\",\"Country\":\"DE\"}",
		         i, i);
		json_t *j = sim_call("POST", "/sim/records/Lead", body, &st);
		assert_int_equal(st, 201);
		const char *id = json_string_value(json_object_get(j, "id"));
		assert_non_null(id);
		assert_true(sfid_valid(id));
		snprintf(lead_ids[i], sizeof lead_ids[i], "%s", id);
		json_decref(j);
	}
	leads_made = 1;
}

static json_t *batch(const char *description, int bad_index)
{
	json_t *recs = json_array();
	for (int i = 0; i < NRECORDS; i++) {
		json_t *r = json_pack("{s:{s:s}, s:s, s:s}", "attributes", "type", "Lead", "id",
		                      lead_ids[i], "Description", description);
		if (i == bad_index)
			json_object_set_new(r, "No_Such_Field__c", json_string("x"));
		json_array_append_new(recs, r);
	}
	return recs;
}

/* Description of every lead as Salesforce now has it, via the query iterator. */
static int count_with_description(struct client *c, const char *want)
{
	const char *ids[NRECORDS];
	for (int i = 0; i < NRECORDS; i++)
		ids[i] = lead_ids[i];
	struct soql_list l = {0};
	char err[256];
	assert_int_equal(soql_build_in_ids("SELECT Id, Description FROM Lead WHERE Id IN ", "", ids,
	                                   NRECORDS, sf_rest_query_uri_overhead(c->rest), 0, &l,
	                                   err, sizeof err),
	                 SFK_OK);
	int n = 0, seen = 0;
	for (size_t q = 0; q < l.n; q++) {
		struct sf_query *it = NULL;
		struct sf_error e;
		assert_int_equal(sf_query_open(c->rest, l.q[q], &it, &e), SFK_OK);
		json_t *rec;
		while (sf_query_next(it, &rec, &e) == SFK_OK && rec) {
			seen++;
			const char *d = json_string_value(json_object_get(rec, "Description"));
			if (d && strcmp(d, want) == 0)
				n++;
		}
		sf_query_free(&it);
	}
	soql_list_free(&l);
	assert_int_equal(seen, NRECORDS);
	return n;
}

static void retries_5xx_and_lock_to_success(void **state)
{
	(void)state;
	make_leads();
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 60000), 0);
	struct metric *retries = metrics_counter(
	        "sfk_api_retries_total", "Salesforce REST attempts retried, by error", "error");
	double r5 = metric_value(retries, "http_5xx"), rl = metric_value(retries, "lock");
	long long s503 = sim_status_count("503");

	sim_faults("{\"error_rate\":0.3,\"error_status\":503,\"error_paths\":\"/services/data\","
	           "\"lock_rate\":0.2,\"seed\":7}");
	json_t *recs = batch("retried", -1);
	struct sf_record_result res[NRECORDS];
	struct sf_error e;
	enum sfk_err rc = sf_rest_collection_update(c.rest, recs, 0, 0, res, &e);
	json_decref(recs);
	/* Single-record PATCHes through the same storm. */
	int single_ok = 0;
	for (int i = 0; i < 20; i++) {
		json_t *f = json_pack("{s:s}", "Title", "retried");
		if (sf_rest_update(c.rest, "Lead", lead_ids[i], f, 0, &e) == SFK_OK)
			single_ok++;
		json_decref(f);
	}
	sim_faults("{}");
	assert_int_equal(rc, SFK_OK);
	int ok = 0;
	for (int i = 0; i < NRECORDS; i++)
		ok += res[i].success;
	assert_int_equal(ok, NRECORDS);
	assert_int_equal(single_ok, 20);
	/* The storm happened and was retried through. */
	assert_true(sim_status_count("503") > s503);
	assert_true(metric_value(retries, "http_5xx") > r5);
	assert_true(metric_value(retries, "lock") > rl);
	assert_int_equal(count_with_description(&c, "retried"), NRECORDS);
	client_close(&c);
}

static void permanent_error_reported_per_record(void **state)
{
	(void)state;
	make_leads();
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	json_t *recs = batch("one-bad", 57);
	struct sf_record_result res[NRECORDS];
	struct sf_error e;
	assert_int_equal(sf_rest_collection_update(c.rest, recs, 0, 0, res, &e), SFK_OK);
	json_decref(recs);
	for (int i = 0; i < NRECORDS; i++) {
		if (i == 57) {
			assert_false(res[i].success);
			assert_int_equal(sfk_err_class(res[i].error.err), SFK_CLASS_PERMANENT);
			assert_string_equal(res[i].error.code, "INVALID_FIELD");
		} else {
			assert_true(res[i].success);
			assert_string_equal(res[i].id, lead_ids[i]);
		}
	}
	assert_int_equal(count_with_description(&c, "one-bad"), NRECORDS - 1);
	client_close(&c);
}

/* Pagination, describe cache, emailSimple, quota governor. */
static void query_describe_email_quota(void **state)
{
	(void)state;
	make_leads();
	long st = 0;
	json_t *j = sim_call("POST", "/sim/records/Lead",
	                     "{\"LastName\":\"Extra\",\"Company\":\"Client IT extra\"}", &st);
	assert_int_equal(st, 201); /* now more than one 200-record page of Leads */
	json_decref(j);
	struct sf_quota *q = g_quota = sf_quota_new(0.80, 0.95, 1000);
	g_batch = 200;
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	g_quota = NULL;
	g_batch = 0;

	struct sf_query *it = NULL;
	struct sf_error e;
	assert_int_equal(sf_query_open(c.rest, "SELECT Id, Company FROM Lead", &it, &e), SFK_OK);
	long long total = sf_query_total(it);
	assert_true(total > NRECORDS);
	long long seen = 0;
	json_t *rec;
	while (sf_query_next(it, &rec, &e) == SFK_OK && rec) {
		assert_true(sfid_valid(json_string_value(json_object_get(rec, "Id"))));
		seen++;
	}
	assert_int_equal(e.err, SFK_OK);
	assert_int_equal(seen, total);
	assert_int_equal(sf_query_pages(it), (int)((total + 199) / 200));
	sf_query_free(&it);

	/* A query URI over the limit is refused before it is sent. */
	char *big = malloc(20000);
	memset(big, 'a', 19999);
	big[19999] = '\0';
	char *soql = NULL;
	assert_true(asprintf(&soql, "SELECT Id FROM Lead WHERE Company = '%s'", big) > 0);
	assert_int_equal(sf_query_open(c.rest, soql, &it, &e), SFK_ERR_TOO_LARGE);
	free(soql);
	free(big);

	/* describe: the second call is served from Redis, the sim sees one. */
	json_t *d1 = NULL, *d2 = NULL;
	struct redis *rd = redis_connect_url(need("REDIS_URL"), NULL, (char[256]){0}, 256);
	assert_non_null(rd);
	char key[128];
	snprintf(key, sizeof key, "sfk:describe:v%s:Lead", need("SF_API_VERSION"));
	redisReply *rep = redis_cmd(rd, "DEL %s", key);
	freeReplyObject(rep);
	long long calls = sim_api_calls();
	assert_int_equal(sf_rest_describe(c.rest, "Lead", &d1, &e), SFK_OK);
	long long after_first = sim_api_calls();
	assert_int_equal(sf_rest_describe(c.rest, "Lead", &d2, &e), SFK_OK);
	long long after_second = sim_api_calls();
	assert_true(after_first > calls);
	assert_int_equal(after_second - after_first, after_first - calls - 1);
	assert_true(json_array_size(json_object_get(d2, "fields")) > 0);
	assert_true(json_equal(d1, d2));
	rep = redis_cmd(rd, "TTL %s", key);
	assert_non_null(rep);
	assert_true(rep->integer > 0 && rep->integer <= 3600);
	freeReplyObject(rep);
	redis_free(rd);
	json_decref(d1);
	json_decref(d2);

	/* emailSimple: one good input; one without a body is a permanent error. */
	json_t *out = NULL;
	json_t *in = json_pack("[{s:s, s:s, s:s}]", "emailAddresses", "lead@example.com",
	                       "emailSubject", "Hello", "emailBody", "Thanks for reaching out");
	assert_int_equal(sf_rest_email_simple(c.rest, in, &out, &e), SFK_OK);
	assert_int_equal(json_array_size(out), 1);
	assert_true(json_is_true(json_object_get(json_array_get(out, 0), "isSuccess")));
	json_decref(out);
	json_decref(in);
	in = json_pack("[{s:s, s:s}]", "emailAddresses", "lead@example.com", "emailSubject", "x");
	out = NULL;
	assert_int_equal(sf_rest_email_simple(c.rest, in, &out, &e), SFK_ERR_SF_PERMANENT);
	assert_true(e.code[0] != '\0');
	json_decref(out);
	json_decref(in);

	/* Sforce-Limit-Info reached the governor: the ratio is the sim's used/max. */
	json_t *stats = sim_call("GET", "/sim/stats", NULL, NULL);
	json_t *usage = json_object_get(stats, "api_usage");
	double sim_ratio = (double)json_integer_value(json_object_get(usage, "used")) /
	                   (double)json_integer_value(json_object_get(usage, "max"));
	json_decref(stats);
	json_t *lim = NULL;
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK);
	json_decref(lim);
	struct metric *ratio = metrics_gauge("sfk_api_usage_ratio",
	                                     "Share of the org's daily API request limit used "
	                                     "(Sforce-Limit-Info api-usage)",
	                                     NULL);
	assert_true(metric_value(ratio) > 0);
	assert_true(metric_value(ratio) >= sim_ratio * 0.5 &&
	            metric_value(ratio) <= sim_ratio * 2 + 0.001);
	assert_true(sf_quota_ratio(q) == metric_value(ratio));
	assert_int_equal(sf_quota_state(q), SF_QUOTA_OK);
	client_close(&c);
	sf_quota_free(&q);
}

static void quota_pause_holds_writes(void **state)
{
	(void)state;
	make_leads();
	struct sf_quota *q = sf_quota_new(0.80, 0.95, 1000);
	g_quota = q;
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	g_quota = NULL;
	struct sf_error e;
	/* The org is at 96% of its daily limit. */
	sf_quota_update(q, 96000, 100000);
	char why[256];
	assert_int_equal(sf_quota_ready(q, why, sizeof why), 0);
	long long self = sim_api_calls();
	self = sim_api_calls() - self; /* does reading /sim/stats count as a call? */
	long long calls = sim_api_calls();
	json_t *f = json_pack("{s:s}", "Title", "paused?");
	assert_int_equal(sf_rest_update(c.rest, "Lead", lead_ids[1], f, 0, &e), SFK_ERR_LIMIT);
	assert_string_equal(e.code, "QUOTA_PAUSED");
	long long after = sim_api_calls();
	assert_int_equal(after - calls, self); /* nothing reached Salesforce */
	/* Essential writes still go. */
	assert_int_equal(sf_rest_update(c.rest, "Lead", lead_ids[1], f, SF_REQ_ESSENTIAL, &e),
	                 SFK_OK);
	json_decref(f);
	client_close(&c);
	sf_quota_free(&q);
}

/* A minter that died holding the lock: waiters take over once the lock
 * expires; a lock held past the wait deadline is an error, not a hang. */
static void dead_minter_lock(void **state)
{
	(void)state;
	char err[256];
	drop_shared_token();
	struct client c;
	g_wait_ms = 3000;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	struct redis *r = redis_connect_url(need("REDIS_URL"), NULL, err, sizeof err);
	assert_non_null(r);
	char lock[128];
	snprintf(lock, sizeof lock, "%s:lock", sf_token_key(c.tokens));
	redisReply *rep = redis_cmd(r, "SET %s dead-process PX 400", lock);
	assert_non_null(rep);
	freeReplyObject(rep);
	long long before = sim_tokens(), t0 = mono_ms();
	struct sf_auth_token tok;
	struct sf_error e;
	assert_int_equal(sf_token_get(c.tokens, &tok, &e), SFK_OK);
	assert_true(mono_ms() - t0 >= 350); /* it did wait for the lock */
	assert_int_equal(sim_tokens() - before, 1);
	sf_auth_token_clear(&tok);
	client_close(&c);

	drop_shared_token();
	g_wait_ms = 300;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	g_wait_ms = 0;
	rep = redis_cmd(r, "SET %s stuck-process PX 10000", lock);
	freeReplyObject(rep);
	t0 = mono_ms();
	assert_int_equal(sf_token_get(c.tokens, &tok, &e), SFK_ERR_TIMEOUT);
	assert_true(mono_ms() - t0 < 2000);
	assert_non_null(strstr(e.message, "waited"));
	rep = redis_cmd(r, "DEL %s", lock);
	freeReplyObject(rep);
	redis_free(r);
	client_close(&c);
}

/* TLS is verified: without the private CA the sim's certificate is refused. */
static void tls_always_verified(void **state)
{
	(void)state;
	struct client c;
	g_no_ca = 1;
	int rc = client_open(&c, NULL, 1000); /* per-process tokens: nothing cached to reuse */
	g_no_ca = 0;
	assert_int_equal(rc, 0);
	json_t *lim = NULL;
	struct sf_error e;
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_ERR_TRANSPORT);
	assert_null(lim);
	assert_non_null(strstr(e.message, "token request"));
	client_close(&c);
}

/* A response past the size cap aborts the transfer. */
static void response_cap_aborts(void **state)
{
	(void)state;
	make_leads();
	struct client c;
	g_max_response = 4096;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 1000), 0);
	g_max_response = 0;
	struct sf_query *it = NULL;
	struct sf_error e;
	assert_int_equal(sf_query_open(c.rest, "SELECT Id, Company FROM Lead", &it, &e),
	                 SFK_ERR_TOO_LARGE);
	assert_null(it);
	/* Small answers still pass. */
	json_t *rec = NULL;
	assert_int_equal(sf_rest_get(c.rest, "Lead", lead_ids[3], "Id,Company", &rec, &e), SFK_OK);
	assert_string_equal(json_string_value(json_object_get(rec, "Company")), "Client IT 003");
	json_decref(rec);
	/* Ids are validated before any request. */
	assert_int_equal(sf_rest_get(c.rest, "Lead", "00Q' OR Id != '", NULL, &rec, &e),
	                 SFK_ERR_INVALID);
	client_close(&c);
}

struct thread_arg {
	struct client *c;
	int ok;
};
static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	struct sf_error e;
	for (int i = 0; i < 50; i++) {
		json_t *l = NULL;
		a->ok += sf_rest_limits(a->c->rest, &l, &e) == SFK_OK;
		json_decref(l);
	}
	return NULL;
}

/* One client (pool, token cache) used by four threads at once. */
static void threads_share_one_client(void **state)
{
	(void)state;
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	pthread_t t[4];
	struct thread_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){.c = &c};
		assert_int_equal(pthread_create(&t[i], NULL, thread_main, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].ok, 50);
	}
	client_close(&c);
}

/* A free loopback port chosen by the kernel (racy in theory; fine for a test). */
static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	close(s);
	return ntohs(a.sin_port);
}

static void redis_down_requests_succeed(void **state)
{
	(void)state;
	/* A Redis of our own (not the private stack's, which later tests may
	 * use), so stopping it disturbs nothing else. Its directory is inside
	 * the stack's, which tests/stack/down removes. */
	assert_true(snprintf(redis_dir, sizeof redis_dir, "%s/own-redis", stack_dir) <
	            (int)sizeof redis_dir);
	assert_true(mkdir(redis_dir, 0700) == 0 || errno == EEXIST);
	int port = free_port();
	char url[64], ports[16];
	snprintf(ports, sizeof ports, "%d", port);
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	fflush(NULL);
	redis_pid = fork();
	assert_true(redis_pid >= 0);
	if (redis_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
		/* Nothing of ours stays open in it: ctest waits for EOF on our
		 * stdout/stderr, so a server holding them would hang the run. */
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		closefrom(3);
		execlp("redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--dir", redis_dir, (char *)NULL);
		_exit(127);
	}
	char err[256];
	struct redis *probe = NULL;
	long long deadline = mono_ms() + 10000;
	while (!(probe = redis_connect_url(url, NULL, err, sizeof err)) && mono_ms() < deadline)
		sleep_ms(20);
	if (!probe)
		fail_msg("own redis-server on %s did not answer within 10 s: %s", url, err);
	redis_free(probe);

	struct client c;
	assert_int_equal(client_open(&c, url, 20000), 0);
	json_t *lim = NULL;
	struct sf_error e;
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK);
	json_decref(lim);
	assert_int_equal(sf_token_degraded(c.tokens), 0);

	kill(redis_pid, SIGKILL);
	assert_int_equal(waitpid(redis_pid, NULL, 0), redis_pid);
	redis_pid = 0;
	/* Force a fresh token while Redis is gone: the session dies at the sim. */
	sim_faults("{\"expire_sessions\":true}");
	for (int i = 0; i < 5; i++) {
		lim = NULL;
		assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK);
		json_decref(lim);
	}
	json_t *f = json_pack("{s:s}", "Title", "no-redis");
	make_leads();
	assert_int_equal(sf_rest_update(c.rest, "Lead", lead_ids[0], f, 0, &e), SFK_OK);
	json_decref(f);
	assert_int_equal(sf_token_degraded(c.tokens), 1);
	struct metric *g = metrics_gauge("sfk_token_cache_degraded",
	                                 "1 while the shared token cache (Redis) is unusable and "
	                                 "this process uses its own token",
	                                 NULL);
	assert_true(metric_value(g) == 1.0);
	client_close(&c);
}

static void private_key_never_logged(void **state)
{
	(void)state;
	FILE *k = fopen(need("SF_PRIVATE_KEY_PATH"), "r");
	assert_non_null(k);
	FILE *l = fopen(log_path, "r");
	assert_non_null(l);
	fseek(l, 0, SEEK_END);
	long size = ftell(l);
	rewind(l);
	assert_true(size > 0); /* the earlier tests did log (retries, degraded cache) */
	char *logs = calloc(1, (size_t)size + 1);
	assert_int_equal(fread(logs, 1, (size_t)size, l), (size_t)size);
	fclose(l);
	assert_non_null(strstr(logs, "retry"));
	char line[256];
	int body_lines = 0;
	while (fgets(line, sizeof line, k)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "-----", 5) == 0 || strlen(line) < 16)
			continue;
		body_lines++;
		if (strstr(logs, line))
			fail_msg("a line of the private key's PEM body is in %s", log_path);
	}
	fclose(k);
	assert_true(body_lines > 5);
	free(logs);
}

int main(void)
{
	if (stack_up() != 0)
		return 1;
	signal(SIGALRM, on_deadline);
	alarm(TEST_DEADLINE_S);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_init("it_sf_client");
	log_set_level(LOG_LVL_DEBUG);
	snprintf(log_path, sizeof log_path, "%s/it_sf_client.%d.log",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	int fd = open(log_path, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		stack_fail("cannot create %s: %s", log_path, strerror(errno));
		return 1;
	}
	log_set_fd(fd);
	fprintf(stderr, "it_sf_client: logs in %s\n", log_path);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(eight_processes_one_token, teardown_children),
	        cmocka_unit_test_teardown(expired_sessions_cost_one_token, teardown_children),
	        cmocka_unit_test(retries_5xx_and_lock_to_success),
	        cmocka_unit_test(permanent_error_reported_per_record),
	        cmocka_unit_test(query_describe_email_quota),
	        cmocka_unit_test(quota_pause_holds_writes),
	        cmocka_unit_test(dead_minter_lock),
	        cmocka_unit_test(tls_always_verified),
	        cmocka_unit_test(response_cap_aborts),
	        cmocka_unit_test(threads_share_one_client),
	        cmocka_unit_test_teardown(redis_down_requests_succeed, reap_leftovers),
	        cmocka_unit_test(private_key_never_logged),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	close(fd);
	if (rc == 0)
		unlink(log_path); /* kept for a look when something failed */
	else
		fprintf(stderr, "it_sf_client: logs kept in %s\n", log_path);
	return rc; /* atexit: tests/stack/down */
}
