/*
 * audit.c - archive list, show, extract, verify, prune and report.
 *
 * Listing answers from the ledger's index, never by opening archives, so it
 * stays fast on years of batches.  Verification trusts nothing: it starts at
 * the chain head (kept both in the ledger and in archive/CHAIN), re-hashes
 * every member of every archive against its manifest, checks that the
 * manifest's own SHA-256 is the one the next manifest names as prev, and
 * finally that every archived batch of the ledger was met on the way and
 * every archive file on disk belongs to one.  Pruning removes archives only
 * after a prune record (itself a link of the chain) lists what goes, so a
 * verify after a prune still walks the whole chain.
 *
 * DIAGNOSTICS
 *	verify prints the first difference and exits 65; usage errors 64;
 *	an unknown batch 66.
 */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "archive.h"
#include "decimal.h"
#include "digest.h"
#include "ledger.h"
#include "log.h"
#include "publish.h"

#define EX_OK        0
#define EX_USAGE     64
#define EX_DATAERR   65
#define EX_NOINPUT   66
#define EX_CANTCREAT 73
#define EX_IOERR     74

static int usage(const char *msg)
{
    fprintf(stderr, "sagebridge: archive: %s (see sagebridge --help)\n", msg);
    return EX_USAGE;
}

/* day_bound - "2026-11-01" -> "2026-11-01T00:00:00Z"; the day after for --until; NULL: bad */
static char *day_bound(const char *d, int next)
{
    struct tm tm = {0};
    const char *end = strptime(d, "%Y-%m-%d", &tm);
    if (!end || *end)
        return NULL;
    time_t t = timegm(&tm) + (next ? 86400 : 0);
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return xstrdup(buf);
}

static const char *str_at(yajl_val v, const char *a, const char *b)
{
    const char *path[] = {a, b, NULL};
    yajl_val x = yajl_tree_get(v, path, yajl_t_any);
    return x && YAJL_IS_STRING(x) ? YAJL_GET_STRING(x) : NULL;
}

/* totals_line - "USD orders 2 lines 4 total 158.88 …; CAD …" from the ledger's JSON */
static void totals_line(const char *json, sbuf *out)
{
    char eb[128];
    yajl_val tv = json ? yajl_tree_parse(json, eb, sizeof eb) : NULL;
    for (size_t i = 0; tv && YAJL_IS_OBJECT(tv) && i < tv->u.object.len; i++) {
        if (i)
            sbuf_adds(out, "; ");
        sbuf_adds(out, tv->u.object.keys[i]);
        yajl_val o = tv->u.object.values[i];
        for (size_t k = 0; YAJL_IS_OBJECT(o) && k < o->u.object.len; k++) {
            yajl_val x = o->u.object.values[k];
            sbuf_printf(out, " %s %s", o->u.object.keys[k],
                        YAJL_IS_STRING(x)   ? YAJL_GET_STRING(x)
                        : YAJL_IS_NUMBER(x) ? YAJL_GET_NUMBER(x)
                                            : "?");
        }
    }
    yajl_tree_free(tv);
}

/* ------------------------------------------------------------------ list */

typedef struct {
    bool json;
    uint64_t n;
} list_ctx;

static int list_one(void *ctx, const batch_row *b)
{
    list_ctx *c = ctx;
    if (c->json) {
        yajl_gen g = yajl_gen_alloc(NULL);
        yajl_gen_map_open(g);
        const char *kv[][2] = {{"id", b->id},
                               {"kind", b->kind},
                               {"state", b->state},
                               {"input", b->input_name},
                               {"input_sha256", b->input_sha256},
                               {"claimed_at", b->claimed_at},
                               {"archive", b->archive},
                               {"manifest_sha256", b->manifest_sha256},
                               {"duplicate_of", b->duplicate_of},
                               {"error", b->error}};
        for (size_t i = 0; i < sizeof kv / sizeof *kv; i++) {
            yajl_gen_string(g, (const unsigned char *)kv[i][0], strlen(kv[i][0]));
            if (kv[i][1])
                yajl_gen_string(g, (const unsigned char *)kv[i][1], strlen(kv[i][1]));
            else
                yajl_gen_null(g);
        }
        const char *ck[] = {"records", "published", "rejected", "duplicate", "held"};
        int64_t cv[] = {b->records, b->published, b->rejected, b->duplicate, b->held};
        for (size_t i = 0; i < 5; i++) {
            yajl_gen_string(g, (const unsigned char *)ck[i], strlen(ck[i]));
            yajl_gen_integer(g, cv[i]);
        }
        yajl_gen_map_close(g);
        const unsigned char *buf;
        size_t len;
        yajl_gen_get_buf(g, &buf, &len);
        /* the totals are JSON the ledger already holds (decimal strings): spliced in whole */
        printf("%s%.*s,\"control_totals\":%s}", c->n ? ",\n" : "", (int)len - 1, (const char *)buf,
               b->totals ? b->totals : "{}");
        yajl_gen_free(g);
        c->n++;
        return 0;
    }
    c->n++;
    sbuf t = {0};
    totals_line(b->totals, &t);
    printf("%s  %-8s %-9s %s  in %lld published %lld rejected %lld duplicate %lld held %lld%s%s\n",
           b->id, b->kind ? b->kind : "-", b->state, b->input_name ? b->input_name : "-",
           (long long)b->records, (long long)b->published, (long long)b->rejected,
           (long long)b->duplicate, (long long)b->held, t.len ? "  " : "", sbuf_str(&t));
    sbuf_free(&t);
    return 0;
}

