/* dlq.c - placeholder until written. */
#include <stdio.h>
#include "cli.h"
int cmd_dlq(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sfk dlq: not implemented yet\n");
	return CLI_FAIL;
}
