#include "b64.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "xmem.h"

char *b64url_encode(const void *data, size_t len)
{
	/* EVP_EncodeBlock writes 4 bytes per 3 input bytes plus a NUL. */
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (int i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return out;
}

unsigned char *b64url_decode(const char *s, size_t len, size_t *outlen)
{
	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return NULL;
	size_t padded = (len + 3) / 4 * 4;
	char *in = xmalloc(padded + 1);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		in[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	for (size_t i = len; i < padded; i++)
		in[i] = '=';
	in[padded] = '\0';
	unsigned char *out = xmalloc(padded / 4 * 3 + 1);
	int n = padded ? EVP_DecodeBlock(out, (unsigned char *)in, (int)padded) : 0;
	free(in);
	if (n < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the bytes the padding stands for: drop them. */
	n -= (int)(padded - len);
	out[n] = '\0';
	*outlen = (size_t)n;
	return out;
}
