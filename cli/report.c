/* report.c - placeholder until written. */
#include <stdio.h>
#include "cli.h"
int cmd_report(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sfk report: not implemented yet\n");
	return CLI_FAIL;
}
