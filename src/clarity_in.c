/*
 * clarity_in.c - Clarity JSON exports to records, streaming, on yajl.
 *
 * The parser keeps a stack of containers.  Inside a record it keeps the
 * dotted path of the current position; each scalar is looked up in the
 * schema and, when a template uses it, copied into the record.  An array
 * whose path is an item group of the schema starts a fresh item for each
 * object in it, and paths inside restart from the item.
 *
 * Shapes.  A top-level '[' makes its object elements records.  A top-level
 * '{' is first taken as a record (NDJSON); if one of its members is an
 * array named like a kind ("orders", "products", "customers", "payments"),
 * the object is a wrapper instead: what was collected is dropped and the
 * elements of that array become the records.
 *
 * Numbers are kept as the text the file has (yajl's number callback), so
 * no amount ever passes through a double.  yajl validates UTF-8 in strings.
 *
 * DIAGNOSTICS
 *	cin_feed/cin_finish return a status; cin_message and cin_error_offset
 *	say what and where.  A file that ends inside a value is CIN_TRUNCATED,
 *	which the spool treats as "maybe still arriving".
 */
#include "clarity_in.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define CIN_SHAPE_CACHE 128 /* scalars per record whose path lookup is remembered */

typedef struct {
    int group, slot;
    size_t len;
    char path[48];
} shape_entry;

typedef struct {
    size_t path_len; /* length of path at this container */
    int is_array;
    uint64_t index;  /* next element index (arrays) */
    int group;       /* item group this array is, or -1 */
    int ctx_group;   /* namespace of paths inside: REC_HEADER or a group */
    size_t ctx_base; /* path length where the namespace starts */
} frame;

struct cin_parser {
    yajl_handle y;
    const rec_schema *schema;
    cin_record_fn fn;
    void *ctx;
    record rec;

    frame stack[CIN_MAX_DEPTH + 2];
    int depth;      /* containers open */
    int rec_depth;  /* depth of the record's own object, 0 = none open */
    int wrap_depth; /* depth of the wrapper's array, 0 = none */
    cin_shape shape;
    char wrapper_kind[16];
    int pending_wrap; /* last key at depth 1 names a kind */
    char pending_kind[16];

    sbuf path;       /* current path inside the record */
    size_t nscalars; /* scalars stored in the current record (find_slot) */
    shape_entry shape_cache[CIN_SHAPE_CACHE];
    uint64_t last_end; /* file offset just after the previous token */
    uint64_t carry;    /* first offset after last_end that is not blank or "," */
    uint64_t base;     /* file offset of the current chunk */
    const char *chunk;
    uint64_t line_pos, line_no; /* newlines counted in [0, line_pos) */
    uint64_t nrecords;
    int bom_seen; /* bytes of a byte-order mark matched at the start */
    int first_done;
    sbuf first_keys; /* "\0key\0key\0" of the first record */

    cin_status status;
    char msg[256];
    uint64_t err_off, err_line;
};

static const char *const kinds[] = {"orders", "products", "customers", "payments"};

/* count_lines - advance the line count to file offset `to` within this chunk */
static void count_lines(cin_parser *p, uint64_t to)
{
    if (to <= p->line_pos)
        return;
    uint64_t from = p->line_pos > p->base ? p->line_pos : p->base;
    const char *s = p->chunk + (from - p->base), *e = p->chunk + (to - p->base);
    while (s < e && (s = memchr(s, '\n', (size_t)(e - s))) != NULL) {
        p->line_no++;
        s++;
    }
    p->line_pos = to;
}

/* here - file offset of the end of the token being reported */
static uint64_t here(cin_parser *p)
{
    return p->base + yajl_get_bytes_consumed(p->y);
}

static int fail(cin_parser *p, cin_status st, const char *fmt, const char *arg)
{
    p->status = st;
    snprintf(p->msg, sizeof p->msg, fmt, arg);
    p->err_off = here(p);
    return 0;
}

/* in_record - inside a record's object (at any depth below it) */
static int in_record(const cin_parser *p)
{
    return p->rec_depth > 0 && p->depth >= p->rec_depth;
}

/* element_path - extend the path for the next value of the current container */
static void element_path(cin_parser *p)
{
    frame *f = &p->stack[p->depth];
    if (!f->is_array || !in_record(p))
        return;
    if (f->group >= 0) /* item arrays: the item is the new namespace */
        return;
    p->path.len = f->path_len;
    char ix[32];
    int n = snprintf(ix, sizeof ix, "[%llu]", (unsigned long long)f->index);
    sbuf_add(&p->path, ix, (size_t)n);
}

