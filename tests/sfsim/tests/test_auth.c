/* Unit tests for sfk-sim's JWT bearer verification (auth_verify_jwt): real
 * RS256 signatures made here with OpenSSL, Salesforce's error descriptions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "b64.h"

#define NOW      1700000000
#define CLIENT   "3MVG9test.client"
#define LOGIN    "https://login.salesforce.com"
#define USERNAME "integration@sfk-sim.test"

static EVP_PKEY *key, *other_key;

static int setup(void **state)
{
	(void)state;
	key = EVP_RSA_gen(2048);
	other_key = EVP_RSA_gen(2048);
	return key && other_key ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(key);
	EVP_PKEY_free(other_key);
	return 0;
}

/* header.claims.signature signed with k; header_json and claims borrowed. */
static char *make_jwt(const char *header_json, json_t *claims, EVP_PKEY *k)
{
	char *c = json_dumps(claims, JSON_COMPACT);
	char *h64 = b64url_encode(header_json, strlen(header_json));
	char *c64 = b64url_encode(c, strlen(c));
	size_t silen = strlen(h64) + 1 + strlen(c64);
	char *si = malloc(silen + 1);
	snprintf(si, silen + 1, "%s.%s", h64, c64);
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)si, silen), 1);
	EVP_MD_CTX_free(md);
	char *s64 = b64url_encode(sig, siglen);
	size_t total = silen + 1 + strlen(s64);
	char *jwt = malloc(total + 1);
	snprintf(jwt, total + 1, "%s.%s", si, s64);
	free(c);
	free(h64);
	free(c64);
	free(si);
	free(s64);
	return jwt;
}

static json_t *good_claims(void)
{
	return json_pack("{s:s,s:s,s:s,s:I}", "iss", CLIENT, "sub", USERNAME, "aud", LOGIN, "exp",
	                 (json_int_t)(NOW + 120));
}

/* Verify claims (takes ownership) signed with k; returns rc, fills desc/subject. */
static int verify(json_t *claims, EVP_PKEY *k, char *subject, char *desc)
{
	char *jwt = make_jwt("{\"alg\":\"RS256\"}", claims, k);
	int rc = auth_verify_jwt(jwt, key, CLIENT, LOGIN, NOW, subject, 256, desc, 128);
	free(jwt);
	json_decref(claims);
	return rc;
}

static void valid_assertion_gives_subject(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	assert_int_equal(verify(good_claims(), key, subject, desc), 0);
	assert_string_equal(subject, USERNAME);
}

static void exp_as_string_is_accepted(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	json_t *c = good_claims();
	json_object_set_new(c, "exp", json_string("1700000100"));
	assert_int_equal(verify(c, key, subject, desc), 0);
}

static void prn_wins_over_sub(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	json_t *c = good_claims();
	json_object_set_new(c, "prn", json_string("legacy@sfk-sim.test"));
	assert_int_equal(verify(c, key, subject, desc), 0);
	assert_string_equal(subject, "legacy@sfk-sim.test");
}

static void wrong_audience(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	json_t *c = good_claims();
	json_object_set_new(c, "aud", json_string("https://test.salesforce.com"));
	assert_int_equal(verify(c, key, subject, desc), -1);
	assert_string_equal(desc, "Audience validation failed");
}

static void expired(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	json_t *c = good_claims();
	json_object_set_new(c, "exp", json_integer(NOW - 1));
	assert_int_equal(verify(c, key, subject, desc), -1);
	assert_string_equal(desc, "expired authorization code");
}

static void exp_in_milliseconds_is_refused(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	json_t *c = good_claims();
	json_object_set_new(c, "exp", json_integer((json_int_t)NOW * 1000));
	assert_int_equal(verify(c, key, subject, desc), -1);
	assert_string_equal(desc, "invalid assertion");
}

static void signature_from_other_key(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	assert_int_equal(verify(good_claims(), other_key, subject, desc), -1);
	assert_string_equal(desc, "invalid assertion");
}

static void wrong_issuer(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	json_t *c = good_claims();
	json_object_set_new(c, "iss", json_string("someone-else"));
	assert_int_equal(verify(c, key, subject, desc), -1);
	assert_string_equal(desc, "invalid assertion");
}

static void missing_subject(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	json_t *c = good_claims();
	json_object_del(c, "sub");
	assert_int_equal(verify(c, key, subject, desc), -1);
}

static void tampered_claims_and_alg_none(void **state)
{
	char subject[256] = "", desc[128] = "";
	(void)state;
	json_t *c = good_claims();
	char *jwt = make_jwt("{\"alg\":\"RS256\"}", c, key);
	/* Swap the claims for others signed by nobody. */
	json_object_set_new(c, "sub", json_string("admin@example.com"));
	char *cj = json_dumps(c, JSON_COMPACT);
	char *c64 = b64url_encode(cj, strlen(cj));
	char *dot1 = strchr(jwt, '.'), *dot2 = strchr(dot1 + 1, '.');
	size_t n = (size_t)(dot1 - jwt) + 1 + strlen(c64) + strlen(dot2) + 1;
	char *forged = malloc(n);
	snprintf(forged, n, "%.*s.%s%s", (int)(dot1 - jwt), jwt, c64, dot2);
	assert_int_equal(auth_verify_jwt(forged, key, CLIENT, LOGIN, NOW, subject, 256, desc, 128),
	                 -1);
	assert_string_equal(desc, "invalid assertion");
	free(forged);
	free(jwt);

	jwt = make_jwt("{\"alg\":\"none\"}", c, key);
	assert_int_equal(auth_verify_jwt(jwt, key, CLIENT, LOGIN, NOW, subject, 256, desc, 128),
	                 -1);
	free(jwt);
	assert_int_equal(
	        auth_verify_jwt("abc.def", key, CLIENT, LOGIN, NOW, subject, 256, desc, 128), -1);
	assert_string_equal(desc, "invalid assertion");
	free(cj);
	free(c64);
	json_decref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(valid_assertion_gives_subject),
	        cmocka_unit_test(exp_as_string_is_accepted),
	        cmocka_unit_test(prn_wins_over_sub),
	        cmocka_unit_test(wrong_audience),
	        cmocka_unit_test(expired),
	        cmocka_unit_test(exp_in_milliseconds_is_refused),
	        cmocka_unit_test(signature_from_other_key),
	        cmocka_unit_test(wrong_issuer),
	        cmocka_unit_test(missing_subject),
	        cmocka_unit_test(tampered_claims_and_alg_none),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
