/*
 * export.h - `sfk-loader export`: training data from the JSONL files.
 * openai-chat: one {"messages": request.messages + [response.choices[0].message]}
 * per line, deduplicated by the user prompt (first occurrence wins).
 */
#ifndef SFK_LOADER_EXPORT_H
#define SFK_LOADER_EXPORT_H

#include <jansson.h>
#include <stdio.h>

#include "err.h"

/* The chat example of one flywheel record: a new reference, or NULL when the
 * record has no messages or no assistant message. */
json_t *export_chat(json_t *rec);

/* The de-duplication key of a record: its user messages' contents joined by
 * U+001E. A new string (free()), or NULL if it has none. */
char *export_prompt_key(json_t *rec);

struct export_stats {
	size_t files, read, written, duplicates, skipped;
};

/*
 * Write the examples of workload wl for the days from..to ("YYYY-MM-DD",
 * inclusive) found in dir (plain and .gz files, by day then segment) to out.
 * SFK_OK, SFK_ERR_INVALID (bad dates/workload, errstr says which) or
 * SFK_ERR_IO (a file could not be read or written).
 */
enum sfk_err export_run(const char *dir, const char *wl, const char *from, const char *to,
                        FILE *out, struct export_stats *st, char *errstr, size_t errlen);

#endif