/* after_value - a value of the current container is complete */
static void after_value(cin_parser *p)
{
    frame *f = &p->stack[p->depth];
    if (f->is_array)
        f->index++;
}

/* same_bytes - a[0..n) == b[0..n), n <= 48, by 8-byte words (the last one overlapping the one
 * before): glibc's memcmp reads a short string with one masked vector load, which stalled
 * here for as long as the stores of the path just appended took to reach the cache */
static inline int same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t x, y;
    if (n < 8) {
        size_t i = 0;
        for (; i < n; i++)
            if (a[i] != b[i])
                return 0;
        return 1;
    }
    size_t i = 0;
    for (; i + 8 < n; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return 0;
    }
    memcpy(&x, a + n - 8, 8);
    memcpy(&y, b + n - 8, 8);
    return x == y;
}

/* find_slot - the schema slot of a path.  Records of one export share their shape, so the
 * k-th scalar of a record mostly has the path the k-th scalar of the previous record had:
 * that is checked first (one comparison), before the schema's hash table. */
static int find_slot(cin_parser *p, int group, const char *path, size_t plen)
{
    size_t k = p->nscalars++;
    if (k < CIN_SHAPE_CACHE) {
        shape_entry *e = &p->shape_cache[k];
        if (e->group == group && e->len == plen && plen <= sizeof e->path &&
            same_bytes(e->path, path, plen))
            return e->slot;
        int slot = schema_find_slot(p->schema, group, path, plen);
        if (plen <= sizeof e->path) {
            e->group = group;
            e->len = plen;
            memcpy(e->path, path, plen);
            e->slot = slot;
        }
        return slot;
    }
    return schema_find_slot(p->schema, group, path, plen);
}

/* store - a scalar inside a record */
static int store(cin_parser *p, const char *v, size_t n)
{
    if (!in_record(p))
        return 1;
    element_path(p);
    frame *f = &p->stack[p->depth];
    if (f->is_array && f->group >= 0)
        return 1; /* a scalar where an item object was expected: ignored */
    const char *path = p->path.p + f->ctx_base;
    size_t plen = p->path.len - f->ctx_base;
    if (f->ctx_base < p->path.len && *path == '.')
        path++, plen--;
    int slot = find_slot(p, f->ctx_group, path, plen);
    if (slot >= 0) {
        if (p->rec.text.len + n > CIN_MAX_RECORD)
            return fail(p, CIN_TOO_LARGE, "record larger than %s", "64 MiB");
        record_set(&p->rec, f->ctx_group, slot, v, n);
    }
    return 1;
}

/* value_start - offset of the token being reported: the first byte after the
 * previous token that is neither blank nor ','.  yajl reports where a token
 * ends, and a string's raw length is not its decoded length, so the start is
 * found from the other side. */
static uint64_t value_start(cin_parser *p)
{
    uint64_t pos = p->last_end >= p->base ? p->last_end : p->carry;
    if (pos < p->base)
        return pos;
    const char *s = p->chunk + (pos - p->base), *e = p->chunk + (here(p) - p->base);
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == ','))
        s++;
    return p->base + (uint64_t)(s - p->chunk);
}

/* not_object - an element of the top-level array that is not an object: a
 * record of its own, so that the error names its position */
static int not_object(cin_parser *p)
{
    p->nrecords++;
    record_clear(&p->rec);
    p->rec.index = p->nrecords;
    p->rec.offset = value_start(p);
    count_lines(p, p->rec.offset);
    p->rec.line = p->line_no + 1;
    p->rec.not_object = true;
    if (p->fn(p->ctx, &p->rec) != 0)
        return fail(p, CIN_STOPPED, "%s", "stopped");
    return 1;
}

/* top_array_element - the next value is an element of the top-level array, outside any record */
static int top_array_element(const cin_parser *p)
{
    return p->depth == 1 && p->shape == CIN_SHAPE_ARRAY && !in_record(p);
}

static int scalar(cin_parser *p, const char *v, size_t n)
{
    if (top_array_element(p)) {
        after_value(p);
        return not_object(p);
    }
    if (p->depth == 0)
        return fail(p, CIN_SHAPE, "%s", "the file holds a bare value, not Clarity records");
    p->pending_wrap = 0;
    int r = store(p, v, n);
    after_value(p);
    return r;
}

static int do_null(cin_parser *p)
{
    if (top_array_element(p) || p->depth == 0)
        return scalar(p, "", 0);
    p->pending_wrap = 0;
    if (in_record(p))
        element_path(p);
    after_value(p);
    return 1;
}

