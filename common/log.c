#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * Process-wide logging state. This is the one piece of global state common/
 * keeps on purpose: a process has one stderr and one role.
 */
static const char *log_role = "sfk";
static enum log_level log_min = LOG_LVL_INFO;
static int log_fd = 2;

static pthread_mutex_t redact_mu = PTHREAD_MUTEX_INITIALIZER;
static char *redact_list[LOG_REDACT_MAX];
static int redact_next;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *role)
{
	log_role = role;
}
void log_set_level(enum log_level min)
{
	log_min = min;
}
void log_set_fd(int fd)
{
	log_fd = fd;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

void log_redact(const char *secret)
{
	if (!secret || strlen(secret) < 6)
		return;
	pthread_mutex_lock(&redact_mu);
	for (int i = 0; i < LOG_REDACT_MAX; i++)
		if (redact_list[i] && strcmp(redact_list[i], secret) == 0)
			goto out;
	free(redact_list[redact_next]);
	redact_list[redact_next] = strdup(secret);
	redact_next = (redact_next + 1) % LOG_REDACT_MAX;
out:
	pthread_mutex_unlock(&redact_mu);
}

void log_unredact(const char *secret)
{
	if (!secret)
		return;
	pthread_mutex_lock(&redact_mu);
	for (int i = 0; i < LOG_REDACT_MAX; i++)
		if (redact_list[i] && strcmp(redact_list[i], secret) == 0) {
			free(redact_list[i]);
			redact_list[i] = NULL;
		}
	pthread_mutex_unlock(&redact_mu);
}

/* Replace every registered secret in text (in place; never grows it). */
static void redact(char *text)
{
	static const char mark[] = "[redacted]";
	pthread_mutex_lock(&redact_mu);
	for (int i = 0; i < LOG_REDACT_MAX; i++) {
		const char *s = redact_list[i];
		if (!s)
			continue;
		size_t sl = strlen(s);
		char *p;
		while ((p = strstr(text, s)) != NULL) {
			/* sl >= 6 and the mark is 10 bytes: write what fits. */
			size_t ml = sl < sizeof mark - 1 ? sl : sizeof mark - 1;
			memcpy(p, mark, ml);
			memmove(p + ml, p + sl, strlen(p + sl) + 1);
		}
	}
	pthread_mutex_unlock(&redact_mu);
}

/* Bounded JSON string writer. */
struct out {
	char *buf;
	int cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + (int)n >= o->cap)
		n = (size_t)(o->cap - 1 - o->len);
	memcpy(o->buf + o->len, s, n);
	o->len += (int)n;
	o->buf[o->len] = '\0';
}

static void puts_raw(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_json_str(struct out *o, const char *s, size_t n)
{
	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(o, esc, 2);
		} else if (c == '\n') {
			put(o, "\\n", 2);
		} else if (c == '\t') {
			put(o, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			put(o, esc, 6);
		} else {
			put(o, (const char *)&s[i], 1);
		}
	}
	put(o, "\"", 1);
}

/* Is text[i..] the start of " key=" ? Returns the key length or 0. */
static size_t key_at(const char *text, size_t i)
{
	if (text[i] != ' ')
		return 0;
	size_t j = i + 1;
	if (!(islower((unsigned char)text[j]) || text[j] == '_'))
		return 0;
	while (islower((unsigned char)text[j]) || isdigit((unsigned char)text[j]) ||
	       text[j] == '_' || text[j] == '.')
		j++;
	return text[j] == '=' ? j - i - 1 : 0;
}

static int is_int(const char *s, size_t n)
{
	size_t i = 0;
	if (n == 0 || n > 19)
		return 0;
	if (s[0] == '-')
		i = 1;
	if (i == n || (s[i] == '0' && n - i > 1))
		return 0;
	for (; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

int log_render(char *buf, int cap, enum log_level lvl, const char *text)
{
	struct out o = {buf, cap, 0};
	struct timeval tv;
	struct tm tm;
	char ts[96];

	buf[0] = '\0';
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(tv.tv_usec / 1000));
	puts_raw(&o, "{\"ts\":\"");
	puts_raw(&o, ts);
	puts_raw(&o, "\",\"level\":\"");
	puts_raw(&o, level_names[lvl]);
	puts_raw(&o, "\",\"role\":");
	put_json_str(&o, log_role, strlen(log_role));
	puts_raw(&o, ",\"msg\":");

	size_t n = strlen(text), i = 0;
	while (i < n && !key_at(text, i))
		i++;
	put_json_str(&o, text, i);
	while (i < n) {
		size_t kl = key_at(text, i);
		const char *k = text + i + 1;
		size_t vs = i + 1 + kl + 1, ve = vs;
		while (ve < n && !key_at(text, ve))
			ve++;
		put(&o, ",", 1);
		put_json_str(&o, k, kl);
		put(&o, ":", 1);
		if (is_int(text + vs, ve - vs))
			put(&o, text + vs, ve - vs);
		else
			put_json_str(&o, text + vs, ve - vs);
		i = ve;
	}
	/* Always close the object and end the line, even when truncated. */
	if (o.len > cap - 3)
		o.len = cap - 3;
	buf[o.len++] = '}';
	buf[o.len++] = '\n';
	buf[o.len] = '\0';
	return o.len;
}

void log_vwrite(enum log_level lvl, const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX];
	char line[LOG_LINE_MAX + 512];
	int saved = errno;

	if (lvl < log_min)
		return;
	vsnprintf(text, sizeof text, fmt, ap);
	redact(text);
	int len = log_render(line, (int)sizeof line, lvl, text);
	(void)!write(log_fd, line, (size_t)len);
	errno = saved;
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(lvl, fmt, ap);
	va_end(ap);
}
