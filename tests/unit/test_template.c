/*
 * test_template.c - mapping templates (src/template.h) and the
 * configuration they read settings from (src/config.h).
 *
 * Templates live in tests/data/unit/templates/ (valid ones) and
 * tests/data/unit/bad-templates/ (ones that must not load).  Records are
 * made by feeding JSON text through the Clarity reader with the schema the
 * loaded templates registered, exactly as the program does.
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
#include "config.h"
#include "template.h"

#define TDIR   "tests/data/unit/templates/"
#define BDIR   "tests/data/unit/bad-templates/"
#define MAXT   4
#define MAXOUT 16
#define MAXISS 8

/* outcome - a copy of one tpl_eval result (rows point into the reused record) */
typedef struct {
    int rc;
    size_t nrows[MAXT];
    char **cells[MAXT];
    size_t nerr, nwarn;
    char *ecode[MAXISS], *efield[MAXISS], *emsg[MAXISS];
    char *wcode[MAXISS], *wfield[MAXISS], *wmsg[MAXISS];
    char *key;
} outcome;

typedef struct {
    config *cfg;
    tpl_set *set;
    template *t;
    tpl_run *run;
    tpl_run *spec_run; /* spec: every record evaluated speculatively, then settled */
    int spec;
    tpl_result res;
    int res_ready;
    outcome out[MAXOUT];
    size_t n;
} fixture;

