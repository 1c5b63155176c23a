/*
 * cdc.c - change events for sfk-sim (see cdc.h).
 *
 * Publishing: every built event gets its replay id first and is serialized
 * once (the `data` object) under pub_mu; only the finished batch is inserted
 * under mu, so readers building connect responses are not blocked by
 * serialization. Readers copy the stored text into their response; nothing
 * is re-serialized per subscriber.
 *
 * Replay ids: one sequence for the whole event bus, increasing with random
 * gaps. An event carries the same replay id on its entity channel and on
 * /data/ChangeEvents: Salesforce assigns "a replay ID value" when it persists
 * a change event in the event bus (CDC guide, "Change Event Storage and
 * Delivery"); the channels are views of that stream.
 */
#include "cdc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "xmem.h"

#define MAX_ENTITIES    64
#define ENTITY_NAME_MAX 80

struct chan {
	char name[CDC_CHANNEL_MAX];
	int mirrored; /* also delivered on /data/ChangeEvents */
	int64_t published;
};

struct event {
	int64_t id;
	int64_t ts_ms; /* sim time of publication (retention) */
	int chan;      /* index into chans */
	char *data;    /* serialized `data` object */
	size_t len;
};

/* A change copied out of the org hook, waiting for its transaction to end. */
struct pending {
	struct org_change ch; /* strings and json owned by this struct */
	struct pending *next;
};

struct cdc {
	struct cdc_config cfg;
	char entities[MAX_ENTITIES][ENTITY_NAME_MAX];
	size_t nentities;

	pthread_mutex_t pub_mu; /* serializes publishers: ids, rng, commit numbers */
	uint64_t rng;
	int64_t next_commit_number;
	_Atomic int own_gap;
	_Atomic int *gap; /* own_gap, or the sim's gap_next */

	pthread_mutex_t mu; /* guards everything below */
	struct chan chans[CDC_MAX_CHANNELS];
	size_t nchans;
	struct event *ring;
	size_t cap, head, count;
	size_t bytes; /* serialized bytes retained */
	int64_t last_id;
	int64_t dropped;
	void (*listener)(void *ctx);
	void *listener_ctx;

	/* sim glue */
	struct sim *sim;
	pthread_mutex_t pend_mu;
	pthread_cond_t pend_cond;
	struct pending *pend_head, **pend_tail;
	int stop;
	int thread_running;
	pthread_t thread;
};

/* ---- small helpers -------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static int64_t wall_ms(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(struct cdc *c)
{
	return c->cfg.clock_ms ? c->cfg.clock_ms(c->cfg.clock_ctx) : wall_ms(NULL);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

void cdc_buf_append(struct cdc_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void cdc_buf_free(struct cdc_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- configuration --------------------------------------------------------- */

void cdc_config_default(struct cdc_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->retention_ms = 72LL * 3600 * 1000;
	cfg->max_events = 500000;
	cfg->max_bytes = 512u * 1024 * 1024;
	cfg->max_event_bytes = 1024 * 1024;
	cfg->overflow_changes = 100000;
	cfg->merge = 1;
	cfg->seed = 1;
	cfg->entities = "Lead,Task,EmailMessage";
}

