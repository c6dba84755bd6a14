/*
 * test_sage_out.c - Sage 500 import files (src/sage_out.h) and the atomic
 * file publisher under them (src/publish.h).
 *
 * Every test writes into its own mkdtemp folder, which teardown removes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <libxml/xmlschemas.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clarity_in.h"
#include "config.h"
#include "publish.h"
#include "sage_out.h"
#include "template.h"

/* ------------------------------------------------------------- helpers */

typedef struct {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", "/tmp/sb-unit-sage-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* slurp - a whole file (NUL-terminated), its length in *n */
static char *slurp(const char *dir, const char *name, size_t *n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "rb");
    if (!fp)
        fail_msg("cannot open %s", p);
    sbuf b = {0};
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, fp)) > 0)
        sbuf_add(&b, buf, k);
    fclose(fp);
    if (n)
        *n = b.len;
    if (!b.p)
        sbuf_grow(&b, 1), b.p[0] = '\0';
    return b.p;
}

static void sha256_hex(const char *p, size_t n, char hex[65])
{
    unsigned char h[32];
    unsigned int hl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, p, n);
    EVP_DigestFinal_ex(md, h, &hl);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
}

static char *file_sha(const char *dir, const char *name, char hex[65])
{
    size_t n;
    char *p = slurp(dir, name, &n);
    sha256_hex(p, n, hex);
    free(p);
    return hex;
}

/* listing - the folder's entries (hidden ones too), sorted, "a|b|c" */
static char *listing(const char *dir)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    assert_true(n >= 0);
    sbuf b = {0};
    for (int i = 0; i < n; i++) {
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
            if (b.len)
                sbuf_addc(&b, '|');
            sbuf_adds(&b, ents[i]->d_name);
        }
        free(ents[i]);
    }
    free(ents);
    if (!b.p)
        sbuf_grow(&b, 1), b.p[0] = '\0';
    return b.p;
}

static void assert_listing(const char *dir, const char *want)
{
    char *l = listing(dir);
    assert_string_equal(l, want);
    free(l);
}

/* ------------------------------------------------- a hand-made output */

static const char *const HCOLS[] = {"TranNo", "Name", "Amount"};
static const char *const LCOLS[] = {"TranNo", "SOLineNo", "Description"};
static const tpl_table_desc TABLES[] = {
    {"StgSalesOrder", 3, (const char **)HCOLS, false},
    {"StgSOLine", 3, (const char **)LCOLS, true},
};
static const tpl_output_desc OUT = {.prefix = "SO",
                                    .xml_root = "SalesOrderImport",
                                    .xml_record = "SalesOrder",
                                    .xml_ns = "urn:test:so",
                                    .ntables = 2,
                                    .tables = TABLES};

#define TV(s) ((tval){(s), sizeof(s) - 1})

/* result - one order: a header row and nlines line rows */
typedef struct {
    tpl_result res;
    size_t nrows[2];
    tval *rows[2];
    tval hdr[3];
    tval lines[3 * 4];
} order;

static void order_init(order *o, tval tran, tval name, tval amount)
{
    memset(o, 0, sizeof *o);
    o->hdr[0] = tran;
    o->hdr[1] = name;
    o->hdr[2] = amount;
    o->nrows[0] = 1;
    o->rows[0] = o->hdr;
    o->rows[1] = o->lines;
    o->res.nrows = o->nrows;
    o->res.rows = o->rows;
}

static void order_line(order *o, tval no, tval desc)
{
    size_t i = o->nrows[1]++;
    assert_true(i < 4);
    o->lines[i * 3] = o->hdr[0];
    o->lines[i * 3 + 1] = no;
    o->lines[i * 3 + 2] = desc;
}

/* write_batch - open, one record per order, commit */
static void write_batch(const char *dir, const char *batch, int formats, order *orders, size_t n)
{
    sbuf err = {0};
    sage_writer *w = sw_open(&OUT, dir, batch, formats, &err);
    if (!w)
        fail_msg("sw_open: %s", sbuf_str(&err));
    for (size_t i = 0; i < n; i++)
        if (sw_record(w, &orders[i].res, &err) != 0)
            fail_msg("sw_record: %s", sbuf_str(&err));
    if (sw_commit(w, &err) != 0)
        fail_msg("sw_commit: %s", sbuf_str(&err));
    sbuf_free(&err);
}

/* ------------------------------------------------------------------ CSV */

static void test_csv_header_and_crlf(void **state)
{
    fixture *f = *state;
    order o;
    order_init(&o, TV("0000000001"), TV("Ann Lee"), TV("12.500"));
    order_line(&o, TV("1"), TV("Widget"));
    order_line(&o, TV("2"), TV("Gadget"));
    write_batch(f->dir, "B1", SW_CSV, &o, 1);
    char *h = slurp(f->dir, "SO_B1_StgSalesOrder.csv", NULL);
    assert_string_equal(h, "TranNo,Name,Amount\r\n0000000001,Ann Lee,12.500\r\n");
    free(h);
    char *l = slurp(f->dir, "SO_B1_StgSOLine.csv", NULL);
    assert_string_equal(l, "TranNo,SOLineNo,Description\r\n"
                           "0000000001,1,Widget\r\n"
                           "0000000001,2,Gadget\r\n");
    free(l);
    assert_listing(f->dir, "SO_B1.done|SO_B1_StgSOLine.csv|SO_B1_StgSalesOrder.csv");
}

