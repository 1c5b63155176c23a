/*
 * policy.c - `sfk policy check FILE...` (`sfk policy diff` is policy_diff.c): validate routing,
 * templates and workloads policies against their JSON Schemas in schemas/, printing every problem
 * with its JSON path. The schema is chosen by --kind, else by the file name (routing_policy.json ->
 * schemas/routing_policy.schema.json).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "jschema.h"
#include "policy.h"
#include "xmem.h"

static const char *g_schema_dir, *g_kind, *g_schema;
static bool g_json;

static const char *const kinds[] = {"auto", "routing", "templates", "workloads", NULL};

static const struct config_entry table[] = {
        {"kind", NULL, CONFIG_ENUM, "auto", 0,
         "Policy kind (auto: from the file name: routing*, templates*, workloads*)",
         .dest = &g_kind, .allowed = kinds},
        {"schema-dir", "SFK_SCHEMA_DIR", CONFIG_STRING, "schemas", 0,
         "Directory of the JSON Schemas", .dest = &g_schema_dir},
        {"schema", NULL, CONFIG_STRING, NULL, 0, "Validate against this schema file instead",
         .dest = &g_schema},
        CLI_ENTRY_JSON(&g_json),
};

/* The schema file name of a kind ("routing" -> "routing_policy.schema.json"). */
static const char *kind_schema(const char *kind)
{
	if (strcmp(kind, "routing") == 0)
		return "routing_policy.schema.json";
	if (strcmp(kind, "templates") == 0)
		return "templates.schema.json";
	if (strcmp(kind, "workloads") == 0)
		return "workloads.schema.json";
	return NULL;
}

static const char *guess_kind(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strncmp(base, "routing", 7) == 0)
		return "routing";
	if (strncmp(base, "templates", 9) == 0)
		return "templates";
	if (strncmp(base, "workloads", 9) == 0)
		return "workloads";
	return NULL;
}

json_t *policy_check_file(const char *path, const char *kind, const char *schema_dir,
                          const char *schema_path)
{
	char err[1024], sp[4096];
	json_error_t je;
	json_t *doc = NULL, *errors = NULL;
	json_t *res = json_pack("{s:s}", "file", path);
	struct jschema *s = NULL;
	if (!schema_path) {
		if (!kind || strcmp(kind, "auto") == 0)
			kind = guess_kind(path);
		if (!kind) {
			json_object_set_new(res, "errors",
			                    json_pack("[s]",
			                              "cannot tell the policy kind from the file "
			                              "name: use --kind or --schema"));
			goto out;
		}
		if (snprintf(sp, sizeof sp, "%s/%s", schema_dir, kind_schema(kind)) >=
		    (int)sizeof sp) {
			json_object_set_new(res, "errors",
			                    json_pack("[s]", "schema path too long"));
			goto out;
		}
		schema_path = sp;
	}
	json_object_set_new(res, "schema", json_string(schema_path));
	if (!(s = jschema_load(schema_path, err, sizeof err))) {
		json_object_set_new(res, "errors", json_pack("[s+]", "schema: ", err));
		goto out;
	}
	if (!(doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je))) {
		char *m = xasprintf("line %d column %d: %s", je.line, je.column, je.text);
		json_object_set_new(res, "errors", json_pack("[s]", m));
		free(m);
		goto out;
	}
	jschema_validate(s, doc, &errors);
	json_object_set_new(res, "errors", errors ? errors : json_array());
out:
	json_object_set_new(res, "valid",
	                    json_boolean(json_array_size(json_object_get(res, "errors")) == 0));
	json_decref(doc);
	jschema_free(s);
	return res;
}

int cmd_policy(int argc, char **argv)
{
	struct config *cfg = NULL;
	json_t *all = NULL;
	if (argc > 1 && strcmp(argv[1], "diff") == 0)
		return policy_diff_main(argc - 1, argv + 1);
	all = json_array();
	int rc = cli_config(&cfg, "sfk policy",
	                    "check FILE... [options]   (what-if: sfk policy diff --help)", table,
	                    sizeof table / sizeof table[0], argc, argv);
	if (rc != CONFIG_RUN)
		goto out;
	rc = CLI_USAGE;
	if (config_nargs(cfg) < 2 || strcmp(config_arg(cfg, 0), "check") != 0) {
		fprintf(stderr,
		        "sfk policy: usage: sfk policy check FILE... | sfk policy diff --old A "
		        "--new B --from TIME (see --help)\n");
		goto out;
	}
	rc = CLI_OK;
	for (int i = 1; i < config_nargs(cfg); i++) {
		json_t *r = policy_check_file(config_arg(cfg, i), g_kind, g_schema_dir, g_schema);
		if (!json_is_true(json_object_get(r, "valid")))
			rc = CLI_FAIL;
		json_array_append_new(all, r);
	}
	if (g_json) {
		cli_print_json(all);
		goto out;
	}
	size_t i, j;
	json_t *r, *e;
	json_array_foreach(all, i, r)
	{
		const char *f = json_string_value(json_object_get(r, "file"));
		json_t *errs = json_object_get(r, "errors");
		if (json_array_size(errs) == 0)
			printf("%s: OK\n", f);
		json_array_foreach(errs, j, e) printf("%s: %s\n", f, json_string_value(e));
	}
out:
	json_decref(all);
	config_free(&cfg);
	return rc;
}
