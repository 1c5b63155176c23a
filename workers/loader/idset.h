/*
 * idset.h - a bounded set of recent ids (decision ids, prompts) for
 * de-duplication. Past its capacity the oldest id is forgotten (FIFO), so
 * memory stays bounded; capacity 0 means unbounded (export).
 */
#ifndef SFK_LOADER_IDSET_H
#define SFK_LOADER_IDSET_H

#include <stdbool.h>
#include <stddef.h>

struct idset;

/* New empty set (idset_free()); never NULL. */
struct idset *idset_new(size_t capacity);
/* Frees the set; accepts NULL / *s == NULL, clears *s. */
void idset_free(struct idset **s);
/* Is id (len bytes) in the set? */
bool idset_has(const struct idset *s, const char *id, size_t len);
/* Add id (copied). Returns true if it was new, false if already present. */
bool idset_add(struct idset *s, const char *id, size_t len);
size_t idset_count(const struct idset *s);

#endif