static void test_csv_quoting_only_when_needed(void **state)
{
    fixture *f = *state;
    order o[2];
    order_init(&o[0], TV("0000000001"), TV("Smith, John"), TV(""));
    order_line(&o[0], TV("1"), TV("12\" ruler"));
    order_line(&o[0], TV("2"), TV("two\nlines"));
    order_line(&o[0], TV("3"),
               TV("Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9"
                  "e"));
    order_line(&o[0], TV("4"), TV("cr\rlf"));
    order_init(&o[1], TV("0000000002"), TV(" spaced 'single' "), TV("-1.000"));
    write_batch(f->dir, "Q", SW_CSV, o, 2);
    char *h = slurp(f->dir, "SO_Q_StgSalesOrder.csv", NULL);
    assert_string_equal(h, "TranNo,Name,Amount\r\n"
                           "0000000001,\"Smith, John\",\r\n"
                           "0000000002, spaced 'single' ,-1.000\r\n");
    free(h);
    char *l = slurp(f->dir, "SO_Q_StgSOLine.csv", NULL);
    assert_string_equal(l, "TranNo,SOLineNo,Description\r\n"
                           "0000000001,1,\"12\"\" ruler\"\r\n"
                           "0000000001,2,\"two\nlines\"\r\n"
                           "0000000001,3,Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9"
                           "e\r\n"
                           "0000000001,4,\"cr\rlf\"\r\n");
    free(l);
}

static void test_csv_no_bom(void **state)
{
    fixture *f = *state;
    order o;
    order_init(&o, TV("1"), TV("\xc3\x89mile"), TV("1"));
    write_batch(f->dir, "U", SW_CSV, &o, 1);
    size_t n;
    char *h = slurp(f->dir, "SO_U_StgSalesOrder.csv", &n);
    assert_true(n > 3);
    assert_memory_equal(h, "TranNo", 6);
    assert_non_null(strstr(h, "\r\n1,\xc3\x89mile,1\r\n"));
    free(h);
}

/* ----------------------------------------------------------- .done file */

static void test_done_lists_sha256_csv_then_xml(void **state)
{
    fixture *f = *state;
    order o[2];
    order_init(&o[0], TV("0000000001"), TV("A"), TV("1.000"));
    order_line(&o[0], TV("1"), TV("x"));
    order_init(&o[1], TV("0000000002"), TV("B"), TV("2.000"));
    order_line(&o[1], TV("1"), TV("y"));
    write_batch(f->dir, "2026-11-01", SW_CSV | SW_XML, o, 2);
    assert_listing(f->dir, "SO_2026-11-01.done|SO_2026-11-01.xml|SO_2026-11-01_StgSOLine.csv|"
                           "SO_2026-11-01_StgSalesOrder.csv");
    char h1[65], h2[65], h3[65];
    file_sha(f->dir, "SO_2026-11-01_StgSalesOrder.csv", h1);
    file_sha(f->dir, "SO_2026-11-01_StgSOLine.csv", h2);
    file_sha(f->dir, "SO_2026-11-01.xml", h3);
    char want[512];
    snprintf(want, sizeof want,
             "%s  SO_2026-11-01_StgSalesOrder.csv\n%s  SO_2026-11-01_StgSOLine.csv\n%s  "
             "SO_2026-11-01.xml\n",
             h1, h2, h3);
    char *done = slurp(f->dir, "SO_2026-11-01.done", NULL);
    assert_string_equal(done, want);
    free(done);
}

static void test_done_xml_only(void **state)
{
    fixture *f = *state;
    order o;
    order_init(&o, TV("1"), TV("A"), TV("1"));
    write_batch(f->dir, "X", SW_XML, &o, 1);
    assert_listing(f->dir, "SO_X.done|SO_X.xml");
    char h[65], want[128];
    file_sha(f->dir, "SO_X.xml", h);
    snprintf(want, sizeof want, "%s  SO_X.xml\n", h);
    char *done = slurp(f->dir, "SO_X.done", NULL);
    assert_string_equal(done, want);
    free(done);
}

static void test_empty_batch(void **state)
{
    fixture *f = *state;
    write_batch(f->dir, "E", SW_CSV, NULL, 0);
    char *h = slurp(f->dir, "SO_E_StgSalesOrder.csv", NULL);
    assert_string_equal(h, "TranNo,Name,Amount\r\n");
    free(h);
    char hex[65], want[256];
    sha256_hex("TranNo,Name,Amount\r\n", 20, hex);
    char *done = slurp(f->dir, "SO_E.done", NULL);
    snprintf(want, sizeof want, "%s  SO_E_StgSalesOrder.csv\n", hex);
    assert_memory_equal(done, want, strlen(want));
    free(done);
}

static void test_same_input_same_bytes(void **state)
{
    fixture *f = *state;
    order o;
    order_init(&o, TV("1"), TV("A & B"), TV("1.5"));
    order_line(&o, TV("1"), TV("x"));
    write_batch(f->dir, "R", SW_CSV | SW_XML, &o, 1);
    char *first = slurp(f->dir, "SO_R.done", NULL);
    char p[512];
    const char *names[] = {"SO_R.done", "SO_R.xml", "SO_R_StgSOLine.csv", "SO_R_StgSalesOrder.csv"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", f->dir, names[i]);
        assert_int_equal(unlink(p), 0);
    }
    write_batch(f->dir, "R", SW_CSV | SW_XML, &o, 1);
    char *second = slurp(f->dir, "SO_R.done", NULL);
    assert_string_equal(first, second); /* hashes of every file agree */
    free(first);
    free(second);
}

/* ---------------------------------------------------------------- abort */

