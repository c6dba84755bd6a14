/*
 * test_lookup.c - "from,to" lookup tables (src/lookup.h), the files people
 * edit in a spreadsheet to map Clarity codes to Sage codes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lookup.h"

#define LDIR "tests/data/unit/lookups/"

static char msgbuf[1024]; /* error texts, so that a failed assertion leaks nothing */

static lookup_table *must_load(const char *path)
{
    sbuf err = {0};
    lookup_table *t = lk_load(path, &err);
    snprintf(msgbuf, sizeof msgbuf, "%s", err.len ? sbuf_str(&err) : "");
    sbuf_free(&err);
    if (!t)
        fail_msg("lk_load(%s): %s", path, msgbuf);
    return t;
}

/* get - the value for a C-string key, or NULL; checks outlen agrees */
static const char *get(const lookup_table *t, const char *key)
{
    size_t n = 12345;
    const char *v = lk_get(t, key, strlen(key), &n);
    if (v)
        assert_int_equal(n, strlen(v));
    return v;
}

/* load_error - lk_load must fail; returns the message (static) */
static char *load_error(const char *path)
{
    sbuf err = {0};
    lookup_table *t = lk_load(path, &err);
    snprintf(msgbuf, sizeof msgbuf, "%s", err.len ? sbuf_str(&err) : "");
    sbuf_free(&err);
    if (t) {
        lk_free(t);
        fail_msg("lk_load(%s) succeeded; expected an error", path);
    }
    assert_true(msgbuf[0] != '\0');
    return msgbuf;
}

static void test_case_insensitive_keys(void **state)
{
    (void)state;
    lookup_table *t = must_load(LDIR "basic.csv");
    assert_string_equal(get(t, "US"), "USA");
    assert_string_equal(get(t, "us"), "USA");
    assert_string_equal(get(t, "uS"), "USA");
    assert_string_equal(get(t, "DE"), "DEU");
    assert_string_equal(get(t, "CA"), "CAN");
    assert_null(get(t, "USA")); /* values are not keys */
    assert_null(get(t, "U"));
    assert_null(get(t, "XX"));
    lk_free(t);
}

static void test_trimmed_keys_and_values(void **state)
{
    (void)state;
    lookup_table *t = must_load(LDIR "basic.csv");
    /* "  Ca  ,\tCAN " in the file: both cells trimmed */
    assert_string_equal(get(t, "ca"), "CAN");
    /* the key asked for is trimmed too */
    assert_string_equal(get(t, "  ca\t"), "CAN");
    assert_string_equal(get(t, " us "), "USA");
    /* only len bytes of the key count */
    size_t n = 0;
    assert_string_equal(lk_get(t, "usXYZ", 2, &n), "USA");
    assert_int_equal(n, 3);
    assert_null(get(t, ""));
    assert_null(get(t, "   "));
    lk_free(t);
}

static void test_quoted_cells(void **state)
{
    (void)state;
    lookup_table *t = must_load(LDIR "basic.csv");
    assert_string_equal(get(t, "Acme, Inc."), "ACME");
    assert_string_equal(get(t, "acme, inc."), "ACME");
    assert_null(get(t, "Acme"));
    assert_string_equal(get(t, "quote"), "say \"hi\"");
    lk_free(t);
}

static void test_rows_kept_and_skipped(void **state)
{
    (void)state;
    lookup_table *t = must_load(LDIR "basic.csv");
    /* an empty "to" is a real mapping to nothing */
    const char *v = get(t, "empty");
    assert_non_null(v);
    assert_string_equal(v, "");
    /* a row without a key is skipped, a blank line is fine, the last row needs no newline */
    assert_null(get(t, "orphan"));
    assert_string_equal(get(t, "last"), "LAST");
    /* US, Ca, de, "Acme, Inc.", quote, empty, last */
    assert_int_equal(lk_size(t), 7);
    lk_free(t);
}

static void test_header_any_case_and_crlf(void **state)
{
    (void)state;
    lookup_table *t = must_load(LDIR "crlf-upper-header.csv");
    assert_int_equal(lk_size(t), 2);
    assert_string_equal(get(t, "US"), "USA"); /* no stray \r in values */
    assert_string_equal(get(t, "gb"), "GBR");
    assert_null(get(t, "from")); /* the header is not a row */
    lk_free(t);
}

static void test_header_after_utf8_bom(void **state)
{
    (void)state;
    /* "CSV UTF-8" as a spreadsheet saves it starts with a byte order mark */
    lookup_table *t = must_load(LDIR "bom.csv");
    assert_string_equal(get(t, "US"), "USA");
    assert_int_equal(lk_size(t), 1);
    lk_free(t);
}

static void test_missing_header(void **state)
{
    (void)state;
    char *m = load_error(LDIR "no-header.csv");
    assert_non_null(strstr(m, "no-header.csv:1:"));
    assert_non_null(strstr(m, "from,to"));
}

static void test_duplicate_key(void **state)
{
    (void)state;
    char *m = load_error(LDIR "duplicate.csv");
    assert_non_null(strstr(m, "duplicate.csv:4:"));
    assert_non_null(strstr(m, "us"));
}

static void test_duplicate_key_line_after_blank_lines(void **state)
{
    (void)state;
    /* the line named is the line of the file a person opens, blank lines included */
    char *m = load_error(LDIR "duplicate-after-blank.csv");
    assert_non_null(strstr(m, "duplicate-after-blank.csv:5:"));
}

static void test_bad_rows(void **state)
{
    (void)state;
    char *m = load_error(LDIR "three-fields.csv");
    assert_non_null(strstr(m, "three-fields.csv:3:"));
    m = load_error(LDIR "open-quote.csv");
    assert_non_null(strstr(m, "open-quote.csv"));
    m = load_error(LDIR "empty.csv");
    assert_non_null(strstr(m, "empty.csv"));
    m = load_error(LDIR "no-such-file.csv");
    assert_non_null(strstr(m, "no-such-file.csv"));
}

static void test_countries_table(void **state)
{
    (void)state;
    lookup_table *t = must_load("templates/lookups/countries.csv");
    assert_true(lk_size(t) >= 249);
    assert_string_equal(get(t, "US"), "USA");
    assert_string_equal(get(t, "CA"), "CAN");
    assert_string_equal(get(t, "GB"), "GBR");
    assert_string_equal(get(t, "DE"), "DEU");
    assert_string_equal(get(t, "fr"), "FRA");
    assert_string_equal(get(t, "JP"), "JPN");
    assert_string_equal(get(t, "MX"), "MEX");
    lk_free(t);
}

static void test_shipped_lookups_load(void **state)
{
    (void)state;
    const char *files[] = {"templates/lookups/customers.csv", "templates/lookups/ship-methods.csv",
                           "templates/lookups/warehouses.csv"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        lk_free(must_load(files[i]));
    lookup_table *t = must_load("templates/lookups/warehouses.csv");
    assert_string_equal(get(t, "ca"), "WEST");
    lk_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_insensitive_keys),
        cmocka_unit_test(test_trimmed_keys_and_values),
        cmocka_unit_test(test_quoted_cells),
        cmocka_unit_test(test_rows_kept_and_skipped),
        cmocka_unit_test(test_header_any_case_and_crlf),
        cmocka_unit_test(test_header_after_utf8_bom),
        cmocka_unit_test(test_missing_header),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_duplicate_key_line_after_blank_lines),
        cmocka_unit_test(test_bad_rows),
        cmocka_unit_test(test_countries_table),
        cmocka_unit_test(test_shipped_lookups_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