static int cmd_list(spool *s, int argc, char **argv)
{
    char *since = NULL, *until = NULL;
    const char *kind = NULL;
    list_ctx c = {0};
    int rc = EX_OK;
    for (int i = 1; i < argc && rc == EX_OK; i++) {
        if (!strcmp(argv[i], "--json"))
            c.json = true;
        else if (!strcmp(argv[i], "--since") && i + 1 < argc) {
            free(since);
            if (!(since = day_bound(argv[++i], 0)))
                rc = usage("--since takes a date YYYY-MM-DD");
        } else if (!strcmp(argv[i], "--until") && i + 1 < argc) {
            free(until);
            if (!(until = day_bound(argv[++i], 1)))
                rc = usage("--until takes a date YYYY-MM-DD");
        } else if (!strcmp(argv[i], "--kind") && i + 1 < argc)
            kind = argv[++i];
        else
            rc = usage("list takes --since DATE, --until DATE, --kind KIND, --json");
    }
    if (rc == EX_OK) {
        if (c.json)
            printf("[\n");
        if (ledger_each(spool_ledger(s), since, until, kind, NULL, list_one, &c) != 0) {
            fprintf(stderr, "sagebridge: ledger: %s\n", ledger_error(spool_ledger(s)));
            rc = EX_IOERR;
        }
        if (c.json)
            printf("\n]\n");
        else if (!c.n)
            printf("no batches%s%s\n", since || until ? " in that period" : "",
                   kind ? " of that kind" : "");
    }
    free(since);
    free(until);
    return rc;
}

/* ------------------------------------------------------------- show/extract */

/* find_batch - the ledger row and the archive path of BATCH; 0, or an exit status */
static int find_batch(spool *s, const char *id, batch_row *b, char **path)
{
    int r = ledger_batch_get(spool_ledger(s), id, b);
    if (r != 0) {
        fprintf(stderr,
                "sagebridge: %s: no such batch in the ledger (see `sagebridge archive "
                "list`)\n",
                id);
        return r < 0 ? EX_IOERR : EX_NOINPUT;
    }
    if (!b->archive) {
        fprintf(stderr, "sagebridge: %s: the batch has no archive (state %s)\n", id, b->state);
        batch_row_free(b);
        return EX_NOINPUT;
    }
    sbuf p = {0};
    sbuf_printf(&p, "%s/%s", spool_archive_dir(s), b->archive);
    *path = p.p;
    return 0;
}

static int cmd_show(spool *s, int argc, char **argv)
{
    bool json = false;
    const char *id = NULL;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!id)
            id = argv[i];
        else
            return usage("show takes one BATCH (and --json)");
    if (!id)
        return usage("show needs a BATCH");
    batch_row b;
    char *path = NULL;
    int rc = find_batch(s, id, &b, &path);
    if (rc)
        return rc;
    sbuf m = {0}, err = {0};
    if (arc_read_member(path, json ? "manifest.json" : "report.txt", &m, &err) != 0) {
        fprintf(stderr, "sagebridge: %s\n", sbuf_str(&err));
        rc = EX_IOERR;
    } else {
        fwrite(m.p, 1, m.len, stdout);
        if (json && m.len && m.p[m.len - 1] != '\n')
            putchar('\n');
        if (!json)
            printf("\narchive    %s\nmanifest   sha256 %s\nprev       %s\n", path,
                   b.manifest_sha256 ? b.manifest_sha256 : "-", b.prev ? b.prev : "(first)");
    }
    sbuf_free(&m);
    sbuf_free(&err);
    free(path);
    batch_row_free(&b);
    return rc;
}

static int cmd_extract(spool *s, int argc, char **argv)
{
    if (argc != 3)
        return usage("extract takes BATCH DIR");
    batch_row b;
    char *path = NULL;
    int rc = find_batch(s, argv[1], &b, &path);
    if (rc)
        return rc;
    if (mkdir(argv[2], 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "sagebridge: %s: %s\n", argv[2], strerror(errno));
        rc = EX_CANTCREAT;
    } else {
        sbuf err = {0};
        if (arc_extract(path, argv[2], &err) != 0) {
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&err));
            rc = EX_DATAERR;
        } else {
            printf("extracted %s into %s (input/, output/, manifest.json, report.txt)\n", b.id,
                   argv[2]);
        }
        sbuf_free(&err);
    }
    free(path);
    batch_row_free(&b);
    return rc;
}

