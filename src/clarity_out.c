/*
 * clarity_out.c - write a Clarity API batch as a stream of operations.
 *
 * The batch is one JSON document:
 *   {"batchId", "createdAt", "source": {"file", "sha256"}, "target": {"api": "admin"},
 *    "operations": [{"seq", "op", "method", "path", "body", "resolve"?, "idempotencyKey"}]}
 * Operations are written as records come; a collecting operation (the bulk
 * inventory update) gathers at most `chunk` items before it is written, so
 * memory is bounded by one chunk.  The idempotency key of operation N is the
 * first 32 hex digits of SHA-256("INPUT-SHA256:N:METHOD PATH BODY"): the same
 * batch keeps its keys across retries and restarts, which is what lets the API
 * refuse to apply an operation twice, and a changed body is a new operation.
 *
 * DIAGNOSTICS
 *	-1 with "FILE: what failed" in err; cw_abort leaves no file behind.
 */
#include "clarity_out.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

typedef struct {
    sbuf items;   /* "{…},{…}" */
    sbuf resolve; /* "\"ID:K\":{…},…" */
    int n;
    sbuf group, head; /* grouped operations: the group value, the first record's body */
    bool when;        /* every record of the group allowed the operation */
    hset seen;        /* resolve entries already in this operation (as text) */
} pending;

/* add_resolve - a record's placeholders join the operation's, each key once */
static void add_resolve(pending *p, const tval *r)
{
    if (!r->n)
        return;
    sbuf obj = {0};
    sbuf_addc(&obj, '{');
    sbuf_add(&obj, r->p, r->n);
    sbuf_addc(&obj, '}');
    char eb[64];
    yajl_val v = yajl_tree_parse(obj.p, eb, sizeof eb);
    for (size_t i = 0; v && YAJL_IS_OBJECT(v) && i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        if (!hset_add(&p->seen, hash_bytes(k, strlen(k))))
            continue;
        const char *pf[] = {"from", NULL};
        yajl_val f = yajl_tree_get(v->u.object.values[i], pf, yajl_t_string);
        yajl_gen g = yajl_gen_alloc(NULL);
        yajl_gen_map_open(g);
        yajl_gen_string(g, (const unsigned char *)k, strlen(k));
        yajl_gen_map_open(g);
        yajl_gen_string(g, (const unsigned char *)"from", 4);
        const char *fs = f ? f->u.string : "";
        yajl_gen_string(g, (const unsigned char *)fs, strlen(fs));
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
        const unsigned char *b;
        size_t l;
        yajl_gen_get_buf(g, &b, &l);
        if (p->resolve.len)
            sbuf_addc(&p->resolve, ',');
        sbuf_add(&p->resolve, b + 1, l - 2); /* the member without the braces */
        yajl_gen_free(g);
    }
    yajl_tree_free(v);
    sbuf_free(&obj);
}

struct clarity_writer {
    const tpl_output_desc *o;
    ofile *f;
    char *dir, *sha;
    uint64_t seq;
    pending *pend; /* per operation */
    sbuf line;
};

static void put_str(sbuf *b, const char *s, size_t n)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_string(g, (const unsigned char *)s, n);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    sbuf_add(b, buf, len);
    yajl_gen_free(g);
}

