/*
 * idset.c - chained hash set of byte strings with FIFO eviction.
 *
 * Entries sit in insertion order on a queue as well as in their bucket, so
 * evicting the oldest is O(bucket length). The table doubles at load 1.
 */
#include "idset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmem.h"

struct ident {
	struct ident *next;  /* bucket chain */
	struct ident *newer; /* FIFO: toward the newest (next to evict after this one) */
	uint64_t hash;
	size_t len;
	char id[];
};

struct idset {
	struct ident **b;
	size_t nb, n, cap;
	struct ident *oldest, *newest;
};

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ull;
	}
	return h;
}

struct idset *idset_new(size_t capacity)
{
	struct idset *s = xcalloc(1, sizeof *s);
	s->cap = capacity;
	s->nb = 1024;
	s->b = xcalloc(s->nb, sizeof *s->b);
	return s;
}

void idset_free(struct idset **sp)
{
	if (!sp || !*sp)
		return;
	struct idset *s = *sp;
	for (struct ident *e = s->oldest, *nx; e; e = nx) {
		nx = e->newer;
		free(e);
	}
	free(s->b);
	free(s);
	*sp = NULL;
}

static struct ident **find(const struct idset *s, const char *id, size_t len, uint64_t h)
{
	struct ident **pp = &s->b[h & (s->nb - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->id, id, len) == 0)
			break;
	return pp;
}

bool idset_has(const struct idset *s, const char *id, size_t len)
{
	return *find(s, id, len, fnv1a(id, len)) != NULL;
}

static void grow(struct idset *s)
{
	size_t nb = s->nb * 2;
	struct ident **b = xcalloc(nb, sizeof *b);
	for (size_t i = 0; i < s->nb; i++)
		for (struct ident *e = s->b[i], *nx; e; e = nx) {
			nx = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	free(s->b);
	s->b = b;
	s->nb = nb;
}

static void evict_oldest(struct idset *s)
{
	struct ident *e = s->oldest;
	struct ident **pp = find(s, e->id, e->len, e->hash);
	*pp = e->next;
	s->oldest = e->newer;
	if (!s->oldest)
		s->newest = NULL;
	s->n--;
	free(e);
}

bool idset_add(struct idset *s, const char *id, size_t len)
{
	uint64_t h = fnv1a(id, len);
	struct ident **pp = find(s, id, len, h);
	if (*pp)
		return false;
	struct ident *e = xmalloc(sizeof *e + len + 1);
	e->hash = h;
	e->len = len;
	memcpy(e->id, id, len);
	e->id[len] = '\0';
	e->next = NULL;
	e->newer = NULL;
	*pp = e;
	if (s->newest)
		s->newest->newer = e;
	else
		s->oldest = e;
	s->newest = e;
	s->n++;
	if (s->cap && s->n > s->cap)
		evict_oldest(s);
	if (s->n > s->nb)
		grow(s);
	return true;
}

size_t idset_count(const struct idset *s)
{
	return s->n;
}
