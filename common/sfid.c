/*
 * sfid.c - see sfid.h.
 *
 * Checksum (the 18-char suffix): split the 15 chars into three chunks of 5;
 * for each chunk, bit i (i = 0..4, leftmost char = bit 0) is set when char i
 * is an upper-case letter A-Z; the 5-bit value indexes
 * "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345". Published pair used by the unit tests:
 * 001D000000IqhSL -> 001D000000IqhSLIAZ.
 */
#include <string.h>

#include "sfid.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}
static int is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}
static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}
static int is_alnum(char c)
{
	return is_upper(c) || is_lower(c) || is_digit(c);
}

static int all_alnum(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]))
			return 0;
	return 1;
}

void sfid_checksum(const char *id15, char out[3])
{
	for (int chunk = 0; chunk < 3; chunk++) {
		unsigned v = 0;
		for (int i = 0; i < 5; i++)
			if (is_upper(id15[chunk * 5 + i]))
				v |= 1u << i;
		out[chunk] = alphabet[v];
	}
}

int sfid_valid_n(const char *s, size_t n)
{
	char sum[3];

	if (!s || (n != SFID_LEN15 && n != SFID_LEN18) || !all_alnum(s, n))
		return 0;
	if (n == SFID_LEN15)
		return 1;
	sfid_checksum(s, sum);
	return memcmp(sum, s + SFID_LEN15, 3) == 0;
}

int sfid_valid(const char *s)
{
	if (!s)
		return 0;
	return sfid_valid_n(s, strnlen(s, SFID_LEN18 + 1));
}

/* Index of c in alphabet, case-insensitively; -1 if absent. */
static int suffix_value(char c)
{
	if (is_lower(c))
		c = (char)(c - 'a' + 'A');
	const char *p = strchr(alphabet, c);
	return c && p ? (int)(p - alphabet) : -1;
}

int sfid_to18(const char *s, char out[SFID_LEN18 + 1])
{
	size_t n;

	out[0] = '\0';
	if (!s)
		return -1;
	n = strnlen(s, SFID_LEN18 + 1);
	if ((n != SFID_LEN15 && n != SFID_LEN18) || !all_alnum(s, n))
		return -1;
	memcpy(out, s, SFID_LEN15);
	if (n == SFID_LEN18) {
		/* The suffix is the case map: restore each letter's case from it. A
		 * bit set over a digit means the id was not made by Salesforce. */
		for (int chunk = 0; chunk < 3; chunk++) {
			int v = suffix_value(s[SFID_LEN15 + chunk]);
			if (v < 0)
				goto bad;
			for (int i = 0; i < 5; i++) {
				char *c = &out[chunk * 5 + i];
				int up = (v >> i) & 1;
				if (is_digit(*c)) {
					if (up)
						goto bad;
				} else if (up && is_lower(*c)) {
					*c = (char)(*c - 'a' + 'A');
				} else if (!up && is_upper(*c)) {
					*c = (char)(*c - 'A' + 'a');
				}
			}
		}
	}
	sfid_checksum(out, out + SFID_LEN15);
	out[SFID_LEN18] = '\0';
	return 0;
bad:
	out[0] = '\0';
	return -1;
}

int sfid_equal(const char *a, const char *b)
{
	char x[SFID_LEN18 + 1], y[SFID_LEN18 + 1];

	if (sfid_to18(a, x) < 0 || sfid_to18(b, y) < 0)
		return 0;
	return memcmp(x, y, SFID_LEN18) == 0;
}

/*
 * Standard key prefixes (documented by Salesforce and stable across orgs).
 * Not listed on purpose: EmailMessageRelation - its prefix could not be
 * verified from a primary source here (it is sometimes quoted as "0Er"); add
 * it once confirmed against a describe() keyPrefix. Custom objects get
 * per-org prefixes (a00..), so describe() is the authority for those.
 */
static const struct {
	const char prefix[4];
	const char *object;
} prefixes[] = {
        {"001", "Account"},
        {"002", "Note"},
        {"003", "Contact"},
        {"005", "User"},
        {"006", "Opportunity"},
        {"00D", "Organization"},
        {"00E", "UserRole"},
        {"00G", "Group"},
        {"00O", "Report"},
        {"00P", "Attachment"},
        {"00Q", "Lead"},
        {"00T", "Task"},
        {"00U", "Event"},
        {"00X", "EmailTemplate"},
        {"00e", "Profile"},
        {"00v", "CampaignMember"},
        {"012", "RecordType"},
        {"015", "Document"},
        {"01Z", "Dashboard"},
        {"01t", "Product2"},
        {"02s", "EmailMessage"},
        {"068", "ContentVersion"},
        {"069", "ContentDocument"},
        {"0Q0", "Quote"},
        {"500", "Case"},
        {"701", "Campaign"},
        {"800", "Contract"},
        {"801", "Order"},
};

const char *sfid_object(const char *s)
{
	if (!s || strnlen(s, 3) < 3)
		return NULL;
	/* Key prefixes are case-sensitive: "00e" Profile vs "00E" UserRole. */
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (memcmp(prefixes[i].prefix, s, 3) == 0)
			return prefixes[i].object;
	return NULL;
}

const char *sfid_prefix(const char *object)
{
	if (!object)
		return NULL;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strcmp(prefixes[i].object, object) == 0)
			return prefixes[i].prefix;
	return NULL;
}

int sfid_make(char out[SFID_LEN18 + 1], const char *prefix, uint64_t counter)
{
	out[0] = '\0';
	if (!prefix || strnlen(prefix, 4) != 3 || !all_alnum(prefix, 3))
		return -1;
	memcpy(out, prefix, 3);
	memcpy(out + 3, "000", 3);
	for (int i = SFID_LEN15 - 1; i >= 6; i--) {
		out[i] = base62[counter % 62];
		counter /= 62;
	}
	if (counter != 0) { /* did not fit in 9 digits */
		out[0] = '\0';
		return -1;
	}
	sfid_checksum(out, out + SFID_LEN15);
	out[SFID_LEN18] = '\0';
	return 0;
}
