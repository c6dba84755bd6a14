/*
 * decimal.c - exact decimal arithmetic for money and quantities.
 *
 * INTERFACE
 *	dec_parse() reads decimal text as found in JSON numbers and CSV cells:
 *	optional sign, digits, optional fraction, optional exponent ("1.5e1").
 *	Leading "+" and surrounding spaces are accepted; thousands separators
 *	and currency symbols are not (the caller strips them where a template
 *	says so).
 *
 *	dec_add(), dec_sub(), dec_mul() compute exactly, aligning scales; a
 *	product whose scale would exceed DEC_MAX_SCALE is rounded half away from
 *	zero to DEC_MAX_SCALE digits (no Sage column has more than 8).
 *
 *	dec_round() rounds half away from zero to a given number of places,
 *	which is the only rounding the product does (SPEC §4).
 *
 *	dec_format() writes the value with exactly `scale` fraction digits, or,
 *	with `trim`, with trailing zeros (and a bare point) removed.
 *
 * DIAGNOSTICS
 *	DEC_ESYNTAX for text that is not a number, DEC_EOVERFLOW for more than
 *	DEC_MAX_DIGITS significant digits or an exponent that moves the value
 *	out of range.  Nothing is printed; callers name the record and field.
 */
#include "decimal.h"

#include <stdint.h>
#include <string.h>

static const __int128 DEC_LIMIT =
    (__int128)1000000000000000000LL * 1000000000000000000LL; /* 1e36 */

/* pow10 - 10^n as a 128-bit integer, n <= 37 */
static __int128 pow10i(int n)
{
    __int128 p = 1;
    while (n-- > 0)
        p *= 10;
    return p;
}

/* rescale_up - multiply the coefficient so that the value has scale s >= a.scale */
static dec_status rescale_up(decimal a, int s, decimal *out)
{
    int d = s - a.scale;
    __int128 c = a.coef;
    while (d-- > 0) {
        if (c > DEC_LIMIT || c < -DEC_LIMIT)
            return DEC_EOVERFLOW;
        c *= 10;
    }
    out->coef = c;
    out->scale = s;
    return DEC_OK;
}

/* dec_parse - decimal text to value */
dec_status dec_parse(const char *s, size_t len, decimal *out)
{
    const char *p = s, *end = s + len;
    bool neg = false, any = false;
    __int128 c = 0;
    int scale = 0, digits = 0, exp = 0;

    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p < end && (*p == '-' || *p == '+'))
        neg = (*p++ == '-');
    /* most numbers have fewer than 19 digits: accumulate those in 64 bits */
    uint64_t c64 = 0;
    for (; p < end && *p >= '0' && *p <= '9' && digits < 18; p++) {
        any = true;
        if (c64 == 0 && *p == '0')
            continue;
        digits++;
        c64 = c64 * 10 + (uint64_t)(*p - '0');
    }
    /* the integer part fitted: the fraction's first digits go on in 64 bits too */
    bool narrow = !(p < end && *p >= '0' && *p <= '9');
    c = c64;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        any = true;
        if (c == 0 && *p == '0')
            continue;
        if (++digits > DEC_MAX_DIGITS)
            return DEC_EOVERFLOW;
        c = c * 10 + (*p - '0');
    }
    if (p < end && *p == '.') {
        p++;
        if (narrow) {
            for (; p < end && *p >= '0' && *p <= '9' && digits < 18; p++) {
                any = true;
                if (c64 != 0 || *p != '0')
                    digits++;
                c64 = c64 * 10 + (uint64_t)(*p - '0');
                scale++;
            }
            c = c64;
        }
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            any = true;
            if (c != 0 || *p != '0')
                if (++digits > DEC_MAX_DIGITS)
                    return DEC_EOVERFLOW;
            c = c * 10 + (*p - '0');
            scale++;
        }
    }
    if (!any)
        return DEC_ESYNTAX;
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool eneg = false, edig = false;
        p++;
        if (p < end && (*p == '-' || *p == '+'))
            eneg = (*p++ == '-');
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            edig = true;
            if (exp < 1000)
                exp = exp * 10 + (*p - '0');
        }
        if (!edig)
            return DEC_ESYNTAX;
        if (eneg)
            exp = -exp;
    }
    if (p != end)
        return DEC_ESYNTAX;
    scale -= exp;
    /* Drop trailing zeros that a large scale would carry needlessly. */
    while (scale > DEC_MAX_SCALE && c != 0 && c % 10 == 0) { /* (no 128-bit % otherwise) */
        c /= 10;
        scale--;
    }
    if (c == 0 && scale > DEC_MAX_SCALE)
        scale = DEC_MAX_SCALE;
    if (scale > DEC_MAX_SCALE) {
        /* More fraction digits than kept: round, as a Sage column would. */
        decimal t = {neg ? -c : c, scale};
        int drop = scale - DEC_MAX_SCALE;
        if (drop > 37)
            t.coef = 0, t.scale = DEC_MAX_SCALE;
        else
            t = dec_round(t, DEC_MAX_SCALE);
        *out = t;
        return DEC_OK;
    }
    while (scale < 0) {
        if (c > DEC_LIMIT)
            return DEC_EOVERFLOW;
        c *= 10;
        scale++;
    }
    if (c >= DEC_LIMIT * 10)
        return DEC_EOVERFLOW;
    out->coef = neg ? -c : c;
    out->scale = scale;
    return DEC_OK;
}

