/*
 * record.c - schemas (path -> slot) and the records readers fill.
 *
 * The schema's lookup tables are open-addressed hash tables keyed by the
 * full path text; there is one table for header paths and one per item
 * group.  A record is reused for every record of a file: record_clear keeps
 * its buffers, so reading a file allocates only while records keep growing.
 */
#include "record.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char **paths;
    size_t *lens;
    int n, cap;
    int *table; /* slot + 1, 0 = empty */
    int tcap;
} pathtab;

struct rec_schema {
    pathtab groups; /* item group paths */
    pathtab hdr;    /* header slots */
    pathtab *items; /* one per group */
};

/* pt_find - slot of path, or -1 */
static int pt_find(const pathtab *t, const char *p, size_t n)
{
    if (!t->tcap)
        return -1;
    size_t j = hash_bytes(p, n) & (size_t)(t->tcap - 1);
    while (t->table[j]) {
        const char *q = t->paths[t->table[j] - 1];
        if (t->lens[t->table[j] - 1] == n && memcmp(q, p, n) == 0)
            return t->table[j] - 1;
        j = (j + 1) & (size_t)(t->tcap - 1);
    }
    return -1;
}

/* pt_add - find or insert path */
static int pt_add(pathtab *t, const char *p)
{
    size_t n = strlen(p);
    int i = pt_find(t, p, n);
    if (i >= 0)
        return i;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->paths = xrealloc(t->paths, (size_t)t->cap * sizeof *t->paths);
        t->lens = xrealloc(t->lens, (size_t)t->cap * sizeof *t->lens);
    }
    t->lens[t->n] = n;
    t->paths[t->n] = xstrdup(p);
    i = t->n++;
    if (t->n * 2 > t->tcap) {
        int cap = t->tcap ? t->tcap * 2 : 32;
        while (t->n * 2 > cap)
            cap *= 2;
        free(t->table);
        t->table = xcalloc((size_t)cap, sizeof *t->table);
        t->tcap = cap;
        for (int k = 0; k < t->n; k++) {
            size_t j = hash_bytes(t->paths[k], t->lens[k]) & (size_t)(cap - 1);
            while (t->table[j])
                j = (j + 1) & (size_t)(cap - 1);
            t->table[j] = k + 1;
        }
    } else {
        size_t j = hash_bytes(p, n) & (size_t)(t->tcap - 1);
        while (t->table[j])
            j = (j + 1) & (size_t)(t->tcap - 1);
        t->table[j] = i + 1;
    }
    return i;
}

static void pt_free(pathtab *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->paths[i]);
    free(t->paths);
    free(t->lens);
    free(t->table);
}

rec_schema *schema_new(void)
{
    return xcalloc(1, sizeof(rec_schema));
}

void schema_free(rec_schema *s)
{
    if (!s)
        return;
    for (int g = 0; g < s->groups.n; g++)
        pt_free(&s->items[g]);
    free(s->items);
    pt_free(&s->groups);
    pt_free(&s->hdr);
    free(s);
}

/* schema_group - id of the item group at path (an array of objects) */
int schema_group(rec_schema *s, const char *path)
{
    int before = s->groups.n;
    int g = pt_add(&s->groups, path);
    if (s->groups.n != before) {
        s->items = xrealloc(s->items, (size_t)s->groups.n * sizeof *s->items);
        memset(&s->items[g], 0, sizeof s->items[g]);
    }
    return g;
}

/* schema_slot - slot id of path in the header (group -1) or in an item group */
int schema_slot(rec_schema *s, int group, const char *path)
{
    return pt_add(group == REC_HEADER ? &s->hdr : &s->items[group], path);
}

int schema_find_group(const rec_schema *s, const char *path, size_t len)
{
    return pt_find(&s->groups, path, len);
}

int schema_find_slot(const rec_schema *s, int group, const char *path, size_t len)
{
    return pt_find(group == REC_HEADER ? &s->hdr : &s->items[group], path, len);
}

