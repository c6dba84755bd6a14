/*
 * sage_out.c - write Sage 500 staging-table files.
 *
 * CSV: header row of the exact staging column names, RFC 4180 quoting
 * (through libcsv's csv_write, and only for fields that need it: a comma,
 * a double quote, CR or LF), CRLF line ends, UTF-8 without BOM.
 *
 * XML: one document per batch: the output's root element (with the batch
 * id), one record element per record holding each table's rows, one empty
 * element per row named after the table, with the columns as attributes in
 * column order; an empty value is omitted, which the schemas in xsd/ allow
 * for every optional column.  Attributes, not child elements: a row is one
 * line, as SQL Server's FOR XML RAW writes it and OPENXML reads it by
 * default, and the file is about half the size (340 MB instead of 640 MB
 * for a 200 MB export; bench/HISTORY.md).  The document is written
 * directly, not through libxml2's text writer: the tags of every column are
 * prepared once, and the bytes are exactly what xmlTextWriter writes with
 * an empty indent string (tests/unit/test_sage_out.c builds the same
 * document with it and compares), so that a 200 MB export is not held up
 * by a general-purpose serializer (bench/RESULTS.md: four fifths of
 * --format both).  Every XML file the tests write is parsed and validated
 * against its XSD with libxml2.  Values never carry characters XML 1.0
 * forbids: the template rejects such a value first (template.c,
 * fit_column).
 *
 * The .done marker lists every file of the batch in sha256sum format, so
 * "sha256sum -c PREFIX_B.done" checks a batch, and it is published last:
 * a Sage job that waits for it never sees a partial batch.
 *
 * DIAGNOSTICS
 *	Every function returns -1 with "FILE: what failed" in err; on any
 *	failure the caller calls sw_abort, which leaves no file behind.
 */
#include "sage_out.h"

#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "publish.h"

#define ATTR_PAD 32 /* a column's " Name=\"" is copied as this many bytes when shorter */

struct sage_writer {
    const tpl_output_desc *o;
    char *dir, *batch;
    int formats;
    ofile **csv; /* per table */
    ofile *xml;
    sbuf **attr;              /* per table, per column: " Col=\"" */
    sbuf *open_row;           /* per table: "<Table" */
    sbuf open_rec, close_rec; /* "<Record>\n", "</Record>\n" */
    /* each file's bytes are gathered here and handed to of_write OF_CHUNK at a time, which
     * then hashes and writes them from here without copying them (publish.h) */
    sbuf xbuf;     /* the XML */
    sbuf *cbuf;    /* per table: the CSV */
    int xml_empty; /* no record yet: the root closes as <Root .../> */
    sbuf cell;     /* quoting scratch */
};

/* put_plain - append p[0..n) to b and return 1 when copy (csv_copy, xml_attr_copy) finds
 * nothing in it to quote or escape; else return 0 with b as it was.  Scanning and copying
 * in one pass is what the writers do for almost every value. */
static inline int put_plain(sbuf *b, const char *p, size_t n,
                            size_t (*copy)(char *, const char *, size_t))
{
    if (!b->p || b->len + n + 1 > b->cap)
        sbuf_grow(b, n);
    if (copy(b->p + b->len, p, n) != n) {
        b->p[b->len] = '\0';
        return 0;
    }
    b->len += n;
    b->p[b->len] = '\0';
    return 1;
}

/* hand_over - what b gathered for f, once it is a chunk (or, when all, whatever it is) */
static int hand_over(ofile *f, sbuf *b, int all)
{
    if (b->len < (all ? 1 : OF_CHUNK))
        return 0;
    int rc = of_write(f, b->p, b->len);
    sbuf_reset(b);
    return rc;
}

/* csv_cell - append one field to the row, quoted only when it must be */
static void csv_cell(sage_writer *w, sbuf *line, const char *p, size_t n)
{
    if (put_plain(line, p, n, csv_copy))
        return;
    /* at most every byte doubled and two quotes: one call of csv_write, not one to measure */
    sbuf_grow(&w->cell, 2 * n + 2);
    size_t need = csv_write(w->cell.p, 2 * n + 2, p, n);
    sbuf_add(line, w->cell.p, need);
}

/* csv_row - one row of table t */
static int csv_row(sage_writer *w, int t, const tval *vals, int ncols)
{
    sbuf *line = &w->cbuf[t];
    for (int i = 0; i < ncols; i++) {
        if (i)
            sbuf_addc(line, ',');
        csv_cell(w, line, vals[i].p, vals[i].n);
    }
    sbuf_add(line, "\r\n", 2);
    return hand_over(w->csv[t], line, 0);
}

/* csv_header - the row of staging column names */
static void csv_header(sage_writer *w, int t)
{
    const tpl_table_desc *td = &w->o->tables[t];
    tval *names = xcalloc((size_t)td->ncols + 1, sizeof *names);
    for (int i = 0; i < td->ncols; i++)
        names[i] = (tval){td->cols[i], strlen(td->cols[i])};
    (void)csv_row(w, t, names, td->ncols); /* gathered, not written yet */
    free(names);
}