clarity_writer *cw_open(const tpl_output_desc *o, const char *dir, const char *batch,
                        const char *created_at, const char *source_file, const char *source_sha,
                        sbuf *err)
{
    clarity_writer *w = xcalloc(1, sizeof *w);
    w->o = o;
    w->dir = xstrdup(dir);
    w->sha = xstrdup(source_sha ? source_sha : "");
    w->pend = xcalloc((size_t)o->nops + 1, sizeof *w->pend);
    sbuf name = {0};
    sbuf_printf(&name, "%s_%s.json", o->prefix, batch);
    w->f = of_open(dir, name.p, err);
    sbuf_free(&name);
    if (!w->f) {
        cw_abort(w);
        return NULL;
    }
    sbuf h = {0};
    sbuf_adds(&h, "{\"batchId\":");
    put_str(&h, batch, strlen(batch));
    sbuf_adds(&h, ",\n\"createdAt\":");
    put_str(&h, created_at, strlen(created_at));
    sbuf_adds(&h, ",\n\"source\":{\"file\":");
    put_str(&h, source_file, strlen(source_file));
    sbuf_adds(&h, ",\"sha256\":");
    put_str(&h, w->sha, strlen(w->sha));
    sbuf_adds(&h, "},\n\"target\":{\"api\":\"admin\"},\n\"operations\":[");
    int rc = of_write(w->f, h.p, h.len);
    sbuf_free(&h);
    if (rc != 0) {
        sbuf_printf(err, "%s: write failed", name.p ? name.p : dir);
        cw_abort(w);
        return NULL;
    }
    return w;
}

/* emit - one operation, with its sequence number and idempotency key */
static int emit(clarity_writer *w, const tpl_op_desc *d, const char *body, size_t blen,
                const char *resolve, size_t rlen)
{
    w->seq++;
    char in[128], key[65];
    int n = snprintf(in, sizeof in, "%s:%llu:", w->sha, (unsigned long long)w->seq);
    unsigned char h[32];
    unsigned int hl = 0;
    /* the operation's content is part of its key: a replay through a changed template
     * that gives a different body is a different operation to the API */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, in, (size_t)n);
    EVP_DigestUpdate(md, d->method, strlen(d->method));
    EVP_DigestUpdate(md, " ", 1);
    EVP_DigestUpdate(md, d->path, strlen(d->path));
    EVP_DigestUpdate(md, " ", 1);
    EVP_DigestUpdate(md, body, blen);
    EVP_DigestFinal_ex(md, h, &hl);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 16; i++)
        snprintf(key + 2 * i, 3, "%02x", h[i]);
    sbuf *b = &w->line;
    sbuf_reset(b);
    sbuf_printf(b, "%s\n{\"seq\":%llu,\"op\":", w->seq > 1 ? "," : "", (unsigned long long)w->seq);
    put_str(b, d->op, strlen(d->op));
    sbuf_adds(b, ",\"method\":");
    put_str(b, d->method, strlen(d->method));
    sbuf_adds(b, ",\"path\":");
    put_str(b, d->path, strlen(d->path));
    sbuf_adds(b, ",\"body\":");
    sbuf_add(b, body, blen);
    if (rlen) {
        sbuf_adds(b, ",\"resolve\":{");
        sbuf_add(b, resolve, rlen);
        sbuf_addc(b, '}');
    }
    sbuf_printf(b, ",\"idempotencyKey\":\"%s\"}", key);
    return of_write(w->f, b->p, b->len);
}

/* flush_group - a grouped operation: the first record's members plus every record's line */
static int flush_group(clarity_writer *w, int i)
{
    pending *p = &w->pend[i];
    if (!p->n)
        return 0;
    const tpl_op_desc *d = &w->o->ops[i];
    int rc = 0;
    if (p->when) {
        sbuf body = {0};
        sbuf_add(&body, p->head.p, p->head.len > 0 ? p->head.len - 1 : 0); /* without '}' */
        if (d->lines) {
            if (p->head.len > 2)
                sbuf_addc(&body, ',');
            put_str(&body, d->lines, strlen(d->lines));
            sbuf_adds(&body, ":[");
            sbuf_add(&body, p->items.p, p->items.len);
            sbuf_addc(&body, ']');
        }
        sbuf_addc(&body, '}');
        rc = emit(w, d, body.p, body.len, p->resolve.p ? p->resolve.p : "", p->resolve.len);
        sbuf_free(&body);
    }
    sbuf_reset(&p->items);
    sbuf_reset(&p->resolve);
    sbuf_reset(&p->head);
    sbuf_reset(&p->group);
    hset_free(&p->seen);
    p->n = 0;
    return rc;
}

