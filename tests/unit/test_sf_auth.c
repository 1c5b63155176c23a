/* Unit tests for common/sf_auth: JWT signing, claims, key-file checks, token responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64.h"
#include "sf_auth.h"

struct fx {
	char dir[64];
	char key_path[128];
	EVP_PKEY *pub;      /* public half, for verification */
	char pem_line[128]; /* one line of the PEM body, to look for in messages */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_sf_auth.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->key_path, sizeof f->key_path, "%s/key.pem", f->dir);
	EVP_PKEY *k = EVP_RSA_gen(2048);
	assert_non_null(k);
	FILE *fp = fopen(f->key_path, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(fp);
	assert_int_equal(chmod(f->key_path, 0600), 0);
	/* Keep the public half only. */
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(b, k);
	f->pub = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	EVP_PKEY_free(k);
	/* Second line of the file: pure base64 key material. */
	fp = fopen(f->key_path, "r");
	char line[128];
	assert_non_null(fgets(line, sizeof line, fp));
	assert_non_null(fgets(line, sizeof line, fp));
	fclose(fp);
	line[strcspn(line, "\n")] = '\0';
	snprintf(f->pem_line, sizeof f->pem_line, "%s", line);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	unlink(f->key_path);
	rmdir(f->dir);
	EVP_PKEY_free(f->pub);
	free(f);
	return 0;
}

static struct sf_auth_conf conf(const struct fx *f)
{
	struct sf_auth_conf c = {
	        .login_url = "https://login.salesforce.com",
	        .token_url = "https://acme.my.salesforce.com/",
	        .client_id = "3MVG9consumer.key",
	        .username = "integration@example.com",
	        .key_path = f->key_path,
	};
	return c;
}

static void jwt_verifies_and_has_claims(void **state)
{
	struct fx *f = *state;
	char err[512] = "";
	struct sf_auth_conf c = conf(f);
	struct sf_auth *a = sf_auth_new(&c, err, sizeof err);
	assert_non_null(a);
	assert_string_equal(sf_auth_token_endpoint(a),
	                    "https://acme.my.salesforce.com/services/oauth2/token");
	time_t now = 1767225600; /* 2026-01-01T00:00:00Z */
	char *jwt = sf_auth_jwt(a, now);
	assert_non_null(jwt);

	char *dot1 = strchr(jwt, '.');
	assert_non_null(dot1);
	char *dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);
	assert_null(strchr(dot2 + 1, '.'));
	assert_null(strchr(jwt, '=')); /* base64url without padding */
	assert_null(strchr(jwt, '+'));
	assert_null(strchr(jwt, '/'));

	size_t n;
	unsigned char *hdr = b64url_decode(jwt, (size_t)(dot1 - jwt), &n);
	assert_non_null(hdr);
	json_t *h = json_loads((char *)hdr, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
	json_decref(h);
	free(hdr);

	unsigned char *cl = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &n);
	assert_non_null(cl);
	json_t *j = json_loads((char *)cl, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "iss")), "3MVG9consumer.key");
	assert_string_equal(json_string_value(json_object_get(j, "sub")),
	                    "integration@example.com");
	/* aud is the login URL, not the My Domain token host. */
	assert_string_equal(json_string_value(json_object_get(j, "aud")),
	                    "https://login.salesforce.com");
	assert_int_equal(json_integer_value(json_object_get(j, "exp")), now + 180);
	json_decref(j);
	free(cl);

	/* The signature verifies with the matching public key over header.claims. */
	size_t siglen;
	unsigned char *sig = b64url_decode(dot2 + 1, strlen(dot2 + 1), &siglen);
	assert_non_null(sig);
	assert_int_equal(siglen, 256);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, f->pub), 1);
	assert_int_equal(
	        EVP_DigestVerify(md, sig, siglen, (unsigned char *)jwt, (size_t)(dot2 - jwt)), 1);
	/* ...and not over anything else. */
	jwt[1] ^= 1;
	EVP_MD_CTX_reset(md);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, f->pub), 1);
	assert_int_not_equal(
	        EVP_DigestVerify(md, sig, siglen, (unsigned char *)jwt, (size_t)(dot2 - jwt)), 1);
	EVP_MD_CTX_free(md);
	free(sig);
	free(jwt);
	sf_auth_free(&a);
	assert_null(a);
}

static void token_url_defaults_to_login_url(void **state)
{
	struct fx *f = *state;
	char err[512] = "";
	struct sf_auth_conf c = conf(f);
	c.token_url = NULL;
	c.login_url = "https://test.salesforce.com/";
	struct sf_auth *a = sf_auth_new(&c, err, sizeof err);
	assert_non_null(a);
	assert_string_equal(sf_auth_token_endpoint(a),
	                    "https://test.salesforce.com/services/oauth2/token");
	assert_string_equal(sf_auth_login_url(a), "https://test.salesforce.com");
	sf_auth_free(&a);
}