static int do_bool(cin_parser *p, int b)
{
    return scalar(p, b ? "true" : "false", b ? 4 : 5);
}

static int do_number(cin_parser *p, const char *s, size_t n)
{
    return scalar(p, s, n);
}

static int do_string(cin_parser *p, const unsigned char *s, size_t n)
{
    if (!utf8_valid((const char *)s, n))
        return fail(p, CIN_SYNTAX, "%s", "invalid UTF-8 in a string (overlong or surrogate)");
    return scalar(p, (const char *)s, n);
}

/* push - open a container */
static int push(cin_parser *p, int is_array)
{
    if (p->depth >= CIN_MAX_DEPTH)
        return fail(p, CIN_TOO_DEEP, "nesting deeper than %s levels", "64");
    frame *parent = &p->stack[p->depth];
    frame *f = &p->stack[++p->depth];
    f->is_array = is_array;
    f->index = 0;
    f->group = -1;
    f->ctx_group = parent->ctx_group;
    f->ctx_base = parent->ctx_base;
    f->path_len = p->path.len;
    return 1;
}

/* begin_record - the object just opened is a record */
static void begin_record(cin_parser *p)
{
    p->nrecords++;
    record_clear(&p->rec);
    p->rec.index = p->nrecords;
    p->rec.offset = here(p) - 1;
    count_lines(p, p->rec.offset);
    p->rec.line = p->line_no + 1;
    p->rec_depth = p->depth;
    p->nscalars = 0;
    sbuf_reset(&p->path);
    frame *f = &p->stack[p->depth];
    f->path_len = 0;
    f->ctx_group = REC_HEADER;
    f->ctx_base = 0;
}

static int do_start_map(cin_parser *p)
{
    int top = p->depth == 0;
    int array_elem = p->depth == 1 && p->shape == CIN_SHAPE_ARRAY && !in_record(p);
    int wrap_elem = p->wrap_depth && p->depth == p->wrap_depth && !in_record(p);
    p->pending_wrap = 0;
    if (in_record(p)) {
        element_path(p);
        frame *parent = &p->stack[p->depth];
        if (parent->is_array && parent->group >= 0) {
            /* an item of a group */
            if (!push(p, 0))
                return 0;
            record_new_item(&p->rec, parent->group);
            frame *f = &p->stack[p->depth];
            f->ctx_group = parent->group;
            f->ctx_base = p->path.len;
            return 1;
        }
        return push(p, 0);
    }
    if (top && p->shape == CIN_SHAPE_UNKNOWN)
        p->shape = CIN_SHAPE_OBJECTS;
    if (!push(p, 0))
        return 0;
    if (top || array_elem || wrap_elem)
        begin_record(p);
    return 1;
}

static int do_map_key(cin_parser *p, const unsigned char *k, size_t n)
{
    if (!utf8_valid((const char *)k, n))
        return fail(p, CIN_SYNTAX, "%s", "invalid UTF-8 in a key (overlong or surrogate)");
    frame *f = &p->stack[p->depth];
    p->pending_wrap = 0;
    if (p->depth == 1 && p->shape != CIN_SHAPE_ARRAY) {
        for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
            if (strlen(kinds[i]) == n && memcmp(kinds[i], k, n) == 0) {
                p->pending_wrap = 1;
                snprintf(p->pending_kind, sizeof p->pending_kind, "%s", kinds[i]);
            }
    }
    if (!in_record(p))
        return 1;
    if (p->depth == p->rec_depth && !p->first_done) {
        sbuf_add(&p->first_keys, k, n);
        sbuf_addc(&p->first_keys, '\0');
    }
    p->path.len = f->path_len;
    if (p->path.len > f->ctx_base)
        sbuf_addc(&p->path, '.');
    else if (p->path.len == 0 && p->path.p)
        p->path.p[0] = '\0';
    sbuf_add(&p->path, k, n);
    return 1;
}

static int do_end_map(cin_parser *p)
{
    int was_record = p->rec_depth == p->depth;
    p->depth--;
    p->pending_wrap = 0;
    if (was_record) {
        p->rec_depth = 0;
        p->first_done = 1;
        if (p->fn(p->ctx, &p->rec) != 0)
            return fail(p, CIN_STOPPED, "%s", "stopped");
    }
    p->path.len = p->stack[p->depth + 1].path_len;
    if (p->path.p)
        p->path.p[p->path.len] = '\0';
    if (p->depth > 0)
        after_value(p);
    return p->status == CIN_OK;
}

