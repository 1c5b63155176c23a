/*
 * config.h - one configuration table per process (redis static_configs[] shape).
 *
 * Each setting has a flag name, an environment variable, a type, a default and
 * help text. Sources, lowest first: default < environment < command line
 * (`--name value` or `--name=value`). Parsing reports EVERY problem (OpenSMTPD
 * errors++), one line each, naming the flag and its variable. An empty
 * environment variable counts as unset (Helm renders absent values as ""). Secrets are
 * never printed: not in --help, not in problems, not in config_dump().
 *
 *   static const char *g_log_level, *g_brokers;
 *   static long long g_batch;
 *   static const struct config_entry table[] = {
 *       {"kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STRING, NULL,
 *        CONFIG_REQUIRED, "Kafka brokers", .dest = &g_brokers},
 *       {"log-level", "LOG_LEVEL", CONFIG_ENUM, "info", 0, "Minimum log level",
 *        &g_log_level, .allowed = (const char *const[]){"debug", "info", "warn", "error", NULL}},
 *       {"batch-size", "SFK_BATCH_SIZE", CONFIG_INT, "200", 0, "Records per call",
 *        &g_batch, .min = 1, .max = 200},
 *   };
 *   struct config *cfg = config_new("sfk-worker", table, sizeof table / sizeof table[0]);
 *   int rc = config_load(cfg, argc, argv);   // handles --help/--version/--check-config
 *   if (rc != CONFIG_RUN) { config_free(&cfg); return rc; }
 *
 * Name the fields after help by designator (.dest = &v, .min = 1): -Wextra
 * warns about positional initializers that leave trailing fields out.
 */
#ifndef SFK_CONFIG_H
#define SFK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct config;

enum config_type {
	CONFIG_STRING,   /* dest: const char ** (owned by the config)              */
	CONFIG_INT,      /* dest: long long *; bounds min..max when min < max      */
	CONFIG_BOOL,     /* dest: bool *; true/false/1/0/yes/no/on/off; `--name`    */
	                 /* alone on the command line means true                  */
	CONFIG_DURATION, /* dest: long long * in milliseconds; "500ms", "5s", "2m", */
	                 /* "1h", "1m30s", "0"; bounds min..max (ms) when min < max */
	CONFIG_ENUM,     /* dest: const char ** pointing into allowed[]            */
	CONFIG_PATH,     /* dest: const char **; the file must exist and be readable */
	CONFIG_URL       /* dest: const char **; scheme://host[:port][/...]        */
};

/* entry flags */
#define CONFIG_REQUIRED 0x1u /* a value must come from env or flag (or default) */
#define CONFIG_SECRET   0x2u /* never printed; shown as <secret> */

struct config_entry;

/*
 * Per-setting validator: called after the value parsed and passed the type
 * checks (not called when the setting has no value). Report problems with
 * config_problem(c, e, ...). Read the value through e->dest or the accessors.
 */
typedef void (*config_check_fn)(struct config *c, const struct config_entry *e);
/* Whole-config validator (cross-field checks), run after every entry parsed. */
typedef void (*config_validate_fn)(struct config *c, void *ctx);

struct config_entry {
	const char *name; /* flag without dashes: "kafka-bootstrap-servers" */
	const char *env;  /* "KAFKA_BOOTSTRAP_SERVERS", or NULL: flag only */
	enum config_type type;
	const char *def; /* default as text, NULL = no default (unset) */
	unsigned flags;  /* CONFIG_REQUIRED | CONFIG_SECRET */
	const char *help;
	void *dest;         /* where the parsed value is stored (see enum config_type), or NULL */
	long long min, max; /* CONFIG_INT / CONFIG_DURATION bounds, used if min < max */
	const char *const *allowed; /* CONFIG_ENUM: NULL-terminated list */
	config_check_fn check;      /* optional */
};

/* Exit statuses returned by config_load(). */
#define CONFIG_RUN       (-1) /* go on: the configuration is valid */
#define CONFIG_EXIT_OK   0    /* --help, --version, --check-config OK */
#define CONFIG_EXIT_FAIL 78   /* EX_CONFIG: at least one problem */

