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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
