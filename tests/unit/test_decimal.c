/*
 * test_decimal.c - exact decimal arithmetic (src/decimal.h).
 *
 * Money must never go through binary floating point: these tests pin down
 * parsing, exact arithmetic, half-away-from-zero rounding and formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "decimal.h"

/* P - parse a C string, asserting success */
static decimal P(const char *s)
{
    decimal d = {0, 0};
    dec_status st = dec_parse(s, strlen(s), &d);
    if (st != DEC_OK)
        fail_msg("dec_parse(\"%s\") = %d (%s), expected DEC_OK", s, (int)st, dec_strerror(st));
    return d;
}

/* F - format into a static buffer (one use per assertion) */
static const char *F(decimal d, int scale, bool trim)
{
    static char buf[4][DEC_TEXT_MAX];
    static int k;
    char *b = buf[k++ % 4];
    size_t n = dec_format(d, scale, trim, b, DEC_TEXT_MAX);
    assert_true(n > 0);
    assert_int_equal(n, strlen(b));
    return b;
}

/* natural - the value formatted at its own scale */
static const char *natural(decimal d)
{
    return F(d, d.scale, false);
}

static void assert_dec(decimal d, long long coef, int scale)
{
    assert_true(d.coef == (__int128)coef);
    assert_int_equal(d.scale, scale);
}

static dec_status parse_status(const char *s)
{
    decimal d;
    return dec_parse(s, strlen(s), &d);
}

static void test_parse_plain(void **state)
{
    (void)state;
    assert_dec(P("19.99"), 1999, 2);
    assert_dec(P("0.1"), 1, 1);
    assert_dec(P("1234567.89"), 123456789, 2);
    assert_dec(P("-0.005"), -5, 3);
    assert_dec(P("+3"), 3, 0);
    assert_dec(P("0"), 0, 0);
    assert_dec(P("19.990"), 19990, 3); /* the scale written is the scale kept */
}

static void test_parse_exponent(void **state)
{
    (void)state;
    decimal d = P("1.5e1");
    assert_true(dec_cmp(d, P("15")) == 0);
    assert_string_equal(F(d, 0, false), "15");
    assert_string_equal(F(d, 2, false), "15.00");
    decimal m = P("1E-3");
    assert_true(dec_cmp(m, P("0.001")) == 0);
    assert_string_equal(natural(m), "0.001");
    assert_string_equal(natural(P("2.5E+2")), "250");
    assert_string_equal(natural(P("-12e-1")), "-1.2");
}

static void test_parse_spaces_and_length(void **state)
{
    (void)state;
    decimal d = P(" 2.50 ");
    assert_dec(d, 250, 2);
    /* only `len` bytes are read: "12.5" of "12.5xyz" */
    decimal e;
    assert_int_equal(dec_parse("12.5xyz", 4, &e), DEC_OK);
    assert_dec(e, 125, 1);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    assert_int_equal(parse_status(""), DEC_ESYNTAX);
    assert_int_equal(parse_status("   "), DEC_ESYNTAX);
    assert_int_equal(parse_status("abc"), DEC_ESYNTAX);
    assert_int_equal(parse_status("1.2.3"), DEC_ESYNTAX);
    assert_int_equal(parse_status("1e"), DEC_ESYNTAX);
    assert_int_equal(parse_status("1e+"), DEC_ESYNTAX);
    assert_int_equal(parse_status("--1"), DEC_ESYNTAX);
    assert_int_equal(parse_status("-"), DEC_ESYNTAX);
    assert_int_equal(parse_status("."), DEC_ESYNTAX);
    assert_int_equal(parse_status("1,000.00"), DEC_ESYNTAX); /* no thousands separators */
    assert_int_equal(parse_status("$5"), DEC_ESYNTAX);
    assert_int_equal(parse_status("1 2"), DEC_ESYNTAX);
    assert_int_equal(parse_status("12abc"), DEC_ESYNTAX);
}

static void test_parse_overflow(void **state)
{
    (void)state;
    /* 40 significant digits */
    assert_int_equal(parse_status("1234567890123456789012345678901234567890"), DEC_EOVERFLOW);
    assert_int_equal(parse_status("-1234567890123456789012345678901234567890"), DEC_EOVERFLOW);
    assert_int_equal(parse_status("0.1234567890123456789012345678901234567890"), DEC_EOVERFLOW);
    assert_int_equal(parse_status("1e60"), DEC_EOVERFLOW);
    /* 36 digits still fit; leading zeros are not significant */
    assert_int_equal(parse_status("123456789012345678901234567890123456"), DEC_OK);
    decimal d = P("0000000000000000000000000000000000000000042.5");
    assert_dec(d, 425, 1);
}

