/* doctor.c - placeholder until written. */
#include <stdio.h>
#include "cli.h"
int cmd_doctor(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sfk doctor: not implemented yet\n");
	return CLI_FAIL;
}
