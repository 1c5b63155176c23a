/*
 * auth.c - JWT bearer token endpoint and sessions.
 *
 * Checks run in the order Salesforce's answers suggest: the grant type, the
 * connected app (iss), the signature, the audience, the expiry, then the user
 * and its pre-authorization. Every failure is HTTP 400 with
 * {"error","error_description"} and Cache-Control: no-store.
 */
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "b64.h"
#include "control.h"
#include "http.h"
#include "log.h"
#include "org.h"
#include "xmem.h"

#define AUTH_MAX_APPS  8
#define AUTH_MAX_USERS 64
/* Sessions kept before expired ones are swept. */
#define AUTH_SWEEP_EVERY 1024

struct auth {
	struct auth_app apps[AUTH_MAX_APPS];
	size_t napps;
	char *users[AUTH_MAX_USERS];
	size_t nusers;
	pthread_rwlock_t lock;
	json_t *sessions; /* token -> [user_id, expires_ms] */
	size_t inserts;
};

int auth_init(struct sim *sim)
{
	sim->auth = xcalloc(1, sizeof(struct auth));
	pthread_rwlock_init(&sim->auth->lock, NULL);
	sim->auth->sessions = json_object();
	return 0;
}

void auth_fini(struct sim *sim)
{
	struct auth *a = sim->auth;
	if (!a)
		return;
	for (size_t i = 0; i < a->napps; i++)
		EVP_PKEY_free(a->apps[i].pubkey);
	for (size_t i = 0; i < a->nusers; i++)
		free(a->users[i]);
	json_decref(a->sessions);
	pthread_rwlock_destroy(&a->lock);
	free(a);
	sim->auth = NULL;
}

int auth_add_app(struct sim *sim, const char *spec)
{
	struct auth *a = sim->auth;
	const char *colon = strchr(spec, ':');
	if (!colon || colon == spec || a->napps >= AUTH_MAX_APPS ||
	    (size_t)(colon - spec) >= sizeof(a->apps[0].client_id)) {
		log_error("bad --app value, want CLIENT_ID:CERT_PEM");
		return -1;
	}
	FILE *f = fopen(colon + 1, "r");
	if (!f) {
		log_error("cannot open app certificate path=%s error=%s", colon + 1,
		          strerror(errno));
		return -1;
	}
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	EVP_PKEY *pk = cert ? X509_get_pubkey(cert) : NULL;
	X509_free(cert);
	if (!pk || EVP_PKEY_base_id(pk) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pk);
		log_error("app certificate is not an RSA X.509 PEM path=%s", colon + 1);
		return -1;
	}
	struct auth_app *app = &a->apps[a->napps++];
	memcpy(app->client_id, spec, (size_t)(colon - spec));
	app->client_id[colon - spec] = '\0';
	app->pubkey = pk;
	return 0;
}

int auth_add_user(struct sim *sim, const char *username)
{
	struct auth *a = sim->auth;
	if (a->nusers >= AUTH_MAX_USERS)
		return -1;
	a->users[a->nusers++] = xstrdup(username);
	return 0;
}

/* ---- JWT ------------------------------------------------------------------------------ */

static int set_desc(char *desc, size_t size, const char *text)
{
	snprintf(desc, size, "%s", text);
	return -1;
}