static void test_abort_leaves_nothing(void **state)
{
    fixture *f = *state;
    order o;
    order_init(&o, TV("1"), TV("A"), TV("1"));
    order_line(&o, TV("1"), TV("x"));
    sbuf err = {0};
    sage_writer *w = sw_open(&OUT, f->dir, "A", SW_CSV | SW_XML, &err);
    assert_non_null(w);
    char *during = listing(f->dir);
    /* while writing, only hidden temporary files exist */
    assert_true(during[0] == '.');
    assert_null(strstr(during, "|S"));
    free(during);
    assert_int_equal(sw_record(w, &o.res, &err), 0);
    sw_abort(w);
    assert_listing(f->dir, "");
    sbuf_free(&err);
}

static void test_open_in_missing_folder(void **state)
{
    fixture *f = *state;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/no/such/folder", f->dir);
    sbuf err = {0};
    assert_null(sw_open(&OUT, dir, "B", SW_CSV | SW_XML, &err));
    assert_non_null(strstr(sbuf_str(&err), "no/such/folder"));
    sbuf_free(&err);
    assert_listing(f->dir, "");
}

/* ------------------------------------------------------------------ XML */

static xmlDocPtr read_xml(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    xmlDocPtr doc = xmlReadFile(p, NULL, XML_PARSE_NONET);
    if (!doc)
        fail_msg("%s is not well-formed XML", p);
    return doc;
}

static int count_children(xmlNodePtr n, const char *name)
{
    int c = 0;
    for (xmlNodePtr k = n->children; k; k = k->next)
        if (k->type == XML_ELEMENT_NODE && !strcmp((const char *)k->name, name))
            c++;
    return c;
}

static xmlNodePtr child(xmlNodePtr n, const char *name, int nth)
{
    for (xmlNodePtr k = n->children; k; k = k->next)
        if (k->type == XML_ELEMENT_NODE && !strcmp((const char *)k->name, name) && nth-- == 0)
            return k;
    return NULL;
}

/* assert_attr - the row element n has the column attribute name with the value want, as a
 * parser reads it back; want NULL: no such attribute */
static void assert_attr(xmlNodePtr n, const char *name, const char *want)
{
    assert_non_null(n);
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    if (!want) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_string_equal((const char *)v, want);
    xmlFree(v);
}

static void test_xml_structure_and_escaping(void **state)
{
    fixture *f = *state;
    order o[2];
    order_init(&o[0], TV("0000000001"), TV("Tom & Jerry <3>"), TV(""));
    order_line(&o[0], TV("1"), TV("a \"quoted\" 'word'"));
    order_line(&o[0], TV("2"), TV("Cr\xc3\xa8me"));
    order_init(&o[1], TV("0000000002"), TV("B"), TV("2.000"));
    order_line(&o[1], TV("1"), TV(""));
    write_batch(f->dir, "B7", SW_XML, o, 2);

    size_t n;
    char *raw = slurp(f->dir, "SO_B7.xml", &n);
    assert_non_null(strstr(raw, "Tom &amp; Jerry &lt;3&gt;"));
    assert_null(strstr(raw, "Tom & Jerry"));
    assert_null(strstr(raw, "=\"\"")); /* an empty value is left out, not written empty */
    free(raw);

    xmlDocPtr doc = read_xml(f->dir, "SO_B7.xml");
    xmlNodePtr root = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)root->name, "SalesOrderImport");
    assert_non_null(root->ns);
    assert_string_equal((const char *)root->ns->href, "urn:test:so");
    xmlChar *batch = xmlGetProp(root, (const xmlChar *)"batch");
    assert_string_equal((const char *)batch, "B7");
    xmlFree(batch);
    assert_int_equal(count_children(root, "SalesOrder"), 2);

    xmlNodePtr so1 = child(root, "SalesOrder", 0);
    assert_int_equal(count_children(so1, "StgSalesOrder"), 1);
    assert_int_equal(count_children(so1, "StgSOLine"), 2);
    xmlNodePtr h = child(so1, "StgSalesOrder", 0);
    assert_attr(h, "TranNo", "0000000001");
    assert_attr(h, "Name", "Tom & Jerry <3>");
    assert_attr(h, "Amount", NULL); /* empty value omitted */
    /* header first, then its lines */
    xmlNodePtr first = so1->children;
    while (first && first->type != XML_ELEMENT_NODE)
        first = first->next;
    assert_string_equal((const char *)first->name, "StgSalesOrder");
    xmlNodePtr l2 = child(so1, "StgSOLine", 1);
    assert_attr(l2, "SOLineNo", "2");
    assert_attr(l2, "Description", "Cr\xc3\xa8me");
    assert_attr(child(so1, "StgSOLine", 0), "Description", "a \"quoted\" 'word'");

    xmlNodePtr so2 = child(root, "SalesOrder", 1);
    assert_attr(child(so2, "StgSalesOrder", 0), "Amount", "2.000");
    xmlNodePtr l = child(so2, "StgSOLine", 0);
    assert_attr(l, "Description", NULL);
    assert_attr(l, "TranNo", "0000000002");
    xmlFreeDoc(doc);
}

static void test_record_without_rows_skipped(void **state)
{
    fixture *f = *state;
    order o[3];
    order_init(&o[0], TV("1"), TV("A"), TV("1"));
    order_init(&o[1], TV("2"), TV("B"), TV("2"));
    o[1].nrows[0] = 0; /* a rejected record: no rows at all */
    order_init(&o[2], TV("3"), TV("C"), TV("3"));
    write_batch(f->dir, "S", SW_CSV | SW_XML, o, 3);
    char *h = slurp(f->dir, "SO_S_StgSalesOrder.csv", NULL);
    assert_string_equal(h, "TranNo,Name,Amount\r\n1,A,1\r\n3,C,3\r\n");
    free(h);
    xmlDocPtr doc = read_xml(f->dir, "SO_S.xml");
    int records = count_children(xmlDocGetRootElement(doc), "SalesOrder");
    xmlFreeDoc(doc);
    assert_int_equal(records, 2);
}