int cdc_channel_for(const char *entity, char *out, size_t size)
{
	int n;
	size_t len = strlen(entity);
	/* Custom objects: Foo__c -> /data/Foo__ChangeEvent. */
	if (len > 3 && strcmp(entity + len - 3, "__c") == 0)
		n = snprintf(out, size, "/data/%.*s__ChangeEvent", (int)(len - 3), entity);
	else
		n = snprintf(out, size, "/data/%sChangeEvent", entity);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Caller holds mu. Index of channel, -1 if unknown. */
static int chan_find(struct cdc *c, const char *name)
{
	for (size_t i = 0; i < c->nchans; i++)
		if (strcmp(c->chans[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Caller holds mu. Index of channel, created if needed; -1 if full/too long. */
static int chan_get(struct cdc *c, const char *name)
{
	int i = chan_find(c, name);
	if (i >= 0)
		return i;
	if (c->nchans >= CDC_MAX_CHANNELS || strlen(name) >= CDC_CHANNEL_MAX)
		return -1;
	struct chan *ch = &c->chans[c->nchans];
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	ch->mirrored = ends_with(name, "ChangeEvent");
	ch->published = 0;
	return (int)c->nchans++;
}

struct cdc *cdc_new(const struct cdc_config *cfg)
{
	struct cdc *c = xcalloc(1, sizeof(*c));
	c->cfg = *cfg;
	c->cfg.entities = NULL; /* parsed below; not kept */
	if (c->cfg.max_events == 0)
		c->cfg.max_events = 1;
	if (c->cfg.max_bytes == 0)
		c->cfg.max_bytes = SIZE_MAX;
	c->rng = cfg->seed ^ 0x5F3759DF2026ULL;
	/* commitNumber is an SCN far above 2^53 so that clients which parse it
	 * as a double lose digits (the point of the int64 requirement). */
	c->next_commit_number =
	        (int64_t)(1ULL << 53) + 10915705508285LL + (int64_t)(splitmix(&c->rng) % 1000000);
	c->gap = &c->own_gap;
	pthread_mutex_init(&c->pub_mu, NULL);
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->pend_mu, NULL);
	pthread_cond_init(&c->pend_cond, NULL);
	c->pend_tail = &c->pend_head;
	chan_get(c, CDC_CHANNEL_ALL);

	const char *p = cfg->entities ? cfg->entities : "";
	while (*p) {
		size_t n = strcspn(p, ", ");
		if (n > 0 && n < ENTITY_NAME_MAX && c->nentities < MAX_ENTITIES) {
			char ch[CDC_CHANNEL_MAX];
			memcpy(c->entities[c->nentities], p, n);
			c->entities[c->nentities][n] = '\0';
			if (cdc_channel_for(c->entities[c->nentities], ch, sizeof(ch)) == 0 &&
			    chan_get(c, ch) >= 0)
				c->nentities++;
		}
		p += n;
		p += strspn(p, ", ");
	}
	return c;
}

static void pending_free(struct pending *p)
{
	while (p) {
		struct pending *next = p->next;
		free((char *)p->ch.type);
		free((char *)p->ch.change_type);
		free((char *)p->ch.record_id);
		free((char *)p->ch.commit_user);
		free((char *)p->ch.transaction_key);
		free((char *)p->ch.origin);
		json_decref(p->ch.changed_fields);
		json_decref(p->ch.record);
		free(p);
		p = next;
	}
}

void cdc_free(struct cdc **cp)
{
	struct cdc *c = cp ? *cp : NULL;
	if (!c)
		return;
	if (c->thread_running) {
		pthread_mutex_lock(&c->pend_mu);
		c->stop = 1;
		pthread_cond_broadcast(&c->pend_cond);
		pthread_mutex_unlock(&c->pend_mu);
		pthread_join(c->thread, NULL);
	}
	pending_free(c->pend_head);
	for (size_t i = 0; i < c->count; i++)
		free(c->ring[(c->head + i) % c->cap].data);
	free(c->ring);
	pthread_mutex_destroy(&c->pub_mu);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->pend_mu);
	pthread_cond_destroy(&c->pend_cond);
	free(c);
	*cp = NULL;
}

int cdc_entity_enabled(struct cdc *c, const char *entity)
{
	for (size_t i = 0; i < c->nentities; i++)
		if (strcmp(c->entities[i], entity) == 0)
			return 1;
	return 0;
}

int cdc_channel_exists(struct cdc *c, const char *channel)
{
	pthread_mutex_lock(&c->mu);
	int i = chan_find(c, channel);
	pthread_mutex_unlock(&c->mu);
	return i >= 0;
}

void cdc_force_gap(struct cdc *c, int n)
{
	if (n > 0)
		atomic_fetch_add(c->gap, n);
}

/* Take one forced gap if any is pending. */
static int take_gap(struct cdc *c)
{
	int v = atomic_load(c->gap);
	while (v > 0) {
		if (atomic_compare_exchange_weak(c->gap, &v, v - 1))
			return 1;
	}
	return 0;
}

/* ---- event building ------------------------------------------------------- */

/* Compound fields as CometD delivers them: component name in the event, field
 * name on the record (CDC guide, "Get Compound Fields in Change Events"). */
struct compound {
	const char *entity;
	const char *name;
	const char *const *parts; /* component names, NULL-terminated */
	const char *prefix;       /* record field = prefix + part */
	const char *drop;         /* derived record field replaced by this compound */
};

static const char *const name_parts[] = {"Salutation", "FirstName", "LastName",
                                         "MiddleName", "Suffix",    NULL};
static const char *const addr_parts[] = {
        "Street",      "City",     "State",     "PostalCode",      "Country", "StateCode",
        "CountryCode", "Latitude", "Longitude", "GeocodeAccuracy", NULL};

static const struct compound compounds[] = {
        {"Lead", "Name", name_parts, "", "Name"},
        {"Lead", "Address", addr_parts, "", "Address"},
        {"Contact", "Name", name_parts, "", "Name"},
        {"Contact", "MailingAddress", addr_parts, "Mailing", "MailingAddress"},
        {"Contact", "OtherAddress", addr_parts, "Other", "OtherAddress"},
        {"Account", "BillingAddress", addr_parts, "Billing", "BillingAddress"},
        {"Account", "ShippingAddress", addr_parts, "Shipping", "ShippingAddress"},
};

/* Fields a change event never carries (CDC guide, "Change Event Message
 * Structure": IsDeleted, SystemModStamp, derived fields). */
static int excluded(const char *f)
{
	static const char *const names[] = {"Id",         "IsDeleted",      "SystemModstamp",
	                                    "attributes", "LastViewedDate", "LastReferencedDate",
	                                    NULL};
	for (size_t i = 0; names[i]; i++)
		if (strcmp(f, names[i]) == 0)
			return 1;
	return 0;
}

/* If record field f of entity is a compound component: the compound and the
 * component name. */
static const struct compound *compound_of(const char *entity, const char *f, const char **part)
{
	for (size_t i = 0; i < sizeof(compounds) / sizeof(compounds[0]); i++) {
		const struct compound *cp = &compounds[i];
		size_t pl = strlen(cp->prefix);
		if (strcmp(cp->entity, entity) != 0 || strncmp(f, cp->prefix, pl) != 0)
			continue;
		for (size_t j = 0; cp->parts[j]; j++) {
			if (strcmp(f + pl, cp->parts[j]) == 0) {
				*part = cp->parts[j];
				return cp;
			}
		}
	}
	return NULL;
}

static int is_dropped_compound(const char *entity, const char *f)
{
	for (size_t i = 0; i < sizeof(compounds) / sizeof(compounds[0]); i++)
		if (strcmp(compounds[i].entity, entity) == 0 && strcmp(compounds[i].drop, f) == 0)
			return 1;
	return 0;
}

static int empty_value(json_t *v)
{
	return v == NULL || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

/* Put value under body[f], or body[compound][part]. Takes a new copy. */
static void body_put(json_t *body, const char *entity, const char *f, json_t *v)
{
	const char *part;
	const struct compound *cp = compound_of(entity, f, &part);
	json_t *copy = json_deep_copy(v);
	if (!cp) {
		json_object_set_new(body, f, copy);
		return;
	}
	json_t *obj = json_object_get(body, cp->name);
	if (!json_is_object(obj)) {
		obj = json_object();
		json_object_set_new(body, cp->name, obj);
	}
	json_object_set_new(obj, part, copy);
}

static int is_type(const struct org_change *ch, const char *t)
{
	return strcmp(ch->change_type, t) == 0;
}

json_t *cdc_event_body(const struct org_change *ch)
{
	json_t *body = json_object();
	const char *f;
	json_t *v;
	if (!json_is_object(ch->record) || is_type(ch, "DELETE"))
		return body;
	if (is_type(ch, "UPDATE")) {
		size_t i;
		json_t *name;
		int has_lmd = 0;
		json_array_foreach(ch->changed_fields, i, name)
		{
			f = json_string_value(name);
			if (!f || excluded(f) || is_dropped_compound(ch->type, f))
				continue;
			if (strcmp(f, "LastModifiedDate") == 0)
				has_lmd = 1;
			v = json_object_get(ch->record, f);
			body_put(body, ch->type, f, v ? v : json_null());
		}
		/* UPDATE always carries LastModifiedDate (CDC guide, body fields). */
		v = json_object_get(ch->record, "LastModifiedDate");
		if (!has_lmd && v)
			body_put(body, ch->type, "LastModifiedDate", v);
		return body;
	}
	json_object_foreach(ch->record, f, v)
	{
		if (excluded(f) || is_dropped_compound(ch->type, f) || empty_value(v))
			continue;
		body_put(body, ch->type, f, v);
	}
	return body;
}

json_t *cdc_changed_fields(const struct org_change *ch)
{
	json_t *out = json_array();
	size_t i;
	json_t *name;
	int has_lmd = 0;
	if (!is_type(ch, "UPDATE"))
		return out;
	json_array_foreach(ch->changed_fields, i, name)
	{
		const char *f = json_string_value(name), *part;
		if (!f || excluded(f) || is_dropped_compound(ch->type, f))
			continue;
		if (strcmp(f, "LastModifiedDate") == 0)
			has_lmd = 1;
		const struct compound *cp = compound_of(ch->type, f, &part);
		if (cp) {
			char buf[160];
			snprintf(buf, sizeof(buf), "%s.%s", cp->name, part);
			json_array_append_new(out, json_string(buf));
		} else {
			json_array_append_new(out, json_string(f));
		}
	}
	if (!has_lmd && json_object_get(ch->record, "LastModifiedDate"))
		json_array_insert_new(out, 0, json_string("LastModifiedDate"));
	return out;
}

/* Stable 22-char base64url schema id per entity (like "-pszPCNGMHqUPU1ftkjxEA"). */
static void schema_id(const struct cdc *c, const char *entity, char out[23])
{
	static const char b64[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint64_t h = 1469598103934665603ULL ^ c->cfg.seed;
	for (const char *p = entity; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	uint64_t s = h;
	uint64_t a = splitmix(&s), b = splitmix(&s);
	for (int i = 0; i < 22; i++) {
		uint64_t *w = i < 11 ? &a : &b;
		out[i] = b64[*w & 63];
		*w >>= 6;
	}
	out[22] = '\0';
}

/* One event being built. */
struct built {
	const struct org_change *first; /* header source */
	const char *entity;
	char change_type[16];
	json_t *record_ids; /* owned */
	json_t *body;       /* owned */
	json_t *changed;    /* owned */
	char *key;          /* merge key (owned), NULL = never merge */
	int chan;
};

static void built_free(struct built *b)
{
	json_decref(b->record_ids);
	json_decref(b->body);
	json_decref(b->changed);
	free(b->key);
}

/* Serialize one event's `data` with its replay id. New string. */
static char *render(struct cdc *c, const struct built *b, int64_t replay_id, int64_t commit_number,
                    int gap, size_t *len)
{
	const struct org_change *ch = b->first;
	char sid[23];
	json_t *hdr = json_object();
	json_t *payload = json_object();
	json_t *data = json_object();
	json_t *ev = json_object();
	char type[24];

	snprintf(type, sizeof(type), "%s%s", gap ? "GAP_" : "", b->change_type);
	json_object_set_new(hdr, "commitNumber", json_integer(commit_number));
	json_object_set_new(hdr, "commitUser", json_string(ch->commit_user ? ch->commit_user : ""));
	json_object_set_new(hdr, "sequenceNumber", json_integer(ch->sequence_number));
	json_object_set_new(hdr, "entityName", json_string(b->entity));
	json_object_set_new(hdr, "changeType", json_string(type));
	json_object_set_new(hdr, "changedFields", gap ? json_array() : json_incref(b->changed));
	json_object_set_new(hdr, "changeOrigin", json_string(ch->origin ? ch->origin : ""));
	json_object_set_new(hdr, "transactionKey",
	                    json_string(ch->transaction_key ? ch->transaction_key : ""));
	json_object_set_new(hdr, "commitTimestamp", json_integer(ch->commit_ts_ms));
	json_object_set_new(hdr, "recordIds", json_incref(b->record_ids));

	json_object_set_new(payload, "ChangeEventHeader", hdr);
	if (!gap)
		json_object_update(payload, b->body);
	schema_id(c, b->entity, sid);
	json_object_set_new(data, "schema", json_string(sid));
	json_object_set_new(data, "payload", payload);
	json_object_set_new(ev, "replayId", json_integer(replay_id));
	json_object_set_new(data, "event", ev);
	char *s = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	if (!s) {
		log_error("cdc: cannot serialize event");
		abort();
	}
	*len = strlen(s);
	return s;
}

static int64_t next_replay_id(struct cdc *c)
{
	/* Increasing, not contiguous (Streaming API guide, "Message Durability"). */
	int64_t step = 1 + (int64_t)(splitmix(&c->rng) % 4);
	pthread_mutex_lock(&c->mu);
	int64_t id = c->last_id + step;
	pthread_mutex_unlock(&c->mu);
	return id;
}

/* Caller holds mu. Drop the oldest retained event. */
static void drop_head(struct cdc *c)
{
	struct event *e = &c->ring[c->head];
	c->bytes -= e->len;
	free(e->data);
	e->data = NULL;
	c->head = (c->head + 1) % c->cap;
	c->count--;
	c->dropped++;
}

/* Caller holds mu. Append one serialized event (data taken over). */
static void insert(struct cdc *c, int64_t id, int chan, char *data, size_t len)
{
	if (c->count == c->cfg.max_events)
		drop_head(c);
	while (c->count > 0 && c->bytes + len > c->cfg.max_bytes)
		drop_head(c);
	if (c->count == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 1024;
		if (ncap > c->cfg.max_events)
			ncap = c->cfg.max_events;
		struct event *n = xcalloc(ncap, sizeof(*n));
		for (size_t i = 0; i < c->count; i++)
			n[i] = c->ring[(c->head + i) % c->cap];
		free(c->ring);
		c->ring = n;
		c->cap = ncap;
		c->head = 0;
	}
	struct event *e = &c->ring[(c->head + c->count) % c->cap];
	e->id = id;
	e->ts_ms = now_ms(c);
	e->chan = chan;
	e->data = data;
	e->len = len;
	c->bytes += len;
	c->count++;
	c->last_id = id;
	c->chans[chan].published++;
	if (c->chans[chan].mirrored)
		c->chans[0].published++;
}

static void notify(struct cdc *c)
{
	void (*fn)(void *) = NULL;
	void *ctx = NULL;
	pthread_mutex_lock(&c->mu);
	fn = c->listener;
	ctx = c->listener_ctx;
	pthread_mutex_unlock(&c->mu);
	if (fn)
		fn(ctx);
}

/* Cost of a change toward the overflow limit: create/delete/undelete = 1,
 * an update = its number of changed fields (CDC guide, overflow events). */
static long change_cost(const struct org_change *ch)
{
	if (strcmp(ch->change_type, "UPDATE") == 0) {
		size_t n = json_array_size(ch->changed_fields);
		return n ? (long)n : 1;
	}
	return 1;
}

size_t cdc_publish_txn(struct cdc *c, const struct org_change *changes, size_t n)
{
	struct built *bs = xcalloc(n + 1, sizeof(*bs));
	size_t nb = 0, published = 0;
	long cost = 0;
	int overflowed = 0;

	for (size_t i = 0; i < n; i++) {
		const struct org_change *ch = &changes[i];
		if (!cdc_entity_enabled(c, ch->type))
			continue;
		cost += change_cost(ch);
		if (!overflowed && cost > c->cfg.overflow_changes)
			overflowed = 1;
		if (overflowed) {
			/* One GAP_OVERFLOW per entity type for the rest. */
			int seen = 0;
			for (size_t k = 0; k < nb; k++)
				if (bs[k].key == NULL &&
				    strcmp(bs[k].change_type, "GAP_OVERFLOW") == 0 &&
				    strcmp(bs[k].entity, ch->type) == 0)
					seen = 1;
			if (seen)
				continue;
			struct built *b = &bs[nb++];
			b->first = ch;
			b->entity = ch->type;
			snprintf(b->change_type, sizeof(b->change_type), "GAP_OVERFLOW");
			b->record_ids = json_pack("[s]", CDC_OVERFLOW_RECORD_ID);
			b->body = json_object();
			b->changed = json_array();
			continue;
		}
		json_t *body = cdc_event_body(ch);
		json_t *changed = cdc_changed_fields(ch);
		char *key = NULL;
		/* A lone change has nothing to merge with: skip the key. */
		if (c->cfg.merge && n > 1) {
			char *bs1 = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
			char *bs2 = json_dumps(changed, JSON_COMPACT);
			key = xasprintf("%s|%s|%s|%s", ch->type, ch->change_type, bs1 ? bs1 : "",
			                bs2 ? bs2 : "");
			free(bs1);
			free(bs2);
		}
		/* Merged events: the same change to several records of one type in
		 * one transaction -> one event with every id in recordIds. */
		struct built *m = NULL;
		for (size_t k = 0; key && k < nb; k++)
			if (bs[k].key && strcmp(bs[k].key, key) == 0 &&
			    json_array_size(bs[k].record_ids) < CDC_MERGE_MAX_IDS)
				m = &bs[k];
		if (m) {
			json_array_append_new(m->record_ids, json_string(ch->record_id));
			json_decref(body);
			json_decref(changed);
			free(key);
			continue;
		}
		struct built *b = &bs[nb++];
		b->first = ch;
		b->entity = ch->type;
		snprintf(b->change_type, sizeof(b->change_type), "%s", ch->change_type);
		b->record_ids = json_pack("[s]", ch->record_id ? ch->record_id : "");
		b->body = body;
		b->changed = changed;
		b->key = key ? key : xstrdup("");
	}
	if (nb == 0)
		goto out;

	pthread_mutex_lock(&c->pub_mu);
	int64_t commit_number = c->next_commit_number;
	c->next_commit_number += 1 + (int64_t)(splitmix(&c->rng) % 5000);
	for (size_t k = 0; k < nb; k++) {
		struct built *b = &bs[k];
		char chname[CDC_CHANNEL_MAX];
		if (cdc_channel_for(b->entity, chname, sizeof(chname)) != 0)
			continue;
		pthread_mutex_lock(&c->mu);
		b->chan = chan_get(c, chname);
		pthread_mutex_unlock(&c->mu);
		if (b->chan < 0)
			continue;
		int gap = strncmp(b->change_type, "GAP_", 4) == 0 ? 0 : take_gap(c);
		int64_t id = next_replay_id(c);
		size_t len;
		char *data = render(c, b, id, commit_number, gap, &len);
		if (!gap && len > c->cfg.max_event_bytes) {
			/* Over the 1 MB event limit: a gap event instead. */
			free(data);
			data = render(c, b, id, commit_number, 1, &len);
		}
		pthread_mutex_lock(&c->mu);
		insert(c, id, b->chan, data, len);
		pthread_mutex_unlock(&c->mu);
		published++;
	}
	pthread_mutex_unlock(&c->pub_mu);
	notify(c);
out:
	for (size_t k = 0; k < nb; k++)
		built_free(&bs[k]);
	free(bs);
	return published;
}

int64_t cdc_publish_raw(struct cdc *c, const char *channel, json_t *data, char *errstr,
                        size_t errlen)
{
	int chan;
	if (!channel || strncmp(channel, "/data/", 6) != 0 || strlen(channel) >= CDC_CHANNEL_MAX ||
	    strcmp(channel, CDC_CHANNEL_ALL) == 0) {
		snprintf(errstr, errlen, "channel must be /data/<Name> (not /data/ChangeEvents)");
		return -1;
	}
	if (!json_is_object(data)) {
		snprintf(errstr, errlen, "body must be a JSON object (the event's data)");
		return -1;
	}
	pthread_mutex_lock(&c->pub_mu);
	pthread_mutex_lock(&c->mu);
	chan = chan_get(c, channel);
	pthread_mutex_unlock(&c->mu);
	if (chan < 0) {
		pthread_mutex_unlock(&c->pub_mu);
		snprintf(errstr, errlen, "too many channels");
		return -1;
	}
	int64_t id = next_replay_id(c);
	json_t *copy = json_deep_copy(data);
	json_t *ev = json_object_get(copy, "event");
	if (!json_is_object(ev)) {
		ev = json_object();
		json_object_set_new(copy, "event", ev);
	}
	json_object_set_new(ev, "replayId", json_integer(id));
	char *s = json_dumps(copy, JSON_COMPACT);
	json_decref(copy);
	if (!s) {
		pthread_mutex_unlock(&c->pub_mu);
		snprintf(errstr, errlen, "cannot serialize data");
		return -1;
	}
	pthread_mutex_lock(&c->mu);
	insert(c, id, chan, s, strlen(s));
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->pub_mu);
	notify(c);
	return id;
}

/* ---- reading ---------------------------------------------------------------- */

/* Caller holds mu. */
static void expire_locked(struct cdc *c)
{
	int64_t horizon = now_ms(c) - c->cfg.retention_ms;
	while (c->count > 0 && c->ring[c->head].ts_ms < horizon)
		drop_head(c);
}

void cdc_expire(struct cdc *c)
{
	pthread_mutex_lock(&c->mu);
	expire_locked(c);
	pthread_mutex_unlock(&c->mu);
}

int cdc_replay_valid(struct cdc *c, int64_t replay_id)
{
	int ok;
	if (replay_id == -1 || replay_id == -2)
		return 1;
	pthread_mutex_lock(&c->mu);
	expire_locked(c);
	ok = c->count > 0 && replay_id >= c->ring[c->head].id && replay_id <= c->last_id;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

int64_t cdc_replay_cursor(struct cdc *c, int64_t replay_id)
{
	int64_t cur;
	pthread_mutex_lock(&c->mu);
	expire_locked(c);
	if (replay_id == -1)
		cur = c->last_id;
	else if (replay_id == -2)
		cur = c->count > 0 ? c->ring[c->head].id - 1 : c->last_id;
	else
		cur = replay_id;
	pthread_mutex_unlock(&c->mu);
	return cur;
}

int64_t cdc_last_replay_id(struct cdc *c)
{
	pthread_mutex_lock(&c->mu);
	int64_t id = c->last_id;
	pthread_mutex_unlock(&c->mu);
	return id;
}

/* Caller holds mu. First ring position whose id > after. */
static size_t lower_bound(struct cdc *c, int64_t after)
{
	size_t lo = 0, hi = c->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->ring[(c->head + mid) % c->cap].id > after)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

size_t cdc_collect(struct cdc *c, struct cdc_cursor *cur, size_t ncur, size_t max_msgs,
                   size_t max_bytes, struct cdc_buf *out)
{
	int idx[64];
	size_t nmsg = 0, start_len = out->len;
	int64_t min_after = INT64_MAX;
	if (ncur > 64)
		ncur = 64;
	pthread_mutex_lock(&c->mu);
	expire_locked(c);
	for (size_t k = 0; k < ncur; k++) {
		idx[k] = chan_find(c, cur[k].channel);
		if (cur[k].after < min_after)
			min_after = cur[k].after;
	}
	for (size_t i = lower_bound(c, min_after); i < c->count; i++) {
		const struct event *e = &c->ring[(c->head + i) % c->cap];
		if (nmsg >= max_msgs || out->len - start_len >= max_bytes)
			break;
		for (size_t k = 0; k < ncur; k++) {
			if (e->id <= cur[k].after)
				continue;
			cur[k].after = e->id;
			if (idx[k] < 0)
				continue;
			if (!(idx[k] == e->chan || (idx[k] == 0 && c->chans[e->chan].mirrored)))
				continue;
			const char *name = c->chans[idx[k]].name;
			if (out->len > 0 && out->p[out->len - 1] != '[')
				cdc_buf_append(out, ",", 1);
			cdc_buf_append(out, "{\"data\":", 8);
			cdc_buf_append(out, e->data, e->len);
			cdc_buf_append(out, ",\"channel\":\"", 12);
			cdc_buf_append(out, name, strlen(name));
			cdc_buf_append(out, "\"}", 2);
			nmsg++;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return nmsg;
}

void cdc_set_listener(struct cdc *c, void (*fn)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&c->mu);
	c->listener = fn;
	c->listener_ctx = ctx;
	pthread_mutex_unlock(&c->mu);
}

json_t *cdc_stats(struct cdc *c)
{
	json_t *pub = json_object();
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->nchans; i++)
		json_object_set_new(pub, c->chans[i].name, json_integer(c->chans[i].published));
	json_t *o = json_pack("{s:o,s:I,s:I,s:I,s:I}", "published", pub, "retained",
	                      (json_int_t)c->count, "retained_bytes", (json_int_t)c->bytes,
	                      "last_replay_id", (json_int_t)c->last_id, "dropped",
	                      (json_int_t)c->dropped);
	pthread_mutex_unlock(&c->mu);
	return o;
}

/* ---- sim glue ------------------------------------------------------------------ */

static char *dup_or_empty(const char *s)
{
	return xstrdup(s ? s : "");
}

/* Org change hook: runs under the org lock; copies the change and queues it.
 * Transactions end when the org lock is released, so the publisher thread
 * takes the queue while holding the org lock (see publisher()). */
static void change_hook(struct sim *sim, const struct org_change *ch, void *ctx)
{
	struct cdc *c = ctx;
	(void)sim;
	if (!cdc_entity_enabled(c, ch->type))
		return;
	struct pending *p = xcalloc(1, sizeof(*p));
	p->ch.type = dup_or_empty(ch->type);
	p->ch.change_type = dup_or_empty(ch->change_type);
	p->ch.record_id = dup_or_empty(ch->record_id);
	p->ch.commit_user = dup_or_empty(ch->commit_user);
	p->ch.transaction_key = dup_or_empty(ch->transaction_key);
	p->ch.origin = dup_or_empty(ch->origin);
	p->ch.changed_fields =
	        ch->changed_fields ? json_deep_copy(ch->changed_fields) : json_array();
	p->ch.record = ch->record ? json_deep_copy(ch->record) : json_object();
	p->ch.commit_ts_ms = ch->commit_ts_ms;
	p->ch.sequence_number = ch->sequence_number;
	pthread_mutex_lock(&c->pend_mu);
	*c->pend_tail = p;
	c->pend_tail = &p->next;
	pthread_cond_signal(&c->pend_cond);
	pthread_mutex_unlock(&c->pend_mu);
}

static void *publisher(void *arg)
{
	struct cdc *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->pend_mu);
		while (!c->pend_head && !c->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&c->pend_cond, &c->pend_mu, &ts);
		}
		int stop = c->stop && !c->pend_head;
		pthread_mutex_unlock(&c->pend_mu);
		if (stop)
			break;
		/* Holding the org lock, no transaction is half-way: the queue
		 * holds whole transactions only. */
		pthread_mutex_lock(&c->sim->lock);
		pthread_mutex_lock(&c->pend_mu);
		struct pending *list = c->pend_head;
		c->pend_head = NULL;
		c->pend_tail = &c->pend_head;
		pthread_mutex_unlock(&c->pend_mu);
		pthread_mutex_unlock(&c->sim->lock);

		size_t n = 0;
		for (struct pending *p = list; p; p = p->next)
			n++;
		struct org_change *arr = xcalloc(n ? n : 1, sizeof(*arr));
		size_t i = 0;
		for (struct pending *p = list; p; p = p->next)
			arr[i++] = p->ch;
		/* Consecutive changes with one transactionKey are one transaction. */
		size_t start = 0;
		for (i = 1; i <= n; i++) {
			if (i == n ||
			    strcmp(arr[i].transaction_key, arr[start].transaction_key) != 0) {
				cdc_publish_txn(c, arr + start, i - start);
				start = i;
			}
		}
		free(arr);
		pending_free(list);
	}
	return NULL;
}

static int64_t sim_clock(void *ctx)
{
	return sim_now_ms(ctx);
}

static long opt_long(struct sim *sim, const char *key, long def)
{
	const char *s = json_string_value(json_object_get(sim->cfg.opts, key));
	char *end;
	long v;
	if (!s)
		return def;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end) {
		log_warn("sim option ignored (not an integer) key=%s", key);
		return def;
	}
	return v;
}

static void raw_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	const char *channel = sim_req_query(req, "channel");
	json_error_t jerr;
	char errstr[160];
	json_t *data = json_loadb(req->body, req->body_len, 0, &jerr);
	if (!data) {
		sim_resp_error(resp, 400, "JSON_PARSER_ERROR", jerr.text, NULL);
		return;
	}
	int64_t id = cdc_publish_raw(sim->cdc, channel, data, errstr, sizeof(errstr));
	json_decref(data);
	if (id < 0) {
		sim_resp_error(resp, 400, "INVALID_CHANNEL", errstr, NULL);
		return;
	}
	sim_resp_json(resp, 200,
	              json_pack("{s:s,s:I}", "channel", channel, "replayId", (json_int_t)id));
}

static void stats_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	(void)req;
	sim_resp_json(resp, 200, cdc_stats(sim->cdc));
}