static char *file_name(const sage_writer *w, const char *suffix)
{
    sbuf b = {0};
    sbuf_printf(&b, "%s_%s%s", w->o->prefix, w->batch, suffix);
    return b.p;
}

/* xml_value - an attribute value escaped as xmlTextWriter writes it in a UTF-8 document:
 * markup characters, tab, LF and CR as references (a parser turns them into spaces
 * otherwise), everything else (non-ASCII too) as it is */
static void xml_value(sbuf *b, const char *p, size_t n)
{
    if (put_plain(b, p, n, xml_attr_copy)) /* the usual case: nothing to escape */
        return;
    size_t start = 0, i = xml_attr_special(p, n);
    for (; i < n; i++) {
        const char *rep;
        switch (p[i]) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\t':
            rep = "&#9;";
            break;
        case '\n':
            rep = "&#10;";
            break;
        case '\r':
            rep = "&#13;";
            break;
        default:
            continue;
        }
        sbuf_add(b, p + start, i - start);
        sbuf_adds(b, rep);
        start = i + 1;
    }
    sbuf_add(b, p + start, n - start);
}

/* xml_prepare - every tag of the document, written once */
static void xml_prepare(sage_writer *w)
{
    const tpl_output_desc *o = w->o;
    sbuf_printf(&w->open_rec, "<%s>\n", o->xml_record);
    sbuf_printf(&w->close_rec, "</%s>\n", o->xml_record);
    w->attr = xcalloc((size_t)o->ntables, sizeof *w->attr);
    w->open_row = xcalloc((size_t)o->ntables, sizeof *w->open_row);
    for (int t = 0; t < o->ntables; t++) {
        const tpl_table_desc *td = &o->tables[t];
        sbuf_printf(&w->open_row[t], "<%s", td->name);
        w->attr[t] = xcalloc((size_t)td->ncols, sizeof **w->attr);
        for (int c = 0; c < td->ncols; c++) {
            sbuf *a = &w->attr[t][c];
            sbuf_printf(a, " %s=\"", td->cols[c]);
            sbuf_grow(a, ATTR_PAD); /* xml_rows may read ATTR_PAD bytes of a short name */
            memset(a->p + a->len, 0, a->cap - a->len);
        }
    }
}

/* xml_unprepare - free what xml_prepare made */
static void xml_unprepare(sage_writer *w)
{
    const tpl_output_desc *o = w->o;
    for (int t = 0; w->attr && t < o->ntables; t++) {
        for (int c = 0; c < o->tables[t].ncols; c++)
            sbuf_free(&w->attr[t][c]);
        free(w->attr[t]);
        sbuf_free(&w->open_row[t]);
    }
    free(w->attr);
    free(w->open_row);
    sbuf_free(&w->open_rec);
    sbuf_free(&w->close_rec);
    w->attr = NULL;
    w->open_row = NULL;
}

sage_writer *sw_open(const tpl_output_desc *o, const char *dir, const char *batch, int formats,
                     sbuf *err)
{
    sage_writer *w = xcalloc(1, sizeof *w);
    w->o = o;
    w->dir = xstrdup(dir);
    w->batch = xstrdup(batch);
    w->formats = formats;
    w->csv = xcalloc((size_t)o->ntables + 1, sizeof *w->csv);
    w->cbuf = xcalloc((size_t)o->ntables + 1, sizeof *w->cbuf);
    if (formats & SW_CSV) {
        for (int t = 0; t < o->ntables; t++) {
            sbuf suffix = {0};
            sbuf_printf(&suffix, "_%s.csv", o->tables[t].name);
            char *name = file_name(w, suffix.p);
            sbuf_free(&suffix);
            w->csv[t] = of_open(dir, name, err);
            free(name);
            if (!w->csv[t]) {
                sw_abort(w);
                return NULL;
            }
            csv_header(w, t);
        }
    }
    if (formats & SW_XML) {
        char *name = file_name(w, ".xml");
        w->xml = of_open(dir, name, err);
        free(name);
        if (!w->xml) {
            sw_abort(w);
            return NULL;
        }
        xml_prepare(w);
        sbuf_printf(&w->xbuf, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%s xmlns=\"",
                    o->xml_root);
        xml_value(&w->xbuf, o->xml_ns, strlen(o->xml_ns));
        sbuf_adds(&w->xbuf, "\" batch=\"");
        xml_value(&w->xbuf, batch, strlen(batch));
        sbuf_addc(&w->xbuf, '"');
        w->xml_empty = 1;
    }
    return w;
}

