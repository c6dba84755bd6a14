/*
 * test_clarity_in.c - the streaming Clarity JSON reader (src/clarity_in.h)
 * and the records it fills (src/record.h).
 *
 * Records are collected through the callback and copied out, because the
 * reader reuses one record for the whole file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clarity_in.h"
#include "record.h"

#define MAXREC  16
#define MAXITEM 8
#define VLEN    64

typedef struct {
    char v[VLEN];
    int set;
} cval;

typedef struct {
    cval order_id, city, total, street;
    size_t nitems;
    cval sku[MAXITEM], qty[MAXITEM];
    uint64_t index, offset, line;
    int not_object;
    int leaked; /* text of a field the schema does not name was kept */
} crec;

typedef struct {
    rec_schema *schema;
    int s_order, s_city, s_total, s_street, g_items, s_sku, s_qty;
    crec recs[MAXREC];
    size_t n;
    int stop_after; /* 0 = never */
    cin_status st;  /* of feed or finish, whichever failed first */
    cin_status feed_st;
    uint64_t err_off;
    cin_shape shape;
    char kind[32];
    int kind_set;
    uint64_t nrecords;
    char msg[256];
} fixture;

static void copy_val(cval *dst, const record *r, int group, size_t item, int slot)
{
    size_t len = 0;
    const char *p = record_get(r, group, item, slot, &len);
    memset(dst, 0, sizeof *dst);
    if (!p)
        return;
    assert_true(len < VLEN);
    memcpy(dst->v, p, len);
    dst->v[len] = '\0';
    assert_int_equal(strlen(dst->v), len); /* NUL-terminated in the record text */
    dst->set = 1;
}

static int on_record(void *ctx, record *r)
{
    fixture *f = ctx;
    assert_true(f->n < MAXREC);
    crec *c = &f->recs[f->n++];
    memset(c, 0, sizeof *c);
    c->index = r->index;
    c->offset = r->offset;
    c->line = r->line;
    c->not_object = r->not_object;
    if (!r->not_object) {
        copy_val(&c->order_id, r, REC_HEADER, 0, f->s_order);
        copy_val(&c->city, r, REC_HEADER, 0, f->s_city);
        copy_val(&c->total, r, REC_HEADER, 0, f->s_total);
        copy_val(&c->street, r, REC_HEADER, 0, f->s_street);
        c->nitems = record_nitems(r, f->g_items);
        for (size_t i = 0; i < c->nitems && i < MAXITEM; i++) {
            copy_val(&c->sku[i], r, f->g_items, i, f->s_sku);
            copy_val(&c->qty[i], r, f->g_items, i, f->s_qty);
        }
        if (r->text.len && memmem(r->text.p, r->text.len, "SECRET", 6))
            c->leaked = 1;
    }
    return f->stop_after && f->n >= (size_t)f->stop_after;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->schema = schema_new();
    f->s_order = schema_slot(f->schema, REC_HEADER, "orderId");
    f->s_city = schema_slot(f->schema, REC_HEADER, "shippingAddress.city");
    f->s_total = schema_slot(f->schema, REC_HEADER, "totalAmount");
    f->s_street = schema_slot(f->schema, REC_HEADER, "billingAddress.street1");
    f->g_items = schema_group(f->schema, "lineItems");
    f->s_sku = schema_slot(f->schema, f->g_items, "sku");
    f->s_qty = schema_slot(f->schema, f->g_items, "quantity");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    schema_free(f->schema);
    free(f);
    return 0;
}

/* run - feed `len` bytes in chunks of `chunk` (0 = all at once), then finish */
static cin_status run(fixture *f, const char *in, size_t len, size_t chunk)
{
    f->n = 0;
    f->kind_set = 0;
    f->kind[0] = '\0';
    cin_parser *p = cin_new(f->schema, on_record, f);
    assert_non_null(p);
    cin_status st = CIN_OK;
    f->feed_st = CIN_OK;
    if (!chunk)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len && st == CIN_OK; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        st = cin_feed(p, in + off, n);
    }
    f->feed_st = st;
    if (st == CIN_OK)
        st = cin_finish(p);
    f->st = st;
    f->err_off = cin_error_offset(p);
    f->shape = cin_get_shape(p);
    const char *k = cin_wrapper_kind(p);
    if (k) {
        f->kind_set = 1;
        snprintf(f->kind, sizeof f->kind, "%s", k);
    }
    f->nrecords = cin_records(p);
    snprintf(f->msg, sizeof f->msg, "%s", cin_message(p));
    cin_free(p);
    return st;
}

static cin_status run_s(fixture *f, const char *in, size_t chunk)
{
    return run(f, in, strlen(in), chunk);
}

