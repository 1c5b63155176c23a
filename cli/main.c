/*
 * sfk - the operator's command: dispatches `sfk <command> ...` to one file
 * per command (topics.c, policy.c, doctor.c, dlq.c, replay.c, report.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"

int cmd_notify(int argc, char **argv); /* notify.c */

static const struct cli_cmd cmds[] = {
        {"topics", "create|describe the Kafka topics (DESIGN.md section 3)", cmd_topics},
        {"policy", "check FILE | diff --old A --new B: validate, or what-if", cmd_policy},
        {"doctor", "check the whole set-up, one line per check with its fix", cmd_doctor},
        {"dlq", "list|show|retry dead letters of a workload", cmd_dlq},
        {"replay", "--reset a stopped group to a time, or --shadow decisions", cmd_replay},
        {"report", "flywheel metrics: dashboard JSON, CSVs and an HTML report", cmd_report},
        {"notify", "test --target NAME: send a test notification, print the HTTP status",
         cmd_notify},
        {"decide", "one workload's decision for one Lead (--apply writes it)", cmd_decide},
        {"backfill", "history from Salesforce through the bridge's fan-out", cmd_backfill},
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static void usage(FILE *f)
{
	fprintf(f, "Usage: sfk <command> [options]\n\nCommands:\n");
	for (size_t i = 0; i < NCMDS; i++)
		fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "  %-8s %s\n", "help", "this list, or `sfk help <command>`");
	fprintf(f, "\n`sfk <command> --help` lists a command's options (each with its "
	           "environment variable).\nExit status: 0 ok, 1 failure, 2 usage.\n");
}

static const struct cli_cmd *find(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	log_init("sfk");
	/* library info lines would drown the results; errors still show */
	log_set_level(LOG_LVL_ERROR);
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
		printf("sfk %s\n", SFK_VERSION);
		return CLI_OK;
	}
	if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
		if (argc > 2 && strcmp(name, "help") == 0) {
			const struct cli_cmd *c = find(argv[2]);
			if (!c) {
				fprintf(stderr, "sfk: unknown command '%s'\n", argv[2]);
				return CLI_USAGE;
			}
			char *hargv[] = {argv[2], (char *)"--help", NULL};
			return c->run(2, hargv);
		}
		usage(stdout);
		return CLI_OK;
	}
	const struct cli_cmd *c = find(name);
	if (!c) {
		fprintf(stderr, "sfk: unknown command '%s'\n", name);
		usage(stderr);
		return CLI_USAGE;
	}
	return c->run(argc - 1, argv + 1);
}
