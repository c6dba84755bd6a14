/*
 * sage_in.c - Sage export CSV files to records, with libcsv.
 *
 * The file is fed to libcsv one line at a time, so that every record knows
 * the line it starts on (a quoted field may span lines; the record keeps
 * its first).  The header row is matched against the schema once; after
 * that each field goes straight to its slot or is dropped.
 *
 * DIAGNOSTICS
 *	sin_read_fd returns SIN_UNCLOSED for a file ending inside a quoted
 *	field (the spool treats it like a truncated JSON file: maybe still
 *	arriving), SIN_EMPTY for a file without a header, SIN_IO for a read
 *	error; sin_message says more.
 */
#include "sage_in.h"

#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct sage_reader {
    const rec_schema *schema;
    sin_header_fn hf;
    sin_record_fn rf;
    void *ctx;
    struct csv_parser p;
    record rec;
    bool have_rec;
    char **head;
    int nhead, caphead;
    int *slot; /* per column: header slot or -1 */
    int col;
    bool in_header, stopped, last_nl;
    bool in_fini, unclosed; /* a row that only csv_fini ended, after a line end: an open quote */
    uint64_t line, row_line, offset, row_offset, nrows;
    char msg[256];
};

sage_reader *sin_new(const rec_schema *schema, sin_header_fn hf, sin_record_fn rf, void *ctx)
{
    sage_reader *r = xcalloc(1, sizeof *r);
    r->schema = schema;
    r->hf = hf;
    r->rf = rf;
    r->ctx = ctx;
    r->in_header = true;
    csv_init(&r->p, CSV_APPEND_NULL);
    return r;
}

void sin_free(sage_reader *r)
{
    if (!r)
        return;
    csv_free(&r->p);
    if (r->have_rec)
        record_free(&r->rec);
    for (int i = 0; i < r->nhead; i++)
        free(r->head[i]);
    free(r->head);
    free(r->slot);
    free(r);
}

void sin_bind(sage_reader *r)
{
    free(r->slot);
    r->slot = xcalloc((size_t)r->nhead + 1, sizeof *r->slot);
    int ns = schema_nslots(r->schema, REC_HEADER);
    for (int c = 0; c < r->nhead; c++) {
        r->slot[c] = -1;
        for (int s = 0; s < ns; s++)
            if (strcasecmp(schema_slot_path(r->schema, REC_HEADER, s), r->head[c]) == 0)
                r->slot[c] = s;
    }
    if (!r->have_rec) {
        record_init(&r->rec, r->schema);
        r->have_rec = true;
    }
}

static void on_field(void *s, size_t n, void *u)
{
    sage_reader *r = u;
    if (r->stopped)
        return;
    if (r->col == 0)
        r->row_line = r->line, r->row_offset = r->offset;
    const char *v = s ? (const char *)s : "";
    if (r->in_header) {
        if (r->nhead == r->caphead) {
            r->caphead = r->caphead ? r->caphead * 2 : 32;
            r->head = xrealloc(r->head, (size_t)r->caphead * sizeof *r->head);
        }
        /* trimmed: "ItemID " in a hand-edited header is still ItemID */
        while (n && (*v == ' ' || *v == '\t'))
            v++, n--;
        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (r->nhead == 0 && n >= 3 && memcmp(v, "\xEF\xBB\xBF", 3) == 0)
            v += 3, n -= 3; /* Excel's byte-order mark */
        r->head[r->nhead++] = strndup(v, n);
    } else if (r->have_rec && r->slot && r->col < r->nhead && r->slot[r->col] >= 0) {
        record_set(&r->rec, REC_HEADER, r->slot[r->col], v, n);
    }
    r->col++;
}

static void on_row(int c, void *u)
{
    (void)c;
    sage_reader *r = u;
    if (r->in_fini && r->last_nl) {
        /* the last line ended, yet a row was still open: it ends inside a quoted field */
        r->unclosed = true;
        r->col = 0;
        return;
    }
    if (r->stopped) {
        r->col = 0;
        return;
    }
    if (r->in_header) {
        r->in_header = false;
        if (r->hf(r->ctx, r->head, r->nhead) != 0)
            r->stopped = true;
        r->col = 0;
        return;
    }
    if (r->col == 1 && r->have_rec && r->rec.text.len == 0) {
        /* a blank line: not a record */
    } else if (r->have_rec) {
        r->nrows++;
        r->rec.index = r->nrows;
        r->rec.line = r->row_line;
        r->rec.offset = r->row_offset;
        if (r->rf(r->ctx, &r->rec) != 0)
            r->stopped = true;
    }
    if (r->have_rec)
        record_clear(&r->rec);
    r->col = 0;
}

sin_status sin_read_fd(sage_reader *r, int fd)
{
    FILE *f = fdopen(dup(fd), "rb");
    if (!f) {
        snprintf(r->msg, sizeof r->msg, "cannot read: %s", strerror(errno));
        return SIN_IO;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    r->line = 0;
    while (!r->stopped && (n = getline(&line, &cap, f)) > 0) {
        r->line++;
        r->last_nl = line[n - 1] == '\n';
        csv_parse(&r->p, line, (size_t)n, on_field, on_row, r);
        r->offset += (uint64_t)n;
    }
    int err = ferror(f);
    free(line);
    fclose(f);
    if (err) {
        snprintf(r->msg, sizeof r->msg, "read error");
        return SIN_IO;
    }
    if (r->stopped)
        return SIN_STOPPED;
    r->in_fini = true;
    if (csv_fini(&r->p, on_field, on_row, r) != 0 || r->unclosed) {
        snprintf(r->msg, sizeof r->msg, "the file ends inside a quoted field (a \" is not closed)");
        return SIN_UNCLOSED;
    }
    if (r->stopped)
        return SIN_STOPPED;
    if (r->in_header) {
        snprintf(r->msg, sizeof r->msg, "the file has no header row");
        return SIN_EMPTY;
    }
    return SIN_OK;
}

const char *sin_message(const sage_reader *r)
{
    return r->msg;
}

uint64_t sin_line(const sage_reader *r)
{
    return r->line;
}

int sin_ended_without_newline(const sage_reader *r)
{
    return r->line > 0 && !r->last_nl;
}

int sin_tail_state(int fd)
{
    char c;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end <= 0 || pread(fd, &c, 1, end - 1) != 1)
        return 1;
    return c == '\n' ? 0 : 1;
}