/* offset_of - byte offset of the n-th (0-based) occurrence of needle */
static uint64_t offset_of(const char *hay, const char *needle, int nth)
{
    const char *p = hay;
    for (;;) {
        p = strstr(p, needle);
        assert_non_null(p);
        if (nth-- == 0)
            return (uint64_t)(p - hay);
        p++;
    }
}

static const char ARRAY_INPUT[] =
    "[\n"
    "  {\"orderId\": \"CL-1\", \"totalAmount\": 19.990,\n"
    "   \"shippingAddress\": {\"name\": \"A\", \"city\": \"Paris\"},\n"
    "   \"lineItems\": [{\"sku\": \"S1\", \"quantity\": 2}, {\"sku\": \"S2\", \"quantity\": "
    "1.5e1}]},\n"
    "  {\"orderId\": \"CL-2\", \"totalAmount\": 5, \"lineItems\": []}\n"
    "]\n";

static void test_array_shape(void **state)
{
    fixture *f = *state;
    assert_int_equal(run_s(f, ARRAY_INPUT, 0), CIN_OK);
    assert_int_equal(f->shape, CIN_SHAPE_ARRAY);
    assert_false(f->kind_set);
    assert_int_equal(f->n, 2);
    assert_int_equal(f->nrecords, 2);
    crec *a = &f->recs[0], *b = &f->recs[1];
    assert_int_equal(a->index, 1);
    assert_int_equal(b->index, 2);
    assert_int_equal(a->offset, offset_of(ARRAY_INPUT, "{\"orderId\"", 0));
    assert_int_equal(b->offset, offset_of(ARRAY_INPUT, "{\"orderId\"", 1));
    assert_int_equal(a->line, 2);
    assert_int_equal(b->line, 5);
    assert_string_equal(a->order_id.v, "CL-1");
    assert_string_equal(a->city.v, "Paris");
    assert_int_equal(a->nitems, 2);
    assert_string_equal(a->sku[0].v, "S1");
    assert_string_equal(a->qty[0].v, "2");
    assert_string_equal(a->sku[1].v, "S2");
    assert_string_equal(b->order_id.v, "CL-2");
    assert_int_equal(b->nitems, 0);
    assert_false(b->city.set); /* the record is reused: nothing carried over */
}

static const char NDJSON_INPUT[] =
    "{\"orderId\":\"N1\",\"lineItems\":[{\"sku\":\"A\",\"quantity\":1}]}\n"
    "{\"orderId\":\"N2\",\"shippingAddress\":{\"city\":\"Lyon\"}}\n"
    "\n"
    "{\"orderId\":\"N3\",\"lineItems\":[{\"sku\":\"B\",\"quantity\":3},{\"sku\":\"C\",\"quantity\":"
    "4}]}\n";

static void test_ndjson_shape(void **state)
{
    fixture *f = *state;
    assert_int_equal(run_s(f, NDJSON_INPUT, 0), CIN_OK);
    assert_int_equal(f->shape, CIN_SHAPE_OBJECTS);
    assert_false(f->kind_set);
    assert_int_equal(f->n, 3);
    assert_string_equal(f->recs[0].order_id.v, "N1");
    assert_string_equal(f->recs[1].order_id.v, "N2");
    assert_string_equal(f->recs[2].order_id.v, "N3");
    assert_int_equal(f->recs[0].line, 1);
    assert_int_equal(f->recs[1].line, 2);
    assert_int_equal(f->recs[2].line, 4);
    assert_int_equal(f->recs[2].offset, offset_of(NDJSON_INPUT, "{\"orderId\":\"N3\"", 0));
    assert_int_equal(f->recs[2].index, 3);
    assert_string_equal(f->recs[1].city.v, "Lyon");
    assert_int_equal(f->recs[1].nitems, 0);
    assert_int_equal(f->recs[2].nitems, 2);
    assert_string_equal(f->recs[2].sku[1].v, "C");
    assert_string_equal(f->recs[2].qty[1].v, "4");
}

static void test_wrapper_shape(void **state)
{
    fixture *f = *state;
    const char *in = "{\"orders\": [{\"orderId\":\"W1\"},\n{\"orderId\":\"W2\",\"lineItems\":"
                     "[{\"sku\":\"Z\"}]}]}";
    assert_int_equal(run_s(f, in, 0), CIN_OK);
    assert_int_equal(f->shape, CIN_SHAPE_WRAPPER);
    assert_true(f->kind_set);
    assert_string_equal(f->kind, "orders");
    assert_int_equal(f->n, 2);
    assert_int_equal(f->nrecords, 2);
    assert_int_equal(f->recs[0].index, 1);
    assert_int_equal(f->recs[1].index, 2);
    assert_string_equal(f->recs[0].order_id.v, "W1");
    assert_string_equal(f->recs[1].order_id.v, "W2");
    assert_int_equal(f->recs[1].offset, offset_of(in, "{\"orderId\":\"W2\"", 0));
    assert_int_equal(f->recs[1].line, 2);
    assert_string_equal(f->recs[1].sku[0].v, "Z");
}

