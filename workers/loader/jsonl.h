/*
 * jsonl.h - the JSONL file layout shared by the JSONL sink and the export
 * command: <dir>/<workload_id>_<YYYY-MM-DD>[.<n>].jsonl[.gz], by the
 * record's own timestamp (UTC); segment n >= 1 after size rotation; .gz once
 * the day is closed and compressed.
 */
#ifndef SFK_LOADER_JSONL_H
#define SFK_LOADER_JSONL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JSONL_DAY_LEN  10            /* "YYYY-MM-DD" */
#define JSONL_NAME_MAX 255           /* file name limit */
#define JSONL_LINE_MAX (1024 * 1024) /* longest line read back (records are <= 256 KiB) */

/* "YYYY-MM-DD" (UTC) of ts into day[JSONL_DAY_LEN + 1]. Returns 0, -1 if ts
 * is out of range. */
int jsonl_day(int64_t ts, char *day);
/* Epoch seconds of 00:00 UTC of "YYYY-MM-DD", or -1 if not a valid date. */
int64_t jsonl_day_start(const char *day);
/* A workload id usable in a file name: [a-z0-9_.-]+, not starting with '.'. */
bool jsonl_workload_ok(const char *wl);
/* File name of a segment (seg 0 = no number). Returns 0, -1 if too long. */
int jsonl_name(const char *wl, const char *day, int seg, bool gz, char *out, size_t outlen);
/* Parse a file name made by jsonl_name(). wl gets the workload (wlsize
 * bytes), day the date. Returns 0, -1 if the name is not ours. */
int jsonl_parse_name(const char *name, char *wl, size_t wlsize, char *day, int *seg, bool *gz);

/* Callback for each line (without newline) read back. */
typedef void (*jsonl_line_fn)(void *ctx, const char *line, size_t len);

/*
 * Crash recovery of one file open for append (fd): cut a torn last line
 * (no trailing newline, or not a JSON object) and fsync. Returns the new
 * size or -1 (errno set).
 */
off_t jsonl_repair_tail(int fd);
/*
 * Read back (at most) the last `lines` complete lines of fd (size bytes)
 * and call fn for each, oldest first. Returns the number of lines read or
 * -1 (errno set).
 */
long jsonl_tail_lines(int fd, off_t size, size_t lines, jsonl_line_fn fn, void *ctx);

/* Spawn `gzip -dc path` (no shell) and return its stdout, or NULL. Close it
 * with jsonl_pclose(). For plain files the file itself is opened. */
struct jsonl_reader;
struct jsonl_reader *jsonl_open_read(const char *path, bool gz);
/* Next line (without newline) or NULL at the end; borrowed until the next call. */
const char *jsonl_read_line(struct jsonl_reader *r, size_t *len);
/* Close; returns 0 if the whole file was read without error. Clears *r. */
int jsonl_close_read(struct jsonl_reader **r);

#endif