/* dec_add - exact sum */
dec_status dec_add(decimal a, decimal b, decimal *out)
{
    int s = a.scale > b.scale ? a.scale : b.scale;
    if (rescale_up(a, s, &a) || rescale_up(b, s, &b))
        return DEC_EOVERFLOW;
    out->coef = a.coef + b.coef;
    out->scale = s;
    if (out->coef > DEC_LIMIT * 10 || out->coef < -DEC_LIMIT * 10)
        return DEC_EOVERFLOW;
    return DEC_OK;
}

/* dec_sub - exact difference */
dec_status dec_sub(decimal a, decimal b, decimal *out)
{
    return dec_add(a, dec_neg(b), out);
}

/* dec_mul - exact product, rounded to DEC_MAX_SCALE places if it has more */
dec_status dec_mul(decimal a, decimal b, decimal *out)
{
    /* Trim trailing zeros first so that 2.50000 x 3.000 stays small. */
    while (a.scale > 0 && a.coef % 10 == 0)
        a.coef /= 10, a.scale--;
    while (b.scale > 0 && b.coef % 10 == 0)
        b.coef /= 10, b.scale--;
    __int128 x = a.coef < 0 ? -a.coef : a.coef;
    __int128 y = b.coef < 0 ? -b.coef : b.coef;
    if (x != 0 && y > ((((__int128)1) << 126) / x))
        return DEC_EOVERFLOW;
    decimal r = {a.coef * b.coef, a.scale + b.scale};
    if (r.scale > DEC_MAX_SCALE)
        r = dec_round(r, DEC_MAX_SCALE);
    *out = r;
    return DEC_OK;
}

/* dec_neg - negation */
decimal dec_neg(decimal a)
{
    a.coef = -a.coef;
    return a;
}

/* dec_abs - absolute value */
decimal dec_abs(decimal a)
{
    if (a.coef < 0)
        a.coef = -a.coef;
    return a;
}

/* dec_sign - -1, 0 or 1 */
int dec_sign(decimal a)
{
    return (a.coef > 0) - (a.coef < 0);
}

/* dec_cmp - compare values, whatever their scales */
int dec_cmp(decimal a, decimal b)
{
    decimal d;
    if (dec_sub(a, b, &d) != DEC_OK) /* only for values near 1e36 */
        return (a.coef > 0) - (b.coef > 0);
    return dec_sign(d);
}

/* dec_round - round half away from zero to `scale` places (never adds places) */
decimal dec_round(decimal a, int scale)
{
    if (scale < 0)
        scale = 0;
    if (a.scale <= scale)
        return a;
    if (a.scale - scale <= 18 && a.coef > -(__int128)INT64_MAX && a.coef < (__int128)INT64_MAX) {
        /* the usual case in 64 bits: 128-bit division is a library call */
        static const int64_t p10[19] = {1,
                                        10,
                                        100,
                                        1000,
                                        10000,
                                        100000,
                                        1000000,
                                        10000000,
                                        100000000,
                                        1000000000,
                                        10000000000LL,
                                        100000000000LL,
                                        1000000000000LL,
                                        10000000000000LL,
                                        100000000000000LL,
                                        1000000000000000LL,
                                        10000000000000000LL,
                                        100000000000000000LL,
                                        1000000000000000000LL};
        int64_t c = (int64_t)a.coef, d = p10[a.scale - scale];
        int64_t q = c / d, r = c % d;
        if (r < 0)
            r = -r;
        if (r >= d - r) /* r * 2 >= d, without overflow */
            q += c < 0 ? -1 : 1;
        a.coef = q;
        a.scale = scale;
        return a;
    }
    __int128 div = pow10i(a.scale - scale);
    __int128 q = a.coef / div, r = a.coef % div;
    if (r < 0)
        r = -r;
    if (r * 2 >= div)
        q += a.coef < 0 ? -1 : 1;
    a.coef = q;
    a.scale = scale;
    return a;
}

