/*
 * notify_format.c - what notify.webhook sends (see notify.h): delivery ids,
 * X-Sfk-Signature, and the body per target kind. The generic webhook gets the
 * event as data; Slack (Block Kit) and Discord (embeds) get a short human
 * summary within their documented size limits.
 */
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "notify.h"
#include "xmem.h"

/* Platform limits (api.slack.com/reference/block-kit/blocks, discord.com/developers
 * docs "Embed Limits"): header text 150, section text 3000; content 2000, embed
 * title 256, description 4096, 25 fields of name 256 / value 1024. */
#define SLACK_HEADER_MAX    150
#define SLACK_SECTION_MAX   3000
#define DISCORD_CONTENT_MAX 2000
#define DISCORD_TITLE_MAX   256
#define DISCORD_DESC_MAX    4096
#define DISCORD_FIELDS_MAX  25
#define DISCORD_FNAME_MAX   256
#define DISCORD_FVALUE_MAX  1024
#define SUMMARY_FIELDS_MAX  12 /* fields shown in a human summary */
#define FIELD_TEXT_MAX      200

static void hex(const unsigned char *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int notify_delivery_id(const char *event_id, const char *target, char *out, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c;
	int ok;

	if (!event_id || !target || len < NOTIFY_DID_MAX)
		return -1;
	c = EVP_MD_CTX_new();
	ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(c, event_id, strlen(event_id)) && EVP_DigestUpdate(c, "\n", 1) &&
	     EVP_DigestUpdate(c, target, strlen(target)) && EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	if (!ok || mdlen < 16)
		return -1;
	hex(md, 16, out);
	return 0;
}

int notify_sign(const char *secret, const char *timestamp, const char *body, size_t len, char *out,
                size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	int rc = -1;

	if (!secret || !timestamp || outlen < NOTIFY_SIG_MAX)
		return -1;
	/* HMAC() one-shot needs the message contiguous; timestamp "." body is not. */
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *mc = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];
	size_t outl = 0;
	params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!mc || !EVP_MAC_init(mc, (const unsigned char *)secret, strlen(secret), params) ||
	    !EVP_MAC_update(mc, (const unsigned char *)timestamp, strlen(timestamp)) ||
	    !EVP_MAC_update(mc, (const unsigned char *)".", 1) ||
	    !EVP_MAC_update(mc, (const unsigned char *)body, len) ||
	    !EVP_MAC_final(mc, md, &outl, sizeof md) || outl != 32)
		goto out;
	memcpy(out, "sha256=", 7);
	hex(md, outl, out + 7);
	rc = 0;
out:
	EVP_MAC_CTX_free(mc);
	EVP_MAC_free(mac);
	return rc;
}

static const char *kind_of(json_t *env)
{
	const char *k = json_string_value(json_object_get(env, "kind"));
	return k && *k ? k : "change";
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* Copy at most max bytes of s into a new string, cut at a UTF-8 boundary, with "…". */
static char *clip(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n <= max)
		return xstrdup(s);
	size_t keep = max > 3 ? max - 3 : 0;
	while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
		keep--;
	char *r = xmalloc(keep + 4);
	memcpy(r, s, keep);
	memcpy(r + keep, "\xE2\x80\xA6", 3);
	r[keep + 3] = '\0';
	return r;
}

/* A field value as short text. */
static void value_text(json_t *v, char *out, size_t len)
{
	if (json_is_string(v))
		snprintf(out, len, "%s", json_string_value(v));
	else if (json_is_null(v))
		snprintf(out, len, "(empty)");
	else {
		char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(out, len, "%s", d ? d : "?");
		free(d);
	}
}

/* "Lead 00Q… created" / "SLA breached: Lead 00Q…" */
static void title_of(json_t *env, char *out, size_t len)
{
	const char *kind = kind_of(env), *entity = str(env, "entity"), *id = str(env, "record_id"),
	           *ct = str(env, "change_type");
	if (strcmp(kind, "sla_breach") == 0)
		snprintf(out, len, "SLA breached: %s %s", entity, id);
	else if (strcmp(kind, "test") == 0)
		snprintf(out, len, "Test notification from sfk");
	else if (strcmp(kind, "change") == 0)
		snprintf(out, len, "%s %s: %s", entity, id, ct);
	else
		snprintf(out, len, "%s: %s %s", kind, entity, id);
}

/* Up to SUMMARY_FIELDS_MAX fields, in document order, as name/text pairs. */
static size_t summary_fields(json_t *env, const char **names, char (*texts)[FIELD_TEXT_MAX])
{
	json_t *fields = json_object_get(env, "fields"), *v;
	const char *k;
	size_t n = 0;
	json_object_foreach(fields, k, v)
	{
		if (n >= SUMMARY_FIELDS_MAX)
			break;
		names[n] = k;
		value_text(v, texts[n], FIELD_TEXT_MAX);
		n++;
	}
	return n;
}

static char *dump(json_t *body, size_t *len)
{
	char *s = json_dumps(body, JSON_COMPACT);
	if (!s)
		return NULL;
	*len = strlen(s);
	if (*len > NOTIFY_BODY_MAX) {
		free(s);
		return NULL;
	}
	return s;
}

