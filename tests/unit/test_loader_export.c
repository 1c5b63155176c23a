/* Unit tests for `sfk-loader export --format openai-chat`: each line is
 * {"messages": request.messages + [response.choices[0].message]}, one per
 * distinct user prompt, read from plain and gzipped day files in range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../workers/loader/export.c"
#include "../../workers/loader/idset.c"
#include "../../workers/loader/jsonl.c"

static json_t *rec(const char *did, const char *prompt, const char *answer)
{
	return json_pack("{sisssss{ss s[{ssss}{ssss}] s{ss}}s{s[{sis{ssss}ss}]}}", "timestamp",
	                 1795564800, "client_id", "c", "workload_id", "lead.route", "request",
	                 "model", "m", "messages", "role", "system", "content", "Route.", "role",
	                 "user", "content", prompt, "metadata", "decision_id", did, "response",
	                 "choices", "index", 0, "message", "role", "assistant", "content", answer,
	                 "finish_reason", "stop");
}

static void write_file(const char *path, json_t **recs, size_t n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++) {
		char *s = json_dumps(recs[i], JSON_COMPACT);
		fprintf(f, "%s\n", s);
		free(s);
	}
	fclose(f);
}

static void test_chat_shape(void **state)
{
	(void)state;
	json_t *r = rec("d1", "{\"Company\":\"Acme\"}", "{\"owner\":\"x\"}");
	json_t *ex = export_chat(r);
	assert_non_null(ex);
	assert_int_equal(json_object_size(ex), 1);
	json_t *m = json_object_get(ex, "messages");
	assert_int_equal(json_array_size(m), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "role")),
	                    "system");
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "content")),
	                    "{\"Company\":\"Acme\"}");
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 2), "role")),
	                    "assistant");
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 2), "content")),
	                    "{\"owner\":\"x\"}");
	char *k = export_prompt_key(r);
	assert_string_equal(k, "{\"Company\":\"Acme\"}");
	free(k);
	json_decref(ex);
	json_decref(r);
	json_t *bad = json_pack("{s{s[]}}", "request", "messages");
	assert_null(export_chat(bad));
	json_decref(bad);
}

static void test_run_dedup_and_range(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_loader_export.XXXXXX";
	assert_non_null(mkdtemp(dir));
	json_t *a[] = {rec("d1", "P1", "A1"), rec("d2", "P2", "A2"), rec("d3", "P1", "A1bis")};
	json_t *b[] = {rec("d4", "P3", "A3"), rec("d5", "P2", "A2bis")};
	json_t *c[] = {rec("d6", "P9", "A9")};
	char *p = xasprintf("%s/lead.route_2026-11-25.jsonl", dir);
	write_file(p, a, 3);
	free(p);
	p = xasprintf("%s/lead.route_2026-11-26.1.jsonl", dir);
	write_file(p, b, 2);
	char *cmd = xasprintf("gzip -n '%s'", p); /* a closed, compressed segment */
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(p);
	p = xasprintf("%s/lead.route_2026-11-28.jsonl", dir); /* out of range */
	write_file(p, c, 1);
	free(p);
	p = xasprintf("%s/other_2026-11-25.jsonl", dir); /* other workload */
	write_file(p, c, 1);
	free(p);

	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	struct export_stats st;
	char err[256];
	assert_int_equal(
	        export_run(dir, "lead.route", "2026-11-25", "2026-11-27", f, &st, err, sizeof err),
	        SFK_OK);
	fclose(f);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.read, 5);
	assert_int_equal(st.written, 3);
	assert_int_equal(st.duplicates, 2);
	/* Every line is valid chat JSON; prompts P1, P2, P3 once, first answer kept. */
	const char *want_prompt[] = {"P1", "P2", "P3"}, *want_answer[] = {"A1", "A2", "A3"};
	size_t i = 0;
	for (char *line = out, *nl; *line; line = nl + 1, i++) {
		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		json_t *j = json_loads(line, 0, NULL);
		assert_non_null(j);
		json_t *m = json_object_get(j, "messages");
		assert_int_equal(json_array_size(m), 3);
		assert_true(i < 3);
		assert_string_equal(
		        json_string_value(json_object_get(json_array_get(m, 1), "content")),
		        want_prompt[i]);
		assert_string_equal(
		        json_string_value(json_object_get(json_array_get(m, 2), "content")),
		        want_answer[i]);
		json_decref(j);
	}
	assert_int_equal(i, 3);
	free(out);
	assert_int_equal(export_run(dir, "lead.route", "2026-11-27", "2026-11-25", stdout, &st, err,
	                            sizeof err),
	                 SFK_ERR_INVALID);
	for (size_t k = 0; k < 3; k++)
		json_decref(a[k]);
	json_decref(b[0]);
	json_decref(b[1]);
	json_decref(c[0]);
	cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_chat_shape),
	        cmocka_unit_test(test_run_dedup_and_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