static void test_wrapper_with_member_before(void **state)
{
    fixture *f = *state;
    /* members before the array (that no template reads) do not make it a record;
     * a member a template does read would: see test_ndjson_record_with_array_named_like_a_kind */
    const char *in = "{\"meta\": {\"orderId\": \"META\", \"count\": 2},\n"
                     " \"exportedAt\": \"2026-11-01\",\n"
                     " \"orders\": [\n"
                     "  {\"orderId\": \"W1\"},\n"
                     "  {\"totalAmount\": \"7.50\"}\n"
                     " ],\n"
                     " \"count\": 2}\n";
    for (size_t chunk = 0; chunk <= 7; chunk += 7) {
        assert_int_equal(run_s(f, in, chunk), CIN_OK);
        assert_int_equal(f->shape, CIN_SHAPE_WRAPPER);
        assert_string_equal(f->kind, "orders");
        assert_int_equal(f->n, 2);
        assert_int_equal(f->nrecords, 2);
        assert_int_equal(f->recs[0].index, 1);
        assert_string_equal(f->recs[0].order_id.v, "W1");
        assert_int_equal(f->recs[0].line, 4);
        assert_int_equal(f->recs[1].index, 2);
        assert_false(f->recs[1].order_id.set); /* nothing from the wrapper leaks in */
        assert_string_equal(f->recs[1].total.v, "7.50");
    }
}

static void test_wrapper_other_kinds(void **state)
{
    fixture *f = *state;
    assert_int_equal(run_s(f, "{\"payments\":[{\"orderId\":\"P1\"}]}", 0), CIN_OK);
    assert_string_equal(f->kind, "payments");
    assert_int_equal(f->n, 1);
    assert_string_equal(f->recs[0].order_id.v, "P1");
    /* an object whose array is not named after a kind is a record itself */
    assert_int_equal(run_s(f, "{\"orderId\":\"R1\",\"lineItems\":[{\"sku\":\"Q\"}]}", 0), CIN_OK);
    assert_int_equal(f->shape, CIN_SHAPE_OBJECTS);
    assert_false(f->kind_set);
    assert_int_equal(f->n, 1);
    assert_string_equal(f->recs[0].sku[0].v, "Q");
}

static void assert_same_records(const fixture *a_f, size_t an, const crec *a, const crec *b,
                                size_t bn)
{
    (void)a_f;
    assert_int_equal(an, bn);
    for (size_t i = 0; i < an; i++) {
        assert_int_equal(a[i].index, b[i].index);
        assert_int_equal(a[i].offset, b[i].offset);
        assert_int_equal(a[i].line, b[i].line);
        assert_int_equal(a[i].not_object, b[i].not_object);
        assert_int_equal(a[i].order_id.set, b[i].order_id.set);
        assert_string_equal(a[i].order_id.v, b[i].order_id.v);
        assert_string_equal(a[i].city.v, b[i].city.v);
        assert_string_equal(a[i].total.v, b[i].total.v);
        assert_string_equal(a[i].street.v, b[i].street.v);
        assert_int_equal(a[i].nitems, b[i].nitems);
        for (size_t k = 0; k < a[i].nitems && k < MAXITEM; k++) {
            assert_string_equal(a[i].sku[k].v, b[i].sku[k].v);
            assert_string_equal(a[i].qty[k].v, b[i].qty[k].v);
        }
    }
}

static void check_chunking(fixture *f, const char *in)
{
    static crec whole[MAXREC];
    assert_int_equal(run_s(f, in, 0), CIN_OK);
    size_t n = f->n;
    assert_true(n > 0);
    memcpy(whole, f->recs, sizeof whole);
    const size_t sizes[] = {1, 2, 3, 7, 64};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        assert_int_equal(run_s(f, in, sizes[i]), CIN_OK);
        assert_same_records(f, n, whole, f->recs, f->n);
    }
}

static void test_chunking_array(void **state)
{
    check_chunking(*state, ARRAY_INPUT);
}

static void test_chunking_ndjson(void **state)
{
    check_chunking(*state, NDJSON_INPUT);
}

static void test_chunking_long_values(void **state)
{
    /* numbers and strings that straddle chunk boundaries, escapes, a wrapper */
    check_chunking(*state,
                   "{\"orders\":[\n"
                   "{\"orderId\":\"WEB-2026-000017\",\"totalAmount\":-12345678901234567.125e-3,"
                   "\"billingAddress\":{\"street1\":\"1 Rue \\\"du\\\" Caf\\u00e9\"},"
                   "\"lineItems\":[{\"sku\":\"SKU-0001\",\"quantity\":1234.5678}]},\n"
                   "{\"orderId\":\"X\",\"totalAmount\":0.000001}\n"
                   "]}");
}