/* ------------------------------------------------------------------ verify */

typedef struct {
    char *sha, *prev, *batch;
} removed;

typedef struct {
    spool *s;
    const char *since; /* re-hash members only of batches claimed since (NULL: all) */
    removed *rm;
    int nrm;
    hset seen;  /* batch ids met on the walk */
    sbuf first; /* the first difference */
    uint64_t batches, members, pruned;
} verify_ctx;

typedef struct {
    verify_ctx *v;
    const batch_row *b;
    const char *path;
    char manifest_sha[65];
    sbuf manifest;
    bool bad;
} batch_check;

static int keep_manifest(const char *name)
{
    return strcmp(name, "manifest.json") == 0;
}

static int differ(verify_ctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int differ(verify_ctx *v, const char *fmt, ...)
{
    if (v->first.len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sbuf_adds(&v->first, buf);
    return -1;
}

/* expected_sha - what the manifest says a member must hash to, or NULL */
static const char *expected_sha(yajl_val man, const char *member)
{
    const char *slash = strchr(member, '/');
    if (!slash)
        return NULL;
    const char *name = slash + 1;
    if (strncmp(member, "input/", 6) == 0) {
        const char *n = str_at(man, "input", "name");
        return n && strcmp(n, name) == 0 ? str_at(man, "input", "sha256") : NULL;
    }
    const char *path[] = {"outputs", NULL};
    yajl_val outs = yajl_tree_get(man, path, yajl_t_array);
    for (size_t i = 0; outs && i < outs->u.array.len; i++) {
        yajl_val o = outs->u.array.values[i];
        const char *n = str_at(o, "name", NULL);
        if (n && strcmp(n, name) == 0)
            return str_at(o, "sha256", NULL);
    }
    return NULL;
}

typedef struct {
    char name[300];
    char sha[65];
} member_sum;

typedef struct {
    member_sum *m;
    int n;
    sbuf manifest;
} members;

static int collect(void *ctx, const arc_entry *e)
{
    members *ms = ctx;
    if (!e->regular)
        return 0;
    ms->m = xrealloc(ms->m, (size_t)(ms->n + 1) * sizeof *ms->m);
    snprintf(ms->m[ms->n].name, sizeof ms->m[ms->n].name, "%s", e->name);
    memcpy(ms->m[ms->n].sha, e->sha256, 65);
    ms->n++;
    if (strcmp(e->name, "manifest.json") == 0)
        sbuf_add(&ms->manifest, e->data, e->len);
    return 0;
}

/* check_batch - one archive against its manifest and the chain's expectation;
 * *prev gets the manifest's prev (malloc'ed) */
static int check_batch(verify_ctx *v, const batch_row *b, const char *want_sha, char **prev)
{
    *prev = NULL;
    bool rehash = !v->since || (b->claimed_at && strcmp(b->claimed_at, v->since) >= 0);
    if (!rehash) {
        *prev = b->prev ? xstrdup(b->prev) : NULL;
        return 0;
    }
    sbuf path = {0}, err = {0};
    sbuf_printf(&path, "%s/%s", spool_archive_dir(v->s), b->archive ? b->archive : "?");
    int rc = 0;
    members ms = {0};
    if (access(path.p, R_OK) != 0) {
        rc = differ(v, "batch %s: its archive %s is missing", b->id, path.p);
        goto out;
    }
    if (arc_each(path.p, keep_manifest, collect, &ms, &err) != 0) {
        rc = differ(v, "batch %s: the archive cannot be read (%s): it was changed or damaged",
                    b->id, sbuf_str(&err));
        goto out;
    }
    char msha[65];
    sha256_hex(ms.manifest.p ? ms.manifest.p : "", ms.manifest.len, msha);
    if (strcmp(msha, want_sha) != 0) {
        rc = differ(v,
                    "batch %s: manifest.json was changed (its sha256 is %s; the chain names "
                    "%s)",
                    b->id, msha, want_sha);
        goto out;
    }
    char eb[256];
    yajl_val man = yajl_tree_parse(ms.manifest.p ? ms.manifest.p : "", eb, sizeof eb);
    if (!man) {
        rc = differ(v, "batch %s: manifest.json is not JSON", b->id);
        goto out;
    }
    const char *fmt = str_at(man, "format", NULL);
    bool prune = fmt && strcmp(fmt, "sagebridge-prune/1") == 0;
    for (int i = 0; i < ms.n && rc == 0; i++) {
        v->members++;
        if (!strcmp(ms.m[i].name, "manifest.json") || !strcmp(ms.m[i].name, "report.txt"))
            continue;
        const char *want = expected_sha(man, ms.m[i].name);
        if (!want)
            rc =
                differ(v, "batch %s: member %s is not listed in its manifest", b->id, ms.m[i].name);
        else if (strcmp(want, ms.m[i].sha) != 0)
            rc = differ(v,
                        "batch %s: member %s differs from its manifest (sha256 %s, manifest "
                        "%s)",
                        b->id, ms.m[i].name, ms.m[i].sha, want);
    }
    if (rc == 0 && !prune) {
        const char *in = str_at(man, "input", "sha256");
        if (!in || !b->input_sha256 || strcmp(in, b->input_sha256) != 0)
            rc = differ(v,
                        "batch %s: the ledger's input sha256 %s differs from the manifest's "
                        "%s",
                        b->id, b->input_sha256 ? b->input_sha256 : "-", in ? in : "-");
        bool found = false;
        for (int i = 0; i < ms.n && rc == 0; i++)
            found |= strncmp(ms.m[i].name, "input/", 6) == 0;
        if (rc == 0 && !found)
            rc = differ(v, "batch %s: the input is missing from the archive", b->id);
    }
    if (rc == 0 && prune) {
        const char *path2[] = {"removed", NULL};
        yajl_val rm = yajl_tree_get(man, path2, yajl_t_array);
        for (size_t i = 0; rm && i < rm->u.array.len; i++) {
            yajl_val o = rm->u.array.values[i];
            const char *ms_ = str_at(o, "manifest_sha256", NULL);
            const char *pv = str_at(o, "prev", NULL);
            const char *bt = str_at(o, "batch", NULL);
            if (!ms_ || !bt)
                continue;
            v->rm = xrealloc(v->rm, (size_t)(v->nrm + 1) * sizeof *v->rm);
            v->rm[v->nrm++] = (removed){xstrdup(ms_), pv ? xstrdup(pv) : NULL, xstrdup(bt)};
        }
    }
    if (rc == 0) {
        const char *pv = str_at(man, "prev", NULL);
        *prev = pv ? xstrdup(pv) : NULL;
    }
    yajl_tree_free(man);
out:
    free(ms.m);
    sbuf_free(&ms.manifest);
    sbuf_free(&path);
    sbuf_free(&err);
    return rc;
}

static int not_in_chain(void *ctx, const batch_row *b)
{
    verify_ctx *v = ctx;
    if (!hset_has(&v->seen, hash_bytes(b->id, strlen(b->id))))
        return differ(v,
                      "batch %s is archived in the ledger but not in the chain (its archive "
                      "%s)",
                      b->id, b->archive ? b->archive : "-");
    return 0;
}

/* disk_check - every archive file (at any depth of archive/) belongs to a batch met on
 * the walk */
static void disk_check(verify_ctx *v, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while (!v->first.len && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *p = xmalloc(strlen(dir) + strlen(e->d_name) + 2);
        sprintf(p, "%s/%s", dir, e->d_name);
        size_t l = strlen(e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth < 8) {
            disk_check(v, p, depth + 1);
        } else if (l > 7 && strcmp(e->d_name + l - 7, ".tar.gz") == 0) {
            e->d_name[l - 7] = '\0';
            if (!hset_has(&v->seen, hash_bytes(e->d_name, strlen(e->d_name))))
                differ(v, "archive file %s has no batch in the ledger's chain", p);
        }
        free(p);
    }
    closedir(d);
}

static int verify_chain(verify_ctx *v)
{
    ledger *l = spool_ledger(v->s);
    const char *h = ledger_meta(l, "chain_head");
    char *head = h ? xstrdup(h) : NULL;
    sbuf cp = {0}, chain = {0}, err = {0};
    sbuf_printf(&cp, "%s/CHAIN", spool_archive_dir(v->s));
    FILE *f = fopen(cp.p, "r");
    char line[256] = "";
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, " \n")] = '\0';
    if ((head || line[0]) && (!head || strcmp(head, line) != 0))
        differ(v,
               "archive/CHAIN names %s but the ledger's chain head is %s: the newest archive "
               "or its ledger row was removed or replaced",
               line[0] ? line : "(nothing)", head ? head : "(nothing)");
    char *sha = head ? xstrdup(head) : NULL;
    while (sha && !v->first.len) {
        removed *r = NULL;
        for (int i = 0; i < v->nrm && !r; i++)
            if (strcmp(v->rm[i].sha, sha) == 0)
                r = &v->rm[i];
        char *next = NULL;
        if (r) {
            hset_add(&v->seen, hash_bytes(r->batch, strlen(r->batch)));
            v->pruned++;
            next = r->prev ? xstrdup(r->prev) : NULL;
        } else {
            batch_row b;
            int got = ledger_batch_by_manifest(l, sha, &b);
            if (got != 0) {
                differ(v, "the chain names manifest %s, which no batch in the ledger has", sha);
            } else {
                if (check_batch(v, &b, sha, &next) == 0) {
                    hset_add(&v->seen, hash_bytes(b.id, strlen(b.id)));
                    v->batches++;
                }
                batch_row_free(&b);
            }
        }
        free(sha);
        sha = next;
        if (v->batches > 100000000)
            break;
    }
    free(sha);
    if (!v->first.len)
        ledger_each(l, NULL, NULL, NULL, "archived", not_in_chain, v);
    if (!v->first.len)
        disk_check(v, spool_archive_dir(v->s), 0);
    free(head);
    sbuf_free(&cp);
    sbuf_free(&chain);
    sbuf_free(&err);
    return v->first.len ? -1 : 0;
}