/* xml_rows - one record: its element, then a line per row */
static int xml_rows(sage_writer *w, const tpl_result *res)
{
    const tpl_output_desc *o = w->o;
    sbuf *b = &w->xbuf;
    if (w->xml_empty) {
        sbuf_add(b, ">\n", 2);
        w->xml_empty = 0;
    }
    sbuf_add(b, w->open_rec.p, w->open_rec.len);
    for (int t = 0; t < o->ntables; t++) {
        const tpl_table_desc *td = &o->tables[t];
        for (size_t r = 0; r < res->nrows[t]; r++) {
            const tval *row = &res->rows[t][r * (size_t)td->ncols];
            sbuf_add(b, w->open_row[t].p, w->open_row[t].len);
            for (int c = 0; c < td->ncols; c++) {
                size_t n = row[c].n;
                if (!n)
                    continue;
                /* one check for room for the name, the value and the closing quote; a name
                 * of up to ATTR_PAD bytes is moved as ATTR_PAD bytes (a fixed-size copy, no
                 * call), of which the ones after it are overwritten next */
                const sbuf *a = &w->attr[t][c];
                if (!b->p || b->len + ATTR_PAD + a->len + n + 2 > b->cap)
                    sbuf_grow(b, ATTR_PAD + a->len + n + 1);
                if (a->len <= ATTR_PAD)
                    memcpy(b->p + b->len, a->p, ATTR_PAD);
                else
                    memcpy(b->p + b->len, a->p, a->len);
                b->len += a->len;
                if (xml_attr_copy(b->p + b->len, row[c].p, n) == n) {
                    b->len += n;
                    b->p[b->len++] = '"';
                    continue;
                }
                b->p[b->len] = '\0';
                xml_value(b, row[c].p, n);
                sbuf_addc(b, '"');
            }
            b->p[b->len] = '\0';
            sbuf_add(b, "/>\n", 3);
        }
    }
    sbuf_add(b, w->close_rec.p, w->close_rec.len);
    return hand_over(w->xml, b, 0);
}

int sw_record(sage_writer *w, const tpl_result *res, sbuf *err)
{
    const tpl_output_desc *o = w->o;
    size_t rows = 0;
    for (int t = 0; t < o->ntables; t++)
        rows += res->nrows[t];
    if (!rows)
        return 0;
    for (int t = 0; t < o->ntables && w->csv[t]; t++)
        for (size_t r = 0; r < res->nrows[t]; r++)
            if (csv_row(w, t, &res->rows[t][r * (size_t)o->tables[t].ncols], o->tables[t].ncols) !=
                0) {
                sbuf_printf(err, "%s/%s: write failed", w->dir, of_name(w->csv[t]));
                return -1;
            }
    if (w->xml && xml_rows(w, res) != 0) {
        sbuf_printf(err, "%s/%s: write failed", w->dir, of_name(w->xml));
        return -1;
    }
    return 0;
}

int sw_close(sage_writer *w, pub_file *files, int *nfiles, sbuf *err)
{
    const tpl_output_desc *o = w->o;
    int rc = 0;
    *nfiles = 0;
    if (w->xml) {
        if (w->xml_empty)
            sbuf_add(&w->xbuf, "/>\n", 3);
        else
            sbuf_printf(&w->xbuf, "</%s>\n", o->xml_root);
        (void)hand_over(w->xml, &w->xbuf, 1); /* a failure is reported by of_finish */
    }
    for (int t = 0; t < o->ntables && rc == 0; t++)
        if (w->csv[t] && *nfiles < SW_MAX_FILES) {
            (void)hand_over(w->csv[t], &w->cbuf[t], 1);
            rc = of_finish(w->csv[t], &files[(*nfiles)++], err);
            w->csv[t] = NULL;
        }
    if (rc == 0 && w->xml) {
        rc = of_finish(w->xml, &files[(*nfiles)++], err);
        w->xml = NULL;
    }
    sw_abort(w); /* frees what is left (nothing, on success) */
    return rc;
}

char *sw_done_name(const tpl_output_desc *o, const char *batch)
{
    sbuf b = {0};
    sbuf_printf(&b, "%s_%s.done", o->prefix, batch);
    return b.p;
}

int sw_commit(sage_writer *w, sbuf *err)
{
    pub_file files[SW_MAX_FILES];
    int n = 0;
    char *dir = xstrdup(w->dir);
    char *done = sw_done_name(w->o, w->batch);
    int rc = sw_close(w, files, &n, err);
    if (rc == 0)
        rc = publish_files(dir, files, n, done, err);
    free(dir);
    free(done);
    return rc;
}

void sw_abort(sage_writer *w)
{
    if (!w)
        return;
    xml_unprepare(w);
    sbuf_free(&w->xbuf);
    for (int t = 0; t < w->o->ntables; t++) {
        of_abort(w->csv[t]);
        sbuf_free(&w->cbuf[t]);
    }
    of_abort(w->xml);
    free(w->csv);
    free(w->cbuf);
    sbuf_free(&w->cell);
    free(w->dir);
    free(w->batch);
    free(w);
}