static void test_numbers_kept_as_text(void **state)
{
    fixture *f = *state;
    const char *in = "[{\"orderId\":\"N\",\"totalAmount\":19.990,"
                     "\"lineItems\":[{\"quantity\":1.5e1},{\"quantity\":-0.000},"
                     "{\"quantity\":12345678901234567890123456789}]}]";
    assert_int_equal(run_s(f, in, 0), CIN_OK);
    assert_string_equal(f->recs[0].total.v, "19.990");
    assert_string_equal(f->recs[0].qty[0].v, "1.5e1");
    assert_string_equal(f->recs[0].qty[1].v, "-0.000");
    assert_string_equal(f->recs[0].qty[2].v, "12345678901234567890123456789");
    /* booleans are kept as their words */
    assert_int_equal(run_s(f, "{\"orderId\":true,\"totalAmount\":false}", 0), CIN_OK);
    assert_string_equal(f->recs[0].order_id.v, "true");
    assert_string_equal(f->recs[0].total.v, "false");
}

static void test_unicode_escapes(void **state)
{
    fixture *f = *state;
    const char *in = "[{\"orderId\":\"Caf\\u00e9\",\"shippingAddress\":{\"city\":\"\\u00c5rhus "
                     "\\ud83d\\ude00\"},"
                     "\"billingAddress\":{\"street1\":\"tab\\tnl\\nq\\\"s\\\\/\\/\"}}]";
    assert_int_equal(run_s(f, in, 0), CIN_OK);
    assert_string_equal(f->recs[0].order_id.v, "Caf\xc3\xa9");
    assert_string_equal(f->recs[0].city.v, "\xc3\x85rhus \xf0\x9f\x98\x80");
    assert_string_equal(f->recs[0].street.v, "tab\tnl\nq\"s\\//");
    /* raw UTF-8 passes through unchanged */
    assert_int_equal(run_s(f, "[{\"orderId\":\"\xe6\x97\xa5\xe6\x9c\xac\"}]", 0), CIN_OK);
    assert_string_equal(f->recs[0].order_id.v, "\xe6\x97\xa5\xe6\x9c\xac");
}

/* nested - a record "[{"a":{"a":...1...}}]" with `levels` containers in all */
static char *nested(int levels)
{
    sbuf b = {0};
    sbuf_addc(&b, '[');
    for (int i = 1; i < levels; i++)
        sbuf_adds(&b, "{\"a\":");
    sbuf_addc(&b, '1');
    for (int i = 1; i < levels; i++)
        sbuf_addc(&b, '}');
    sbuf_addc(&b, ']');
    return b.p;
}

static void test_depth_64_accepted(void **state)
{
    fixture *f = *state;
    char *in = nested(CIN_MAX_DEPTH);
    cin_status st = run_s(f, in, 0);
    free(in);
    assert_int_equal(st, CIN_OK);
    assert_int_equal(f->n, 1);
}

static void test_depth_65_too_deep(void **state)
{
    fixture *f = *state;
    char *in = nested(CIN_MAX_DEPTH + 1);
    cin_status st = run_s(f, in, 0);
    free(in);
    assert_int_equal(st, CIN_TOO_DEEP);
    assert_int_equal(f->n, 0);
    /* bare arrays count as well */
    sbuf b = {0};
    for (int i = 0; i < 1000; i++)
        sbuf_addc(&b, '[');
    st = run(f, b.p, b.len, 0);
    sbuf_free(&b);
    assert_int_equal(st, CIN_TOO_DEEP);
}

static void test_invalid_utf8(void **state)
{
    fixture *f = *state;
    const char *in = "[{\"orderId\":\"A1\"},{\"orderId\":\"B\xff\xfe"
                     "C\"}]";
    assert_int_equal(run_s(f, in, 0), CIN_SYNTAX);
    assert_int_equal(f->n, 1); /* the good record before it was delivered */
    /* a lone continuation byte */
    assert_int_equal(run_s(f, "[{\"orderId\":\"\x80\"}]", 0), CIN_SYNTAX);
    /* a UTF-8 sequence cut in the middle by the end of the string */
    assert_int_equal(run_s(f, "[{\"orderId\":\"\xc3\"}]", 0), CIN_SYNTAX);
    /* in a key */
    assert_int_equal(run_s(f, "[{\"order\xff\":\"x\"}]", 0), CIN_SYNTAX);
    /* the same bytes split over chunks */
    assert_int_equal(run_s(f, in, 1), CIN_SYNTAX);
    assert_int_equal(f->n, 1);
}