static json_t *decode_part(const char *s, size_t n)
{
	size_t len;
	unsigned char *raw = b64url_decode(s, n, &len);
	if (!raw)
		return NULL;
	json_t *j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* exp as a number or a numeric string (Salesforce's own example uses a string). */
static int claim_exp(json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		*out = (int64_t)json_real_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		char *end;
		errno = 0;
		long long x = strtoll(json_string_value(v), &end, 10);
		if (errno || end == json_string_value(v) || *end)
			return -1;
		*out = x;
		return 0;
	}
	return -1;
}

static int aud_matches(json_t *aud, const char *expected)
{
	size_t i;
	json_t *v;
	if (json_is_string(aud))
		return strcmp(json_string_value(aud), expected) == 0;
	/* RFC 7519 allows an array of audiences. */
	json_array_foreach(aud, i, v) if (json_is_string(v) &&
	                                  strcmp(json_string_value(v), expected) == 0) return 1;
	return 0;
}

int auth_verify_jwt(const char *assertion, void *pubkey, const char *client_id,
                    const char *expected_aud, int64_t now_s, char *subject, size_t subject_size,
                    char *desc, size_t desc_size)
{
	json_t *hdr = NULL, *claims = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	EVP_MD_CTX *md = NULL;
	int rc = -1;
	int64_t exp;

	const char *dot1 = strchr(assertion, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot1 || !dot2 || strchr(dot2 + 1, '.') || strlen(assertion) > AUTH_ASSERTION_MAX) {
		set_desc(desc, desc_size, "invalid assertion");
		goto out;
	}
	hdr = decode_part(assertion, (size_t)(dot1 - assertion));
	claims = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	sig = b64url_decode(dot2 + 1, strlen(dot2 + 1), &siglen);
	if (!hdr || !claims || !sig || siglen == 0) {
		set_desc(desc, desc_size, "invalid assertion");
		goto out;
	}
	json_t *alg = json_object_get(hdr, "alg");
	if (!json_is_string(alg) || strcmp(json_string_value(alg), "RS256") != 0) {
		set_desc(desc, desc_size, "invalid assertion");
		goto out;
	}
	json_t *iss = json_object_get(claims, "iss");
	if (!json_is_string(iss) || strcmp(json_string_value(iss), client_id) != 0) {
		set_desc(desc, desc_size, "invalid assertion");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pubkey) != 1 ||
	    EVP_DigestVerify(md, sig, siglen, (const unsigned char *)assertion,
	                     (size_t)(dot2 - assertion)) != 1) {
		set_desc(desc, desc_size, "invalid assertion");
		goto out;
	}
	if (!aud_matches(json_object_get(claims, "aud"), expected_aud)) {
		set_desc(desc, desc_size, "Audience validation failed");
		goto out;
	}
	if (claim_exp(json_object_get(claims, "exp"), &exp) < 0) {
		set_desc(desc, desc_size, "invalid assertion");
		goto out;
	}
	if (exp <= now_s) {
		set_desc(desc, desc_size, "expired authorization code");
		goto out;
	}
	if (exp > now_s + AUTH_EXP_MAX_FUTURE_S + 60) {
		/* Milliseconds by mistake land here too. */
		set_desc(desc, desc_size, "invalid assertion");
		goto out;
	}
	/* Legacy prn wins over sub when both are present. */
	json_t *subj = json_object_get(claims, "prn");
	if (!json_is_string(subj))
		subj = json_object_get(claims, "sub");
	if (!json_is_string(subj) || json_string_length(subj) == 0) {
		set_desc(desc, desc_size, "invalid assertion");
		goto out;
	}
	snprintf(subject, subject_size, "%s", json_string_value(subj));
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	free(sig);
	json_decref(hdr);
	json_decref(claims);
	return rc;
}

/* ---- sessions ------------------------------------------------------------------------- */

int auth_session(struct sim *sim, const char *token, char user_id[19])
{
	struct auth *a = sim->auth;
	int rc = -1;
	int64_t now = sim_now_ms(sim);
	pthread_rwlock_rdlock(&a->lock);
	json_t *s = json_object_get(a->sessions, token);
	if (s && json_integer_value(json_array_get(s, 1)) > now) {
		snprintf(user_id, 19, "%s", json_string_value(json_array_get(s, 0)));
		rc = 0;
	}
	pthread_rwlock_unlock(&a->lock);
	return rc;
}

void auth_expire_all(struct sim *sim)
{
	struct auth *a = sim->auth;
	pthread_rwlock_wrlock(&a->lock);
	json_object_clear(a->sessions);
	pthread_rwlock_unlock(&a->lock);
}