static json_t *stream_stats(struct sim *sim, void *ctx)
{
	(void)ctx;
	return cdc_stats(sim->cdc);
}

int cdc_module_init(struct sim *sim)
{
	struct cdc_config cfg;
	cdc_config_default(&cfg);
	const char *ents = json_string_value(json_object_get(sim->cfg.opts, "cdc.entities"));
	if (ents)
		cfg.entities = ents;
	cfg.retention_ms = opt_long(sim, "cdc.retention_s", 72L * 3600) * 1000LL;
	cfg.max_events = (size_t)opt_long(sim, "cdc.max_events", (long)cfg.max_events);
	cfg.max_bytes = (size_t)opt_long(sim, "cdc.max_bytes", (long)cfg.max_bytes);
	cfg.max_event_bytes =
	        (size_t)opt_long(sim, "cdc.max_event_bytes", (long)cfg.max_event_bytes);
	cfg.overflow_changes = opt_long(sim, "cdc.overflow_changes", cfg.overflow_changes);
	cfg.merge = opt_long(sim, "cdc.merge", 1) != 0;
	cfg.seed = sim->cfg.seed;
	cfg.clock_ms = sim_clock;
	cfg.clock_ctx = sim;
	struct cdc *c = cdc_new(&cfg);
	c->sim = sim;
	c->gap = &sim->gap_next;
	sim->cdc = c;
	if (org_set_change_hook(sim, change_hook, c) != 0) {
		log_error("cdc: cannot register the org change hook");
		return -1;
	}
	if (pthread_create(&c->thread, NULL, publisher, c) != 0) {
		log_error("cdc: cannot start the publisher thread");
		return -1;
	}
	c->thread_running = 1;
	sim->stream_stats = stream_stats;
	sim->stream_stats_ctx = c;
	if (sim_route(sim, "POST", "/sim/events/raw", SIM_ROUTE_CONTROL, CDC_RAW_BODY_MAX,
	              raw_handler, c) != 0 ||
	    sim_route(sim, "GET", "/sim/stats/events", SIM_ROUTE_CONTROL, 0, stats_handler, c) != 0)
		return -1;
	log_info("cdc ready entities=%s retention_s=%lld", ents ? ents : "Lead,Task,EmailMessage",
	         (long long)(cfg.retention_ms / 1000));
	return 0;
}

void cdc_module_fini(struct sim *sim)
{
	if (sim->stream_stats == stream_stats)
		sim->stream_stats = NULL;
	cdc_free(&sim->cdc);
}