static char *dupn(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void outcome_free(outcome *o)
{
    for (int t = 0; t < MAXT; t++)
        if (o->cells[t]) {
            free(o->cells[t][0] ? o->cells[t][0] : NULL);
            for (size_t i = 1; o->cells[t][i]; i++)
                free(o->cells[t][i]);
            free(o->cells[t]);
        }
    for (size_t i = 0; i < o->nerr; i++)
        free(o->ecode[i]), free(o->efield[i]), free(o->emsg[i]);
    for (size_t i = 0; i < o->nwarn; i++)
        free(o->wcode[i]), free(o->wfield[i]), free(o->wmsg[i]);
    free(o->key);
    memset(o, 0, sizeof *o);
}

static int on_record(void *ctx, record *rec)
{
    fixture *f = ctx;
    assert_true(f->n < MAXOUT);
    outcome *o = &f->out[f->n++];
    memset(o, 0, sizeof *o);
    if (f->spec) { /* what convert.c does when the reading thread evaluates ahead */
        if (!f->spec_run)
            f->spec_run = tpl_run_new_spec(f->t);
        int spec_rc = tpl_eval(f->spec_run, rec, &f->res);
        tpl_prefetch(f->run, &f->res); /* as sb-map does a record ahead: changes nothing */
        o->rc = tpl_settle(f->run, rec, &f->res, spec_rc);
    } else {
        o->rc = tpl_eval(f->run, rec, &f->res);
    }
    const tpl_output_desc *d = tpl_output(f->t);
    assert_true(d->ntables <= MAXT);
    if (o->rc == 0)
        for (int t = 0; t < d->ntables; t++) {
            size_t cells = f->res.nrows[t] * (size_t)d->tables[t].ncols;
            o->nrows[t] = f->res.nrows[t];
            o->cells[t] = calloc(cells + 2, sizeof(char *));
            for (size_t i = 0; i < cells; i++)
                o->cells[t][i] = dupn(f->res.rows[t][i].p, f->res.rows[t][i].n);
            if (!cells) /* keep the NULL terminator convention */
                o->cells[t][0] = NULL;
        }
    for (size_t i = 0; i < f->res.nerrors && i < MAXISS; i++, o->nerr++) {
        o->ecode[i] = strdup(f->res.errors[i].code ? f->res.errors[i].code : "");
        o->efield[i] = strdup(f->res.errors[i].field ? f->res.errors[i].field : "");
        o->emsg[i] = strdup(f->res.errors[i].message ? f->res.errors[i].message : "");
    }
    for (size_t i = 0; i < f->res.nwarnings && i < MAXISS; i++, o->nwarn++) {
        o->wcode[i] = strdup(f->res.warnings[i].code ? f->res.warnings[i].code : "");
        o->wfield[i] = strdup(f->res.warnings[i].field ? f->res.warnings[i].field : "");
        o->wmsg[i] = strdup(f->res.warnings[i].message ? f->res.warnings[i].message : "");
    }
    o->key = dupn(f->res.key.p ? f->res.key.p : "", f->res.key.n);
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    sbuf err = {0};
    f->cfg = cfg_load(NULL, &err);
    assert_non_null(f->cfg);
    sbuf_free(&err);
    f->set = tpl_set_new(f->cfg, "xsd");
    *state = f;
    return 0;
}

static int setup_spec(void **state)
{
    setup(state);
    ((fixture *)*state)->spec = 1;
    return 0;
}

static void reset_outcomes(fixture *f)
{
    for (size_t i = 0; i < f->n; i++)
        outcome_free(&f->out[i]);
    f->n = 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    reset_outcomes(f);
    if (f->res_ready)
        tpl_result_free(&f->res);
    tpl_run_free(f->run);
    tpl_run_free(f->spec_run);
    tpl_set_free(f->set);
    cfg_free(f->cfg);
    free(f);
    return 0;
}

static char msgbuf[2048]; /* error texts, so that a failed assertion leaks nothing */

/* load - a template that must load; it becomes the one evaluated */
static template *load(fixture *f, const char *path)
{
    sbuf err = {0};
    template *t = tpl_load(f->set, path, &err);
    snprintf(msgbuf, sizeof msgbuf, "%s", err.len ? sbuf_str(&err) : "");
    sbuf_free(&err);
    if (!t)
        fail_msg("tpl_load(%s): %s", path, msgbuf);
    if (f->res_ready)
        tpl_result_free(&f->res);
    tpl_run_free(f->run);
    tpl_run_free(f->spec_run);
    f->spec_run = NULL;
    f->t = t;
    f->run = tpl_run_new(t);
    tpl_result_init(&f->res, t);
    f->res_ready = 1;
    return t;
}

/* load_error - a template that must not load; returns the message (static) */
static char *load_error(fixture *f, const char *path)
{
    sbuf err = {0};
    template *t = tpl_load(f->set, path, &err);
    snprintf(msgbuf, sizeof msgbuf, "%s", err.len ? sbuf_str(&err) : "");
    sbuf_free(&err);
    if (t)
        fail_msg("tpl_load(%s) succeeded; expected an error", path);
    assert_true(msgbuf[0] != '\0');
    return msgbuf;
}

/* feed - every record of the JSON text through the current template */
static size_t feed(fixture *f, const char *json)
{
    reset_outcomes(f);
    cin_parser *p = cin_new(tpl_schema(f->set), on_record, f);
    assert_int_equal(cin_feed(p, json, strlen(json)), CIN_OK);
    assert_int_equal(cin_finish(p), CIN_OK);
    cin_free(p);
    return f->n;
}

/* one - a single record that must map */
static outcome *one(fixture *f, const char *json)
{
    assert_int_equal(feed(f, json), 1);
    if (f->out[0].rc != 0)
        fail_msg("record rejected: %s %s: %s", f->out[0].nerr ? f->out[0].ecode[0] : "?",
                 f->out[0].nerr ? f->out[0].efield[0] : "?",
                 f->out[0].nerr ? f->out[0].emsg[0] : "?");
    return &f->out[0];
}

/* cell - value of table/column at row */
static const char *cell(const fixture *f, const outcome *o, const char *table, size_t row,
                        const char *col)
{
    const tpl_output_desc *d = tpl_output(f->t);
    for (int t = 0; t < d->ntables; t++) {
        if (strcmp(d->tables[t].name, table) != 0)
            continue;
        for (int c = 0; c < d->tables[t].ncols; c++)
            if (strcmp(d->tables[t].cols[c], col) == 0) {
                if (row >= o->nrows[t])
                    fail_msg("%s has %zu rows, asked for row %zu", table, o->nrows[t], row);
                return o->cells[t][row * (size_t)d->tables[t].ncols + (size_t)c];
            }
        fail_msg("no column %s in %s", col, table);
    }
    fail_msg("no table %s", table);
    return NULL;
}

#define H(o, col)      cell(f, (o), "Head", 0, (col))
#define L(o, row, col) cell(f, (o), "Line", (row), (col))

static size_t nrows(const fixture *f, const outcome *o, const char *table)
{
    const tpl_output_desc *d = tpl_output(f->t);
    for (int t = 0; t < d->ntables; t++)
        if (strcmp(d->tables[t].name, table) == 0)
            return o->nrows[t];
    fail_msg("no table %s", table);
    return 0;
}

static void assert_rejected(const outcome *o, const char *code, const char *field)
{
    assert_int_equal(o->rc, 1);
    assert_true(o->nerr >= 1);
    assert_string_equal(o->ecode[0], code);
    if (field)
        assert_string_equal(o->efield[0], field);
}

/* --------------------------------------------------------------- loading */

static void test_load_describes_output(void **state)
{
    fixture *f = *state;
    template *t = load(f, TDIR "ops-text.xml");
    assert_string_equal(tpl_name(t), "ops-text");
    assert_string_equal(tpl_kind(t), "orders");
    assert_int_equal(strlen(tpl_sha256(t)), 64);
    assert_ptr_equal(tpl_find(f->set, "ops-text"), t);
    assert_int_equal(tpl_count(f->set), 1);
    const tpl_output_desc *d = tpl_output(t);
    assert_string_equal(d->prefix, "TX");
    assert_string_equal(d->xml_root, "Root");
    assert_string_equal(d->xml_record, "Rec");
    assert_string_equal(d->xml_ns, "urn:test:ops");
    assert_int_equal(d->ntables, 2);
    assert_string_equal(d->tables[0].name, "Head");
    assert_false(d->tables[0].per_item);
    assert_string_equal(d->tables[0].cols[0], "Field");
    assert_string_equal(d->tables[1].name, "Line");
    assert_true(d->tables[1].per_item);
    assert_int_equal(d->tables[1].ncols, 6);
    /* the paths the template uses are in the shared schema */
    const rec_schema *s = tpl_schema(f->set);
    assert_true(schema_find_slot(s, REC_HEADER, "orderId", 7) >= 0);
    assert_true(schema_find_slot(s, REC_HEADER, "shippingAddress.city", 20) >= 0);
    int g = schema_find_group(s, "lineItems", 9);
    assert_true(g >= 0);
    assert_true(schema_find_slot(s, g, "sku", 3) >= 0);
}

static void test_same_name_twice_refused(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    char *m = load_error(f, TDIR "ops-text.xml");
    assert_non_null(strstr(m, "ops-text"));
}

static void test_clarity_orders_template_loads(void **state)
{
    fixture *f = *state;
    template *t = load(f, "templates/clarity-orders.xml");
    assert_string_equal(tpl_output(t)->prefix, "SO");
    outcome *o = one(
        f,
        "{\"orderId\":\"CL-100234\",\"customerId\":\"C9\",\"orderDate\":\"2026-11-01T14:22:05Z\","
        "\"currency\":\"usd\",\"totalAmount\":\"25.00\",\"shippingAmount\":\"5\",\"taxAmount\":0,"
        "\"shippingMethod\":\"standard\","
        "\"billingAddress\":{\"name\":\"Ann Lee\",\"street1\":\"1 "
        "Main\",\"city\":\"Austin\",\"state\":\"TX\",\"zipCode\":\"78701\",\"country\":\"US\"},"
        "\"shippingAddress\":{\"name\":\"Ann Lee\",\"street1\":\"1 "
        "Main\",\"city\":\"Austin\",\"state\":\"TX\",\"zipCode\":\"78701\",\"country\":\"US\"},"
        "\"lineItems\":[{\"sku\":\"A-1\",\"name\":\"Widget\",\"quantity\":2,\"unitPrice\":\"10\","
        "\"discount\":0,\"tax\":0}]}");
    assert_string_equal(cell(f, o, "StgSalesOrder", 0, "TranNo"), "0000100234");
    assert_string_equal(cell(f, o, "StgSalesOrder", 0, "TranDate"), "2026-11-01");
    assert_string_equal(cell(f, o, "StgSalesOrder", 0, "CustID"), "WEBCUST");
    assert_string_equal(cell(f, o, "StgSalesOrder", 0, "CurrID"), "USD");
    assert_string_equal(cell(f, o, "StgSalesOrder", 0, "BillToCountryID"), "USA");
    assert_string_equal(cell(f, o, "StgSalesOrder", 0, "FreightAmt"), "5.000");
    assert_string_equal(cell(f, o, "StgSOLine", 0, "TranNo"), "0000100234");
    assert_string_equal(cell(f, o, "StgSOLine", 0, "ExtAmt"), "20.000");
    assert_string_equal(cell(f, o, "StgSOLine", 0, "UnitPrice"), "10.00000");
    assert_string_equal(o->key, "CL-100234");
}

static void test_not_schema_valid_names_file_and_line(void **state)
{
    fixture *f = *state;
    char *m = load_error(f, BDIR "not-schema.xml");
    assert_non_null(strstr(m, "not-schema.xml:7:"));
    m = load_error(f, BDIR "bad-kind.xml");
    assert_non_null(strstr(m, "bad-kind.xml:3:"));
    assert_int_equal(tpl_count(f->set), 0);
}

static void test_not_xml(void **state)
{
    fixture *f = *state;
    char *m = load_error(f, BDIR "not-xml.xml");
    assert_non_null(strstr(m, "not-xml.xml:"));
    m = load_error(f, BDIR "does-not-exist.xml");
    assert_non_null(strstr(m, "does-not-exist.xml"));
}

static void test_undefined_var(void **state)
{
    fixture *f = *state;
    char *m = load_error(f, BDIR "undefined-var.xml");
    assert_non_null(strstr(m, "undefined-var.xml:8:"));
    assert_non_null(strstr(m, "nope"));
}

static void test_unknown_lookup_table(void **state)
{
    fixture *f = *state;
    char *m = load_error(f, BDIR "unknown-lookup.xml");
    assert_non_null(strstr(m, "unknown-lookup.xml:10:"));
    assert_non_null(strstr(m, "nope"));
    m = load_error(f, BDIR "missing-lookup-file.xml");
    assert_non_null(strstr(m, "missing-lookup-file.xml:5:"));
    assert_non_null(strstr(m, "does-not-exist.csv"));
}

static void test_item_outside_for_each(void **state)
{
    fixture *f = *state;
    char *m = load_error(f, BDIR "item-outside.xml");
    assert_non_null(strstr(m, "item-outside.xml:6:"));
}

static void test_undeclared_setting(void **state)
{
    fixture *f = *state;
    char *m = load_error(f, BDIR "undeclared-setting.xml");
    assert_non_null(strstr(m, "undeclared-setting.xml:6:"));
    assert_non_null(strstr(m, "mystery_knob"));
}

static void test_validate_file(void **state)
{
    fixture *f = *state;
    sbuf err = {0};
    int ok = tpl_validate_file(f->cfg, "xsd", TDIR "checks.xml", &err);
    int bad = tpl_validate_file(f->cfg, "xsd", BDIR "undefined-var.xml", &err);
    snprintf(msgbuf, sizeof msgbuf, "%s", err.len ? sbuf_str(&err) : "");
    sbuf_free(&err);
    assert_int_equal(ok, 0);
    assert_int_equal(bad, -1);
    assert_non_null(strstr(msgbuf, "undefined-var.xml:8:"));
}

/* ------------------------------------------------------- text operations */

static const char TEXT_REC[] =
    "{\"orderId\":\"CL-100234\",\"shippingAddress\":{\"city\":\"Paris\"},"
    "\"customer\":{\"firstName\":\"Ann\",\"lastName\":\"Lee\"},"
    "\"b\":\"bee\",\"c\":\"sea\","
    "\"name\":\"  Mary  Ann   van Dyke \",\"padded\":\" \\t hello world \\n\","
    "\"mixed\":\"MiXeD caf\\u00e9 42\",\"short\":\"\\u00e9\",\"note\":\"head note\","
    "\"lineItems\":[{\"sku\":\"S1\",\"product\":{\"name\":\"Thing\"}},{\"sku\":\"S2\",\"note\":"
    "\"line note\"}]}";

static void test_op_field(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "Field"), "CL-100234");
    assert_string_equal(H(o, "Nested"), "Paris");
    assert_string_equal(o->key, "CL-100234");
    o = one(f, "{\"other\":1}");
    assert_string_equal(H(o, "Field"), ""); /* absent reads as empty */
    assert_string_equal(o->key, "");
}