/* --------------------------------------- through the default template */

typedef struct {
    tpl_run *run;
    tpl_result *res;
    sage_writer *w;
    int rejected;
} pipe_ctx;

static int to_writer(void *ctx, record *rec)
{
    pipe_ctx *c = ctx;
    if (tpl_eval(c->run, rec, c->res) != 0) {
        c->rejected++;
        return 0;
    }
    sbuf err = {0};
    int rc = sw_record(c->w, c->res, &err);
    sbuf_free(&err);
    return rc;
}

static void test_default_template_xml_valid_against_xsd(void **state)
{
    fixture *f = *state;
    sbuf err = {0};
    config *cfg = cfg_load(NULL, &err);
    tpl_set *set = tpl_set_new(cfg, "xsd");
    template *t = tpl_load(set, "templates/clarity-orders.xml", &err);
    if (!t)
        fail_msg("%s", sbuf_str(&err));
    tpl_result res;
    tpl_result_init(&res, t);
    pipe_ctx c = {tpl_run_new(t), &res, NULL, 0};
    c.w = sw_open(tpl_output(t), f->dir, "V", SW_CSV | SW_XML, &err);
    assert_non_null(c.w);
    const char *json =
        "[{\"orderId\":\"CL-1\",\"customerId\":\"C1\",\"orderDate\":\"2026-11-01T10:00:00Z\","
        "\"currency\":\"USD\","
        "\"totalAmount\":\"20.00\",\"shippingAmount\":0,\"taxAmount\":0,\"shippingMethod\":"
        "\"ground\","
        "\"billingAddress\":{\"name\":\"R&D <Lab>\",\"street1\":\"1 \\\"A\\\" St, Apt "
        "2\",\"city\":\"Z\\u00fcrich\",\"state\":\"ZH\",\"zipCode\":\"8000\",\"country\":\"CH\"},"
        "\"shippingAddress\":{\"name\":\"R&D <Lab>\",\"street1\":\"1 A "
        "St\",\"city\":\"Austin\",\"state\":\"TX\",\"zipCode\":\"78701\",\"country\":\"US\"},"
        "\"lineItems\":[{\"sku\":\"A-1\",\"name\":\"Widget, "
        "large\",\"quantity\":2,\"unitPrice\":\"10\",\"discount\":0,\"tax\":0}]}]";
    cin_parser *p = cin_new(tpl_schema(set), to_writer, &c);
    assert_int_equal(cin_feed(p, json, strlen(json)), CIN_OK);
    assert_int_equal(cin_finish(p), CIN_OK);
    cin_free(p);
    assert_int_equal(c.rejected, 0);
    assert_int_equal(sw_commit(c.w, &err), 0);

    char *csv = slurp(f->dir, "SO_V_StgSalesOrder.csv", NULL);
    assert_non_null(
        strstr(csv, ",R&D <Lab>,\"1 \"\"A\"\" St, Apt 2\",,Z\xc3\xbcrich,ZH,CHE,8000,"));
    free(csv);

    xmlDocPtr doc = read_xml(f->dir, "SO_V.xml");
    xmlSchemaParserCtxtPtr pc = xmlSchemaNewParserCtxt("xsd/sage500-salesorder.xsd");
    xmlSchemaPtr schema = xmlSchemaParse(pc);
    assert_non_null(schema);
    xmlSchemaValidCtxtPtr vc = xmlSchemaNewValidCtxt(schema);
    assert_int_equal(xmlSchemaValidateDoc(vc, doc), 0);
    xmlSchemaFreeValidCtxt(vc);
    xmlSchemaFree(schema);
    xmlSchemaFreeParserCtxt(pc);
    xmlFreeDoc(doc);

    tpl_run_free(c.run);
    tpl_result_free(&res);
    tpl_set_free(set);
    cfg_free(cfg);
    sbuf_free(&err);
}

/* -------------------------------------------------------------- publish */

static void test_publish_atomic(void **state)
{
    fixture *f = *state;
    sbuf err = {0};
    ofile *o = of_open(f->dir, "out.txt", &err);
    assert_non_null(o);
    assert_string_equal(of_name(o), "out.txt");
    assert_int_equal(of_puts(o, "hello "), 0);
    assert_int_equal(of_write(o, "world\n", 6), 0);
    assert_int_equal(of_size(o), 12);
    char want[128];
    snprintf(want, sizeof want, ".out.txt.sbtmp");
    assert_listing(f->dir, want); /* hidden until committed */
    char hex[65];
    sha256_hex("hello world\n", 12, hex);
    assert_string_equal(of_sha256(o), hex);
    assert_int_equal(of_commit(o, &err), 0);
    assert_listing(f->dir, "out.txt");
    char *c = slurp(f->dir, "out.txt", NULL);
    assert_string_equal(c, "hello world\n");
    free(c);
    assert_int_equal(fsync_dir(f->dir, &err), 0);
    sbuf_free(&err);
}

static void test_publish_large_file_hash(void **state)
{
    fixture *f = *state;
    sbuf err = {0};
    ofile *o = of_open(f->dir, "big.bin", &err);
    assert_non_null(o);
    /* more than the internal buffer, in odd-sized pieces */
    size_t total = 200001;
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)('a' + (i * 7) % 26);
    for (size_t off = 0; off < total; off += 777)
        assert_int_equal(of_write(o, data + off, total - off < 777 ? total - off : 777), 0);
    char hex[65];
    sha256_hex(data, total, hex);
    assert_int_equal(of_commit(o, &err), 0);
    char fh[65];
    file_sha(f->dir, "big.bin", fh);
    assert_string_equal(fh, hex);
    free(data);
    sbuf_free(&err);
}

