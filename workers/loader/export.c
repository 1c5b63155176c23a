/*
 * export.c - openai-chat training JSONL from the loader's files.
 */
#include "export.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"
#include "jsonl.h"
#include "xmem.h"

json_t *export_chat(json_t *rec)
{
	json_t *msgs = json_object_get(json_object_get(rec, "request"), "messages");
	json_t *choice =
	        json_array_get(json_object_get(json_object_get(rec, "response"), "choices"), 0);
	json_t *answer = json_object_get(choice, "message");
	if (!json_is_array(msgs) || json_array_size(msgs) == 0 || !json_is_object(answer))
		return NULL;
	json_t *out = json_array(), *m;
	size_t i;
	json_array_foreach(msgs, i, m)
	{
		/* Keep only the chat fields a fine-tuning job reads. */
		json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
		if (!json_is_string(role) || !json_is_string(content)) {
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, json_pack("{sOsO}", "role", role, "content", content));
	}
	json_t *role = json_object_get(answer, "role"),
	       *content = json_object_get(answer, "content");
	if (!json_is_string(content)) {
		json_decref(out);
		return NULL;
	}
	json_array_append_new(
	        out, json_pack("{sssO}", "role",
	                       json_is_string(role) ? json_string_value(role) : "assistant",
	                       "content", content));
	return json_pack("{so}", "messages", out);
}

char *export_prompt_key(json_t *rec)
{
	json_t *msgs = json_object_get(json_object_get(rec, "request"), "messages"), *m;
	size_t i, len = 0;
	char *key = NULL;
	json_array_foreach(msgs, i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content");
		if (!role || strcmp(role, "user") != 0 || !json_is_string(c))
			continue;
		size_t cl = json_string_length(c);
		key = xrealloc(key, len + cl + 2);
		if (len)
			key[len++] = '\x1e';
		memcpy(key + len, json_string_value(c), cl);
		len += cl;
		key[len] = '\0';
	}
	return key;
}

struct efile {
	char name[JSONL_NAME_MAX + 1];
	char day[JSONL_DAY_LEN + 1];
	int seg;
	bool gz;
};

static int cmp_efile(const void *a, const void *b)
{
	const struct efile *x = a, *y = b;
	int c = strcmp(x->day, y->day);
	if (c)
		return c;
	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return (int)y->gz - (int)x->gz; /* .gz first: its plain twin is skipped */
}

enum sfk_err export_run(const char *dir, const char *wl, const char *from, const char *to,
                        FILE *out, struct export_stats *st, char *errstr, size_t errlen)
{
	enum sfk_err rc = SFK_OK;
	struct efile *files = NULL;
	size_t n = 0, cap = 0;
	struct idset *seen = NULL;
	DIR *d = NULL;
	memset(st, 0, sizeof *st);
	if (!jsonl_workload_ok(wl) || jsonl_day_start(from) < 0 || jsonl_day_start(to) < 0 ||
	    strcmp(from, to) > 0) {
		snprintf(errstr, errlen, "need --workload, and --from <= --to as YYYY-MM-DD dates");
		return SFK_ERR_INVALID;
	}
	if (!(d = opendir(dir))) {
		snprintf(errstr, errlen, "cannot open %s", dir);
		return SFK_ERR_IO;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		struct efile f;
		char w[130];
		if (jsonl_parse_name(e->d_name, w, sizeof w, f.day, &f.seg, &f.gz) != 0 ||
		    strcmp(w, wl) != 0 || strcmp(f.day, from) < 0 || strcmp(f.day, to) > 0)
			continue;
		snprintf(f.name, sizeof f.name, "%s", e->d_name);
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			files = xrealloc(files, cap * sizeof *files);
		}
		files[n++] = f;
	}
	closedir(d);
	qsort(files, n, sizeof *files, cmp_efile);
	seen = idset_new(0);
	for (size_t i = 0; i < n && rc == SFK_OK; i++) {
		if (i > 0 && !files[i].gz && files[i - 1].gz && files[i - 1].seg == files[i].seg &&
		    strcmp(files[i - 1].day, files[i].day) == 0)
			continue; /* a compression finished before a crash: same data */
		char *path = xasprintf("%s/%s", dir, files[i].name);
		struct jsonl_reader *r = jsonl_open_read(path, files[i].gz);
		if (!r) {
			snprintf(errstr, errlen, "cannot read %s", path);
			free(path);
			rc = SFK_ERR_IO;
			break;
		}
		st->files++;
		const char *line;
		size_t len;
		while ((line = jsonl_read_line(r, &len))) {
			st->read++;
			json_t *rec = json_loadb(line, len, 0, NULL);
			json_t *ex = rec ? export_chat(rec) : NULL;
			char *key = ex ? export_prompt_key(rec) : NULL;
			if (!ex || !key) {
				st->skipped++;
			} else if (!idset_add(seen, key, strlen(key))) {
				st->duplicates++;
			} else {
				char *s = json_dumps(ex, JSON_COMPACT);
				if (!s || fprintf(out, "%s\n", s) < 0)
					rc = SFK_ERR_IO;
				free(s);
				st->written++;
			}
			free(key);
			json_decref(ex);
			json_decref(rec);
		}
		if (jsonl_close_read(&r) != 0 && rc == SFK_OK) {
			snprintf(errstr, errlen, "error reading %s", path);
			rc = SFK_ERR_IO;
		}
		free(path);
	}
	if (fflush(out) != 0 && rc == SFK_OK) {
		snprintf(errstr, errlen, "cannot write the output");
		rc = SFK_ERR_IO;
	}
	idset_free(&seen);
	free(files);
	return rc;
}