static void refuses_group_or_world_readable_key(void **state)
{
	struct fx *f = *state;
	char err[512] = "";
	struct sf_auth_conf c = conf(f);
	const mode_t bad[] = {0644, 0640, 0604, 0660};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(chmod(f->key_path, bad[i]), 0);
		err[0] = '\0';
		assert_null(sf_auth_new(&c, err, sizeof err));
		assert_non_null(strstr(err, f->key_path));
		assert_non_null(strstr(err, "chmod 600"));
		assert_null(strstr(err, f->pem_line));
		assert_int_equal(sf_auth_check_key_file(f->key_path, err, sizeof err),
		                 SFK_ERR_CONFIG);
	}
	assert_int_equal(chmod(f->key_path, 0400), 0);
	assert_int_equal(sf_auth_check_key_file(f->key_path, err, sizeof err), SFK_OK);
	assert_int_equal(chmod(f->key_path, 0600), 0);
	c.key_path = "/nonexistent/key.pem";
	assert_null(sf_auth_new(&c, err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent/key.pem"));
}

static void refuses_non_key_file(void **state)
{
	struct fx *f = *state;
	char path[160], err[512] = "";
	snprintf(path, sizeof path, "%s/notakey.pem", f->dir);
	FILE *fp = fopen(path, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", fp);
	fclose(fp);
	chmod(path, 0600);
	struct sf_auth_conf c = conf(f);
	c.key_path = path;
	assert_null(sf_auth_new(&c, err, sizeof err));
	assert_non_null(strstr(err, "not a readable"));
	assert_null(strstr(err, "bm90IGEga2V5"));
	unlink(path);
}

static void missing_settings_named(void **state)
{
	struct fx *f = *state;
	char err[512] = "";
	struct sf_auth_conf c = conf(f);
	c.client_id = "";
	assert_null(sf_auth_new(&c, err, sizeof err));
	assert_non_null(strstr(err, "SF_CLIENT_ID"));
	c = conf(f);
	c.login_url = "http://login.salesforce.com";
	assert_null(sf_auth_new(&c, err, sizeof err));
	assert_non_null(strstr(err, "https"));
	c = conf(f);
	c.token_url = "http://acme.my.salesforce.com";
	assert_null(sf_auth_new(&c, err, sizeof err));
	assert_non_null(strstr(err, "SF_TOKEN_URL"));
}

/* jwt-token-response.help-doc.json, verbatim. */
static const char sample_token[] =
        "{\"access_token\":\"00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog.39AsX."
        "LVpxezPwuX5VAIrrbbHMuol7GQxnMeYMN7cj8EoWr78nt1u44zU31IbYNNJguseu\",\"scope\":\"web "
        "openid api id\",\"instance_url\":\"https://yourInstance.salesforce.com\",\"id\":\"https:"
        "//yourInstance.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS\",\"token_type\":"
        "\"Bearer\"}";

static void parses_token_response(void **state)
{
	(void)state;
	struct sf_auth_token t;
	struct sf_error e;
	assert_int_equal(sf_auth_parse_response(200, "application/json", sample_token,
	                                        strlen(sample_token), &t, &e),
	                 SFK_OK);
	assert_true(strncmp(t.access_token, "00Dxx0000001gPL!AR8AQ", 21) == 0);
	assert_string_equal(t.instance_url, "https://yourInstance.salesforce.com");
	assert_string_equal(t.token_type, "Bearer");
	assert_string_equal(t.scope, "web openid api id");
	assert_string_equal(t.id, "https://yourInstance.salesforce.com/id/00Dxx0000001gPLEAY/"
	                          "005xx000001SwiUAAS");
	struct sf_auth_token c = {0};
	sf_auth_token_copy(&c, &t);
	sf_auth_token_clear(&t);
	assert_null(t.access_token);
	assert_string_equal(c.instance_url, "https://yourInstance.salesforce.com");
	sf_auth_token_clear(&c);

	const char jwt_err[] = "{\"error\":\"invalid_grant\",\"error_description\":\"user hasn't "
	                       "approved this consumer\"}";
	assert_int_equal(sf_auth_parse_response(400, NULL, jwt_err, strlen(jwt_err), &t, &e),
	                 SFK_ERR_GRANT);
	assert_null(t.access_token);
	assert_non_null(strstr(e.message, "pre-authorize"));
	assert_int_equal(sf_auth_parse_response(200, NULL, "{}", 2, &t, &e), SFK_ERR_PARSE);
	const char plain[] = "{\"access_token\":\"00Dxx!abc\",\"instance_url\":\"http://x\"}";
	assert_int_equal(sf_auth_parse_response(200, NULL, plain, strlen(plain), &t, &e),
	                 SFK_ERR_PARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(jwt_verifies_and_has_claims),
	        cmocka_unit_test(token_url_defaults_to_login_url),
	        cmocka_unit_test(refuses_group_or_world_readable_key),
	        cmocka_unit_test(refuses_non_key_file),
	        cmocka_unit_test(missing_settings_named),
	        cmocka_unit_test(parses_token_response),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