/* pieces of every size around OF_CHUNK, mixed: those of OF_CHUNK or more are written from
 * the caller's memory, the others gathered first; the file and its hash keep their order */
static void test_publish_pieces_large_and_small_in_order(void **state)
{
    fixture *f = *state;
    sbuf err = {0};
    ofile *o = of_open(f->dir, "mixed.bin", &err);
    assert_non_null(o);
    const size_t sizes[] = {
        1, OF_CHUNK, 10, OF_CHUNK - 1, 2, OF_CHUNK, 3 * OF_CHUNK, OF_CHUNK - 5, 7, OF_CHUNK + 1};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        total += sizes[i];
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)(i * 131 + i / 4093);
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        assert_int_equal(of_write(o, data + off, sizes[i]), 0);
        off += sizes[i];
    }
    assert_int_equal(of_size(o), total);
    char hex[65], fh[65];
    sha256_hex(data, total, hex);
    assert_string_equal(of_sha256(o), hex);
    assert_int_equal(of_commit(o, &err), 0);
    size_t n = 0;
    char *c = slurp(f->dir, "mixed.bin", &n);
    assert_int_equal(n, total);
    assert_memory_equal(c, data, total);
    file_sha(f->dir, "mixed.bin", fh);
    assert_string_equal(fh, hex);
    free(c);
    free(data);
    sbuf_free(&err);
}

/* fdatasync as publish.c's syncer thread calls it (this definition takes the place of
 * libc's in this program): counted, and failing with EIO while datasync_fail is set */
static int datasyncs, datasync_fail;

int fdatasync(int fd)
{
    __atomic_add_fetch(&datasyncs, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&datasync_fail, __ATOMIC_SEQ_CST)) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}

/* write_big - mb MiB of a pattern through of_write in 64 KiB pieces, its SHA-256 in hex;
 * returns 0, or -1 as soon as of_write does (a write or an early sync failed) */
static int write_big(ofile *o, size_t mb, char hex[65])
{
    static char piece[64 * 1024];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    int rc = 0;
    for (size_t i = 0; i < mb * 16 && rc == 0; i++) {
        for (size_t k = 0; k < sizeof piece; k += 4096)
            piece[k] = (char)(i + k); /* no two pieces alike */
        rc = of_write(o, piece, sizeof piece);
        EVP_DigestUpdate(md, piece, sizeof piece);
    }
    unsigned char h[32];
    EVP_DigestFinal_ex(md, h, NULL);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    return rc;
}

/* a large output is synced in the background while it is written (so that the final fsync
 * finds little to do), and arrives whole */
static void test_publish_large_file_synced_while_written(void **state)
{
    fixture *f = *state;
    sbuf err = {0};
    ofile *o = of_open(f->dir, "big.bin", &err);
    assert_non_null(o);
    int before = __atomic_load_n(&datasyncs, __ATOMIC_SEQ_CST);
    char hex[65], fh[65];
    assert_int_equal(write_big(o, 72, hex), 0);
    assert_int_equal(of_commit(o, &err), 0);
    /* one each time 32 MiB more have been written: at 32 and at 64 MiB */
    assert_int_equal(__atomic_load_n(&datasyncs, __ATOMIC_SEQ_CST) - before, 2);
    file_sha(f->dir, "big.bin", fh);
    assert_string_equal(fh, hex);
    sbuf_free(&err);
}

/* an early sync that fails is not lost: Linux tells one fsync of a descriptor about a
 * writeback error, and that was the early one; the commit must fail and leave nothing */
static void test_publish_early_sync_error_reported(void **state)
{
    fixture *f = *state;
    sbuf err = {0};
    ofile *o = of_open(f->dir, "big.bin", &err);
    assert_non_null(o);
    __atomic_store_n(&datasync_fail, 1, __ATOMIC_SEQ_CST);
    char hex[65];
    /* the writes go on failing once the writer has seen the error (or all succeed, when the
     * sync was still running at the last one); either way the commit fails */
    (void)write_big(o, 40, hex);
    int rc = of_commit(o, &err);
    __atomic_store_n(&datasync_fail, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(sbuf_str(&err), "big.bin"));
    assert_non_null(strstr(sbuf_str(&err), strerror(EIO)));
    assert_listing(f->dir, "");
    sbuf_free(&err);
}

static void test_publish_abort(void **state)
{
    fixture *f = *state;
    sbuf err = {0};
    ofile *o = of_open(f->dir, "gone.txt", &err);
    assert_non_null(o);
    assert_int_equal(of_puts(o, "partial"), 0);
    of_abort(o);
    assert_listing(f->dir, "");
    char dir[128];
    snprintf(dir, sizeof dir, "%s/missing", f->dir);
    assert_null(of_open(dir, "x.txt", &err));
    assert_non_null(strstr(sbuf_str(&err), "missing/x.txt"));
    sbuf_free(&err);
}

/* -------------------------------------- XML: the same bytes as libxml2's xmlTextWriter */

/*
 * sw_* writes its XML directly; it must write byte for byte what the former
 * writer, libxml2's xmlTextWriter, writes for the same rows (indentation on with an
 * empty indent string: an element per line; StartDocument(NULL, "UTF-8", NULL), root
 * with xmlns and batch attributes, empty values skipped, WriteAttribute per column).  The expected
 * document is made here by xmlTextWriter itself (the writer sage_out.c once used), so the
 * comparison follows the installed libxml2, not a hand-written guess.
 */

static int sbuf_write_cb(void *ctx, const char *buf, int len)
{
    sbuf_add(ctx, buf, (size_t)len);
    return len;
}

static int noop_close_cb(void *ctx)
{
    (void)ctx;
    return 0;
}