static void new_token(struct sim *sim, char *out, size_t size)
{
	static const char alphabet[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
	unsigned char rnd[96];
	size_t o;
	RAND_bytes(rnd, sizeof(rnd));
	/* "<15-char org id>!AQ..." like real session ids. */
	o = (size_t)snprintf(out, size, "%.15s!AQ", sim->org_id);
	for (size_t i = 0; i < sizeof(rnd) && o + 1 < size; i++)
		out[o++] = alphabet[rnd[i] % 64];
	out[o] = '\0';
}

static void store_session(struct sim *sim, const char *token, const char *user_id)
{
	struct auth *a = sim->auth;
	int64_t now = sim_now_ms(sim);
	pthread_rwlock_wrlock(&a->lock);
	if (++a->inserts % AUTH_SWEEP_EVERY == 0) {
		const char *k;
		json_t *v, *tmp;
		json_object_foreach_safe(a->sessions, tmp, k,
		                         v) if (json_integer_value(json_array_get(v, 1)) <= now)
		        json_object_del(a->sessions, k);
	}
	json_object_set_new(
	        a->sessions, token,
	        json_pack("[s,I]", user_id, (json_int_t)(now + sim->cfg.token_ttl_s * 1000)));
	pthread_rwlock_unlock(&a->lock);
}

/* ---- token endpoint --------------------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Value of name in an x-www-form-urlencoded body; new string or NULL. */
static char *form_value(const char *body, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = body;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			const char *v = p + nlen + 1;
			size_t vlen = len - nlen - 1;
			char *out = xmalloc(vlen + 1);
			size_t o = 0;
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] == '+') {
					out[o++] = ' ';
				} else if (v[i] == '%' && i + 2 < vlen &&
				           hexval((unsigned char)v[i + 1]) >= 0 &&
				           hexval((unsigned char)v[i + 2]) >= 0) {
					out[o++] = (char)(hexval((unsigned char)v[i + 1]) * 16 +
					                  hexval((unsigned char)v[i + 2]));
					i += 2;
				} else {
					out[o++] = v[i];
				}
			}
			out[o] = '\0';
			return out;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

static void oauth_error(struct sim *sim, struct sim_resp *resp, int status, const char *error,
                        const char *desc)
{
	stats_count_token(sim, error);
	sim_resp_json(resp, status,
	              json_pack("{s:s,s:s}", "error", error, "error_description", desc));
	sim_resp_header(resp, "Cache-Control", "no-store");
}

static int user_preauthorized(struct auth *a, const char *username)
{
	for (size_t i = 0; i < a->nusers; i++)
		if (strcasecmp(a->users[i], username) == 0)
			return 1;
	return 0;
}

static void token_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	struct auth *a = sim->auth;
	char *grant = NULL, *assertion = NULL;
	char subject[256], desc[128], user_id[SIM_ID_BUF];
	const struct auth_app *app = NULL;

	if (strcmp(req->method, "POST") != 0) {
		oauth_error(sim, resp, 400, "invalid_request", "must use HTTP POST");
		goto out;
	}
	grant = form_value(req->body, "grant_type");
	if (!grant || strcmp(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer") != 0) {
		oauth_error(sim, resp, 400, "unsupported_grant_type", "grant type not supported");
		goto out;
	}
	assertion = form_value(req->body, "assertion");
	if (!assertion || !assertion[0]) {
		oauth_error(sim, resp, 400, "invalid_grant", "invalid assertion");
		goto out;
	}
	/* Find the app by iss without trusting anything else yet. */
	{
		const char *d1 = strchr(assertion, '.');
		const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
		json_t *claims = d2 ? decode_part(d1 + 1, (size_t)(d2 - d1 - 1)) : NULL;
		const char *iss = json_string_value(json_object_get(claims, "iss"));
		for (size_t i = 0; iss && i < a->napps; i++)
			if (strcmp(a->apps[i].client_id, iss) == 0)
				app = &a->apps[i];
		int had_claims = claims != NULL;
		json_decref(claims);
		if (!had_claims) {
			oauth_error(sim, resp, 400, "invalid_grant", "invalid assertion");
			goto out;
		}
		if (!app) {
			oauth_error(sim, resp, 400, "invalid_client_id",
			            "client identifier invalid");
			goto out;
		}
	}
	const char *aud =
	        sim->cfg.sandbox ? "https://test.salesforce.com" : "https://login.salesforce.com";
	/* exp is checked against the wall clock: clients mint it from theirs and
	 * cannot know the sim offset. Session lifetimes run on the sim clock. */
	if (auth_verify_jwt(assertion, app->pubkey, app->client_id, aud, (int64_t)time(NULL),
	                    subject, sizeof(subject), desc, sizeof(desc)) < 0) {
		oauth_error(sim, resp, 400, "invalid_grant", desc);
		goto out;
	}
	if (!user_preauthorized(a, subject) || org_user_by_username(sim, subject, user_id) != 0) {
		oauth_error(sim, resp, 400, "invalid_grant", "user hasn't approved this consumer");
		goto out;
	}
	char token[160];
	new_token(sim, token, sizeof(token));
	store_session(sim, token, user_id);
	char idurl[512];
	snprintf(idurl, sizeof(idurl), "%s/id/%s/%s", sim->cfg.instance_url, sim->org_id, user_id);
	stats_count_token(sim, "ok");
	sim_resp_json(resp, 200,
	              json_pack("{s:s,s:s,s:s,s:s,s:s}", "access_token", token, "scope",
	                        "web openid api id", "instance_url", sim->cfg.instance_url, "id",
	                        idurl, "token_type", "Bearer"));
	sim_resp_header(resp, "Cache-Control", "no-store");
out:
	free(grant);
	free(assertion);
}