static int cmd_verify(spool *s, int argc, char **argv)
{
    verify_ctx v = {.s = s};
    const char *one = NULL;
    char *since = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--since") && i + 1 < argc) {
            free(since);
            if (!(since = day_bound(argv[++i], 0)))
                return usage("--since takes a date YYYY-MM-DD");
        } else if (!one && argv[i][0] != '-')
            one = argv[i];
        else
            return usage("verify takes [BATCH] [--since DATE]");
    }
    v.since = since;
    int rc;
    if (one) {
        batch_row b;
        char *path = NULL;
        rc = find_batch(s, one, &b, &path);
        if (rc) {
            free(since);
            return rc;
        }
        char *prev = NULL;
        v.since = NULL;
        check_batch(&v, &b, b.manifest_sha256 ? b.manifest_sha256 : "", &prev);
        free(prev);
        free(path);
        batch_row_free(&b);
    } else {
        verify_chain(&v);
    }
    if (v.first.len) {
        printf("FAILED: %s\n", v.first.p);
        rc = EX_DATAERR;
    } else {
        uint64_t n = one ? 1 : v.batches + v.pruned;
        char pr[64] = "";
        if (v.pruned)
            snprintf(pr, sizeof pr, " (%llu pruned, recorded in the chain)",
                     (unsigned long long)v.pruned);
        printf("verified: %s%llu batch%s%s, %llu members re-hashed; %s\n", one ? "" : "the chain, ",
               (unsigned long long)n, n == 1 ? "" : "es", pr, (unsigned long long)v.members,
               one ? "the manifest matches the ledger" : "the ledger and the archive folder agree");
        rc = EX_OK;
    }
    for (int i = 0; i < v.nrm; i++) {
        free(v.rm[i].sha);
        free(v.rm[i].prev);
        free(v.rm[i].batch);
    }
    free(v.rm);
    hset_free(&v.seen);
    sbuf_free(&v.first);
    free(since);
    return rc;
}

