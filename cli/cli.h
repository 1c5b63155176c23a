/*
 * cli.h - what the sfk subcommands share: the command table, exit codes,
 * shared settings (Kafka, topic prefix, --json) and output helpers (aligned
 * tables on a terminal, JSON for scripts). Results go to stdout, everything
 * else (notes, progress, errors) to stderr.
 */
#ifndef SFK_CLI_H
#define SFK_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config.h"

/* Exit statuses (sysexits where they fit). */
#define CLI_OK      0
#define CLI_FAIL    1  /* the command ran and found problems, or failed */
#define CLI_USAGE   2  /* bad arguments */
#define CLI_NOINPUT 66 /* EX_NOINPUT: an input file is missing */

/* One subcommand: argv[0] is the command name ("topics"). */
struct cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int cmd_topics(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_decide(int argc, char **argv);
int cmd_backfill(int argc, char **argv);

/* Shared settings, as config table entries (dest: const char ** / bool *). */
#define CLI_ENTRY_BOOTSTRAP(d_)                                                                    \
	{                                                                                          \
		"kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STRING, NULL, 0,      \
		        "Kafka brokers (KAFKA_* variables pass through to librdkafka)",            \
		        .dest = (d_)                                                               \
	}
#define CLI_ENTRY_PREFIX(d_)                                                                       \
	{                                                                                          \
		"prefix", "SFK_TOPIC_PREFIX", CONFIG_STRING, "sfk.", CONFIG_REQUIRED,              \
		        "Prefix of every Kafka topic", .dest = (d_)                                \
	}
#define CLI_ENTRY_JSON(d_)                                                                         \
	{                                                                                          \
		"json", NULL, CONFIG_BOOL, "false", 0, "Machine-readable JSON on stdout",          \
		        .dest = (d_)                                                               \
	}

/*
 * Load a subcommand's configuration: config_load() with exit codes mapped to
 * the CLI's (problems -> CLI_USAGE). Returns CONFIG_RUN to go on, or the exit
 * status; *cfg is the new config either way (config_free()).
 */
int cli_config(struct config **cfg, const char *prog, const char *synopsis,
               const struct config_entry *entries, size_t n, int argc, char **argv);

/* Workload ids from a workloads policy file (keys of "workloads"), or the
 * three of DESIGN.md section 2 when path is NULL/unreadable. New reference
 * (array of strings). */
json_t *cli_workloads(const char *path);

/* Split "a,b,c" into a new JSON array of non-empty, trimmed strings. */
json_t *cli_split(const char *s);

/* "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HHMM|+HH:MM)" (no zone: UTC) -> epoch
 * seconds, or NAN when malformed. */
double cli_parse_time(const char *s);

/* stdout is a terminal (human output) / stderr is a terminal (progress). */
bool cli_stdout_tty(void);
bool cli_stderr_tty(void);

/*
 * A table: rows of strings, printed with aligned columns. Cells are copied.
 */
struct cli_table;
struct cli_table *cli_table_new(size_t ncols, const char *const *headers);
void cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(const struct cli_table *t);
void cli_table_free(struct cli_table **t);

/* Print a JSON value on stdout (indented), followed by a newline. */
void cli_print_json(const json_t *v);

/* Read a whole file into a new NUL-terminated buffer (free()), at most max
 * bytes; NULL with errno set on failure (EFBIG when larger). */
char *cli_read_file(const char *path, size_t max, size_t *len);

#endif