/* GET /id/<orgId>/<userId>: the identity URL of the token response. */
static void identity_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	char session_user[SIM_ID_BUF], org[SIM_ID_BUF], user[SIM_ID_BUF];
	const char *p = req->path + strlen("/id/");
	size_t n = strcspn(p, "/");

	if (sim_req_session(sim, req, session_user) < 0) {
		sim_resp_text(resp, 403, "text/plain", "Bad_OAuth_Token");
		return;
	}
	if (n >= sizeof(org) || p[n] != '/' || strlen(p + n + 1) >= sizeof(user)) {
		sim_resp_error(resp, 404, "NOT_FOUND", "The requested resource does not exist",
		               NULL);
		return;
	}
	snprintf(org, sizeof(org), "%.*s", (int)n, p);
	snprintf(user, sizeof(user), "%s", p + n + 1);
	json_t *u = NULL;
	if (strncmp(org, sim->org_id, 15) == 0) {
		org_lock(sim);
		json_t *rec = org_lookup_locked(sim, user);
		if (rec && strncmp(user, "005", 3) == 0)
			u = json_deep_copy(rec);
		pthread_mutex_unlock(&sim->lock);
	}
	if (!u) {
		sim_resp_error(resp, 404, "NOT_FOUND", "The requested resource does not exist",
		               NULL);
		return;
	}
	char idurl[512], rest[512];
	const char *uid = json_string_value(json_object_get(u, "Id"));
	snprintf(idurl, sizeof(idurl), "%s/id/%s/%s", sim->cfg.instance_url, sim->org_id, uid);
	snprintf(rest, sizeof(rest), "%s/services/data/v{version}/", sim->cfg.instance_url);
	json_t *out = json_pack(
	        "{s:s,s:b,s:s,s:s,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:s,s:s,s:{s:s,s:s,s:s}}", "id",
	        idurl, "asserted_user", strcmp(uid, session_user) == 0, "user_id", uid,
	        "organization_id", sim->org_id, "username", json_object_get(u, "Username"),
	        "nick_name", json_object_get(u, "Alias"), "display_name",
	        json_object_get(u, "Name"), "email", json_object_get(u, "Email"), "active",
	        json_object_get(u, "IsActive"), "last_modified_date",
	        json_object_get(u, "LastModifiedDate"), "user_type", "STANDARD", "language",
	        "en_US", "urls", "rest", rest, "query", "/services/data/v{version}/query/",
	        "sobjects", "/services/data/v{version}/sobjects/");
	json_decref(u);
	sim_resp_json(resp, 200, out);
}

int auth_routes(struct sim *sim)
{
	int rc = sim_route(sim, NULL, "/services/oauth2/token", 0, AUTH_ASSERTION_MAX * 2,
	                   token_handler, NULL);
	rc |= sim_route(sim, "GET", "/id", 0, 0, identity_handler, NULL);
	return rc ? -1 : 0;
}