static void test_op_item_and_line_number(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_int_equal(nrows(f, o, "Head"), 1);
    assert_int_equal(nrows(f, o, "Line"), 2);
    assert_string_equal(L(o, 0, "Item"), "S1");
    assert_string_equal(L(o, 1, "Item"), "S2");
    assert_string_equal(L(o, 0, "NestedItem"), "Thing");
    assert_string_equal(L(o, 1, "NestedItem"), "");
    assert_string_equal(L(o, 0, "LineNo"), "1");
    assert_string_equal(L(o, 1, "LineNo"), "2");
    assert_string_equal(L(o, 1, "HeadField"), "CL-100234");
    assert_string_equal(L(o, 0, "ItemOrHead"), "head note");
    assert_string_equal(L(o, 1, "ItemOrHead"), "line note");
    o = one(f, "{\"orderId\":\"X\"}");
    assert_int_equal(nrows(f, o, "Line"), 0);
    /* numbers of more than one digit */
    sbuf many = {0};
    sbuf_adds(&many, "{\"orderId\":\"CL-1\",\"lineItems\":[");
    for (int i = 0; i < 105; i++)
        sbuf_printf(&many, "%s{\"sku\":\"S%d\"}", i ? "," : "", i + 1);
    sbuf_adds(&many, "]}");
    o = one(f, sbuf_str(&many));
    sbuf_free(&many);
    assert_int_equal(nrows(f, o, "Line"), 105);
    assert_string_equal(L(o, 9, "LineNo"), "10");
    assert_string_equal(L(o, 10, "LineNo"), "11");
    assert_string_equal(L(o, 99, "LineNo"), "100");
    assert_string_equal(L(o, 104, "LineNo"), "105");
    assert_string_equal(L(o, 104, "Item"), "S105");
}

static void test_op_const(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "Const"), "Open");
    assert_string_equal(H(o, "ConstAttr"), "  two  spaces "); /* kept as written */
}

static void test_op_setting(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "Setting"), "hello");
    assert_string_equal(H(o, "SettingBlank"), "");
}

static void test_op_var_let(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "Var"), "Ann Lee");
    assert_string_equal(H(o, "VarOfVar"), "ANN LEE");
    /* a let is computed per record, not once for the file */
    assert_int_equal(
        feed(f, "{\"customer\":{\"firstName\":\"A\"}}\n{\"customer\":{\"lastName\":\"B\"}}"), 2);
    assert_string_equal(H(&f->out[0], "Var"), "A");
    assert_string_equal(H(&f->out[1], "Var"), "B");
}

static void test_op_ref(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(L(o, 0, "Ref"), "0000100234");
    assert_string_equal(L(o, 1, "Ref"), "0000100234");
}

static void test_op_coalesce(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "Coalesce"), "bee");
    o = one(f, "{\"a\":\"ay\",\"b\":\"bee\"}");
    assert_string_equal(H(o, "Coalesce"), "ay");
    o = one(f, "{\"a\":\"\",\"b\":null}");
    assert_string_equal(H(o, "Coalesce"), "none"); /* empty counts as missing */
}

static void test_op_concat(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "Concat"), "bee, sea"); /* no separator for the missing "a" */
    assert_string_equal(H(o, "ConcatNoSep"), "Order CL-100234");
    o = one(f, "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}");
    assert_string_equal(H(o, "Concat"), "1, 2, 3");
    o = one(f, "{\"x\":1}");
    assert_string_equal(H(o, "Concat"), "");
}

static void test_op_word(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "First"), "Mary");
    assert_string_equal(H(o, "Last"), "Dyke");
    assert_string_equal(H(o, "ButFirst"), "Ann   van Dyke");
    assert_string_equal(H(o, "ButLast"), "Mary  Ann   van");
    o = one(f, "{\"name\":\"Cher\"}");
    assert_string_equal(H(o, "First"), "Cher");
    assert_string_equal(H(o, "Last"), "Cher");
    assert_string_equal(H(o, "ButFirst"), "");
    assert_string_equal(H(o, "ButLast"), "");
}