static void test_add_sub_exact(void **state)
{
    (void)state;
    decimal r;
    assert_int_equal(dec_add(P("0.1"), P("0.2"), &r), DEC_OK);
    assert_true(dec_cmp(r, P("0.3")) == 0);
    assert_string_equal(natural(r), "0.3");

    assert_int_equal(dec_add(P("19.99"), P("0.001"), &r), DEC_OK);
    assert_dec(r, 19991, 3);

    assert_int_equal(dec_sub(P("10"), P("0.01"), &r), DEC_OK);
    assert_string_equal(natural(r), "9.99");

    assert_int_equal(dec_sub(P("0.1"), P("0.3"), &r), DEC_OK);
    assert_string_equal(natural(r), "-0.2");
    assert_int_equal(dec_sign(r), -1);

    /* 0.1 added ten times is exactly 1 */
    decimal acc = P("0");
    for (int i = 0; i < 10; i++)
        assert_int_equal(dec_add(acc, P("0.1"), &acc), DEC_OK);
    assert_true(dec_cmp(acc, P("1")) == 0);
}

static void test_mul_exact(void **state)
{
    (void)state;
    decimal r;
    assert_int_equal(dec_mul(P("19.999"), P("3"), &r), DEC_OK);
    assert_true(dec_cmp(r, P("59.997")) == 0);
    assert_string_equal(F(r, 3, false), "59.997");

    assert_int_equal(dec_mul(P("2.5"), P("0.123456"), &r), DEC_OK);
    assert_true(dec_cmp(r, P("0.30864")) == 0);
    assert_string_equal(F(r, 8, true), "0.30864");

    assert_int_equal(dec_mul(P("-1.5"), P("4"), &r), DEC_OK);
    assert_true(dec_cmp(r, P("-6")) == 0);

    assert_int_equal(dec_mul(P("2.50000"), P("3.000"), &r), DEC_OK);
    assert_true(dec_cmp(r, P("7.5")) == 0);

    /* more than 18 places: rounded half away from zero to 18 */
    assert_int_equal(dec_mul(P("0.000000001"), P("0.0000000015"), &r), DEC_OK);
    assert_int_equal(r.scale, DEC_MAX_SCALE);
    assert_true(dec_cmp(r, P("0.000000000000000002")) == 0);
}

static void test_mul_overflow(void **state)
{
    (void)state;
    decimal r;
    decimal big = P("123456789012345678901234567890");
    assert_int_equal(dec_mul(big, big, &r), DEC_EOVERFLOW);
}

static void test_round_half_away_from_zero(void **state)
{
    (void)state;
    assert_true(dec_cmp(dec_round(P("2.5"), 0), P("3")) == 0);
    assert_true(dec_cmp(dec_round(P("-2.5"), 0), P("-3")) == 0);
    assert_true(dec_cmp(dec_round(P("2.4999"), 0), P("2")) == 0);
    assert_true(dec_cmp(dec_round(P("1.0005"), 3), P("1.001")) == 0);
    assert_true(dec_cmp(dec_round(P("1.0004999"), 3), P("1")) == 0);
    assert_true(dec_cmp(dec_round(P("-0.0005"), 3), P("-0.001")) == 0);
    assert_int_equal(dec_round(P("1.0005"), 3).scale, 3);
    /* never adds places */
    assert_dec(dec_round(P("1.5"), 4), 15, 1);
}

static void test_format_rounds(void **state)
{
    (void)state;
    assert_string_equal(F(P("-0.0005"), 3, false), "-0.001");
    assert_string_equal(F(P("0.0004"), 3, false), "0.000");
    assert_string_equal(F(P("0.0005"), 3, false), "0.001");
    assert_string_equal(F(P("2.5"), 0, false), "3");
    assert_string_equal(F(P("-2.5"), 0, false), "-3");
    assert_string_equal(F(P("19.99"), 5, false), "19.99000");
    assert_string_equal(F(P("1234567.89"), 3, false), "1234567.890");
}

static void test_format_never_negative_zero(void **state)
{
    (void)state;
    assert_string_equal(F(P("-0.0004"), 3, false), "0.000");
    assert_string_equal(F(P("-0.4"), 0, false), "0");
    assert_string_equal(F(P("-0"), 2, false), "0.00");
    assert_string_equal(F(P("-0.0001"), 3, true), "0");
    assert_string_equal(F(dec_neg(P("0")), 3, false), "0.000");
}

