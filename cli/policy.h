/*
 * policy.h - policy validation shared by `sfk policy check` and `sfk doctor`,
 * and `sfk policy diff` (policy_diff.c).
 */
#ifndef SFK_CLI_POLICY_H
#define SFK_CLI_POLICY_H

#include <jansson.h>

/*
 * Validate the policy file path against schema_path, or when that is NULL
 * against <schema_dir>/<kind's schema> (kind "routing", "templates",
 * "workloads", or NULL/"auto": from the file name). Returns a new reference
 * {file, schema, valid, errors: ["$.path: problem", ...]}; never NULL.
 */
json_t *policy_check_file(const char *path, const char *kind, const char *schema_dir,
                          const char *schema_path);

/* `sfk policy diff ...` (policy_diff.c); argv[0] = "diff". Exit status. */
int policy_diff_main(int argc, char **argv);

#endif