static void test_op_trim(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "Trim"), "hello world");
}

static void test_op_upper_lower(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    /* ASCII letters change; other characters stay intact (valid UTF-8) */
    assert_string_equal(H(o, "Upper"), "MIXED CAF\xc3\xa9 42");
    assert_string_equal(H(o, "Lower"), "mixed caf\xc3\xa9 42");
}

static void test_op_digits(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "Digits"), "100234");
    o = one(f, "{\"orderId\":\"WEB-2026-000017\"}");
    assert_string_equal(H(o, "Digits"), "2026000017");
    o = one(f, "{\"orderId\":\"none\"}");
    assert_string_equal(H(o, "Digits"), "");
}

static void test_op_pad_left(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    outcome *o = one(f, TEXT_REC);
    assert_string_equal(H(o, "Pad"), "0000100234");
    /* width counts characters: "é" is one */
    assert_string_equal(H(o, "PadSpace"), "    \xc3\xa9");
    o = one(f, "{\"orderId\":\"WEB-2026-000017\",\"short\":\"toolong\"}");
    assert_string_equal(H(o, "Pad"), "2026000017");
    assert_string_equal(H(o, "PadSpace"), "toolong"); /* never cut */
    o = one(f, "{\"orderId\":\"none\"}");
    assert_string_equal(H(o, "Pad"), ""); /* nothing to pad stays empty */
}

static void test_op_pad_left_unicode_char(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-text.xml");
    /* char="·" (U+00B7) is one character for the schema: pad with it whole */
    outcome *o = one(f, "{\"short\":\"ab\"}");
    assert_string_equal(H(o, "PadUnicode"), "\xc2\xb7\xc2\xb7"
                                            "ab");
}

/* ---------------------------------------------------- number operations */

static void test_op_round(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-number.xml");
    outcome *o = one(f, "{\"amount\":2.345,\"qty\":\"1.50000000\"}");
    assert_string_equal(H(o, "Round2"), "2.35");
    assert_string_equal(H(o, "Round0"), "2");
    assert_string_equal(H(o, "RoundTrim"), "1.5");
    assert_string_equal(H(o, "RoundEmpty"), "");
    o = one(f, "{\"amount\":\"-2.345\",\"qty\":1.5e1}");
    assert_string_equal(H(o, "Round2"), "-2.35");
    assert_string_equal(H(o, "RoundTrim"), "15");
    o = one(f, "{\"amount\":\"-0.004\",\"qty\":\"0.123456789\"}");
    assert_string_equal(H(o, "Round2"), "0.00");
    assert_string_equal(H(o, "RoundTrim"), "0.12345679");
    o = one(f, "{\"amount\":\"2.5\"}");
    assert_string_equal(H(o, "Round0"), "3");
}

static void test_op_add_sub_mul_neg(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-number.xml");
    outcome *o = one(f, "{\"x\":0.1,\"y\":\"0.2\"}");
    assert_string_equal(H(o, "Add"), "0.301");
    assert_string_equal(H(o, "AddEmpty"), "0.1");
    assert_string_equal(H(o, "Sub"), "-0.1");
    assert_string_equal(H(o, "Mul"), "0.02");
    assert_string_equal(H(o, "Neg"), "-0.1");
    o = one(f, "{\"x\":\"19.999\",\"y\":3}");
    assert_string_equal(H(o, "Mul"), "59.997");
    assert_string_equal(H(o, "Sub"), "16.999");
    o = one(f, "{\"x\":\"-5\"}");
    assert_string_equal(H(o, "Neg"), "5");
    assert_string_equal(H(o, "Mul"), "0"); /* a missing factor is 0 */
}

static void test_op_sum(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-number.xml");
    outcome *o = one(f, "{\"lineItems\":[{\"quantity\":3,\"unitPrice\":\"19.999\"},"
                        "{\"quantity\":\"2\",\"unitPrice\":0.005},{\"quantity\":1}]}");
    assert_true(strcmp(H(o, "Sum"), "60.007") == 0 || strcmp(H(o, "Sum"), "60.0070") == 0);
    assert_string_equal(H(o, "SumRounded"), "20.004");
    assert_string_equal(L(o, 0, "Ext"), "59.997");
    assert_string_equal(L(o, 1, "Ext"), "0.010");
    assert_string_equal(L(o, 2, "Ext"), "0.000");
    o = one(f, "{\"lineItems\":[]}");
    assert_string_equal(H(o, "Sum"), "0");
}

static void test_bad_number_rejects(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-number.xml");
    assert_int_equal(feed(f, "{\"orderId\":\"K1\",\"amount\":\"12,50\"}"), 1);
    assert_rejected(&f->out[0], "BAD_NUMBER", "amount");
    assert_non_null(strstr(f->out[0].emsg[0], "12,50"));
    assert_string_equal(f->out[0].key, "K1");
    assert_int_equal(feed(f, "{\"lineItems\":[{\"quantity\":1,\"unitPrice\":1},{\"quantity\":"
                             "\"two\",\"unitPrice\":1}]}"),
                     1);
    assert_rejected(&f->out[0], "BAD_NUMBER", "lineItems[1].quantity");
}

/* ------------------------------------------------------------------ dates */

static void test_op_date_utc(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-date.xml");
    outcome *o = one(f, "{\"when\":\"2026-11-01T14:22:05Z\"}");
    assert_string_equal(H(o, "Day"), "2026-11-01");
    assert_string_equal(H(o, "Stamp"), "2026-11-01 14:22:05");
    o = one(f, "{\"when\":\"2026-11-01T23:30:00-05:00\"}");
    assert_string_equal(H(o, "Day"), "2026-11-02");
    assert_string_equal(H(o, "Stamp"), "2026-11-02 04:30:00");
    o = one(f, "{\"when\":\"2026-11-01T01:00:00.123+0230\"}");
    assert_string_equal(H(o, "Stamp"), "2026-10-31 22:30:00");
    o = one(f, "{\"when\":\"2026-02-28\"}");
    assert_string_equal(H(o, "Day"), "2026-02-28");
    o = one(f, "{\"other\":1}");
    assert_string_equal(H(o, "Day"), "");
}

static void test_op_date_rejects(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-date.xml");
    const char *bad[] = {"{\"when\":\"yesterday\"}", "{\"when\":\"2026-13-01T00:00:00Z\"}",
                         "{\"when\":\"01/11/2026\"}", "{\"when\":\"2026-11-01T25:00:00Z\"}",
                         "{\"when\":\"2026-11-01T10:00:00 UTC\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(feed(f, bad[i]), 1);
        if (f->out[0].rc != 1)
            fail_msg("%s was accepted as %s", bad[i], H(&f->out[0], "Day"));
        assert_rejected(&f->out[0], "BAD_DATE", "when");
    }
}

