/*
 * sage_out.c - write Sage 500 staging-table files.
 *
 * CSV: header row of the exact staging column names, RFC 4180 quoting
 * (through libcsv's csv_write, and only for fields that need it: a comma,
 * a double quote, CR or LF), CRLF line ends, UTF-8 without BOM.
 *
 * XML: one document per batch through libxml2's text writer: the output's
 * root element (with the batch id), one record element per record holding
 * each table's rows as elements named after the table, columns as child
 * elements in column order; an empty value is omitted, which the schemas
 * in xsd/ allow for every optional column.
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
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "publish.h"

struct sage_writer {
    const tpl_output_desc *o;
    char *dir, *batch;
    int formats;
    ofile **csv; /* per table */
    ofile *xml;
    xmlTextWriterPtr xw;
    sbuf cell; /* quoting scratch */
    sbuf line; /* one CSV row */
    int failed;
};

static int xml_write_cb(void *ctx, const char *buf, int len)
{
    return of_write(ctx, buf, (size_t)len) == 0 ? len : -1;
}

static int xml_close_cb(void *ctx)
{
    (void)ctx;
    return 0;
}

/* csv_cell - append one field to the row, quoted only when it must be */
static void csv_cell(sage_writer *w, const char *p, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = p[i] == ',' || p[i] == '"' || p[i] == '\r' || p[i] == '\n';
    if (!quote) {
        sbuf_add(&w->line, p, n);
        return;
    }
    size_t need = csv_write(NULL, 0, p, n);
    sbuf_grow(&w->cell, need);
    csv_write(w->cell.p, need, p, n);
    sbuf_add(&w->line, w->cell.p, need);
}

static int csv_row(sage_writer *w, ofile *f, const tval *vals, int ncols)
{
    sbuf_reset(&w->line);
    for (int i = 0; i < ncols; i++) {
        if (i)
            sbuf_addc(&w->line, ',');
        csv_cell(w, vals[i].p, vals[i].n);
    }
    sbuf_add(&w->line, "\r\n", 2);
    return of_write(f, w->line.p, w->line.len);
}

/* csv_header - the row of staging column names */
static int csv_header(sage_writer *w, ofile *f, const tpl_table_desc *td)
{
    tval *names = xcalloc((size_t)td->ncols + 1, sizeof *names);
    for (int i = 0; i < td->ncols; i++)
        names[i] = (tval){td->cols[i], strlen(td->cols[i])};
    int rc = csv_row(w, f, names, td->ncols);
    free(names);
    return rc;
}

static char *file_name(const sage_writer *w, const char *suffix)
{
    sbuf b = {0};
    sbuf_printf(&b, "%s_%s%s", w->o->prefix, w->batch, suffix);
    return b.p;
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
    if (formats & SW_CSV) {
        for (int t = 0; t < o->ntables; t++) {
            sbuf suffix = {0};
            sbuf_printf(&suffix, "_%s.csv", o->tables[t].name);
            char *name = file_name(w, suffix.p);
            sbuf_free(&suffix);
            w->csv[t] = of_open(dir, name, err);
            free(name);
            if (!w->csv[t] || csv_header(w, w->csv[t], &o->tables[t]) != 0) {
                sw_abort(w);
                return NULL;
            }
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
        xmlOutputBufferPtr ob = xmlOutputBufferCreateIO(xml_write_cb, xml_close_cb, w->xml, NULL);
        w->xw = xmlNewTextWriter(ob);
        xmlTextWriterSetIndent(w->xw, 1);
        xmlTextWriterSetIndentString(w->xw, (const xmlChar *)"  ");
        if (xmlTextWriterStartDocument(w->xw, NULL, "UTF-8", NULL) < 0 ||
            xmlTextWriterStartElement(w->xw, (const xmlChar *)o->xml_root) < 0 ||
            xmlTextWriterWriteAttribute(w->xw, (const xmlChar *)"xmlns",
                                        (const xmlChar *)o->xml_ns) < 0 ||
            xmlTextWriterWriteAttribute(w->xw, (const xmlChar *)"batch", (const xmlChar *)batch) <
                0) {
            sbuf_printf(err, "%s/%s: cannot write the XML file", dir, of_name(w->xml));
            sw_abort(w);
            return NULL;
        }
    }
    return w;
}

static int xml_rows(sage_writer *w, const tpl_result *res)
{
    const tpl_output_desc *o = w->o;
    xmlTextWriterPtr x = w->xw;
    if (xmlTextWriterStartElement(x, (const xmlChar *)o->xml_record) < 0)
        return -1;
    for (int t = 0; t < o->ntables; t++) {
        const tpl_table_desc *td = &o->tables[t];
        for (size_t r = 0; r < res->nrows[t]; r++) {
            const tval *row = &res->rows[t][r * (size_t)td->ncols];
            if (xmlTextWriterStartElement(x, (const xmlChar *)td->name) < 0)
                return -1;
            for (int c = 0; c < td->ncols; c++) {
                if (!row[c].n)
                    continue;
                /* values are NUL-terminated in the result arena or the record */
                char *v = strndup(row[c].p, row[c].n);
                int rc =
                    xmlTextWriterWriteElement(x, (const xmlChar *)td->cols[c], (const xmlChar *)v);
                free(v);
                if (rc < 0)
                    return -1;
            }
            if (xmlTextWriterEndElement(x) < 0)
                return -1;
        }
    }
    return xmlTextWriterEndElement(x) < 0 ? -1 : 0;
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
            if (csv_row(w, w->csv[t], &res->rows[t][r * (size_t)o->tables[t].ncols],
                        o->tables[t].ncols) != 0) {
                sbuf_printf(err, "%s/%s: write failed", w->dir, of_name(w->csv[t]));
                return -1;
            }
    if (w->xw && xml_rows(w, res) != 0) {
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
    if (w->xw) {
        if (xmlTextWriterEndDocument(w->xw) < 0 || xmlTextWriterFlush(w->xw) < 0) {
            sbuf_printf(err, "%s/%s: write failed", w->dir, of_name(w->xml));
            sw_abort(w);
            return -1;
        }
        xmlFreeTextWriter(w->xw);
        w->xw = NULL;
    }
    for (int t = 0; t < o->ntables && rc == 0; t++)
        if (w->csv[t] && *nfiles < SW_MAX_FILES) {
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
    if (w->xw)
        xmlFreeTextWriter(w->xw);
    for (int t = 0; t < w->o->ntables; t++)
        of_abort(w->csv[t]);
    of_abort(w->xml);
    free(w->csv);
    sbuf_free(&w->cell);
    sbuf_free(&w->line);
    free(w->dir);
    free(w->batch);
    free(w);
}