static void test_format_trim(void **state)
{
    (void)state;
    assert_string_equal(F(P("2.50000000"), 8, true), "2.5");
    assert_string_equal(F(P("2.000"), 3, true), "2");
    assert_string_equal(F(P("2.000"), 8, true), "2");
    assert_string_equal(F(P("100"), 8, true), "100"); /* zeros before the point stay */
    assert_string_equal(F(P("0"), 3, false), "0.000");
    assert_string_equal(F(P("0"), 3, true), "0");
    assert_string_equal(F(P("-1.2300"), 4, true), "-1.23");
    assert_string_equal(F(P("0.123456789"), 8, true), "0.12345679");
}

static void test_format_small_buffer(void **state)
{
    (void)state;
    char b[4];
    assert_int_equal(dec_format(P("12345.67"), 2, false, b, sizeof b), 0);
    char ok[9];
    assert_int_equal(dec_format(P("12345.67"), 2, false, ok, sizeof ok), 8);
    assert_string_equal(ok, "12345.67");
}

static void test_cmp_across_scales(void **state)
{
    (void)state;
    assert_int_equal(dec_cmp(P("1.10"), P("1.1")), 0);
    assert_int_equal(dec_cmp(P("1.100000"), P("1.1")), 0);
    assert_true(dec_cmp(P("1.09"), P("1.1")) < 0);
    assert_true(dec_cmp(P("1.1"), P("1.09")) > 0);
    assert_true(dec_cmp(P("-1"), P("0.5")) < 0);
    assert_true(dec_cmp(P("-0.01"), P("-0.001")) < 0);
    assert_int_equal(dec_cmp(P("0"), P("-0.000")), 0);
}

static void test_neg_abs_sign(void **state)
{
    (void)state;
    assert_string_equal(natural(dec_neg(P("19.99"))), "-19.99");
    assert_string_equal(natural(dec_abs(P("-19.99"))), "19.99");
    assert_string_equal(natural(dec_abs(P("19.99"))), "19.99");
    assert_int_equal(dec_sign(P("0.000")), 0);
    assert_int_equal(dec_sign(P("0.001")), 1);
    assert_int_equal(dec_sign(P("-0.001")), -1);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_not_equal(dec_strerror(DEC_ESYNTAX), dec_strerror(DEC_EOVERFLOW));
    assert_string_equal(dec_strerror(DEC_OK), "ok");
}

/* ref_format - the formatting rule written plainly, as the oracle for dec_format: the value
 * rounded half away from zero to `scale` places (dec_round, tested above), its digits with
 * exactly `scale` after the point (at least one before it), a minus for a negative value, and
 * with `trim` the trailing fraction zeros and then a bare point removed */
static void ref_format(decimal a, int scale, bool trim, char *out)
{
    decimal r = dec_round(a, scale);
    __int128 c = r.coef < 0 ? -r.coef : r.coef;
    char d[80];
    int n = 0;
    do {
        d[n++] = (char)('0' + (int)(c % 10));
        c /= 10;
    } while (c);
    char digits[80];
    for (int i = 0; i < n; i++) /* reversed: most significant first */
        digits[i] = d[n - 1 - i];
    for (int z = r.scale; z < scale; z++) /* up to exactly `scale` places */
        digits[n++] = '0';
    while (n <= scale) { /* at least one digit before the point */
        memmove(digits + 1, digits, (size_t)n);
        digits[0] = '0';
        n++;
    }
    char *o = out;
    if (r.coef < 0)
        *o++ = '-';
    memcpy(o, digits, (size_t)(n - scale));
    o += n - scale;
    if (scale > 0) {
        *o++ = '.';
        memcpy(o, digits + n - scale, (size_t)scale);
        o += scale;
    }
    *o = '\0';
    if (trim && scale > 0) {
        while (o[-1] == '0')
            *--o = '\0';
        if (o[-1] == '.')
            *--o = '\0';
    }
}

/* dec_format against the plain rule: random coefficients of 1 to 36 digits (across the 64-bit
 * boundary where it changes method), every value scale and target scale 0..18, trimmed or not,
 * as long as the value at the target scale has at most DEC_MAX_DIGITS digits */