static char *render_webhook(const struct notify_target *t, json_t *env, json_t *subs,
                            const char *did, size_t *len)
{
	json_t *fields = json_object_get(env, "fields");
	json_t *cts = json_object_get(env, "commit_timestamp");
	/* "o" steals: borrowed values are increfed first. */
	json_t *b = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:o, s:o}", "delivery_id",
	                      did, "event_id", str(env, "event_id"), "kind", kind_of(env),
	                      "subscriptions", subs ? json_incref(subs) : json_array(), "target",
	                      t->name, "entity", str(env, "entity"), "change_type",
	                      str(env, "change_type"), "record_id", str(env, "record_id"),
	                      "commit_timestamp", cts ? json_incref(cts) : json_null(), "fields",
	                      fields ? json_incref(fields) : json_object());
	if (!b)
		return NULL;
	char *s = dump(b, len);
	if (!s) { /* too large: the fields go, the rest still tells what happened */
		json_object_set_new(b, "fields", json_object());
		json_object_set_new(b, "fields_omitted", json_true());
		s = dump(b, len);
	}
	json_decref(b);
	return s;
}

static char *render_slack(json_t *env, const char *did, size_t *len)
{
	char title[512], detail[SLACK_SECTION_MAX + 1] = "",
	                                            texts[SUMMARY_FIELDS_MAX][FIELD_TEXT_MAX];
	const char *names[SUMMARY_FIELDS_MAX];
	size_t n = summary_fields(env, names, texts), off = 0;

	title_of(env, title, sizeof title);
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(detail + off, sizeof detail - off, "%s*%s:* %s", i ? "\n" : "",
		                 names[i], texts[i]);
		if (w < 0 || (size_t)w >= sizeof detail - off)
			break;
		off += (size_t)w;
	}
	if (!detail[0])
		snprintf(detail, sizeof detail, "_no fields_");
	char *head = clip(title, SLACK_HEADER_MAX), *sec = clip(detail, SLACK_SECTION_MAX);
	char ctx[96];
	snprintf(ctx, sizeof ctx, "delivery `%s`", did);
	json_t *b = json_pack(
	        "{s:s, s:[{s:s, s:{s:s, s:s}}, {s:s, s:{s:s, s:s}}, {s:s, s:[{s:s, s:s}]}]}",
	        "text", title, "blocks", "type", "header", "text", "type", "plain_text", "text",
	        head, "type", "section", "text", "type", "mrkdwn", "text", sec, "type", "context",
	        "elements", "type", "mrkdwn", "text", ctx);
	free(head);
	free(sec);
	char *s = b ? dump(b, len) : NULL;
	json_decref(b);
	return s;
}

static char *render_discord(json_t *env, const char *did, size_t *len)
{
	char title[512], texts[SUMMARY_FIELDS_MAX][FIELD_TEXT_MAX], ts[32] = "";
	const char *names[SUMMARY_FIELDS_MAX];
	size_t n = summary_fields(env, names, texts);
	json_t *fields = json_array();

	title_of(env, title, sizeof title);
	for (size_t i = 0; i < n && i < DISCORD_FIELDS_MAX; i++) {
		char *fn = clip(names[i], DISCORD_FNAME_MAX),
		     *fv = clip(texts[i], DISCORD_FVALUE_MAX);
		json_array_append_new(fields, json_pack("{s:s, s:s, s:b}", "name", fn, "value",
		                                        *fv ? fv : "-", "inline", 1));
		free(fn);
		free(fv);
	}
	json_int_t cts = json_integer_value(json_object_get(env, "commit_timestamp"));
	if (cts > 0) {
		time_t secs = (time_t)(cts / 1000);
		struct tm tm;
		gmtime_r(&secs, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	char *content = clip(title, DISCORD_CONTENT_MAX), *et = clip(title, DISCORD_TITLE_MAX);
	char desc[256], foot[96];
	snprintf(desc, sizeof desc, "%s %s (%s)", str(env, "entity"), str(env, "record_id"),
	         kind_of(env));
	snprintf(foot, sizeof foot, "delivery %s", did);
	json_t *embed = json_pack("{s:s, s:s, s:o, s:{s:s}}", "title", et, "description", desc,
	                          "fields", fields, "footer", "text", foot);
	if (embed && ts[0])
		json_object_set_new(embed, "timestamp", json_string(ts));
	json_t *b = embed ? json_pack("{s:s, s:[o]}", "content", content, "embeds", embed) : NULL;
	free(content);
	free(et);
	char *s = b ? dump(b, len) : NULL;
	json_decref(b);
	return s;
}

char *notify_render(const struct notify_target *t, json_t *env, json_t *subs,
                    const char *delivery_id, size_t *len)
{
	size_t dummy;
	if (!len)
		len = &dummy;
	switch (t->kind) {
	case NOTIFY_SLACK: return render_slack(env, delivery_id, len);
	case NOTIFY_DISCORD: return render_discord(env, delivery_id, len);
	case NOTIFY_WEBHOOK: break;
	}
	return render_webhook(t, env, subs, delivery_id, len);
}