static int do_start_array(cin_parser *p)
{
    if (top_array_element(p)) {
        after_value(p);
        if (!not_object(p))
            return 0;
        return push(p, 1);
    }
    if (p->depth == 0) {
        if (p->shape == CIN_SHAPE_UNKNOWN)
            p->shape = CIN_SHAPE_ARRAY;
        return push(p, 1);
    }
    /* A kind-named array is a wrapper only while the object has given no
     * field a template uses: {"orderId":…,"payments":[…]} is an order. */
    if (p->pending_wrap && p->depth == 1 && in_record(p) && p->rec.text.len == 0 &&
        p->nrecords == 1) {
        /* {"orders": [ ... : the top-level object was a wrapper */
        p->pending_wrap = 0;
        p->shape = CIN_SHAPE_WRAPPER;
        memcpy(p->wrapper_kind, p->pending_kind, sizeof p->wrapper_kind);
        p->rec_depth = 0;
        p->nrecords--;
        p->first_done = 0;
        sbuf_reset(&p->first_keys);
        sbuf_reset(&p->path);
        if (!push(p, 1))
            return 0;
        p->wrap_depth = p->depth;
        return 1;
    }
    p->pending_wrap = 0;
    if (!in_record(p))
        return push(p, 1);
    element_path(p);
    frame *parent = &p->stack[p->depth];
    const char *path = p->path.p + parent->ctx_base;
    size_t plen = p->path.len - parent->ctx_base;
    if (parent->ctx_base < p->path.len && *path == '.')
        path++, plen--;
    int g = parent->ctx_group == REC_HEADER ? schema_find_group(p->schema, path, plen) : -1;
    if (!push(p, 1))
        return 0;
    p->stack[p->depth].group = g;
    return 1;
}

static int do_end_array(cin_parser *p)
{
    if (p->wrap_depth == p->depth)
        p->wrap_depth = 0;
    p->depth--;
    p->path.len = p->stack[p->depth + 1].path_len;
    if (p->path.p)
        p->path.p[p->path.len] = '\0';
    if (p->depth > 0)
        after_value(p);
    return 1;
}

/* Every callback at the top level records where its token ended (for value_start, which
 * only a top-level element asks for: the token before one is '[' or the end of the element
 * before it, both reported at depth 1 or 0).  Tokens inside records do not: asking yajl
 * for the offset was 1 % of a conversion. */
#define CB(name, args, call)                                                                       \
    static int cb_##name args                                                                      \
    {                                                                                              \
        cin_parser *p = ctx;                                                                       \
        int r = call;                                                                              \
        if (p->depth <= 1)                                                                         \
            p->last_end = here(p);                                                                 \
        return r;                                                                                  \
    }
CB(null, (void *ctx), do_null(p))
CB(bool, (void *ctx, int b), do_bool(p, b))
CB(number, (void *ctx, const char *s, size_t n), do_number(p, s, n))
CB(string, (void *ctx, const unsigned char *s, size_t n), do_string(p, s, n))
CB(start_map, (void *ctx), do_start_map(p))
CB(map_key, (void *ctx, const unsigned char *k, size_t n), do_map_key(p, k, n))
CB(end_map, (void *ctx), do_end_map(p))
CB(start_array, (void *ctx), do_start_array(p))
CB(end_array, (void *ctx), do_end_array(p))

static const yajl_callbacks callbacks = {
    cb_null,      cb_bool,    NULL,       NULL,           cb_number,    cb_string,
    cb_start_map, cb_map_key, cb_end_map, cb_start_array, cb_end_array,
};

/* cin_new - a parser that calls fn for every record */
cin_parser *cin_new(const rec_schema *schema, cin_record_fn fn, void *ctx)
{
    cin_parser *p = xcalloc(1, sizeof *p);
    p->schema = schema;
    p->fn = fn;
    p->ctx = ctx;
    for (int i = 0; i < CIN_SHAPE_CACHE; i++)
        p->shape_cache[i].group = -2; /* matches no path */
    record_init(&p->rec, schema);
    p->y = yajl_alloc(&callbacks, NULL, p);
    yajl_config(p->y, yajl_allow_multiple_values, 1);
    p->stack[0].ctx_group = REC_HEADER;
    p->stack[0].group = -1;
    return p;
}

void cin_free(cin_parser *p)
{
    if (!p)
        return;
    yajl_free(p->y);
    record_free(&p->rec);
    sbuf_free(&p->path);
    sbuf_free(&p->first_keys);
    free(p);
}