/* ------------------------------------------------------------------ prune */

typedef struct {
    spool *s;
    batch_row *rows;
    int n;
} prune_ctx;

static int collect_old(void *ctx, const batch_row *b)
{
    prune_ctx *p = ctx;
    if (b->kind && strcmp(b->kind, "prune") == 0)
        return 0; /* prune records stay: they are what makes the gap explainable */
    p->rows = xrealloc(p->rows, (size_t)(p->n + 1) * sizeof *p->rows);
    batch_row *r = &p->rows[p->n++];
    memset(r, 0, sizeof *r);
    r->id = xstrdup(b->id);
    r->archive = b->archive ? xstrdup(b->archive) : NULL;
    r->manifest_sha256 = b->manifest_sha256 ? xstrdup(b->manifest_sha256) : NULL;
    r->prev = b->prev ? xstrdup(b->prev) : NULL;
    return 0;
}

static void kv(yajl_gen g, const char *k, const char *v)
{
    yajl_gen_string(g, (const unsigned char *)k, strlen(k));
    if (v)
        yajl_gen_string(g, (const unsigned char *)v, strlen(v));
    else
        yajl_gen_null(g);
}

static int cmd_prune(spool *s, int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--before") != 0)
        return usage("prune takes --before DATE");
    char *before = day_bound(argv[2], 0);
    if (!before)
        return usage("--before takes a date YYYY-MM-DD");
    ledger *l = spool_ledger(s);
    prune_ctx p = {s, NULL, 0};
    int rc = EX_OK;
    sbuf err = {0};
    if (ledger_begin(l) != 0 ||
        ledger_each(l, NULL, before, NULL, "archived", collect_old, &p) != 0) {
        fprintf(stderr, "sagebridge: ledger: %s\n", ledger_error(l));
        ledger_rollback(l);
        free(before);
        return EX_IOERR;
    }
    if (!p.n) {
        ledger_rollback(l);
        printf("nothing archived before %s\n", argv[2]);
        free(before);
        return EX_OK;
    }
    const char *h = ledger_meta(l, "chain_head");
    char *head = h ? xstrdup(h) : NULL;
    time_t now = time(NULL);
    char iso[32], ts[32];
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    /* the prune record: what goes, with the hashes that let verify walk past the gap */
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_map_open(g);
    kv(g, "format", "sagebridge-prune/1");
    kv(g, "kind", "prune");
    kv(g, "before", argv[2]);
    kv(g, "pruned_at", iso);
    yajl_gen_string(g, (const unsigned char *)"removed", 7);
    yajl_gen_array_open(g);
    for (int i = 0; i < p.n; i++) {
        sbuf ap = {0};
        sbuf_printf(&ap, "%s/%s", spool_archive_dir(s), p.rows[i].archive ? p.rows[i].archive : "");
        char fsha[65] = "";
        sha256_path(ap.p, fsha);
        yajl_gen_map_open(g);
        kv(g, "batch", p.rows[i].id);
        kv(g, "archive", p.rows[i].archive);
        kv(g, "archive_sha256", fsha[0] ? fsha : NULL);
        kv(g, "manifest_sha256", p.rows[i].manifest_sha256);
        kv(g, "prev", p.rows[i].prev);
        yajl_gen_map_close(g);
        sbuf_free(&ap);
    }
    yajl_gen_array_close(g);
    kv(g, "prev", head);
    yajl_gen_map_close(g);
    const unsigned char *mbuf;
    size_t mlen;
    yajl_gen_get_buf(g, &mbuf, &mlen);
    char msha[65];
    sha256_hex(mbuf, mlen, msha);
    sbuf id = {0};
    sbuf_printf(&id, "%s-prune-%.8s", ts, msha);
    arc_member m[1] = {{"manifest.json", NULL, (const char *)mbuf, mlen}};
    char *rel = NULL;
    if (archive_write(spool_archive_dir(s), id.p, now, now, m, 1, &rel, &err) != 0) {
        fprintf(stderr, "sagebridge: %s\n", sbuf_str(&err));
        rc = EX_IOERR;
    } else {
        batch_row b = {.id = id.p,
                       .kind = "prune",
                       .state = B_ARCHIVED,
                       .claimed_at = iso,
                       .updated_at = iso,
                       .archive = rel,
                       .manifest_sha256 = msha,
                       .prev = head,
                       .input_name = "-"};
        int bad = ledger_batch_insert(l, &b) != 0;
        for (int i = 0; i < p.n && !bad; i++) {
            batch_row r;
            if (ledger_batch_get(l, p.rows[i].id, &r) == 0) {
                free(r.state);
                r.state = xstrdup("pruned");
                bad = ledger_batch_update(l, &r) != 0;
                batch_row_free(&r);
            }
        }
        bad = bad || ledger_set_meta(l, "chain_head", msha) != 0 ||
              ledger_set_meta(l, "chain_batch", id.p) != 0 || ledger_commit(l) != 0;
        if (bad) {
            fprintf(stderr, "sagebridge: ledger: %s\n", ledger_error(l));
            ledger_rollback(l);
            rc = EX_IOERR;
        }
    }
    if (rc == EX_OK) {
        ofile *c = of_open(spool_archive_dir(s), "CHAIN", &err);
        if (c) {
            sbuf line = {0};
            sbuf_printf(&line, "%s  %s\n", msha, id.p);
            of_write(c, line.p, line.len);
            of_commit(c, &err);
            sbuf_free(&line);
        }
        /* only now, with the record committed, do the archives go */
        for (int i = 0; i < p.n; i++) {
            sbuf ap = {0};
            sbuf_printf(&ap, "%s/%s", spool_archive_dir(s),
                        p.rows[i].archive ? p.rows[i].archive : "");
            unlink(ap.p);
            sbuf_free(&ap);
        }
        log_event(LOG_LVL_INFO, id.p, NULL, "pruned", "before=%s batches=%d", argv[2], p.n);
        printf("pruned %d batch%s archived before %s; recorded in the chain as %s\n", p.n,
               p.n == 1 ? "" : "es", argv[2], id.p);
    } else {
        ledger_rollback(l);
    }
    for (int i = 0; i < p.n; i++)
        batch_row_free(&p.rows[i]);
    free(p.rows);
    yajl_gen_free(g);
    free(rel);
    free(head);
    free(before);
    sbuf_free(&id);
    sbuf_free(&err);
    return rc;
}