static void test_format_matches_the_rule(void **state)
{
    (void)state;
    unsigned long long x = 0x9E3779B97F4A7C15ULL;
    char want[96], got[DEC_TEXT_MAX];
    for (int round = 0; round < 300000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int ndig = 1 + (int)(x % 36);
        __int128 c = 0;
        for (int i = 0; i < ndig; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            c = c * 10 + (__int128)(i == 0 && x % 5 == 0 ? 0 : x % 10);
        }
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        decimal a = {(x & 1) ? -c : c, (int)((x >> 1) % 19)};
        int scale = (int)((x >> 8) % 19);
        bool trim = (x >> 16) & 1;
        if (ndig + (scale > a.scale ? scale - a.scale : 0) > DEC_MAX_DIGITS)
            continue; /* more digits at that scale than a decimal carries */
        ref_format(a, scale, trim, want);
        size_t n = dec_format(a, scale, trim, got, sizeof got);
        if (strlen(want) + 1 > sizeof got) {
            assert_int_equal(n, 0); /* does not fit: refused, nothing half written */
            continue;
        }
        if (n != strlen(want) || strcmp(got, want) != 0)
            fail_msg("dec_format(coef %s%llu..., scale %d -> %d, trim %d) = \"%s\", the rule says "
                     "\"%s\"",
                     a.coef < 0 ? "-" : "", (unsigned long long)(c % 1000000000000000000ULL),
                     a.scale, scale, (int)trim, got, want);
    }
    /* the edges of the 64-bit path, each side */
    static const char *const edge[] = {"9223372036854775807",  "9223372036854775808",
                                       "18446744073709551615", "18446744073709551616",
                                       "0.000000000000000001", "999999999999999999.5",
                                       "-9223372036854775807", "-0.004"};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++)
        for (int sc = 0; sc <= 18; sc++) {
            decimal a = P(edge[i]);
            ref_format(a, sc, false, want);
            size_t nd = strspn(want + (want[0] == '-'), "0123456789") + (size_t)sc;
            if (nd > DEC_MAX_DIGITS)
                continue; /* more digits at that scale than a decimal carries */
            size_t n = dec_format(a, sc, false, got, sizeof got);
            if (strlen(want) + 1 > sizeof got)
                assert_int_equal(n, 0);
            else
                assert_string_equal(got, want);
        }
}

/* dec_parse against the plain rule, for plain numbers that a decimal holds exactly (at most
 * DEC_MAX_SCALE places, at most DEC_MAX_DIGITS significant digits): the coefficient is every
 * digit, the scale the number of places.  Random integer parts of 0 to 30 digits and fractions
 * of 0 to 18, leading zeros included, across the 18 digits where parsing leaves 64 bits. */
static void test_parse_matches_the_rule(void **state)
{
    (void)state;
    unsigned long long x = 0xD1B54A32D192ED03ULL;
    char text[80];
    for (int round = 0; round < 300000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int nint = (int)(x % 31), nfrac = (int)((x >> 5) % 19);
        bool point = nfrac > 0 || (x >> 10) % 4 == 0, neg = (x >> 12) & 1;
        size_t n = 0;
        if (neg)
            text[n++] = '-';
        __int128 want = 0;
        int sig = 0;
        for (int i = 0; i < nint + nfrac; i++) {
            if (i == nint && point)
                text[n++] = '.';
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int d = x % 3 == 0 ? 0 : (int)(x % 10); /* zeros often, leading ones too */
            text[n++] = (char)('0' + d);
            if (want != 0 || d != 0)
                sig++;
            if (sig <= DEC_MAX_DIGITS) /* (beyond, the round is skipped: no overflow here) */
                want = want * 10 + d;
        }
        if (nint + nfrac == 0)
            text[n++] = '0';
        if (point && nfrac == 0)
            text[n++] = '.'; /* "12." is a number too */
        text[n] = '\0';
        if (sig > DEC_MAX_DIGITS)
            continue;
        decimal got;
        dec_status st = dec_parse(text, n, &got);
        if (st != DEC_OK || got.coef != (neg ? -want : want) || got.scale != nfrac)
            fail_msg("dec_parse(\"%s\") = status %d, scale %d; the rule says scale %d", text,
                     (int)st, got.scale, nfrac);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_plain),
        cmocka_unit_test(test_parse_exponent),
        cmocka_unit_test(test_parse_spaces_and_length),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_overflow),
        cmocka_unit_test(test_add_sub_exact),
        cmocka_unit_test(test_mul_exact),
        cmocka_unit_test(test_mul_overflow),
        cmocka_unit_test(test_round_half_away_from_zero),
        cmocka_unit_test(test_format_rounds),
        cmocka_unit_test(test_format_never_negative_zero),
        cmocka_unit_test(test_format_trim),
        cmocka_unit_test(test_format_small_buffer),
        cmocka_unit_test(test_cmp_across_scales),
        cmocka_unit_test(test_neg_abs_sign),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_format_matches_the_rule),
        cmocka_unit_test(test_parse_matches_the_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