int schema_ngroups(const rec_schema *s)
{
    return s->groups.n;
}

int schema_nslots(const rec_schema *s, int group)
{
    return group == REC_HEADER ? s->hdr.n : s->items[group].n;
}

const char *schema_group_path(const rec_schema *s, int group)
{
    return s->groups.paths[group];
}

const char *schema_slot_path(const rec_schema *s, int group, int slot)
{
    return (group == REC_HEADER ? &s->hdr : &s->items[group])->paths[slot];
}

/* record_init - bind a record to a schema that is complete (no more slots added) */
void record_init(record *r, const rec_schema *s)
{
    memset(r, 0, sizeof *r);
    r->schema = s;
    r->hdr = xcalloc((size_t)schema_nslots(s, REC_HEADER) + 1, sizeof *r->hdr);
    r->groups = xcalloc((size_t)schema_ngroups(s) + 1, sizeof *r->groups);
    for (int g = 0; g < schema_ngroups(s); g++)
        r->groups[g].nslots = (size_t)schema_nslots(s, g);
}

/* record_clear - forget the values, keep the memory */
void record_clear(record *r)
{
    sbuf_reset(&r->text);
    memset(r->hdr, 0, (size_t)schema_nslots(r->schema, REC_HEADER) * sizeof *r->hdr);
    for (int g = 0; g < schema_ngroups(r->schema); g++)
        r->groups[g].nitems = 0;
    r->not_object = false;
}

void record_free(record *r)
{
    sbuf_free(&r->text);
    free(r->hdr);
    if (r->groups)
        for (int g = 0; g < schema_ngroups(r->schema); g++)
            free(r->groups[g].vals);
    free(r->groups);
    memset(r, 0, sizeof *r);
}

/* record_copy - dst becomes src's equal, in dst's own memory (grown when needed) */
void record_copy(record *dst, const record *src)
{
    const rec_schema *s = src->schema;
    sbuf_reset(&dst->text);
    sbuf_add(&dst->text, src->text.p ? src->text.p : "", src->text.len);
    memcpy(dst->hdr, src->hdr, (size_t)schema_nslots(s, REC_HEADER) * sizeof *dst->hdr);
    for (int g = 0; g < schema_ngroups(s); g++) {
        const rec_group *a = &src->groups[g];
        rec_group *b = &dst->groups[g];
        size_t n = a->nitems * a->nslots;
        if (b->cap < a->nitems) {
            b->cap = a->nitems;
            b->vals = xrealloc(b->vals, b->cap * (b->nslots ? b->nslots : 1) * sizeof *b->vals);
        }
        if (n)
            memcpy(b->vals, a->vals, n * sizeof *b->vals);
        b->nitems = a->nitems;
    }
    dst->index = src->index;
    dst->offset = src->offset;
    dst->line = src->line;
    dst->not_object = src->not_object;
}

/* record_new_item - start the next item of a group, all of its slots unset */
int record_new_item(record *r, int group)
{
    rec_group *g = &r->groups[group];
    size_t ns = g->nslots;
    if (g->nitems == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 8;
        g->vals = xrealloc(g->vals, g->cap * (ns ? ns : 1) * sizeof *g->vals);
    }
    if (ns)
        memset(&g->vals[g->nitems * ns], 0, ns * sizeof *g->vals);
    return (int)g->nitems++;
}

/* record_set - store a value for the header or the current item of a group */
void record_set(record *r, int group, int slot, const char *v, size_t n)
{
    rec_val *dst;
    if (group == REC_HEADER) {
        dst = &r->hdr[slot];
    } else {
        rec_group *g = &r->groups[group];
        if (!g->nitems)
            return;
        dst = &g->vals[(g->nitems - 1) * g->nslots + (size_t)slot];
    }
    dst->off = (uint32_t)r->text.len;
    dst->len1 = (uint32_t)n + 1; /* n < CIN_MAX_RECORD (64 MiB) */
    sbuf_add(&r->text, v, n);
    sbuf_addc(&r->text, '\0');
}