/* libxml2_doc - what xmlTextWriter writes for these orders */
static void libxml2_doc(const tpl_output_desc *o, const char *batch, order *orders, size_t n,
                        sbuf *out)
{
    xmlOutputBufferPtr ob = xmlOutputBufferCreateIO(sbuf_write_cb, noop_close_cb, out, NULL);
    assert_non_null(ob);
    xmlTextWriterPtr x = xmlNewTextWriter(ob);
    assert_non_null(x);
    xmlTextWriterSetIndent(x, 1);
    xmlTextWriterSetIndentString(x, (const xmlChar *)"");
    assert_true(xmlTextWriterStartDocument(x, NULL, "UTF-8", NULL) >= 0);
    assert_true(xmlTextWriterStartElement(x, (const xmlChar *)o->xml_root) >= 0);
    assert_true(
        xmlTextWriterWriteAttribute(x, (const xmlChar *)"xmlns", (const xmlChar *)o->xml_ns) >= 0);
    assert_true(xmlTextWriterWriteAttribute(x, (const xmlChar *)"batch", (const xmlChar *)batch) >=
                0);
    for (size_t i = 0; i < n; i++) {
        const tpl_result *res = &orders[i].res;
        size_t rows = 0;
        for (int t = 0; t < o->ntables; t++)
            rows += res->nrows[t];
        if (!rows) /* sw_record skips a record without rows */
            continue;
        assert_true(xmlTextWriterStartElement(x, (const xmlChar *)o->xml_record) >= 0);
        for (int t = 0; t < o->ntables; t++) {
            const tpl_table_desc *td = &o->tables[t];
            for (size_t r = 0; r < res->nrows[t]; r++) {
                const tval *row = &res->rows[t][r * (size_t)td->ncols];
                assert_true(xmlTextWriterStartElement(x, (const xmlChar *)td->name) >= 0);
                for (int c = 0; c < td->ncols; c++) {
                    if (!row[c].n)
                        continue;
                    char *v = strndup(row[c].p, row[c].n);
                    assert_true(xmlTextWriterWriteAttribute(x, (const xmlChar *)td->cols[c],
                                                            (const xmlChar *)v) >= 0);
                    free(v);
                }
                assert_true(xmlTextWriterEndElement(x) >= 0);
            }
        }
        assert_true(xmlTextWriterEndElement(x) >= 0);
    }
    assert_true(xmlTextWriterEndDocument(x) >= 0);
    assert_true(xmlTextWriterFlush(x) >= 0);
    xmlFreeTextWriter(x); /* closes ob */
}

/* show - bytes for a failure message: printable ASCII as is, the rest as \xHH */
static void show(sbuf *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            sbuf_addc(b, (char)c);
        else
            sbuf_printf(b, "\\x%02x", c);
    }
}