static void test_invalid_utf8_overlong_surrogate(void **state)
{
    fixture *f = *state;
    /* well-formed-looking sequences that are still not UTF-8 (RFC 3629) */
    assert_int_equal(run_s(f, "[{\"orderId\":\"\xc0\xaf\"}]", 0), CIN_SYNTAX); /* overlong '/' */
    assert_int_equal(run_s(f, "[{\"orderId\":\"\xed\xa0\x80\"}]", 0), CIN_SYNTAX); /* U+D800 */
    assert_int_equal(run_s(f, "[{\"orderId\":\"\xf4\x90\x80\x80\"}]", 0),
                     CIN_SYNTAX); /* > U+10FFFF */
}

static void test_truncated(void **state)
{
    fixture *f = *state;
    const char *in = "[{\"orderId\":\"A1\"},{\"orderId\":\"A2\",\"totalAmount\":";
    assert_int_equal(run_s(f, in, 0), CIN_TRUNCATED);
    assert_int_equal(f->feed_st, CIN_OK); /* the feed itself was fine */
    assert_int_equal(f->n, 1);
    assert_int_equal(run_s(f, "{\"orderId\":\"A1\"", 3), CIN_TRUNCATED);
    assert_int_equal(f->n, 0);
    assert_int_equal(run_s(f, "[", 0), CIN_TRUNCATED);
    assert_int_equal(run_s(f, "{\"orders\":[{\"orderId\":\"A\"}", 0), CIN_TRUNCATED);
    assert_int_equal(f->n, 1);
}

static void test_syntax_error_offset(void **state)
{
    fixture *f = *state;
    const char *in = "[{\"orderId\":\"A1\"},\n"
                     " {\"orderId\" \"A2\"},\n"
                     " {\"orderId\":\"A3\"}]";
    uint64_t bad = offset_of(in, "\"A2\"", 0);
    const size_t sizes[] = {0, 1, 7};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(run_s(f, in, sizes[i]), CIN_SYNTAX);
        assert_int_equal(f->feed_st, CIN_SYNTAX);
        assert_int_equal(f->n, 1);
        assert_true(f->err_off + 4 >= bad && f->err_off <= bad + 4);
        assert_true(f->msg[0] != '\0');
    }
    /* garbage after a complete record */
    in = "{\"orderId\":\"A1\"}\nxyz\n";
    assert_int_equal(run_s(f, in, 0), CIN_SYNTAX);
    assert_int_equal(f->n, 1);
    bad = offset_of(in, "xyz", 0);
    assert_true(f->err_off + 4 >= bad && f->err_off <= bad + 4);
}

static void test_empty_input(void **state)
{
    fixture *f = *state;
    assert_int_equal(run(f, "", 0, 0), CIN_EMPTY);
    assert_int_equal(run_s(f, " \n\t\r\n ", 0), CIN_EMPTY);
    assert_int_equal(f->n, 0);
}

static void test_bare_value_is_shape_error(void **state)
{
    fixture *f = *state;
    assert_int_equal(run_s(f, "\"orders\"", 0), CIN_SHAPE);
    assert_int_equal(run_s(f, "true", 0), CIN_SHAPE);
    /* a number is reported only at the end of the file (it could go on) */
    assert_int_equal(run_s(f, "42", 0), CIN_SHAPE);
    assert_int_equal(run_s(f, "42\n", 0), CIN_SHAPE);
}