/* ----------------------------------------------------------------- report */

#define REP_MAX_CUR  32
#define REP_MAX_KEYS 12

typedef struct {
    char cur[8];
    int nkeys;
    char keys[REP_MAX_KEYS][24];
    decimal sums[REP_MAX_KEYS];
    uint64_t batches;
} rep_cur;

typedef struct {
    rep_cur c[REP_MAX_CUR];
    int n;
    uint64_t batches, records, published, rejected, duplicate, held;
    sbuf rows;  /* per batch lines, for the detail table */
    int format; /* 0 txt, 1 csv, 2 html */
} rep_ctx;

static void html_esc(sbuf *o, const char *s)
{
    for (; s && *s; s++)
        if (*s == '<')
            sbuf_adds(o, "&lt;");
        else if (*s == '>')
            sbuf_adds(o, "&gt;");
        else if (*s == '&')
            sbuf_adds(o, "&amp;");
        else if (*s == '"')
            sbuf_adds(o, "&quot;");
        else
            sbuf_addc(o, *s);
}

static int rep_one(void *ctx, const batch_row *b)
{
    rep_ctx *r = ctx;
    if (b->duplicate_of || (b->kind && !strcmp(b->kind, "prune")) || !strcmp(b->state, "rejected"))
        return 0;
    r->batches++;
    r->records += (uint64_t)b->records;
    r->published += (uint64_t)b->published;
    r->rejected += (uint64_t)b->rejected;
    r->duplicate += (uint64_t)b->duplicate;
    r->held += (uint64_t)b->held;
    char eb[128];
    yajl_val tv = b->totals ? yajl_tree_parse(b->totals, eb, sizeof eb) : NULL;
    for (size_t i = 0; tv && YAJL_IS_OBJECT(tv) && i < tv->u.object.len; i++) {
        const char *cur = tv->u.object.keys[i];
        rep_cur *c = NULL;
        for (int k = 0; k < r->n && !c; k++)
            if (!strcmp(r->c[k].cur, cur))
                c = &r->c[k];
        if (!c && r->n < REP_MAX_CUR) {
            c = &r->c[r->n++];
            memset(c, 0, sizeof *c);
            snprintf(c->cur, sizeof c->cur, "%s", cur);
        }
        if (!c)
            continue;
        c->batches++;
        yajl_val o = tv->u.object.values[i];
        for (size_t k = 0; YAJL_IS_OBJECT(o) && k < o->u.object.len; k++) {
            yajl_val x = o->u.object.values[k];
            const char *txt = YAJL_IS_STRING(x)   ? YAJL_GET_STRING(x)
                              : YAJL_IS_NUMBER(x) ? YAJL_GET_NUMBER(x)
                                                  : NULL;
            decimal d;
            if (!txt || dec_parse(txt, strlen(txt), &d) != DEC_OK)
                continue;
            int slot = -1;
            for (int j = 0; j < c->nkeys; j++)
                if (!strcmp(c->keys[j], o->u.object.keys[k]))
                    slot = j;
            if (slot < 0 && c->nkeys < REP_MAX_KEYS) {
                slot = c->nkeys++;
                snprintf(c->keys[slot], sizeof c->keys[slot], "%s", o->u.object.keys[k]);
                c->sums[slot] = (decimal){0, 0};
            }
            if (slot >= 0)
                dec_add(c->sums[slot], d, &c->sums[slot]);
        }
    }
    yajl_tree_free(tv);
    sbuf t = {0};
    totals_line(b->totals, &t);
    if (r->format == 2) {
        sbuf_adds(&r->rows, "<tr><td>");
        html_esc(&r->rows, b->id);
        sbuf_adds(&r->rows, "</td><td>");
        html_esc(&r->rows, b->input_name);
        sbuf_printf(&r->rows,
                    "</td><td class=n>%lld</td><td class=n>%lld</td><td class=n>%lld"
                    "</td><td>",
                    (long long)b->records, (long long)b->published, (long long)b->rejected);
        html_esc(&r->rows, sbuf_str(&t));
        sbuf_adds(&r->rows, "</td></tr>\n");
    } else if (r->format == 0) {
        sbuf_printf(&r->rows, "  %s  %s  in %lld, published %lld, rejected %lld  %s\n", b->id,
                    b->input_name, (long long)b->records, (long long)b->published,
                    (long long)b->rejected, sbuf_str(&t));
    }
    sbuf_free(&t);
    return 0;
}