/*
 * prog: program name for --help/--version (borrowed, e.g. a literal).
 * table: borrowed, must outlive the config (normally static const).
 * Returns a new config (config_free()); never NULL. A malformed table
 * (duplicate name, enum without allowed[]) aborts: a programming error.
 */
struct config *config_new(const char *prog, const struct config_entry *table, size_t n);
/*
 * Add more settings (e.g. a module's own table, like the Salesforce client's
 * SF_* settings) before config_parse(); same rules as config_new's table.
 * Entries keep their order in --help; table borrowed, must outlive c.
 */
void config_add_table(struct config *c, const struct config_entry *table, size_t n);
/* Frees the config and its strings (dest pointers into it dangle); clears *c. NULL ok. */
void config_free(struct config **c);

/* Text after "Usage: <prog> " in --help (copied); default "[options]". */
void config_set_synopsis(struct config *c, const char *synopsis);

/* Register the whole-config validator (one; the last call wins). ctx borrowed. */
void config_set_validator(struct config *c, config_validate_fn fn, void *ctx);

/*
 * Parse defaults, environment (getenv) and argv (argv[0] skipped), storing
 * into each entry's dest. Collects every problem. Returns the number of
 * problems (0 = valid). Does not print anything. Can be called once.
 * Standard flags --help, --version, --check-config are recognised and
 * recorded (config_wants()), not treated as unknown.
 */
int config_parse(struct config *c, int argc, char **argv);

/*
 * The helper every main() calls: config_parse(), then
 *   --help          -> usage on stdout, returns CONFIG_EXIT_OK
 *   --version       -> "<prog> <SFK_VERSION>" on stdout, returns CONFIG_EXIT_OK
 *   --check-config  -> "configuration OK" on stdout and CONFIG_EXIT_OK, or one
 *                      line per problem on stderr and CONFIG_EXIT_FAIL
 *   otherwise       -> problems on stderr and CONFIG_EXIT_FAIL, or CONFIG_RUN.
 * --help and --version win even when there are problems.
 */
int config_load(struct config *c, int argc, char **argv);

/* Standard flag seen on the command line: "help", "version", "check-config". */
bool config_wants(const struct config *c, const char *std_flag);

/*
 * Add a problem about entry e (NULL: a general problem). The line becomes
 * "--<name> (<ENV>): <message>". Never pass a secret's value in the message.
 * Used by check/validator callbacks; may also be called by main() after
 * config_parse() for checks it does itself.
 */
void config_problem(struct config *c, const struct config_entry *e, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
size_t config_nproblems(const struct config *c);
/* i-th problem line, without newline; borrowed, valid while c lives. */
const char *config_problem_str(const struct config *c, size_t i);
/* Write every problem line to f (one line each). */
void config_print_problems(const struct config *c, FILE *f);

/* Usage text generated from the table (flag, env var, default, help; secrets
 * shown as <secret>). Returns a new string (free()). */
char *config_usage(const struct config *c);
/* Effective values, one "name=value (source)" per line, secrets as <secret>.
 * Returns a new string (free()). For start-up logs and debugging. */
char *config_dump(const struct config *c);

/*
 * Accessors by setting name (after config_parse()). An unknown name or a
 * type mismatch aborts (programming error). Strings are borrowed, valid while
 * c lives; NULL when unset.
 */
const char *config_str(const struct config *c, const char *name); /* string/enum/path/url */
long long config_int(const struct config *c, const char *name);
bool config_bool(const struct config *c, const char *name);
long long config_ms(const struct config *c, const char *name); /* duration */
/* Has a value at all (from any source, default included). */
bool config_has(const struct config *c, const char *name);
/* Value came from env or command line, not the default. */
bool config_is_set(const struct config *c, const char *name);

/* Positional arguments left after the flags ("--" ends the flags). Borrowed from argv. */
int config_nargs(const struct config *c);
const char *config_arg(const struct config *c, int i);

/* Parsers shared with other modules. Return 0 on success, -1 on bad input. */
int config_parse_duration_ms(const char *s, long long *out);
int config_parse_bool(const char *s, bool *out);

#endif