static void test_array_element_not_object(void **state)
{
    fixture *f = *state;
    const char *in = "[{\"orderId\":\"A\"},\n 42,\n \"text\",\n true,\n {\"orderId\":\"B\"}]";
    assert_int_equal(run_s(f, in, 0), CIN_OK);
    assert_int_equal(f->n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(f->recs[i].index, i + 1);
    assert_false(f->recs[0].not_object);
    assert_true(f->recs[1].not_object);
    assert_true(f->recs[2].not_object);
    assert_true(f->recs[3].not_object);
    assert_false(f->recs[4].not_object);
    assert_string_equal(f->recs[4].order_id.v, "B");
    assert_int_equal(f->recs[1].line, 2);
    assert_int_equal(f->recs[2].line, 3);
    assert_int_equal(f->recs[1].offset, offset_of(in, "42", 0));
    assert_int_equal(f->recs[2].offset, offset_of(in, "\"text\"", 0));
}

static void test_array_element_null(void **state)
{
    fixture *f = *state;
    /* null is not an order either: reported, and later records keep their position */
    const char *in = "[{\"orderId\":\"A\"}, null, {\"orderId\":\"B\"}]";
    assert_int_equal(run_s(f, in, 0), CIN_OK);
    assert_int_equal(f->n, 3);
    assert_true(f->recs[1].not_object);
    assert_int_equal(f->recs[2].index, 3);
    assert_string_equal(f->recs[2].order_id.v, "B");
}

static void test_array_element_that_is_an_array(void **state)
{
    fixture *f = *state;
    /* a nested array is not a record either: it must be reported, not skipped */
    const char *in = "[{\"orderId\":\"A\"}, [{\"orderId\":\"X\"}], {\"orderId\":\"B\"}]";
    assert_int_equal(run_s(f, in, 0), CIN_OK);
    assert_int_equal(f->n, 3);
    assert_true(f->recs[1].not_object);
    assert_int_equal(f->recs[2].index, 3);
    assert_string_equal(f->recs[2].order_id.v, "B");
}

static void test_not_object_offset_any_chunking(void **state)
{
    fixture *f = *state;
    /* the record before it holds nested objects and arrays, whose tokens are not the ones
     * the offset is found from; every chunk size from 1 to 24 bytes, and all at once */
    const char *in = "[{\"orderId\":\"A\",\"lineItems\":[{\"sku\":\"x\",\"q\":1}],"
                     "\"a\":{\"b\":[1,{\"c\":null}]}},\n 123456,\n {\"orderId\":\"B\"}]";
    uint64_t want = offset_of(in, "123456", 0);
    for (size_t size = 0; size <= 24; size++) {
        assert_int_equal(run_s(f, in, size), CIN_OK);
        assert_int_equal(f->n, 3);
        assert_true(f->recs[1].not_object);
        assert_int_equal(f->recs[1].offset, want);
        assert_int_equal(f->recs[1].line, 2);
    }
}

static void test_unknown_fields_not_stored(void **state)
{
    fixture *f = *state;
    const char *in =
        "[{\"secret\":\"SECRET-1\",\"orderId\":\"A\",\"customer\":{\"note\":\"SECRET-2\"},"
        "\"shippingAddress\":{\"orderId\":\"SECRET-3\",\"city\":\"Oslo\",\"geo\":{\"city\":"
        "\"SECRET-4\"}},"
        "\"sku\":\"SECRET-5\","
        "\"lineItems\":[{\"sku\":\"K\",\"lineItems\":\"SECRET-6\",\"orderId\":\"SECRET-7\","
        "\"tags\":[\"SECRET-8\"],\"opts\":{\"sku\":\"SECRET-9\"}}],"
        "\"city\":\"SECRET-10\"}]";
    assert_int_equal(run_s(f, in, 0), CIN_OK);
    assert_int_equal(f->n, 1);
    crec *r = &f->recs[0];
    assert_string_equal(r->order_id.v, "A");
    assert_string_equal(r->city.v, "Oslo");
    assert_int_equal(r->nitems, 1);
    assert_string_equal(r->sku[0].v, "K");
    assert_false(r->qty[0].set);
    assert_false(r->leaked);
}

/* record_copy (what the conversion's reading thread hands to the mapping one) gives a record
 * equal to its source in every field, item and position, even into a record that held a
 * larger one before: one destination is reused for every record of a varied file */
typedef struct {
    record dst;
    int s[4], g, gs[2];
    int n;
} copy_check;

static void same_field(const record *a, const record *b, int group, size_t item, int slot)
{
    size_t la = 0, lb = 0;
    const char *va = record_get(a, group, item, slot, &la);
    const char *vb = record_get(b, group, item, slot, &lb);
    if (!va || !vb) {
        assert_true(!va && !vb);
        return;
    }
    assert_int_equal(la, lb);
    assert_memory_equal(va, vb, la);
    assert_int_equal(vb[lb], '\0');
}

static int on_copy(void *ctx, record *r)
{
    copy_check *c = ctx;
    record_copy(&c->dst, r);
    record_clear(r); /* the copy owns nothing of the source */
    return 0;
}

static int on_copy_compare(void *ctx, record *r)
{
    copy_check *c = ctx;
    record_copy(&c->dst, r);
    assert_int_equal(c->dst.index, r->index);
    assert_int_equal(c->dst.offset, r->offset);
    assert_int_equal(c->dst.line, r->line);
    assert_int_equal(c->dst.not_object, r->not_object);
    for (int i = 0; i < 4; i++)
        same_field(r, &c->dst, REC_HEADER, 0, c->s[i]);
    assert_int_equal(record_nitems(&c->dst, c->g), record_nitems(r, c->g));
    for (size_t it = 0; it < record_nitems(r, c->g); it++)
        for (int i = 0; i < 2; i++)
            same_field(r, &c->dst, c->g, it, c->gs[i]);
    c->n++;
    return 0;
}

static void test_record_copy_equal(void **state)
{
    fixture *f = *state;
    const char *in =
        "[{\"orderId\":\"A-1\",\"totalAmount\":12.5,\"shippingAddress\":{\"city\":\"Oslo\"},"
        "\"billingAddress\":{\"street1\":\"1 Main St\"},\"lineItems\":[{\"sku\":\"S1\","
        "\"quantity\":1},{\"sku\":\"S2\",\"quantity\":2},{\"sku\":\"S3\",\"quantity\":3}]},\n"
        "{\"orderId\":\"B-2\",\"lineItems\":[{\"quantity\":7}]},\n"
        "{\"totalAmount\":null,\"billingAddress\":{\"street1\":\"\"},\"lineItems\":[]},\n"
        "42,\n"
        "{\"orderId\":\"C-3\",\"shippingAddress\":{\"city\":\"Lund\"},\"lineItems\":[{\"sku\":"
        "\"S9\"},{\"sku\":\"S10\",\"quantity\":10}]}]";
    copy_check c = {.s = {f->s_order, f->s_city, f->s_total, f->s_street},
                    .g = f->g_items,
                    .gs = {f->s_sku, f->s_qty}};
    record_init(&c.dst, f->schema);
    /* first fill dst from the largest record, so that every later copy lands on leftovers */
    cin_parser *p = cin_new(f->schema, on_copy, &c);
    assert_int_equal(cin_feed(p, in, strlen(in)), CIN_OK);
    assert_int_equal(cin_finish(p), CIN_OK);
    cin_free(p);
    p = cin_new(f->schema, on_copy_compare, &c);
    assert_int_equal(cin_feed(p, in, strlen(in)), CIN_OK);
    assert_int_equal(cin_finish(p), CIN_OK);
    cin_free(p);
    assert_int_equal(c.n, 5);
    record_free(&c.dst);
}

/* the reader remembers the path of the k-th scalar of the previous record and compares the
 * next record's with it before looking the path up: two paths of the same length that
 * differ in any one byte (first, last, inside a word of eight, at every length up to the
 * 48 bytes it remembers, and beyond) must still go to their own fields */
typedef struct {
    int s1, s2;
    int got1, got2; /* records whose value arrived in field 1, in field 2 */
} two_paths;

static int on_path_record(void *ctx, record *r)
{
    two_paths *t = ctx;
    t->got1 += record_get(r, REC_HEADER, 0, t->s1, NULL) != NULL;
    t->got2 += record_get(r, REC_HEADER, 0, t->s2, NULL) != NULL;
    return 0;
}

static void test_same_length_paths_told_apart(void **state)
{
    (void)state;
    for (size_t len = 1; len <= 56; len++)
        for (size_t d = 0; d < len; d++) {
            char k1[64], k2[64], in[256];
            memset(k1, 'k', len);
            k1[len] = '\0';
            memcpy(k2, k1, len + 1);
            k2[d] = 'q';
            rec_schema *sc = schema_new();
            two_paths t = {schema_slot(sc, REC_HEADER, k1), schema_slot(sc, REC_HEADER, k2), 0, 0};
            /* k1, then k2 at the same place, then k1 again */
            snprintf(in, sizeof in, "{\"%s\":1}\n{\"%s\":2}\n{\"%s\":3}\n", k1, k2, k1);
            cin_parser *p = cin_new(sc, on_path_record, &t);
            assert_int_equal(cin_feed(p, in, strlen(in)), CIN_OK);
            assert_int_equal(cin_finish(p), CIN_OK);
            cin_free(p);
            schema_free(sc);
            if (t.got1 != 2 || t.got2 != 1)
                fail_msg("length %zu, differing at %zu: %d values in the first field, %d in the "
                         "second (expected 2 and 1)",
                         len, d, t.got1, t.got2);
        }
}

static int on_two(void *ctx, record *r)
{
    char(*out)[2][VLEN] = ctx;
    for (int i = 0; i < 2; i++) {
        const char *p = record_get(r, REC_HEADER, 0, i, NULL);
        snprintf((*out)[i], VLEN, "%s", p ? p : "(absent)");
    }
    return 0;
}

static void test_containers_are_not_values(void **state)
{
    (void)state;
    /* a path naming an object or an array reads as absent, not as its text */
    rec_schema *s = schema_new();
    schema_slot(s, REC_HEADER, "shippingAddress");
    schema_slot(s, REC_HEADER, "tags");
    char out[2][VLEN];
    const char *in = "[{\"tags\":[\"a\",\"b\"],\"shippingAddress\":{\"city\":\"X\"}}]";
    cin_parser *p = cin_new(s, on_two, out);
    cin_status st = cin_feed(p, in, strlen(in));
    if (st == CIN_OK)
        st = cin_finish(p);
    cin_free(p);
    schema_free(s);
    assert_int_equal(st, CIN_OK);
    assert_string_equal(out[0], "(absent)");
    assert_string_equal(out[1], "(absent)");
}

static void test_ndjson_record_with_array_named_like_a_kind(void **state)
{
    (void)state;
    /* an order line that carries its own "payments" array is still an order:
     * taking it for a {"payments":[...]} wrapper loses the order */
    rec_schema *s = schema_new();
    schema_slot(s, REC_HEADER, "orderId");
    schema_slot(s, REC_HEADER, "totalAmount");
    char out[2][VLEN];
    const char *in =
        "{\"orderId\":\"O1\",\"payments\":[{\"method\":\"card\"}],\"totalAmount\":5}\n";
    cin_parser *p = cin_new(s, on_two, out);
    cin_status st = cin_feed(p, in, strlen(in));
    if (st == CIN_OK)
        st = cin_finish(p);
    uint64_t n = cin_records(p);
    cin_shape shape = cin_get_shape(p);
    cin_free(p);
    schema_free(s);
    assert_int_equal(st, CIN_OK);
    assert_int_equal(shape, CIN_SHAPE_OBJECTS);
    assert_int_equal(n, 1);
    assert_string_equal(out[0], "O1");
    assert_string_equal(out[1], "5");
}

static void test_utf8_bom_skipped(void **state)
{
    fixture *f = *state;
    /* a byte-order mark before the JSON is skipped; offsets still count it */
    const char *in = "\xef\xbb\xbf[{\"orderId\":\"B1\"}]";
    const size_t sizes[] = {0, 1, 2};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(run_s(f, in, sizes[i]), CIN_OK);
        assert_int_equal(f->n, 1);
        assert_string_equal(f->recs[0].order_id.v, "B1");
        assert_int_equal(f->recs[0].offset, 4);
        assert_int_equal(f->recs[0].line, 1);
    }
    /* half a mark is not JSON */
    assert_int_equal(run_s(f, "\xef\xbb[{}]", 0), CIN_SYNTAX);
}

