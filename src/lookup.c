/*
 * lookup.c - load "from,to" CSV lookup tables with libcsv into a hash table.
 *
 * The file must start with the header row from,to (any case).  Rows with
 * an empty "from" are skipped; a duplicate "from" is an error, because a
 * table that maps one key two ways cannot be what the editor meant.
 *
 * DIAGNOSTICS
 *	lk_load returns NULL with "FILE:LINE: what" in err: unreadable file,
 *	missing header, a row without exactly two fields, a duplicate key, or
 *	a CSV syntax error (an unterminated quote).
 */
#include "lookup.h"

#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *from, *to;
    size_t flen, tlen;
} entry;

struct lookup_table {
    entry *e;
    size_t n, cap;
    size_t *table; /* index + 1 */
    size_t tcap;
};

typedef struct {
    lookup_table *t;
    const char *path;
    sbuf *err;
    size_t line, field; /* line: rows seen; cur: the file's line being fed */
    size_t cur;
    char *cell[2];
    size_t len[2];
    int failed;
} loader;

/* trimmed - copy without surrounding spaces */
static char *trimmed(const char *s, size_t n, size_t *outlen)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    *outlen = n;
    return p;
}

static int keq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && strncasecmp(a, b, an) == 0;
}

static const entry *find(const lookup_table *t, const char *k, size_t n)
{
    if (!t->tcap)
        return NULL;
    size_t j = hash_bytes_ci(k, n) & (t->tcap - 1);
    while (t->table[j]) {
        const entry *e = &t->e[t->table[j] - 1];
        if (keq(e->from, e->flen, k, n))
            return e;
        j = (j + 1) & (t->tcap - 1);
    }
    return NULL;
}

static void insert_all(lookup_table *t)
{
    t->tcap = 16;
    while (t->tcap < t->n * 2)
        t->tcap *= 2;
    t->table = xcalloc(t->tcap, sizeof *t->table);
    for (size_t i = 0; i < t->n; i++) {
        size_t j = hash_bytes_ci(t->e[i].from, t->e[i].flen) & (t->tcap - 1);
        while (t->table[j])
            j = (j + 1) & (t->tcap - 1);
        t->table[j] = i + 1;
    }
}

static void on_field(void *s, size_t n, void *user)
{
    loader *L = user;
    if (L->field < 2) {
        free(L->cell[L->field]);
        L->cell[L->field] = trimmed(s ? s : "", s ? n : 0, &L->len[L->field]);
    }
    L->field++;
}

static void on_row(int c, void *user)
{
    (void)c;
    loader *L = user;
    L->line++;
    size_t line_no = L->cur; /* the line where this row ends */
    size_t nf = L->field;
    L->field = 0;
    if (L->failed)
        return;
    if (L->line == 1) {
        if (nf != 2 || strcasecmp(L->cell[0], "from") != 0 || strcasecmp(L->cell[1], "to") != 0) {
            sbuf_printf(L->err, "%s:1: a lookup table must start with the header row \"from,to\"",
                        L->path);
            L->failed = 1;
        }
        return;
    }
    if (nf == 1 && L->len[0] == 0)
        return; /* blank line */
    if (nf != 2) {
        sbuf_printf(L->err, "%s:%zu: expected 2 fields (from,to), found %zu", L->path, line_no, nf);
        L->failed = 1;
        return;
    }
    if (L->len[0] == 0)
        return;
    lookup_table *t = L->t;
    for (size_t i = 0; i < t->n; i++)
        if (keq(t->e[i].from, t->e[i].flen, L->cell[0], L->len[0])) {
            sbuf_printf(L->err, "%s:%zu: \"%s\" is listed twice; keep one row for it", L->path,
                        line_no, L->cell[0]);
            L->failed = 1;
            return;
        }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->e = xrealloc(t->e, t->cap * sizeof *t->e);
    }
    t->e[t->n++] = (entry){L->cell[0], L->cell[1], L->len[0], L->len[1]};
    L->cell[0] = L->cell[1] = NULL;
}

/* lk_load - read a lookup table */
lookup_table *lk_load(const char *path, sbuf *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sbuf_printf(err, "%s: cannot read the lookup table: %s", path, strerror(errno));
        return NULL;
    }
    lookup_table *t = xcalloc(1, sizeof *t);
    loader L = {.t = t, .path = path, .err = err};
    struct csv_parser cp;
    csv_init(&cp, CSV_APPEND_NULL);
    /* Fed one line at a time so that a message can name the line a person
     * sees in an editor (libcsv itself skips blank lines silently). */
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (!L.failed && (n = getline(&line, &cap, f)) > 0) {
        const char *p = line;
        if (L.cur++ == 0 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
            p += 3, n -= 3; /* the byte-order mark spreadsheets put first */
        if (csv_parse(&cp, p, (size_t)n, on_field, on_row, &L) != (size_t)n) {
            sbuf_printf(err, "%s:%zu: CSV error: %s", path, L.cur, csv_strerror(csv_error(&cp)));
            L.failed = 1;
        }
    }
    free(line);
    if (!L.failed && csv_fini(&cp, on_field, on_row, &L) != 0) {
        sbuf_printf(err, "%s:%zu: CSV error: %s (a quote is not closed)", path, L.cur,
                    csv_strerror(csv_error(&cp)));
        L.failed = 1;
    }
    if (!L.failed && L.line == 0) {
        sbuf_printf(err, "%s: the lookup table is empty; it needs at least the header row from,to",
                    path);
        L.failed = 1;
    }
    csv_free(&cp);
    fclose(f);
    free(L.cell[0]);
    free(L.cell[1]);
    if (L.failed) {
        lk_free(t);
        return NULL;
    }
    insert_all(t);
    return t;
}

void lk_free(lookup_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].from);
        free(t->e[i].to);
    }
    free(t->e);
    free(t->table);
    free(t);
}

const char *lk_get(const lookup_table *t, const char *key, size_t len, size_t *outlen)
{
    while (len && (*key == ' ' || *key == '\t'))
        key++, len--;
    while (len && (key[len - 1] == ' ' || key[len - 1] == '\t'))
        len--;
    const entry *e = find(t, key, len);
    if (!e)
        return NULL;
    if (outlen)
        *outlen = e->tlen;
    return e->to;
}

size_t lk_size(const lookup_table *t)
{
    return t->n;
}