/* flush_chunk - write a collecting operation with the items gathered so far */
static int flush_chunk(clarity_writer *w, int i)
{
    pending *p = &w->pend[i];
    if (w->o->ops[i].grouped)
        return flush_group(w, i);
    if (!p->n)
        return 0;
    const tpl_op_desc *d = &w->o->ops[i];
    sbuf body = {0};
    sbuf_adds(&body, "{");
    put_str(&body, d->collect, strlen(d->collect));
    sbuf_adds(&body, ":[");
    sbuf_add(&body, p->items.p, p->items.len);
    sbuf_adds(&body, "]}");
    int rc = emit(w, d, body.p, body.len, p->resolve.p ? p->resolve.p : "", p->resolve.len);
    sbuf_free(&body);
    sbuf_reset(&p->items);
    sbuf_reset(&p->resolve);
    hset_free(&p->seen);
    p->n = 0;
    return rc;
}

int cw_record(clarity_writer *w, const tpl_result *res, sbuf *err)
{
    for (int i = 0; i < w->o->nops; i++) {
        const tpl_op_desc *d = &w->o->ops[i];
        int rc = 0;
        if (d->grouped) {
            pending *p = &w->pend[i];
            const tval *g = &res->op_group[i];
            if (p->n && (p->group.len != g->n || memcmp(p->group.p, g->p, g->n) != 0))
                rc = flush_group(w, i);
            if (!p->n) {
                sbuf_add(&p->group, g->p, g->n);
                sbuf_add(&p->head, res->op_json[i].p, res->op_json[i].n);
                p->when = true;
            }
            if (p->n)
                sbuf_addc(&p->items, ',');
            sbuf_add(&p->items, res->op_item[i].p, res->op_item[i].n);
            add_resolve(p, &res->op_resolve[i]);
            p->when = p->when && res->op_when[i];
            p->n++;
        } else if (!d->collect) {
            rc = emit(w, d, res->op_json[i].p, res->op_json[i].n, res->op_resolve[i].p,
                      res->op_resolve[i].n);
        } else {
            pending *p = &w->pend[i];
            if (p->n)
                sbuf_addc(&p->items, ',');
            sbuf_add(&p->items, res->op_json[i].p, res->op_json[i].n);
            add_resolve(p, &res->op_resolve[i]);
            if (++p->n >= d->chunk)
                rc = flush_chunk(w, i);
        }
        if (rc != 0) {
            sbuf_printf(err, "%s/%s: write failed", w->dir, of_name(w->f));
            return -1;
        }
    }
    return 0;
}

int cw_close(clarity_writer *w, pub_file *file, sbuf *err)
{
    int rc = 0;
    for (int i = 0; i < w->o->nops && rc == 0; i++)
        rc = flush_chunk(w, i);
    if (rc == 0)
        rc = of_puts(w->f, "\n]}\n");
    if (rc != 0) {
        sbuf_printf(err, "%s/%s: write failed", w->dir, of_name(w->f));
        cw_abort(w);
        return -1;
    }
    rc = of_finish(w->f, file, err);
    w->f = NULL;
    cw_abort(w);
    return rc;
}

int cw_commit(clarity_writer *w, sbuf *err)
{
    pub_file f;
    memset(&f, 0, sizeof f);
    char *dir = xstrdup(w->dir);
    int rc = cw_close(w, &f, err);
    if (rc == 0)
        rc = publish_files(dir, &f, 1, NULL, err);
    free(dir);
    return rc;
}

uint64_t cw_operations(const clarity_writer *w)
{
    return w->seq;
}

void cw_abort(clarity_writer *w)
{
    if (!w)
        return;
    of_abort(w->f);
    for (int i = 0; i < w->o->nops; i++) {
        sbuf_free(&w->pend[i].items);
        sbuf_free(&w->pend[i].resolve);
        sbuf_free(&w->pend[i].group);
        sbuf_free(&w->pend[i].head);
        hset_free(&w->pend[i].seen);
    }
    free(w->pend);
    sbuf_free(&w->line);
    free(w->dir);
    free(w->sha);
    free(w);
}