static void test_null_is_absent(void **state)
{
    fixture *f = *state;
    const char *in =
        "[{\"orderId\":\"A\",\"totalAmount\":null,\"shippingAddress\":{\"city\":null},"
        "\"lineItems\":[{\"sku\":null,\"quantity\":2},{\"sku\":\"\",\"quantity\":null}]}]";
    assert_int_equal(run_s(f, in, 0), CIN_OK);
    crec *r = &f->recs[0];
    assert_false(r->total.set);
    assert_false(r->city.set);
    assert_int_equal(r->nitems, 2);
    assert_false(r->sku[0].set);
    assert_string_equal(r->qty[0].v, "2");
    assert_true(r->sku[1].set); /* an empty string is present, unlike null */
    assert_string_equal(r->sku[1].v, "");
    assert_false(r->qty[1].set);
    /* a whole null object reads as absent too */
    assert_int_equal(
        run_s(f, "[{\"orderId\":\"B\",\"shippingAddress\":null,\"lineItems\":null}]", 0), CIN_OK);
    assert_false(f->recs[0].city.set);
    assert_int_equal(f->recs[0].nitems, 0);
}

static void test_callback_stops(void **state)
{
    fixture *f = *state;
    f->stop_after = 1;
    assert_int_equal(run_s(f, NDJSON_INPUT, 0), CIN_STOPPED);
    f->stop_after = 0;
    assert_int_equal(f->n, 1);
}

