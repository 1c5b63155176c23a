/*
 * sfid.h - Salesforce record ids: validation, 15 -> 18 conversion, key prefix.
 *
 * A record id is 15 case-sensitive characters [A-Za-z0-9] (3-char key prefix
 * naming the object, then pod/reserved/counter), or 18 characters: the 15 plus
 * a 3-char suffix that encodes the case of the 15, so the 18-char form survives
 * case-insensitive tools. Pure functions, no allocation.
 */
#ifndef SFK_SFID_H
#define SFK_SFID_H

#include <stddef.h>
#include <stdint.h>

#define SFID_LEN15 15
#define SFID_LEN18 18

/*
 * 1 if s[0..n) is a well-formed id: 15 chars of [A-Za-z0-9], or 18 chars whose
 * suffix is exactly the checksum of the first 15 (strict: as Salesforce
 * prints it, suffix upper-case). 0 otherwise. Use before putting an id into
 * SOQL or a URL.
 */
int sfid_valid_n(const char *s, size_t n);
/* Same for a NUL-terminated string (NULL -> 0). */
int sfid_valid(const char *s);

/* The 3-char checksum of 15 id chars (need not be NUL-terminated) into
 * out[0..2]; out is not NUL-terminated. The caller checks the charset. */
void sfid_checksum(const char *id15, char out[3]);

/*
 * Canonical 18-char form into out[19] (NUL-terminated). Accepts a 15-char id
 * (case is significant), or an 18-char id in ANY case: the suffix
 * (case-insensitive) restores the case of the first 15, so "001rm000003ocpryae"
 * becomes "001RM000003oCprYAE". Returns 0, or -1 if s is not a valid id in
 * either form (then out is "").
 */
int sfid_to18(const char *s, char out[SFID_LEN18 + 1]);

/* 1 if a and b name the same record (15 or 18 chars, 18 in any case), else 0
 * (also when either is not a valid id). */
int sfid_equal(const char *a, const char *b);

/*
 * Object name for the id's key prefix ("00Q" -> "Lead"); a static string, or
 * NULL if the prefix is not in our table. s needs at least 3 chars.
 */
const char *sfid_object(const char *s);
/* The key prefix for an object name ("Lead" -> "00Q"); static, or NULL. */
const char *sfid_prefix(const char *object);

/*
 * A valid 18-char id for prefix (3 chars of [A-Za-z0-9]) and counter, for the
 * emulator and tests: prefix + "000" + counter in 9 base-62 digits + checksum.
 * Distinct counters give distinct ids. Returns 0, or -1 on a bad prefix or a
 * counter >= 62^9.
 */
int sfid_make(char out[SFID_LEN18 + 1], const char *prefix, uint64_t counter);

#endif