static void test_op_date_impossible_day(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-date.xml");
    /* a day the month does not have is refused, never rolled into the next month */
    const char *bad[] = {"{\"when\":\"2026-02-31\"}", "{\"when\":\"2026-04-31\"}",
                         "{\"when\":\"2026-02-29T10:00:00Z\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(feed(f, bad[i]), 1);
        if (f->out[0].rc != 1)
            fail_msg("%s was accepted as %s", bad[i], H(&f->out[0], "Day"));
        assert_rejected(&f->out[0], "BAD_DATE", "when");
    }
    outcome *o = one(f, "{\"when\":\"2028-02-29\"}"); /* a leap year */
    assert_string_equal(H(o, "Day"), "2028-02-29");
}

static void test_op_date_time_zone(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-date-tz.xml");
    /* 03:00 UTC on 1 July is 22:00 the day before in Chicago (CDT, UTC-5) */
    outcome *o = one(f, "{\"when\":\"2026-07-01T03:00:00Z\"}");
    assert_string_equal(H(o, "Day"), "2026-06-30");
    assert_string_equal(H(o, "Stamp"), "2026-06-30 22:00");
    /* winter: CST, UTC-6 */
    o = one(f, "{\"when\":\"2026-01-15T05:59:00Z\"}");
    assert_string_equal(H(o, "Stamp"), "2026-01-14 23:59");
    /* a date without a time is that day, whatever the zone */
    o = one(f, "{\"when\":\"2026-07-01\"}");
    assert_string_equal(H(o, "Day"), "2026-07-01");
}

static void test_one_time_zone_per_set(void **state)
{
    fixture *f = *state;
    load(f, TDIR "ops-date-tz.xml");
    char *m = load_error(f, TDIR "ops-date-paris.xml");
    assert_non_null(strstr(m, "Europe/Paris"));
    assert_non_null(strstr(m, "ops-date-paris.xml:6:"));
    m = load_error(f, BDIR "bad-timezone.xml");
    assert_non_null(strstr(m, "Mars/Olympus_Mons"));
    assert_non_null(strstr(m, "bad-timezone.xml:6:"));
}

/* ---------------------------------------------------------------- lookups */

static void test_op_lookup_found(void **state)
{
    fixture *f = *state;
    load(f, TDIR "lookup.xml");
    outcome *o = one(f, "{\"country\":\"us\",\"country2\":\" CA \"}");
    assert_string_equal(H(o, "Empty"), "USA");
    assert_string_equal(H(o, "Keep"), "USA");
    assert_string_equal(H(o, "Else"), "USA");
    assert_string_equal(H(o, "Strict"), "CAN");
    o = one(f, "{\"country\":\"gb\",\"country2\":\"big, co\"}");
    assert_string_equal(H(o, "Empty"), "GBR"); /* cells are trimmed */
    assert_string_equal(H(o, "Strict"), "BIG \"CO\"");
}

static void test_op_lookup_missing(void **state)
{
    fixture *f = *state;
    load(f, TDIR "lookup.xml");
    outcome *o = one(f, "{\"country\":\"XX\",\"country2\":\"US\"}");
    assert_string_equal(H(o, "Empty"), "");
    assert_string_equal(H(o, "EmptyExplicit"), "");
    assert_string_equal(H(o, "Keep"), "XX");
    assert_string_equal(H(o, "Else"), "ZZZ");
    /* an empty key is not an error even with on-missing="error" */
    o = one(f, "{\"country\":\"US\"}");
    assert_string_equal(H(o, "Strict"), "");
    assert_string_equal(H(o, "Else"), "USA");
    o = one(f, "{}");
    assert_string_equal(H(o, "Else"), "ZZZ");
}

static void test_op_lookup_error(void **state)
{
    fixture *f = *state;
    load(f, TDIR "lookup.xml");
    assert_int_equal(feed(f, "{\"orderId\":\"L1\",\"country\":\"US\",\"country2\":\"Narnia\"}"), 1);
    outcome *o = &f->out[0];
    assert_rejected(o, "UNKNOWN_COUNTRY", "country2");
    assert_non_null(strstr(o->emsg[0], "Narnia"));
    assert_non_null(strstr(o->emsg[0], "add it to lookups/codes.csv"));
    assert_string_equal(o->key, "L1");
}

/* ----------------------------------------------------------------- choose */