static int ignore_record(void *ctx, record *r)
{
    (void)ctx;
    (void)r;
    return 0;
}

static void test_first_has_key(void **state)
{
    fixture *f = *state;
    const char *in = "{\"orders\":[{\"orderId\":\"A\",\"lineItems\":[]},{\"other\":1}]}";
    cin_parser *p = cin_new(f->schema, ignore_record, NULL);
    assert_int_equal(cin_feed(p, in, strlen(in)), CIN_OK);
    assert_int_equal(cin_finish(p), CIN_OK);
    assert_true(cin_first_has_key(p, "orderId"));
    assert_true(cin_first_has_key(p, "lineItems"));
    assert_false(cin_first_has_key(p, "orders")); /* the wrapper's key is not the record's */
    assert_false(cin_first_has_key(p, "other"));  /* only the first record counts */
    cin_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_array_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrapper_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrapper_with_member_before, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrapper_other_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunking_array, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunking_ndjson, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunking_long_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers_kept_as_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unicode_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_64_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_65_too_deep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_overlong_surrogate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_value_is_shape_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_element_not_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_element_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_element_that_is_an_array, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_object_offset_any_chunking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_fields_not_stored, setup, teardown),
        cmocka_unit_test(test_same_length_paths_told_apart),
        cmocka_unit_test_setup_teardown(test_record_copy_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_containers_are_not_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_record_with_array_named_like_a_kind, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_utf8_bom_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_is_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_has_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