/* yajl_failure - turn yajl's error into our message and offset */
static cin_status yajl_failure(cin_parser *p, const unsigned char *buf, size_t len, int at_end)
{
    if (p->status != CIN_OK) { /* one of ours, from a callback */
        if (p->err_off >= p->base && p->err_off <= p->base + len)
            count_lines(p, p->err_off);
        p->err_line = p->line_no + 1;
        return p->status;
    }
    unsigned char *m = yajl_get_error(p->y, 0, buf, len);
    p->status = at_end ? CIN_TRUNCATED : CIN_SYNTAX;
    snprintf(p->msg, sizeof p->msg, "%s", m ? (const char *)m : "invalid JSON");
    size_t n = strlen(p->msg);
    while (n && (p->msg[n - 1] == '\n' || p->msg[n - 1] == ' '))
        p->msg[--n] = '\0';
    yajl_free_error(p->y, m);
    p->err_off = at_end ? p->base : p->base + yajl_get_bytes_consumed(p->y);
    if (!at_end)
        count_lines(p, p->err_off); /* the line of the error, for people with an editor */
    p->err_line = p->line_no + 1;
    return p->status;
}

/* cin_feed - parse the next chunk of the file */
cin_status cin_feed(cin_parser *p, const char *buf, size_t len)
{
    if (p->status != CIN_OK)
        return p->status;
    /* A UTF-8 byte-order mark (.NET writes one) is skipped, even when it
     * arrives a byte at a time; offsets still count it. */
    static const char bom[3] = {(char)0xEF, (char)0xBB, (char)0xBF};
    while (p->bom_seen < 3 && len > 0 && p->base < 3) {
        if (buf[0] != bom[p->bom_seen]) {
            if (p->bom_seen > 0) { /* a partial mark is not JSON either */
                p->status = CIN_SYNTAX;
                snprintf(p->msg, sizeof p->msg, "invalid bytes at the start of the file");
                p->err_off = 0;
                return p->status;
            }
            p->bom_seen = 3;
            break;
        }
        p->bom_seen++;
        buf++, len--;
        p->base++;
        p->line_pos = p->base;
        p->last_end = p->carry = p->base;
    }
    if (len == 0)
        return CIN_OK;
    p->chunk = buf;
    yajl_status st = yajl_parse(p->y, (const unsigned char *)buf, len);
    if (st != yajl_status_ok)
        return yajl_failure(p, (const unsigned char *)buf, len, 0);
    count_lines(p, p->base + len);
    /* where the next value may start, should it begin in a later chunk */
    uint64_t pos = p->last_end >= p->base ? p->last_end : p->carry;
    if (pos >= p->base) {
        const char *c = buf + (pos - p->base), *e = buf + len;
        while (c < e && (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n' || *c == ','))
            c++;
        pos = p->base + (uint64_t)(c - buf);
    }
    p->carry = pos;
    p->base += len;
    return CIN_OK;
}

/* cin_finish - the end of the file: is the JSON complete? */
cin_status cin_finish(cin_parser *p)
{
    if (p->status != CIN_OK)
        return p->status;
    p->chunk = "";
    yajl_status st = yajl_complete_parse(p->y);
    if (st != yajl_status_ok && p->status != CIN_OK)
        return p->status; /* a number at the very end, refused by a callback */
    if (st != yajl_status_ok) {
        if (p->shape == CIN_SHAPE_UNKNOWN && p->depth == 0) {
            p->status = CIN_EMPTY;
            snprintf(p->msg, sizeof p->msg, "the file holds no JSON at all");
            p->err_off = 0;
            return p->status;
        }
        return yajl_failure(p, (const unsigned char *)"", 0, 1);
    }
    if (p->shape == CIN_SHAPE_UNKNOWN) {
        p->status = CIN_EMPTY;
        snprintf(p->msg, sizeof p->msg, "the file holds no JSON at all");
        return p->status;
    }
    return CIN_OK;
}

const char *cin_message(const cin_parser *p)
{
    return p->msg;
}

uint64_t cin_error_offset(const cin_parser *p)
{
    return p->err_off;
}

uint64_t cin_error_line(const cin_parser *p)
{
    return p->err_line;
}

cin_shape cin_get_shape(const cin_parser *p)
{
    return p->shape;
}

const char *cin_wrapper_kind(const cin_parser *p)
{
    return p->wrapper_kind[0] ? p->wrapper_kind : NULL;
}

uint64_t cin_records(const cin_parser *p)
{
    return p->nrecords;
}

int cin_first_has_key(const cin_parser *p, const char *key)
{
    const char *s = p->first_keys.p, *e = s + p->first_keys.len;
    while (s && s < e) {
        if (strcmp(s, key) == 0)
            return 1;
        s += strlen(s) + 1;
    }
    return 0;
}
