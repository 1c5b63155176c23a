/*
 * xmem.h - allocation that cannot fail.
 *
 * A daemon that runs out of memory logs one line and exits(70): Kubernetes
 * restarts the pod, Kafka redelivers uncommitted work and idempotency makes
 * the redelivery safe. See common/README.md ("Out of memory").
 */
#ifndef SFK_XMEM_H
#define SFK_XMEM_H

#include <stddef.h>

/* All return new memory owned by the caller (free()); never NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