static void test_op_choose(void **state)
{
    fixture *f = *state;
    load(f, TDIR "choose.xml");
    struct {
        const char *json, *region, *noother;
    } cases[] = {
        {"{\"country\":\"US\"}", "domestic", "x"}, {"{\"country\":\"MX\"}", "nafta", ""},
        {"{\"country\":\"CA\"}", "nafta", ""},     {"{\"country\":\"IE\"}", "isles", ""},
        {"{\"country\":\"C\"}", "intl:C", ""}, /* in= matches whole words */
        {"{\"country\":\"\"}", "unknown", ""},     {"{}", "unknown", ""},
        {"{\"country\":\"FR\"}", "intl:FR", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        outcome *o = one(f, cases[i].json);
        assert_string_equal(H(o, "Region"), cases[i].region);
        assert_string_equal(H(o, "NoOtherwise"), cases[i].noother);
    }
}

static void test_op_choose_ignores_case(void **state)
{
    fixture *f = *state;
    load(f, TDIR "choose.xml");
    /* equals= and in= match without regard to upper/lower case (as lookups do) */
    outcome *o = one(f, "{\"country\":\"us\"}");
    assert_string_equal(H(o, "Region"), "domestic");
    assert_string_equal(H(o, "NoOtherwise"), "x");
    o = one(f, "{\"country\":\"mx\"}");
    assert_string_equal(H(o, "Region"), "nafta");
    /* but spaces count */
    o = one(f, "{\"country\":\"US \"}");
    assert_string_equal(H(o, "Region"), "intl:US ");
}

static void test_op_choose_var_and_item(void **state)
{
    fixture *f = *state;
    load(f, TDIR "choose.xml");
    outcome *o = one(f, "{\"nickname\":\"Bo\",\"country\":\"US\",\"lineItems\":[{\"sku\":\"GIFT\"},"
                        "{\"sku\":\"A1\"}]}");
    assert_string_equal(H(o, "ByVar"), "Bo");
    assert_string_equal(L(o, 0, "Kind"), "gift");
    assert_string_equal(L(o, 1, "Kind"), "A1");
    o = one(f, "{\"country\":\"FR\",\"lineItems\":[{\"sku\":\"A1\"}]}");
    assert_string_equal(H(o, "ByVar"), "anonymous");
    assert_string_equal(L(o, 0, "Kind"), "other");
}

/* ------------------------------------------------- sequence, unique, max */

static void test_op_sequence(void **state)
{
    fixture *f = *state;
    load(f, TDIR "unique.xml");
    assert_int_equal(feed(f, "{\"orderId\":\"1\"}\n{\"orderId\":\"2\"}\n{\"orderId\":\"3\"}"), 3);
    assert_string_equal(H(&f->out[0], "Seq"), "S001");
    assert_string_equal(H(&f->out[1], "Seq"), "S002");
    assert_string_equal(H(&f->out[2], "Seq"), "S003");
    assert_string_equal(H(&f->out[0], "Plain"), "0000000001"); /* default width 10 */
    assert_string_equal(H(&f->out[2], "Plain"), "0000000003");
    /* the counters belong to the run: they go on across feeds */
    assert_int_equal(feed(f, "{\"orderId\":\"4\"}"), 1);
    assert_string_equal(H(&f->out[0], "Seq"), "S004");
}

static void test_unique_file_fallback(void **state)
{
    fixture *f = *state;
    load(f, TDIR "unique.xml");
    assert_int_equal(feed(f, "{\"orderId\":\"CL-100234\"}\n"
                             "{\"orderId\":\"CL-100234\"}\n"       /* repeat */
                             "{\"orderId\":\"WEB-12345678901\"}\n" /* 11 digits: too long */
                             "{\"orderId\":\"ABC\"}\n"             /* no digits */
                             "{\"orderId\":\"CL-7\"}"),
                     5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(f->out[i].rc, 0);
    assert_string_equal(H(&f->out[0], "TranNo"), "0000100234");
    assert_string_equal(H(&f->out[1], "TranNo"), "W000000001");
    assert_string_equal(H(&f->out[2], "TranNo"), "W000000002");
    assert_string_equal(H(&f->out[3], "TranNo"), "W000000003");
    assert_string_equal(H(&f->out[4], "TranNo"), "0000000007");
    /* a fallback is not a cut: no warning */
    assert_int_equal(f->out[2].nwarn, 0);
}

static void test_unique_not_reserved_by_rejected_record(void **state)
{
    fixture *f = *state;
    load(f, TDIR "unique.xml");
    /* the first record is rejected (Code too long) after TranNo was computed */
    assert_int_equal(feed(f, "{\"orderId\":\"CL-55\",\"code\":\"TOOLONG\"}\n"
                             "{\"orderId\":\"CL-55\",\"code\":\"OK\"}"),
                     2);
    assert_rejected(&f->out[0], "TOO_LONG", "Code");
    assert_int_equal(f->out[1].rc, 0);
    assert_string_equal(H(&f->out[1], "TranNo"), "0000000055");
}

static void test_unique_file_without_fallback(void **state)
{
    fixture *f = *state;
    load(f, TDIR "unique-nofallback.xml");
    assert_int_equal(feed(f,
                          "{\"orderId\":\"A\",\"code\":\"a\"}\n{\"orderId\":\"B\",\"code\":\"b\"}\n"
                          "{\"orderId\":\"A\",\"code\":\"c\"}\n{\"code\":\"d\"}"),
                     4);
    assert_int_equal(f->out[0].rc, 0);
    assert_int_equal(f->out[1].rc, 0);
    assert_rejected(&f->out[2], "DUPLICATE_KEY", "Id");
    assert_non_null(strstr(f->out[2].emsg[0], "A"));
    assert_rejected(&f->out[3], "MISSING_FIELD", "Id");
}

static void test_unique_column_too_long(void **state)
{
    fixture *f = *state;
    load(f, TDIR "unique-nofallback.xml");
    /* too long is TOO_LONG, not a duplicate, on a unique column as on any other */
    assert_int_equal(
        feed(f, "{\"orderId\":\"A\",\"code\":\"ABCD\"}\n{\"orderId\":\"B\",\"code\":\"ABC\"}\n"
                "{\"orderId\":\"C\",\"code\":\"ABC\"}"),
        3);
    assert_rejected(&f->out[0], "TOO_LONG", "Short");
    assert_int_equal(f->out[1].rc, 0);
    assert_string_equal(H(&f->out[1], "Short"), "ABC");
    assert_rejected(&f->out[2], "DUPLICATE_KEY", "Short");
}

static void test_column_max_cut(void **state)
{
    fixture *f = *state;
    load(f, TDIR "columns.xml");
    outcome *o = one(f, "{\"text\":\"Cr\\u00e8me br\\u00fbl\\u00e9e\"}");
    assert_string_equal(H(o, "Cut"), "Cr\xc3\xa8me"); /* 5 characters, 6 bytes */
    assert_int_equal(o->nwarn, 1);
    assert_string_equal(o->wcode[0], "TRUNCATED");
    assert_string_equal(o->wfield[0], "Cut");
    /* cut in characters: never inside a multi-byte character */
    o = one(f, "{\"text\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}");
    assert_string_equal(H(o, "Cut"), "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    o = one(f, "{\"text\":\"ab\\ud83d\\ude00cdef\"}");
    assert_string_equal(H(o, "Cut"), "ab\xf0\x9f\x98\x80"
                                     "cd");
    /* exactly at the limit (10 bytes, 5 characters): untouched, no warning */
    o = one(f, "{\"text\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}");
    assert_string_equal(H(o, "Cut"), "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    assert_int_equal(o->nwarn, 0);
    /* per item, with the item named */
    o = one(f, "{\"lineItems\":[{\"name\":\"abc\"},{\"name\":\"abcdefgh\"}]}");
    assert_string_equal(L(o, 0, "Desc"), "abc");
    assert_string_equal(L(o, 1, "Desc"), "abcd");
    assert_int_equal(o->nwarn, 1);
    assert_string_equal(o->wcode[0], "TRUNCATED");
}

static void test_column_max_error(void **state)
{
    fixture *f = *state;
    load(f, TDIR "columns.xml");
    assert_int_equal(feed(f, "{\"id\":\"ABCDEF\"}"), 1);
    assert_rejected(&f->out[0], "TOO_LONG", "Err");
    assert_non_null(strstr(f->out[0].emsg[0], "ABCDEF"));
    /* lengths are characters, not bytes */
    outcome *o = one(f, "{\"id\":\"\\u00c0BCDE\"}");
    assert_string_equal(H(o, "Err"), "\xc3\x80"
                                     "BCDE");
    /* without too-long, an over-long value is an error too */
    assert_int_equal(feed(f, "{\"id2\":\"123456\"}"), 1);
    assert_rejected(&f->out[0], "TOO_LONG", "Dflt");
}

/* ----------------------------------------------------------------- checks */

static const char GOOD_ORDER[] =
    "{\"orderId\":\"A\",\"discount\":0,\"total\":\"10.005\","
    "\"lineItems\":[{\"quantity\":2,\"unitPrice\":\"2.5\"},{\"quantity\":1,\"unitPrice\":5}]}";

static void test_checks_pass(void **state)
{
    fixture *f = *state;
    load(f, TDIR "checks.xml");
    outcome *o = one(f, GOOD_ORDER);
    assert_string_equal(H(o, "Id"), "A");
    assert_string_equal(H(o, "Lines"), "10.0");
    assert_int_equal(o->nerr, 0);
}

static void test_check_not_empty(void **state)
{
    fixture *f = *state;
    load(f, TDIR "checks.xml");
    assert_int_equal(feed(f, "{\"orderId\":\"\",\"total\":0,\"lineItems\":[{\"quantity\":1}]}"), 1);
    assert_rejected(&f->out[0], "MISSING_FIELD", "orderId");
    assert_string_equal(f->out[0].emsg[0], "the order has no orderId");
}

static void test_check_min_items(void **state)
{
    fixture *f = *state;
    load(f, TDIR "checks.xml");
    assert_int_equal(feed(f, "{\"orderId\":\"A\",\"total\":0,\"lineItems\":[]}\n"
                             "{\"orderId\":\"B\",\"total\":0}"),
                     2);
    assert_rejected(&f->out[0], "NO_LINES", "lineItems");
    assert_rejected(&f->out[1], "NO_LINES", "lineItems");
}

static void test_check_positive(void **state)
{
    fixture *f = *state;
    load(f, TDIR "checks.xml");
    assert_int_equal(
        feed(f, "{\"orderId\":\"A\",\"total\":0,\"lineItems\":[{\"quantity\":1},{\"quantity\":\"0."
                "000\"}]}\n"
                "{\"orderId\":\"B\",\"total\":0,\"lineItems\":[{\"quantity\":-1}]}\n"
                "{\"orderId\":\"C\",\"total\":0,\"lineItems\":[{\"unitPrice\":1}]}\n"
                "{\"orderId\":\"D\",\"total\":0,\"lineItems\":[{\"quantity\":\"lots\"}]}"),
        4);
    assert_rejected(&f->out[0], "BAD_QUANTITY", "lineItems[1].quantity");
    assert_string_equal(f->out[0].emsg[0], "quantity must be greater than 0");
    assert_rejected(&f->out[1], "BAD_QUANTITY", "lineItems[0].quantity");
    assert_rejected(&f->out[2], "BAD_QUANTITY", "lineItems[0].quantity"); /* missing is not > 0 */
    assert_rejected(&f->out[3], "BAD_NUMBER", "lineItems[0].quantity");
}

static void test_check_non_negative(void **state)
{
    fixture *f = *state;
    load(f, TDIR "checks.xml");
    assert_int_equal(feed(f, "{\"orderId\":\"A\",\"discount\":\"-0.01\",\"total\":1,\"lineItems\":["
                             "{\"quantity\":1,\"unitPrice\":1}]}\n"
                             "{\"orderId\":\"B\",\"discount\":\"0.00\",\"total\":1,\"lineItems\":[{"
                             "\"quantity\":1,\"unitPrice\":1}]}"),
                     2);
    assert_rejected(&f->out[0], "NEGATIVE_DISCOUNT", "discount");
    assert_int_equal(f->out[1].rc, 0);
    /* empty is false (templates/README.md: checks) */
    assert_int_equal(
        feed(f, "{\"orderId\":\"C\",\"total\":1,\"lineItems\":[{\"quantity\":1,\"unitPrice\":1}]}"),
        1);
    assert_rejected(&f->out[0], "NEGATIVE_DISCOUNT", "discount");
}

static void test_check_within(void **state)
{
    fixture *f = *state;
    load(f, TDIR "checks.xml");
    assert_int_equal(feed(f, "{\"discount\":0,\"orderId\":\"A\",\"total\":\"10.01\",\"lineItems\":["
                             "{\"quantity\":2,\"unitPrice\":5}]}\n"
                             "{\"discount\":0,\"orderId\":\"B\",\"total\":\"9.99\",\"lineItems\":[{"
                             "\"quantity\":2,\"unitPrice\":5}]}\n"
                             "{\"discount\":0,\"orderId\":\"C\",\"total\":\"10.02\",\"lineItems\":["
                             "{\"quantity\":2,\"unitPrice\":5}]}\n"
                             "{\"discount\":0,\"orderId\":\"D\",\"total\":\"9.989\",\"lineItems\":["
                             "{\"quantity\":2,\"unitPrice\":5}]}"),
                     4);
    assert_int_equal(f->out[0].rc, 0); /* exactly at the tolerance */
    assert_int_equal(f->out[1].rc, 0);
    assert_rejected(&f->out[2], "TOTAL_MISMATCH", "total");
    assert_non_null(strstr(f->out[2].emsg[0], "lines differ from total"));
    assert_non_null(strstr(f->out[2].emsg[0], "10.02"));
    assert_rejected(&f->out[3], "TOTAL_MISMATCH", "total");
}

static void test_check_unique(void **state)
{
    fixture *f = *state;
    load(f, TDIR "checks.xml");
    assert_int_equal(feed(f, "{\"discount\":0,\"orderId\":\"A\",\"total\":1,\"lineItems\":[{"
                             "\"quantity\":1,\"unitPrice\":1}]}\n"
                             "{\"discount\":0,\"orderId\":\"B\",\"total\":1,\"lineItems\":[{"
                             "\"quantity\":1,\"unitPrice\":1}]}\n"
                             "{\"discount\":0,\"orderId\":\"A\",\"total\":1,\"lineItems\":[{"
                             "\"quantity\":1,\"unitPrice\":1}]}"),
                     3);
    assert_int_equal(f->out[0].rc, 0);
    assert_int_equal(f->out[1].rc, 0);
    assert_rejected(&f->out[2], "DUPLICATE_KEY", "orderId");
    assert_string_equal(f->out[2].key, "A");
    /* a new run starts a new file: A is new again */
    tpl_run_free(f->run);
    f->run = tpl_run_new(f->t);
    assert_int_equal(feed(f, "{\"discount\":0,\"orderId\":\"A\",\"total\":1,\"lineItems\":[{"
                             "\"quantity\":1,\"unitPrice\":1}]}"),
                     1);
    assert_int_equal(f->out[0].rc, 0);
}

static void test_not_object_record_rejected(void **state)
{
    fixture *f = *state;
    load(f, TDIR "checks.xml");
    assert_int_equal(feed(f, "[42]"), 1);
    assert_rejected(&f->out[0], "NOT_OBJECT", NULL);
}

/* ----------------------------------------------------------------- config */

static void test_cfg_defaults(void **state)
{
    (void)state;
    sbuf err = {0};
    config *c = cfg_load(NULL, &err);
    assert_non_null(c);
    assert_null(cfg_path(c));
    assert_string_equal(cfg_dir(c), ".");
    assert_null(cfg_get(c, "sage", "default_cust_id"));
    assert_string_equal(cfg_get_default(c, "sage", "default_cust_id", "DFLT"), "DFLT");
    cfg_free(c);
    sbuf_free(&err);
}

static void test_cfg_file(void **state)
{
    (void)state;
    sbuf err = {0};
    config *c = cfg_load("tests/data/unit/test.conf", &err);
    assert_non_null(c);
    assert_string_equal(cfg_path(c), "tests/data/unit/test.conf");
    assert_string_equal(cfg_dir(c), "tests/data/unit");
    assert_string_equal(cfg_get(c, "sage", "default_cust_id"), "CONF01");
    assert_string_equal(cfg_get(c, "items", "default_cust_id"), "ITEMS01");
    assert_null(cfg_get(c, "sage", "nothing"));
    cfg_free(c);
    assert_null(cfg_load("tests/data/unit/bad.conf", &err));
    assert_non_null(strstr(sbuf_str(&err), "bad.conf:3:"));
    sbuf_reset(&err);
    assert_null(cfg_load("tests/data/unit/no-such.conf", &err));
    assert_non_null(strstr(sbuf_str(&err), "no-such.conf"));
    sbuf_free(&err);
}

static void test_cfg_environment_wins(void **state)
{
    (void)state;
    sbuf err = {0};
    config *c = cfg_load("tests/data/unit/test.conf", &err);
    assert_non_null(c);
    setenv("SAGEBRIDGE_SAGE_DEFAULT_CUST_ID", "ENV01", 1);
    assert_string_equal(cfg_get(c, "sage", "default_cust_id"), "ENV01");
    assert_string_equal(cfg_get(c, "items", "default_cust_id"), "ITEMS01");
    unsetenv("SAGEBRIDGE_SAGE_DEFAULT_CUST_ID");
    setenv("SAGEBRIDGE_SAGE_DEFAULT_CUST_ID_FILE", "tests/data/unit/secret.txt", 1);
    assert_string_equal(cfg_get(c, "sage", "default_cust_id"), "FROMFILE");
    unsetenv("SAGEBRIDGE_SAGE_DEFAULT_CUST_ID_FILE");
    assert_string_equal(cfg_get(c, "sage", "default_cust_id"), "CONF01");
    cfg_free(c);
    sbuf_free(&err);
}

static outcome *eval_settings(fixture *f, config *cfg, const char *tpl)
{
    /* the run and the result belong to a template of the set: free them first */
    tpl_run_free(f->run);
    f->run = NULL;
    if (f->res_ready)
        tpl_result_free(&f->res);
    f->res_ready = 0;
    tpl_set_free(f->set);
    f->set = tpl_set_new(cfg, "xsd");
    load(f, tpl);
    return one(f, "{}");
}

static void test_settings_override(void **state)
{
    fixture *f = *state;
    sbuf err = {0};
    config *file = cfg_load("tests/data/unit/test.conf", &err);
    assert_non_null(file);
    /* template default */
    outcome *o = eval_settings(f, f->cfg, TDIR "settings.xml");
    assert_string_equal(H(o, "Cust"), "WEBCUST");
    assert_string_equal(H(o, "Whse"), "MAIN");
    /* [sage] of the configuration file */
    o = eval_settings(f, file, TDIR "settings.xml");
    assert_string_equal(H(o, "Cust"), "CONF01");
    assert_string_equal(H(o, "Whse"), "MAIN");
    /* the environment over both */
    setenv("SAGEBRIDGE_SAGE_DEFAULT_CUST_ID", "ENV01", 1);
    o = eval_settings(f, file, TDIR "settings.xml");
    assert_string_equal(H(o, "Cust"), "ENV01");
    o = eval_settings(f, f->cfg, TDIR "settings.xml");
    assert_string_equal(H(o, "Cust"), "ENV01");
    unsetenv("SAGEBRIDGE_SAGE_DEFAULT_CUST_ID");
    /* settings-section="items" reads [items] */
    o = eval_settings(f, file, TDIR "settings-section.xml");
    assert_string_equal(H(o, "Cust"), "ITEMS01");
    o = eval_settings(f, f->cfg, TDIR "settings-section.xml");
    assert_string_equal(H(o, "Cust"), "ITEMDFLT");
    /* the set must be freed before the configuration it reads */
    tpl_run_free(f->run);
    f->run = NULL;
    tpl_result_free(&f->res);
    f->res_ready = 0;
    tpl_set_free(f->set);
    f->set = tpl_set_new(f->cfg, "xsd");
    cfg_free(file);
    sbuf_free(&err);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
/* the same test with every record evaluated speculatively and settled (tpl_settle): the
 * duplicate sets, sequences and fallbacks must come out exactly as in order */
#define S(fn)                                                                                      \
    {                                                                                              \
        "speculative: " #fn, fn, setup_spec, teardown, NULL                                        \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_load_describes_output),
        T(test_same_name_twice_refused),
        T(test_clarity_orders_template_loads),
        T(test_not_schema_valid_names_file_and_line),
        T(test_not_xml),
        T(test_undefined_var),
        T(test_unknown_lookup_table),
        T(test_item_outside_for_each),
        T(test_undeclared_setting),
        T(test_validate_file),
        T(test_op_field),
        T(test_op_item_and_line_number),
        T(test_op_const),
        T(test_op_setting),
        T(test_op_var_let),
        T(test_op_ref),
        T(test_op_coalesce),
        T(test_op_concat),
        T(test_op_word),
        T(test_op_trim),
        T(test_op_upper_lower),
        T(test_op_digits),
        T(test_op_pad_left),
        T(test_op_pad_left_unicode_char),
        T(test_op_round),
        T(test_op_add_sub_mul_neg),
        T(test_op_sum),
        T(test_bad_number_rejects),
        T(test_op_date_utc),
        T(test_op_date_rejects),
        T(test_op_date_impossible_day),
        T(test_op_date_time_zone),
        T(test_one_time_zone_per_set),
        T(test_op_lookup_found),
        T(test_op_lookup_missing),
        T(test_op_lookup_error),
        T(test_op_choose),
        T(test_op_choose_ignores_case),
        T(test_op_choose_var_and_item),
        T(test_op_sequence),
        T(test_unique_file_fallback),
        T(test_unique_not_reserved_by_rejected_record),
        T(test_unique_file_without_fallback),
        T(test_unique_column_too_long),
        T(test_column_max_cut),
        T(test_column_max_error),
        T(test_checks_pass),
        T(test_check_not_empty),
        T(test_check_min_items),
        T(test_check_positive),
        T(test_check_non_negative),
        T(test_check_within),
        T(test_check_unique),
        S(test_op_sequence),
        S(test_unique_file_fallback),
        S(test_unique_not_reserved_by_rejected_record),
        S(test_unique_file_without_fallback),
        S(test_unique_column_too_long),
        S(test_check_unique),
        S(test_checks_pass),
        S(test_check_within),
        T(test_not_object_record_rejected),
        T(test_cfg_defaults),
        T(test_cfg_file),
        T(test_cfg_environment_wins),
        T(test_settings_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