static int cmd_report(spool *s, int argc, char **argv)
{
    const char *date = NULL, *fmt = "txt";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--date") && i + 1 < argc)
            date = argv[++i];
        else if (!strcmp(argv[i], "--format") && i + 1 < argc)
            fmt = argv[++i];
        else
            return usage("report takes --date D [--format txt|csv|html]");
    rep_ctx r = {0};
    r.format = !strcmp(fmt, "txt") ? 0 : !strcmp(fmt, "csv") ? 1 : !strcmp(fmt, "html") ? 2 : -1;
    if (!date || r.format < 0)
        return usage("report takes --date D [--format txt|csv|html]");
    char *since = day_bound(date, 0), *until = day_bound(date, 1);
    if (!since || !until) {
        free(since);
        free(until);
        return usage("--date takes a date YYYY-MM-DD");
    }
    if (ledger_each(spool_ledger(s), since, until, NULL, NULL, rep_one, &r) != 0) {
        fprintf(stderr, "sagebridge: ledger: %s\n", ledger_error(spool_ledger(s)));
        free(since);
        free(until);
        sbuf_free(&r.rows);
        return EX_IOERR;
    }
    const char *pay = "No payment files were processed on this day: the reconciliation of "
                      "payments and refunds against orders needs payment templates, which this "
                      "version does not have yet.";
    char buf[DEC_TEXT_MAX];
    if (r.format == 1) {
        printf("date,currency,measure,value\r\n");
        for (int i = 0; i < r.n; i++) {
            printf("%s,%s,batches,%llu\r\n", date, r.c[i].cur, (unsigned long long)r.c[i].batches);
            for (int k = 0; k < r.c[i].nkeys; k++) {
                dec_format(r.c[i].sums[k], r.c[i].sums[k].scale, false, buf, sizeof buf);
                printf("%s,%s,%s,%s\r\n", date, r.c[i].cur, r.c[i].keys[k], buf);
            }
        }
    } else if (r.format == 0) {
        printf("sagebridge control totals for %s (UTC)\n\n", date);
        printf("batches %llu; records %llu in, %llu published, %llu rejected, %llu duplicate, "
               "%llu held\n\n",
               (unsigned long long)r.batches, (unsigned long long)r.records,
               (unsigned long long)r.published, (unsigned long long)r.rejected,
               (unsigned long long)r.duplicate, (unsigned long long)r.held);
        if (!r.n)
            printf("Nothing was sent to Sage on this day.\n");
        for (int i = 0; i < r.n; i++) {
            printf("%s (%llu batches)\n", r.c[i].cur, (unsigned long long)r.c[i].batches);
            for (int k = 0; k < r.c[i].nkeys; k++) {
                dec_format(r.c[i].sums[k], r.c[i].sums[k].scale, false, buf, sizeof buf);
                printf("  %-10s %20s\n", r.c[i].keys[k], buf);
            }
        }
        printf("\nbatches\n%s", r.rows.len ? r.rows.p : "  (none)\n");
        printf("\npayments and refunds\n  %s\n", pay);
    } else {
        printf("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<title>sagebridge control totals %s</title>\n<style>\n"
               "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#111}\n"
               "h1{font-size:20px}h2{font-size:16px;margin-top:1.5em}\n"
               "table{border-collapse:collapse;margin:.5em 0}\n"
               "th,td{border:1px solid #999;padding:3px 8px;text-align:left}\n"
               "td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
               "th{background:#eee}\n"
               "@media print{body{margin:0}th{background:none}a{color:inherit}}\n"
               "</style></head><body>\n<h1>Control totals for %s (UTC)</h1>\n"
               "<p>%llu batches; records %llu in, %llu published, %llu rejected, %llu "
               "duplicate, %llu held.</p>\n",
               date, date, (unsigned long long)r.batches, (unsigned long long)r.records,
               (unsigned long long)r.published, (unsigned long long)r.rejected,
               (unsigned long long)r.duplicate, (unsigned long long)r.held);
        if (!r.n)
            printf("<p>Nothing was sent to Sage on this day.</p>\n");
        for (int i = 0; i < r.n; i++) {
            printf("<h2>%s</h2>\n<table><tr><th>measure</th><th>value</th></tr>\n", r.c[i].cur);
            for (int k = 0; k < r.c[i].nkeys; k++) {
                dec_format(r.c[i].sums[k], r.c[i].sums[k].scale, false, buf, sizeof buf);
                printf("<tr><td>%s</td><td class=n>%s</td></tr>\n", r.c[i].keys[k], buf);
            }
            printf("</table>\n");
        }
        printf("<h2>Batches</h2>\n<table><tr><th>batch</th><th>input</th><th>in</th>"
               "<th>published</th><th>rejected</th><th>control totals</th></tr>\n%s</table>\n",
               sbuf_str(&r.rows));
        printf("<h2>Payments and refunds</h2>\n<p>%s</p>\n</body></html>\n", pay);
    }
    free(since);
    free(until);
    sbuf_free(&r.rows);
    return EX_OK;
}

/* audit_main - dispatch "archive SUBCOMMAND" */
int audit_main(spool *s, int argc, char **argv)
{
    if (argc < 1)
        return usage("needs list, show, extract, verify, prune or report");
    const char *c = argv[0];
    if (!strcmp(c, "list"))
        return cmd_list(s, argc, argv);
    if (!strcmp(c, "show"))
        return cmd_show(s, argc, argv);
    if (!strcmp(c, "extract"))
        return cmd_extract(s, argc, argv);
    if (!strcmp(c, "verify"))
        return cmd_verify(s, argc, argv);
    if (!strcmp(c, "prune"))
        return cmd_prune(s, argc, argv);
    if (!strcmp(c, "report"))
        return cmd_report(s, argc, argv);
    fprintf(stderr, "sagebridge: archive: unknown subcommand \"%s\" (see sagebridge --help)\n", c);
    return EX_USAGE;
}
