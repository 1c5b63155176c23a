/*
 * sla.h - lead.sla_watch's pure core: time zones from TZif files, working-time
 * arithmetic over weekly business hours, and the SLA part of the routing policy
 * (business_hours per region, sla_escalation). No sockets, no process state:
 * every object is immutable after loading, so any thread may read it.
 */
#ifndef SFK_SLA_H
#define SFK_SLA_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SLA_TZ_NAME_MAX  64        /* "America/Argentina/Buenos_Aires" fits */
#define SLA_TZ_FILE_MAX  (1 << 20) /* a TZif file larger than this is refused */
#define SLA_WINDOWS_MAX  8         /* business-hour windows per weekday */
#define SLA_REGIONS_MAX  64        /* regions with business hours */
#define SLA_CHANNELS_MAX 8         /* notify_channels */
#define SLA_NAME_MAX     64        /* region / channel name */
#define SLA_HORIZON_DAYS (4 * 366) /* work_add gives up beyond this many local days */

/* A time zone: TZif transitions plus the POSIX TZ footer rule for later times. */
struct sla_tz;

/*
 * Load zone name (IANA, e.g. "Europe/Berlin") from dir (NULL: $TZDIR, else
 * /usr/share/zoneinfo). The name is checked (letters, digits, "/_+-", no
 * "..", not absolute). Returns a new zone (sla_tz_free) or NULL with errstr.
 */
struct sla_tz *sla_tz_load(const char *dir, const char *name, char *errstr, size_t errlen);
/* Parse a TZif image (borrowed). Same result. For tests. */
struct sla_tz *sla_tz_parse(const unsigned char *buf, size_t len, char *errstr, size_t errlen);
void sla_tz_free(struct sla_tz *z); /* accepts NULL */
/* UTC offset in seconds (east positive) in effect at utc_s (epoch seconds). */
long sla_tz_offset(const struct sla_tz *z, int64_t utc_s);
/*
 * The UTC instant of a local wall-clock time (seconds since the epoch as if
 * local were UTC). A time skipped by a DST jump maps to the instant of the
 * jump's end; a repeated one to its first occurrence.
 */
int64_t sla_tz_to_utc(const struct sla_tz *z, int64_t local_s);

/* Business hours of one region: windows [start, end) in minutes of the local day. */
struct sla_window {
	int start_min, end_min; /* 0 <= start < end <= 1440 */
};
struct sla_hours {
	char region[SLA_NAME_MAX];
	char tz_name[SLA_TZ_NAME_MAX];
	struct sla_tz *tz;                         /* owned */
	struct sla_window win[7][SLA_WINDOWS_MAX]; /* [0] = Sunday, ascending, disjoint */
	int nwin[7];
};

/*
 * Working-time arithmetic: the instant (epoch ms) at which `minutes` working
 * minutes have passed after start_ms, counting only time inside h's windows
 * (in its zone, DST-correct). h NULL: calendar time (start + minutes).
 * minutes <= 0 returns start_ms. Returns -1 if no window lies within
 * SLA_HORIZON_DAYS (an empty week).
 */
int64_t sla_work_add(const struct sla_hours *h, int64_t start_ms, long minutes);

/* The SLA part of a routing policy (policies/routing_policy.json). */
struct sla_policy {
	struct sla_hours *hours; /* owned array */
	size_t nhours;
	int notify;          /* emit <prefix>notify.events records (default true) */
	int reassign;        /* reassign to the next owner of the pool (default false) */
	int max_escalations; /* N: escalations per Lead (default 1) */
	char channels[SLA_CHANNELS_MAX][SLA_NAME_MAX]; /* notify_channels, copied to events */
	size_t nchannels;
};

/*
 * Read business_hours and sla_escalation from a routing policy document
 * (borrowed; already schema-validated by route_policy_load). Checks what the
 * schema cannot: each region exists in "regions", the zone loads (tzdir as in
 * sla_tz_load), windows parse, ascend and do not overlap, a week has a window.
 * Every problem is appended to *problems ("$.path: problem" strings, new
 * array). Returns a new policy (sla_policy_free) or NULL when there were problems.
 */
struct sla_policy *sla_policy_from_json(json_t *doc, const char *tzdir, json_t **problems);
void sla_policy_free(struct sla_policy *p); /* accepts NULL */
/* Business hours of a region (borrowed, valid while p lives); NULL = calendar time. */
const struct sla_hours *sla_policy_hours(const struct sla_policy *p, const char *region);

#endif
