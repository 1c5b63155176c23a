/*
 * soql_date.c - calendar arithmetic for the SOQL evaluator: civil dates <->
 * days since 1970-01-01, strict date/datetime parsing (literals and record
 * values), and the day ranges of relative date literals (TODAY,
 * LAST_N_DAYS:n ...). UTC throughout; no libc time zone state.
 */
#include <ctype.h>

#include "soql_int.h"

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t soql_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void soql_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int valid_ymd(unsigned y, unsigned m, unsigned d)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	return !(m == 2 && d == 29 && !leap);
}

int soql_parse_date(const char *s, size_t n, int64_t *days)
{
	unsigned y, m, d;

	if (n != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	if (digits(s, 4, &y) || digits(s + 5, 2, &m) || digits(s + 8, 2, &d))
		return -1;
	if (!valid_ymd(y, m, d))
		return -1;
	*days = soql_days_from_civil(y, m, d);
	return 0;
}

int soql_parse_datetime(const char *s, size_t n, int64_t *ms)
{
	unsigned hh, mi, ss, oh = 0, om = 0, frac = 0;
	int64_t days, sign = 0, t;
	size_t i = 19, fdig = 0;

	if (n < 20 || soql_parse_date(s, 10, &days) || (s[10] != 'T' && s[10] != 't'))
		return -1;
	if (s[13] != ':' || s[16] != ':' || digits(s + 11, 2, &hh) || digits(s + 14, 2, &mi) ||
	    digits(s + 17, 2, &ss) || hh > 23 || mi > 59 || ss > 59)
		return -1;
	if (i < n && s[i] == '.') {
		for (i++; i < n && isdigit((unsigned char)s[i]); i++, fdig++) {
			if (fdig < 3)
				frac = frac * 10 + (unsigned)(s[i] - '0');
		}
		if (fdig == 0)
			return -1;
		for (; fdig < 3; fdig++)
			frac *= 10;
	}
	if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
		sign = 0;
	} else if (i < n && (s[i] == '+' || s[i] == '-')) {
		sign = s[i] == '-' ? -1 : 1;
		i++;
		if (n - i == 5 && s[i + 2] == ':') {
			if (digits(s + i, 2, &oh) || digits(s + i + 3, 2, &om))
				return -1;
		} else if (n - i == 4) {
			if (digits(s + i, 2, &oh) || digits(s + i + 2, 2, &om))
				return -1;
		} else {
			return -1;
		}
		if (oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	t = days * 86400 + hh * 3600 + mi * 60 + ss - sign * (int64_t)(oh * 3600 + om * 60);
	*ms = t * 1000 + frac;
	return 0;
}

void soql_datefn_range(enum datefn fn, long n, time_t now, int64_t *lo, int64_t *hi)
{
	int64_t t = (int64_t)now / 86400 - ((int64_t)now % 86400 < 0); /* floor */
	/* weeks start on Sunday (en_US locale); 1970-01-01 was a Thursday */
	int64_t ws = t - ((t + 4) % 7 + 7) % 7;
	int64_t y;
	unsigned m, d;

	soql_civil_from_days(t, &y, &m, &d);
	switch (fn) {
	case DF_TODAY: *lo = t, *hi = t + 1; break;
	case DF_YESTERDAY: *lo = t - 1, *hi = t; break;
	case DF_TOMORROW: *lo = t + 1, *hi = t + 2; break;
	case DF_LAST_WEEK: *lo = ws - 7, *hi = ws; break;
	case DF_THIS_WEEK: *lo = ws, *hi = ws + 7; break;
	case DF_NEXT_WEEK: *lo = ws + 7, *hi = ws + 14; break;
	case DF_LAST_MONTH:
		*lo = m == 1 ? soql_days_from_civil(y - 1, 12, 1)
		             : soql_days_from_civil(y, m - 1, 1);
		*hi = soql_days_from_civil(y, m, 1);
		break;
	case DF_THIS_MONTH:
		*lo = soql_days_from_civil(y, m, 1);
		*hi = m == 12 ? soql_days_from_civil(y + 1, 1, 1)
		              : soql_days_from_civil(y, m + 1, 1);
		break;
	case DF_NEXT_MONTH:
		*lo = m == 12 ? soql_days_from_civil(y + 1, 1, 1)
		              : soql_days_from_civil(y, m + 1, 1);
		*hi = m >= 11 ? soql_days_from_civil(y + 1, m - 10, 1)
		              : soql_days_from_civil(y, m + 2, 1);
		break;
	case DF_LAST_YEAR:
		*lo = soql_days_from_civil(y - 1, 1, 1);
		*hi = soql_days_from_civil(y, 1, 1);
		break;
	case DF_THIS_YEAR:
		*lo = soql_days_from_civil(y, 1, 1);
		*hi = soql_days_from_civil(y + 1, 1, 1);
		break;
	case DF_NEXT_YEAR:
		*lo = soql_days_from_civil(y + 1, 1, 1);
		*hi = soql_days_from_civil(y + 2, 1, 1);
		break;
	/* "starts with the current day and continues for the past n days":
	 * LAST_N_DAYS:1 is yesterday and today. */
	case DF_LAST_90_DAYS: *lo = t - 90, *hi = t + 1; break;
	case DF_LAST_N_DAYS: *lo = t - n, *hi = t + 1; break;
	/* "starts 00:00:00 of the next day and continues for the next n days" */
	case DF_NEXT_90_DAYS: *lo = t + 1, *hi = t + 91; break;
	case DF_NEXT_N_DAYS: *lo = t + 1, *hi = t + 1 + n; break;
	case DF_N_DAYS_AGO: *lo = t - n, *hi = t - n + 1; break;
	}
}
