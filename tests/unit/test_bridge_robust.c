/*
 * Property tests for the bridge's parsers on hostile input (a deterministic
 * mutation fuzzer, run under the ASan build too): for any mutation of a
 * golden CometD message, normalize_message() either produces envelopes that
 * satisfy schemas/event.schema.json (and fan-out routes them without
 * crashing) or a permanent error whose reason names a JSON path; any
 * mutation of a recorded Bayeux body parses or is refused, never crashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bridge/cometd.c"
#include "../../bridge/fanout.c"
#include "../../bridge/normalize.c"
#include "jschema.h"

#define ROUNDS_PER_CASE 400

static uint64_t rng = 0x5eed5eedULL;

static uint64_t rnd(void)
{
	return xorshift(&rng);
}

static const char *src_dir(void)
{
	const char *d = getenv("SFK_SOURCE_DIR");
	if (!d || !*d)
		fail_msg("SFK_SOURCE_DIR is not set (run through ctest, or export the repo root)");
	return d;
}

/* A random JSON value of a random type, including the awkward ones. */
static json_t *random_value(void)
{
	switch (rnd() % 9) {
	case 0: return json_null();
	case 1: return json_true();
	case 2: return json_integer((json_int_t)rnd());
	case 3: return json_real(-1.5);
	case 4: return json_string("");
	case 5: return json_string("00Q*");
	case 6: return json_pack("[s,i]", "x", 1);
	case 7: return json_pack("{s:s}", "k", "v");
	default: return json_string("GAP_OVERFLOW");
	}
}

/* Pick a random object among root and its nested objects (depth <= 4). */
static json_t *random_object(json_t *root)
{
	json_t *cur = root;
	for (int d = 0; d < 4; d++) {
		size_t n = json_object_size(cur);
		if (n == 0 || rnd() % 3 == 0)
			break;
		size_t k = rnd() % n, i = 0;
		const char *key;
		json_t *v, *next = NULL;
		json_object_foreach(cur, key, v)
		{
			if (i++ == k && json_is_object(v))
				next = v;
		}
		if (!next)
			break;
		cur = next;
	}
	return cur;
}

static void mutate(json_t *msg)
{
	int edits = 1 + (int)(rnd() % 3);
	for (int e = 0; e < edits; e++) {
		json_t *o = random_object(msg);
		size_t n = json_object_size(o);
		if (n == 0)
			continue;
		size_t k = rnd() % n, i = 0;
		const char *key, *pick = NULL;
		json_t *v;
		json_object_foreach(o, key, v) if (i++ == k) pick = key;
		char *name = xstrdup(pick);
		if (rnd() % 3 == 0)
			json_object_del(o, name);
		else
			json_object_set_new(o, name, random_value());
		free(name);
	}
}

static void normalize_never_lies(void **state)
{
	(void)state;
	char path[8192], err[512];
	json_error_t je;
	snprintf(path, sizeof path, "%s/schemas/event.schema.json", src_dir());
	struct jschema *s = jschema_load(path, err, sizeof err);
	assert_non_null(s);
	char pol[4096], sch[4096];
	snprintf(pol, sizeof pol, "%s/policies/workloads.json", src_dir());
	snprintf(sch, sizeof sch, "%s/schemas/workloads.schema.json", src_dir());
	struct fanout *f = fanout_load(pol, sch, NULL, err, sizeof err);
	assert_non_null(f);

	char dir[4096];
	snprintf(dir, sizeof dir, "%s/tests/golden/normalize", src_dir());
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	size_t ok = 0, refused = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s/input.json", dir, de->d_name);
		json_t *orig = json_load_file(path, 0, &je);
		assert_non_null(orig);
		for (int r = 0; r < ROUNDS_PER_CASE; r++) {
			json_t *m = json_deep_copy(orig);
			mutate(m);
			struct normalize_opts o = {.client_id = "sfk-kpis"};
			struct normalize_result res;
			enum sfk_err rc = normalize_message(&o, m, &res, err, sizeof err);
			if (rc != SFK_OK) {
				assert_int_equal(sfk_err_class(rc), SFK_CLASS_PERMANENT);
				assert_true(err[0] == '$');
				assert_int_equal(res.n, 0);
				refused++;
			} else {
				for (size_t i = 0; i < res.n; i++) {
					json_t *errs = NULL;
					if (jschema_validate(s, res.records[i].value, &errs) != 0) {
						char *t = json_dumps(errs, 0),
						     *in = json_dumps(m, 0);
						fail_msg("accepted input gives an invalid "
						         "envelope: %s\n"
						         "input: %s",
						         t, in);
					}
					json_decref(errs);
					struct fanout_target t[8];
					size_t nt = fanout_route(f, res.records[i].value, t, 8);
					for (size_t k = 0; k < nt; k++)
						assert_true(t[k].key[0] != '\0');
				}
				ok++;
				normalize_result_free(&res);
			}
			json_decref(m);
		}
		json_decref(orig);
	}
	closedir(d);
	print_message("normalize: %zu accepted, %zu refused\n", ok, refused);
	assert_true(ok > 0 && refused > 0); /* the mutations explore both sides */
	fanout_free(&f);
	jschema_free(s);
}

static void bayeux_bodies_never_crash(void **state)
{
	(void)state;
	static const char *const files[] = {
	        "handshake-response.kdcllc-issue-43.json",
	        "connect-403-unknown-client.kdcllc-issue-43.json",
	        "subscribe-400-invalid-replayid-full.skitlabs-bayeux-client.json",
	};
	static const char junk[] = "[]{}\",:0-9eE.\\u<>tfn \x01\xff";
	char path[4096], err[256];
	size_t parsed = 0;
	for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
		snprintf(path, sizeof path, "%s/tests/golden/cometd/%s", src_dir(), files[fi]);
		FILE *fp = fopen(path, "rb");
		assert_non_null(fp);
		char orig[4096];
		size_t len = fread(orig, 1, sizeof orig, fp);
		fclose(fp);
		for (int r = 0; r < 3000; r++) {
			char buf[4096];
			size_t n = len;
			memcpy(buf, orig, len);
			for (int e = 0; e < 1 + (int)(rnd() % 4); e++) {
				size_t at = rnd() % n;
				switch (rnd() % 3) {
				case 0: buf[at] = junk[rnd() % (sizeof junk - 1)]; break;
				case 1: n = at; break; /* truncated body */
				default:
					if (n < sizeof buf - 1) {
						memmove(buf + at + 1, buf + at, n - at);
						buf[at] = junk[rnd() % (sizeof junk - 1)];
						n++;
					}
				}
				if (n == 0)
					break;
			}
			json_t *msgs = NULL;
			if (cometd_parse_response(buf, n, &msgs, err, sizeof err) == SFK_OK) {
				size_t i;
				json_t *m;
				json_array_foreach(msgs, i, m)
				{
					struct cometd_verdict v;
					cometd_verdict_of(m, &v);
					assert_true(v.action >= COMETD_ACT_OK &&
					            v.action <= COMETD_ACT_FATAL);
				}
				json_decref(msgs);
				parsed++;
			} else {
				assert_null(msgs);
				assert_true(err[0] != '\0');
			}
		}
	}
	assert_true(parsed > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(normalize_never_lies),
	        cmocka_unit_test(bayeux_bodies_never_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