/* same_bytes - 1 when equal; else 0 and msg says where the documents first differ */
static int same_bytes(const char *what, const char *want, size_t wn, const char *got, size_t gn,
                      char *msg, size_t msz)
{
    if (wn == gn && memcmp(want, got, wn) == 0)
        return 1;
    size_t i = 0;
    while (i < wn && i < gn && want[i] == got[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    sbuf m = {0};
    sbuf_printf(&m, "%s: differs from xmlTextWriter at byte %zu (lengths %zu, %zu)\n  want: ", what,
                i, wn, gn);
    show(&m, want + from, (wn - from) < 100 ? wn - from : 100);
    sbuf_adds(&m, "\n  got:  ");
    show(&m, got + from, (gn - from) < 100 ? gn - from : 100);
    snprintf(msg, msz, "%s", sbuf_str(&m));
    sbuf_free(&m);
    return 0;
}

/* compare_with_libxml2 - write the orders with sw_* (XML only) into dir, build the same
 * document with xmlTextWriter, compare bytes, parse; returns the parsed document */
static xmlDocPtr compare_with_libxml2(const char *dir, const tpl_output_desc *o, const char *batch,
                                      order *orders, size_t n)
{
    sbuf err = {0};
    sage_writer *w = sw_open(o, dir, batch, SW_XML, &err);
    if (!w)
        fail_msg("sw_open: %s", sbuf_str(&err));
    for (size_t i = 0; i < n; i++)
        if (sw_record(w, &orders[i].res, &err) != 0)
            fail_msg("sw_record: %s", sbuf_str(&err));
    if (sw_commit(w, &err) != 0)
        fail_msg("sw_commit: %s", sbuf_str(&err));
    sbuf_free(&err);

    sbuf name = {0};
    sbuf_printf(&name, "%s_%s.xml", o->prefix, batch);
    size_t gn;
    char *got = slurp(dir, sbuf_str(&name), &gn);
    sbuf want = {0};
    libxml2_doc(o, batch, orders, n, &want);
    /* everything is freed before a failure, so that valgrind/ASan judge only sw_* */
    static char msg[1024];
    xmlDocPtr doc = xmlReadMemory(got, (int)gn, sbuf_str(&name), NULL, XML_PARSE_NONET);
    if (!doc)
        snprintf(msg, sizeof msg, "%s is not well-formed XML", sbuf_str(&name));
    int same = same_bytes(sbuf_str(&name), want.p, want.len, got, gn, msg, sizeof msg);
    free(got);
    sbuf_free(&want);
    sbuf_free(&name);
    if (!doc || !same) {
        xmlFreeDoc(doc);
        fail_msg("%s", msg);
    }
    return doc;
}

static void test_xml_bytes_markup_and_whitespace(void **state)
{
    fixture *f = *state;
    order o[3];
    order_init(&o[0], TV("0000000001"), TV("Tom & Jerry <3> \"q\" 'a'"), TV("]]>"));
    order_line(&o[0], TV("1"), TV("cr\rlf\r\nlf\ntab\tend"));
    order_line(&o[0], TV("2"), TV("   ")); /* only spaces: kept as is */
    order_line(&o[0], TV("3"), TV(" lead and trail "));
    order_line(&o[0], TV("4"), TV("&amp; already escaped &#38;"));
    order_init(&o[1], TV("0000000002"), TV("\t"), TV("\n"));
    order_line(&o[1], TV("1"), TV("\r"));
    order_init(&o[2], TV("0000000003"), TV("'single'"), TV("x>y<z"));
    xmlDocPtr doc = compare_with_libxml2(f->dir, &OUT, "M1", o, 3);
    /* and what a parser reads back is the original text */
    xmlNodePtr so1 = child(xmlDocGetRootElement(doc), "SalesOrder", 0);
    xmlNodePtr h = child(so1, "StgSalesOrder", 0);
    assert_attr(h, "Name", "Tom & Jerry <3> \"q\" 'a'");
    assert_attr(h, "Amount", "]]>");
    /* tab, CR and LF survive attribute-value normalisation only as references */
    assert_attr(child(so1, "StgSOLine", 0), "Description", "cr\rlf\r\nlf\ntab\tend");
    assert_attr(child(so1, "StgSOLine", 1), "Description", "   ");
    xmlFreeDoc(doc);
}

static void test_xml_bytes_non_ascii_text(void **state)
{
    fixture *f = *state;
    order o;
    order_init(&o, TV("0000000001"), TV("\xc3\xa9t\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80"),
               TV("1.000"));
    order_line(&o, TV("1"),
               TV("Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9"
                  "e & \xe6\xbc\xa2\xe5\xad\x97 <\xf0\x9f\x98\x80>"));
    xmlDocPtr doc = compare_with_libxml2(f->dir, &OUT, "U1", &o, 1);
    xmlNodePtr so = child(xmlDocGetRootElement(doc), "SalesOrder", 0);
    assert_attr(child(so, "StgSalesOrder", 0), "Name",
                "\xc3\xa9t\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80");
    xmlFreeDoc(doc);
}

static void test_xml_bytes_empty_rows(void **state)
{
    fixture *f = *state;
    order o[4];
    /* every column empty: xmlTextWriter closes the table element as <StgSalesOrder/> */
    order_init(&o[0], TV(""), TV(""), TV(""));
    order_line(&o[0], TV(""), TV(""));
    order_line(&o[0], TV("2"), TV(""));
    /* a record with line rows only, no header row */
    order_init(&o[1], TV("0000000002"), TV("B"), TV("2"));
    o[1].nrows[0] = 0;
    order_line(&o[1], TV("1"), TV("only a line"));
    /* a record without any row: skipped, no empty <SalesOrder/> */
    order_init(&o[2], TV("0000000003"), TV("C"), TV("3"));
    o[2].nrows[0] = 0;
    order_init(&o[3], TV("0000000004"), TV("D"), TV(""));
    xmlDocPtr doc = compare_with_libxml2(f->dir, &OUT, "E1", o, 4);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    assert_int_equal(count_children(root, "SalesOrder"), 3);
    xmlNodePtr so1 = child(root, "SalesOrder", 0);
    assert_attr(child(so1, "StgSalesOrder", 0), "TranNo", NULL);
    assert_int_equal(count_children(so1, "StgSOLine"), 2);
    assert_int_equal(count_children(child(root, "SalesOrder", 1), "StgSalesOrder"), 0);
    xmlFreeDoc(doc);
    /* the bytes themselves, in case both writers changed */
    char *raw = slurp(f->dir, "SO_E1.xml", NULL);
    assert_non_null(strstr(raw, "\n<SalesOrder>\n<StgSalesOrder/>\n<StgSOLine/>\n"
                                "<StgSOLine SOLineNo=\"2\"/>\n</SalesOrder>\n"));
    free(raw);
}

static void test_xml_bytes_zero_records(void **state)
{
    fixture *f = *state;
    xmlDocPtr doc = compare_with_libxml2(f->dir, &OUT, "Z0", NULL, 0);
    xmlFreeDoc(doc);
    char *raw = slurp(f->dir, "SO_Z0.xml", NULL);
    assert_string_equal(raw, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                             "<SalesOrderImport xmlns=\"urn:test:so\" batch=\"Z0\"/>\n");
    free(raw);
    /* only records without rows: the same empty document */
    order o;
    order_init(&o, TV("1"), TV("A"), TV("1"));
    o.nrows[0] = 0;
    doc = compare_with_libxml2(f->dir, &OUT, "Z1", &o, 1);
    assert_int_equal(count_children(xmlDocGetRootElement(doc), "SalesOrder"), 0);
    xmlFreeDoc(doc);
}

static void test_xml_bytes_batch_attribute_markup(void **state)
{
    fixture *f = *state;
    /* markup characters in the attributes: the batch id, and an '&' in the namespace (a
     * valid URI may hold one; '<' it may not) */
    static const tpl_output_desc NSOUT = {.prefix = "SO",
                                          .xml_root = "SalesOrderImport",
                                          .xml_record = "SalesOrder",
                                          .xml_ns = "http://example.com/so?a=1&b=2",
                                          .ntables = 2,
                                          .tables = TABLES};
    order o;
    order_init(&o, TV("1"), TV("A"), TV("1"));
    const char *batch = "B&1 <x> \"q\" 'a'\tz"; /* (a tab: libxml2 writes &#9; in attributes) */
    xmlDocPtr doc = compare_with_libxml2(f->dir, &NSOUT, batch, &o, 1);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    xmlChar *b = xmlGetProp(root, (const xmlChar *)"batch");
    assert_string_equal((const char *)b, batch);
    xmlFree(b);
    xmlFreeDoc(doc);
    /* (libxml2's parser keeps an escaped '&' of a namespace name as "&#38;" in ns->href, so
     * the namespace is checked in the bytes) */
    sbuf name = {0};
    sbuf_printf(&name, "SO_%s.xml", batch);
    char *raw = slurp(f->dir, sbuf_str(&name), NULL);
    assert_non_null(strstr(raw, "<SalesOrderImport xmlns=\"http://example.com/so?a=1&amp;b=2\" "
                                "batch=\"B&amp;1 &lt;x&gt; &quot;q&quot; 'a'&#9;z\">\n"));
    free(raw);
    sbuf_free(&name);
}

static void test_xml_bytes_batch_attribute_non_ascii(void **state)
{
    fixture *f = *state;
    /* non-ASCII in the batch id: xmlTextWriterStartDocument(…, "UTF-8", …) gives the writer's
     * document an encoding, and then libxml2 writes attribute text as UTF-8, not &#xHEX; */
    order o;
    order_init(&o, TV("1"), TV("A"), TV("1"));
    const char *batch = "B&\xc3\xa9\xe6\xbc\xa2\xf0\x9f\x98\x80";
    xmlDocPtr doc = compare_with_libxml2(f->dir, &OUT, batch, &o, 1);
    xmlChar *b = xmlGetProp(xmlDocGetRootElement(doc), (const xmlChar *)"batch");
    assert_string_equal((const char *)b, batch);
    xmlFree(b);
    xmlFreeDoc(doc);
}

static void test_xml_bytes_many_records(void **state)
{
    fixture *f = *state;
    /* a bigger document: several records with every kind of value, twice over */
    order o[6];
    order_init(&o[0], TV("0000000001"), TV("A & B"), TV("1.000"));
    order_line(&o[0], TV("1"), TV("\xe6\xbc\xa2"));
    order_line(&o[0], TV("2"), TV(""));
    order_init(&o[1], TV("0000000002"), TV(""), TV("2.000"));
    order_init(&o[2], TV(""), TV(""), TV(""));
    order_init(&o[3], TV("0000000004"), TV("<\r\n>"), TV(" "));
    order_line(&o[3], TV("1"), TV("\"\""));
    order_line(&o[3], TV("2"), TV("''"));
    order_line(&o[3], TV("3"), TV("\t\t"));
    order_line(&o[3], TV("4"), TV("\xf0\x9f\x98\x80\xf0\x9f\x98\x80"));
    order_init(&o[4], TV("0000000005"), TV("E"), TV("5"));
    o[4].nrows[0] = 0;
    order_init(&o[5], TV("0000000006"), TV("F"), TV("6"));
    order_line(&o[5], TV("1"), TV("last"));
    xmlDocPtr doc = compare_with_libxml2(f->dir, &OUT, "2026-11-01", o, 6);
    assert_int_equal(count_children(xmlDocGetRootElement(doc), "SalesOrder"), 5);
    xmlFreeDoc(doc);
}

static void test_xml_bytes_column_names_of_every_length(void **state)
{
    fixture *f = *state;
    /* the writer moves a short attribute name as a fixed block and a long one by its length:
     * names of 1 to 40 characters (with " " and "=\"" the prepared text is 4 to 44 bytes) */
    static char names[3][41];
    static const char *hcols[3], *lcols[3] = {"TranNo", "SOLineNo", "Description"};
    static tpl_table_desc tables[2];
    for (int len = 1; len <= 40; len++) {
        for (int k = 0; k < 3; k++) {
            memset(names[k], 'A' + k, (size_t)len);
            names[k][len] = '\0';
            hcols[k] = names[k];
        }
        tables[0] = (tpl_table_desc){"StgSalesOrder", 3, hcols, false};
        tables[1] = (tpl_table_desc){"StgSOLine", 3, lcols, true};
        tpl_output_desc out = OUT;
        out.tables = tables;
        order o;
        order_init(&o, TV("0000000001"), TV("x<&>\"y"), TV("1.000"));
        order_line(&o, TV("1"), TV("line"));
        char batch[16];
        snprintf(batch, sizeof batch, "N%d", len);
        xmlDocPtr doc = compare_with_libxml2(f->dir, &out, batch, &o, 1);
        xmlNodePtr h = child(child(xmlDocGetRootElement(doc), "SalesOrder", 0), "StgSalesOrder", 0);
        assert_attr(h, names[1], "x<&>\"y");
        xmlFreeDoc(doc);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_csv_header_and_crlf),
        T(test_csv_quoting_only_when_needed),
        T(test_csv_no_bom),
        T(test_done_lists_sha256_csv_then_xml),
        T(test_done_xml_only),
        T(test_empty_batch),
        T(test_same_input_same_bytes),
        T(test_abort_leaves_nothing),
        T(test_open_in_missing_folder),
        T(test_xml_structure_and_escaping),
        T(test_record_without_rows_skipped),
        T(test_default_template_xml_valid_against_xsd),
        T(test_publish_atomic),
        T(test_publish_large_file_hash),
        T(test_publish_early_sync_error_reported),
        T(test_publish_pieces_large_and_small_in_order),
        T(test_publish_large_file_synced_while_written),
        T(test_publish_abort),
        T(test_xml_bytes_markup_and_whitespace),
        T(test_xml_bytes_non_ascii_text),
        T(test_xml_bytes_empty_rows),
        T(test_xml_bytes_zero_records),
        T(test_xml_bytes_batch_attribute_markup),
        T(test_xml_bytes_batch_attribute_non_ascii),
        T(test_xml_bytes_many_records),
        T(test_xml_bytes_column_names_of_every_length),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