/* the 64-bit powers of ten, 10^0 .. 10^19 */
static const uint64_t pow10u[20] = {1ULL,
                                    10ULL,
                                    100ULL,
                                    1000ULL,
                                    10000ULL,
                                    100000ULL,
                                    1000000ULL,
                                    10000000ULL,
                                    100000000ULL,
                                    1000000000ULL,
                                    10000000000ULL,
                                    100000000000ULL,
                                    1000000000000ULL,
                                    10000000000000ULL,
                                    100000000000000ULL,
                                    1000000000000000ULL,
                                    10000000000000000ULL,
                                    100000000000000000ULL,
                                    1000000000000000000ULL,
                                    10000000000000000000ULL};

/* "00" .. "99": two digits per division */
static const char digits2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";

/* put_digits - u's decimal digits ending at p, at least `min` of them (zeros in front); the
 * new start */
static char *put_digits(char *p, uint64_t u, int min)
{
    int n = 0;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        *--p = digits2[2 * r + 1];
        *--p = digits2[2 * r];
        n += 2;
    }
    if (u >= 10) {
        *--p = digits2[2 * u + 1];
        *--p = digits2[2 * u];
        n += 2;
    } else if (u || n < min) {
        *--p = (char)('0' + u);
        n++;
    }
    while (n < min)
        *--p = '0', n++;
    return p;
}

/* format_u64 - dec_format for a value whose digits at `scale` places fit in 64 bits (nearly
 * every amount): the same text, without 128-bit arithmetic; 0 when it does not apply */
static size_t format_u64(decimal r, int scale, bool trim, char *buf, size_t bufsz)
{
    if (scale < 0 || r.scale > scale || scale > 18 || r.coef > (__int128)INT64_MAX ||
        r.coef < -(__int128)INT64_MAX)
        return 0;
    bool neg = r.coef < 0;
    uint64_t u = (uint64_t)(neg ? -r.coef : r.coef), m = pow10u[scale - r.scale];
    if (u > UINT64_MAX / m)
        return 0;
    u *= m;
    char tmp[48];
    char *end = tmp + sizeof tmp, *p = end;
    if (scale > 0) {
        uint64_t frac = u % pow10u[scale];
        u /= pow10u[scale];
        int keep = scale;
        if (trim) /* trailing zeros and then a bare point go */
            while (keep > 0 && frac % 10 == 0)
                frac /= 10, keep--;
        if (keep > 0) {
            p = put_digits(p, frac, keep);
            *--p = '.';
        }
    }
    p = put_digits(p, u, 1);
    if (neg)
        *--p = '-';
    size_t len = (size_t)(end - p);
    if (len + 1 > bufsz)
        return 0;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return len;
}

/* dec_format - write the value with exactly `scale` places, or trimmed */
size_t dec_format(decimal a, int scale, bool trim, char *buf, size_t bufsz)
{
    decimal r0 = dec_round(a, scale);
    size_t fast = format_u64(r0, scale, trim, buf, bufsz);
    if (fast)
        return fast;
    char tmp[DEC_TEXT_MAX + 8];
    char *p = tmp + sizeof tmp;
    decimal r = r0;
    decimal w;
    if (rescale_up(r, scale, &w) != DEC_OK)
        w = r; /* cannot happen for values parsed under DEC_LIMIT at scale <= 18 */
    __int128 c = w.coef < 0 ? -w.coef : w.coef;
    int s = w.scale, n = 0;

    *--p = '\0';
    /* 128-bit division is a library call: do the usual case in 64 bits */
    while (c > (__int128)UINT64_MAX) {
        *--p = (char)('0' + (int)(c % 10));
        c /= 10;
        if (++n == s)
            *--p = '.';
    }
    uint64_t c64 = (uint64_t)c;
    do {
        *--p = (char)('0' + (int)(c64 % 10));
        c64 /= 10;
        if (++n == s)
            *--p = '.';
    } while (c64 != 0 || n < s);
    if (n == s)
        *--p = '0';
    if (w.coef < 0)
        *--p = '-';
    char *end = tmp + sizeof tmp - 1; /* the NUL written first: [p, end) is the text */
    if (trim && memchr(p, '.', (size_t)(end - p))) {
        while (end > p && end[-1] == '0')
            *--end = '\0';
        if (end > p && end[-1] == '.')
            *--end = '\0';
    }
    size_t len = (size_t)(end - p);
    if (len + 1 > bufsz)
        return 0;
    memcpy(buf, p, len + 1);
    return len;
}

/* dec_strerror - words for a status */
const char *dec_strerror(dec_status st)
{
    switch (st) {
    case DEC_OK:
        return "ok";
    case DEC_ESYNTAX:
        return "not a decimal number";
    case DEC_EOVERFLOW:
        return "number too large or too precise";
    }
    return "unknown decimal error";
}
