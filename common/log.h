/*
 * log.h - one JSON object per line on stderr.
 *
 *   log_info("subscribed channel=%s replay_id=%lld", ch, (long long)rid);
 *   -> {"ts":"2026-11-21T23:30:00.123Z","level":"info","role":"sfk-bridge",
 *       "msg":"subscribed","channel":"/data/LeadChangeEvent","replay_id":42}
 *
 * The format is printf-checked. After formatting, the text before the first
 * " key=" is the message; each " key=value" becomes a field (key matches
 * [a-z_][a-z0-9_.]*; the value runs to the next " key=" or the end, so put
 * free text last). Integer values become JSON numbers.
 *
 * Secrets never reach a line: callers keep them out, and as a second fence
 * every string registered with log_redact() is replaced by "[redacted]".
 * Lines are written with one write(2), capped at LOG_LINE_MAX bytes.
 */
#ifndef SFK_LOG_H
#define SFK_LOG_H

#include <stdarg.h>

#define LOG_LINE_MAX 8192

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* role is borrowed and must outlive logging (normally a string literal). */
void log_init(const char *role);
void log_set_level(enum log_level min);
/* "debug"/"info"/"warn"/"error" -> level; returns 0 on success, -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);
/* Where lines go (default 2). For tests. */
void log_set_fd(int fd);

/* Register a secret (copied; >= 6 chars, shorter ones are ignored) so that it is
 * redacted from every later line. Up to LOG_REDACT_MAX live secrets; the oldest
 * is dropped past that. log_unredact() forgets one (e.g. an invalidated token). */
#define LOG_REDACT_MAX 16
void log_redact(const char *secret);
void log_unredact(const char *secret);

void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(enum log_level lvl, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

/* Render one line into buf (for tests and log_vwrite); returns its length. */
int log_render(char *buf, int cap, enum log_level lvl, const char *text);

#define log_debug(...) log_write(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LVL_ERROR, __VA_ARGS__)

#endif
