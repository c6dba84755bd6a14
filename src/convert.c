/*
 * convert.c - drive one Clarity export through the pipeline:
 * clarity_in (records) -> template (checks, rows) -> sage_out (files).
 *
 * The template is chosen on the first record: --template if given, else
 * the first template of the file's kind (wrapper member, then file name
 * prefix) whose detection keys the record has.  Good records are written
 * as they come; bad ones are listed in B.rejects.json and summarised on
 * stderr.  A file that is not JSON to its end leaves no output at all:
 * the writer's temporary files are removed and the byte offset is named.
 *
 * DIAGNOSTICS
 *	Messages go to stderr as "sagebridge: FILE: …"; the return value is
 *	the exit status (sysexits.h).
 */
#include "convert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <yajl/yajl_gen.h>

#include "clarity_in.h"
#include "digest.h"
#include "clarity_out.h"
#include "sage_in.h"
#include "pipeline.h"
#include "publish.h"

#define READ_CHUNK     (256 * 1024)
#define SHOW_MAX       20 /* reject / warning lines printed per file */
#define PIPE_MIN_BYTES (1 << 20)

/* a record with its template result: what the reading thread hands to the mapping one (the
 * result's values point into the record's text and the result's arena: they travel together) */
typedef struct job job;

typedef struct {
    const job *j; /* the same in every element: for mapped_ahead */
    record rec;
    tpl_result res;
    int spec; /* res holds a speculative evaluation (tpl_run_new_spec) */
    int rc;   /* and what it returned */
} mapped;

/*
 * From a megabyte on, a file is read on this thread and mapped on another
 * (sb-map), which sees the records in file order: it owns the duplicate
 * sets, sequences, ledger hooks, the writers and the rejects.  Mapping
 * costs about twice what reading does, so whenever sb-map falls behind
 * (SPEC_BACKLOG records waiting) the reading thread also evaluates the
 * template on the record it hands over, speculatively (tpl_run_new_spec);
 * sb-map then only settles that result in order (tpl_settle), which gives
 * exactly what its own evaluation would have.  The two threads balance
 * themselves on two cores.
 */
#define SPEC_BACKLOG 48

struct job {
    const convert_opts *o;
    const char *path; /* for messages */
    const char *file; /* to read */
    char *batch;
    cin_parser *cin;
    pipeline *pipe;    /* records mapped on sb-map while the file is read */
    mapped cur;        /* with pipe: the element being handed over */
    tpl_run *run_spec; /* with pipe: the reading thread's speculative run */
    int speculate;     /* SAGEBRIDGE_SPECULATE: -1 never, 1 always, 0 by the backlog */
    off_t size;        /* of the input */
    template *t;
    tpl_run *run;
    tpl_result res;
    sage_writer *w;
    clarity_writer *cw; /* Sage exports: a Clarity API batch */
    sage_reader *sin;
    char **head; /* the CSV's header, for template detection */
    int nhead;
    ofile *rejects;
    yajl_gen gen;
    convert_stats st;
    int status; /* exit status decided inside the callback */
    sbuf err;
};

static const char *const kinds[] = {"orders", "products", "customers", "payments"};
static const char *const sage_kinds[] = {"inventory", "shipments", "so_status", "items",
                                         "customers"};

/* kind_from_name - "orders-2026.json" -> "orders" */
static const char *kind_from_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strncasecmp(base, kinds[i], strlen(kinds[i])) == 0)
            return kinds[i];
    return NULL;
}

/* base_name - file name without folder and last extension */
static char *base_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return strndup(base, n);
}

static int has_key(void *ctx, const char *key)
{
    return cin_first_has_key(ctx, key);
}

static int start_template(job *j);

/* choose_template - on the first record */
static int choose_template(job *j)
{
    tpl_set *s = j->o->templates;
    const char *kind = cin_wrapper_kind(j->cin);
    if (!kind)
        kind = kind_from_name(j->path);
    if (j->o->template_name) {
        j->t = tpl_find(s, j->o->template_name);
        if (!j->t) {
            fprintf(stderr, "sagebridge: %s: no template named \"%s\" (see templates/)\n", j->path,
                    j->o->template_name);
            j->status = 78;
            return -1;
        }
    } else {
        j->t = tpl_detect(s, kind, 0, has_key, j->cin);
        if (!j->t) {
            fprintf(stderr,
                    "sagebridge: %s: no template recognises these records (kind %s); name one "
                    "with --template\n",
                    j->path, kind ? kind : "unknown");
            j->status = 65;
            return -1;
        }
    }
    return start_template(j);
}

/* start_template - the template is chosen: its run, its result, its writer */
static int start_template(job *j)
{
    j->st.template_name = tpl_name(j->t);
    j->run = tpl_run_new(j->t);
    tpl_run_set_hooks(j->run, j->o->hooks);
    j->st.tmpl = j->t;
    tpl_result_init(&j->res, j->t);
    if (j->o->outdir && tpl_output(j->t)->nops) {
        char now[32];
        time_t t = j->o->created_at ? 0 : time(NULL);
        const char *sde = getenv("SOURCE_DATE_EPOCH");
        if (sde && *sde)
            t = (time_t)strtoll(sde, NULL, 10);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
        char sha[65] = "";
        const char *src_sha = j->o->source_sha;
        if (!src_sha) { /* convert: hash the input here (the spool knows it already) */
            sha256_path(j->file, sha);
            src_sha = sha;
        }
        const char *base = strrchr(j->path, '/');
        j->cw = cw_open(tpl_output(j->t), j->o->outdir_ops ? j->o->outdir_ops : j->o->outdir,
                        j->batch, j->o->created_at ? j->o->created_at : now,
                        base ? base + 1 : j->path, src_sha, &j->err);
        if (!j->cw) {
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&j->err));
            j->status = 73;
            return -1;
        }
    } else if (j->o->outdir) {
        j->w = sw_open(tpl_output(j->t), j->o->outdir, j->batch, j->o->formats, &j->err);
        if (!j->w) {
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&j->err));
            j->status = 73;
            return -1;
        }
    }
    return 0;
}

static void gen_str(yajl_gen g, const char *s, size_t n)
{
    yajl_gen_string(g, (const unsigned char *)s, n);
}

static void gen_kv(yajl_gen g, const char *k, const char *v, size_t n)
{
    gen_str(g, k, strlen(k));
    gen_str(g, v, n);
}

static void gen_ki(yajl_gen g, const char *k, uint64_t v)
{
    gen_str(g, k, strlen(k));
    yajl_gen_integer(g, (long long)v);
}

/* add_reject - one object in B.rejects.json and a line on stderr */
static int add_reject(job *j, const record *rec, const tpl_result *res, const tpl_issue *e)
{
    if (j->st.rejected + j->st.duplicates <= SHOW_MAX)
        fprintf(stderr, "sagebridge: %s: record %llu (line %llu%s%.*s) rejected: %s%s%s: %s\n",
                j->path, (unsigned long long)rec->index, (unsigned long long)rec->line,
                res->key.n ? ", key " : "", (int)res->key.n, res->key.p, e->field,
                *e->field ? ": " : "", e->code, e->message);
    if (!j->o->outdir)
        return 0;
    if (!j->rejects) {
        sbuf name = {0};
        if (j->o->rejects_name)
            sbuf_adds(&name, j->o->rejects_name);
        else
            sbuf_printf(&name, "%s.rejects.json", j->batch);
        j->rejects = of_open(j->o->rejects_dir ? j->o->rejects_dir : j->o->outdir, name.p, &j->err);
        sbuf_free(&name);
        if (!j->rejects)
            return -1;
        of_puts(j->rejects, "[\n");
    } else {
        of_puts(j->rejects, ",\n");
    }
    yajl_gen g = j->gen;
    yajl_gen_clear(g);
    yajl_gen_reset(g, NULL);
    yajl_gen_map_open(g);
    gen_ki(g, "record", rec->index);
    gen_ki(g, "line", rec->line);
    gen_ki(g, "offset", rec->offset);
    gen_kv(g, "key", res->key.p, res->key.n);
    gen_kv(g, "field", e->field, strlen(e->field));
    gen_kv(g, "code", e->code, strlen(e->code));
    gen_kv(g, "message", e->message, strlen(e->message));
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    return of_write(j->rejects, buf, len);
}

static void show_warnings(job *j, const record *rec, const tpl_result *res)
{
    for (size_t i = 0; i < res->nwarnings; i++) {
        const tpl_issue *w = &res->warnings[i];
        if (++j->st.warnings <= SHOW_MAX)
            fprintf(stderr, "sagebridge: %s: warning: record %llu (key %.*s): %s: %s: %s\n",
                    j->path, (unsigned long long)rec->index, (int)res->key.n, res->key.p, w->field,
                    w->code, w->message);
    }
}

/* add_totals - the record's control totals into its currency's sums */
static void add_totals(job *j, const tpl_result *res)
{
    const tpl_output_desc *o = tpl_output(j->t);
    conv_totals *c = NULL;
    char cur[8];
    size_t cn = res->currency.n < 7 ? res->currency.n : 7; /* (no snprintf: once per record) */
    memcpy(cur, res->currency.p, cn);
    cur[cn] = '\0';
    for (int i = 0; i < j->st.ncur && !c; i++)
        if (strcmp(j->st.cur[i].currency, cur) == 0)
            c = &j->st.cur[i];
    if (!c) {
        if (j->st.ncur == CONV_MAX_CURRENCIES)
            c = &j->st.cur[CONV_MAX_CURRENCIES - 1]; /* more currencies than any shop: lumped */
        else {
            c = &j->st.cur[j->st.ncur++];
            memset(c, 0, sizeof *c);
            snprintf(c->currency, sizeof c->currency, "%s", cur);
        }
    }
    c->orders++;
    for (int t = 0; t < o->ntables; t++)
        if (o->tables[t].per_item)
            c->lines += res->nrows[t];
    for (int i = 0; i < o->ntotals && i < CONV_MAX_TOTALS; i++)
        dec_add(c->sums[i], res->totals[i], &c->sums[i]);
}

/* take_result - a record's result, in file order: rejected, a duplicate of what was
 * published before, or written */
static int take_result(job *j, const record *rec, const tpl_result *res, int rc)
{
    if (rc != 0) {
        j->st.rejected++;
        if (add_reject(j, rec, res, &res->errors[0]) != 0) {
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&j->err));
            j->status = 73;
            return -1;
        }
        return 0;
    }
    if (j->o->accept) {
        sbuf why = {0};
        int a = j->o->accept(j->o->accept_ctx, j->t, res, &why);
        if (a != 0) {
            tpl_issue dup = {"", "DUPLICATE_PUBLISHED", sbuf_str(&why)};
            if (a > 0) {
                j->st.duplicates++;
                a = add_reject(j, rec, res, &dup);
            }
            sbuf_free(&why);
            if (a != 0) {
                fprintf(stderr, "sagebridge: %s\n", sbuf_str(&j->err));
                j->status = 74;
                return -1;
            }
            return 0;
        }
        sbuf_free(&why);
    }
    add_totals(j, res);
    show_warnings(j, rec, res);
    if (j->cw && cw_record(j->cw, res, &j->err) != 0) {
        fprintf(stderr, "sagebridge: %s\n", sbuf_str(&j->err));
        j->status = 74;
        return -1;
    }
    if (j->w && sw_record(j->w, res, &j->err) != 0) {
        fprintf(stderr, "sagebridge: %s\n", sbuf_str(&j->err));
        j->status = 74;
        return -1;
    }
    j->st.written++;
    return 0;
}

/* on_record - map one record here and now (small files, the first record, Sage CSVs) */
static int on_record(void *ctx, record *rec)
{
    job *j = ctx;
    if (!j->t && choose_template(j) != 0)
        return -1;
    j->st.records++;
    return take_result(j, rec, &j->res, tpl_eval(j->run, rec, &j->res));
}

/* on_mapped - sb-map's side: settle a speculative result, or evaluate, then take it */
static int on_mapped(void *ctx, void *elem)
{
    job *j = ctx;
    mapped *m = elem;
    j->st.records++;
    int rc =
        m->spec ? tpl_settle(j->run, &m->rec, &m->res, m->rc) : tpl_eval(j->run, &m->rec, &m->res);
    return take_result(j, &m->rec, &m->res, rc);
}

static void mapped_init(void *elem, const void *arg)
{
    const job *j = arg;
    mapped *m = elem;
    m->j = j;
    record_init(&m->rec, tpl_schema(j->o->templates));
    tpl_result_init(&m->res, j->t);
    m->spec = m->rc = 0;
}

/* prefetch_r - ask for up to max bytes at p, a cache line at a time, for reading */
static void prefetch_r(const void *p, size_t n, size_t max)
{
    n = n < max ? n : max;
    for (size_t i = 0; i < n; i += 64)
        __builtin_prefetch((const char *)p + i, 0, 3);
}

/* prefetch_w - ask for up to max bytes at p, a cache line at a time, for writing */
static void prefetch_w(const void *p, size_t n, size_t max)
{
    n = n < max ? n : max;
    for (size_t i = 0; i < n; i += 64)
        __builtin_prefetch((const char *)p + i, 1, 3);
}

/* mapped_ahead - sb-map's side: the next record's memory, written on the reader's core, asked
 * for while this one is mapped; its first reads were misses that held sb-map up (pairwise,
 * ten rounds twice: wall 0.965 and 0.979, bench/HISTORY.md, session 6).  The result of a
 * speculated record as well: no measurable difference, so not. */
static void mapped_ahead(const void *elem)
{
    const mapped *m = elem;
    const record *r = &m->rec;
    const rec_schema *s = r->schema;
    prefetch_r(r->text.p, r->text.len, 4096);
    prefetch_r(r->hdr, (size_t)schema_nslots(s, REC_HEADER) * sizeof *r->hdr, 1024);
    for (int g = 0; g < schema_ngroups(s); g++)
        prefetch_r(r->groups[g].vals, r->groups[g].nitems * r->groups[g].nslots * sizeof(rec_val),
                   1024);
    if (m->spec)
        tpl_prefetch(m->j->run, &m->res);
}

static void mapped_free(void *elem)
{
    mapped *m = elem;
    record_free(&m->rec);
    tpl_result_free(&m->res);
}

/* start_pipeline - sb-map, and the reading thread's speculative run */
static void start_pipeline(job *j)
{
    pl_elem e = {sizeof(mapped), mapped_init, mapped_free, j, mapped_ahead};
    j->pipe = pl_start("sb-map", PL_DEPTH, &e, on_mapped, j);
    if (!j->pipe)
        return;
    mapped_init(&j->cur, j);
    j->run_spec = tpl_run_new_spec(j->t);
    const char *sp = getenv("SAGEBRIDGE_SPECULATE"); /* tests: "always" or "never" */
    j->speculate = !sp ? 0 : !strcmp(sp, "always") ? 1 : !strcmp(sp, "never") ? -1 : 0;
}

/* stop_pipeline - every record mapped (discard: those still queued dropped), sb-map stopped */
static void stop_pipeline(job *j, int discard)
{
    if (!j->pipe)
        return;
    pl_finish(j->pipe, discard);
    j->pipe = NULL;
    mapped_free(&j->cur);
    tpl_run_free(j->run_spec);
    j->run_spec = NULL;
}

/* on_record_read - the reader's side: the first record is mapped here (the template is
 * chosen with the reader's view of the file), the others on sb-map */
static int on_record_read(void *ctx, record *rec)
{
    job *j = ctx;
    if (j->pipe) {
        /* The record is copied, in one pass, into the element that goes to sb-map, and its
         * result (which points into the element's record) is evaluated there.  The reader's
         * own record stays in this core's cache: when the records themselves travelled (and
         * came back from sb-map's core to be filled again), every value stored into one
         * waited for its cache line to come back, and the reader's other stores behind it;
         * the pipeline cost 30-40 % more CPU than one thread (bench/HISTORY.md, session 6) */
        mapped *m = &j->cur;
        record_copy(&m->rec, rec);
        m->spec = j->speculate > 0 || (j->speculate == 0 && pl_backlog(j->pipe) >= SPEC_BACKLOG);
        if (m->spec)
            m->rc = tpl_eval(j->run_spec, &m->rec, &m->res);
        int rc = pl_push(j->pipe, m);
        /* m is now an element back from sb-map: the next copy's destination, asked for
         * (for writing) while the next record is read */
        prefetch_w(m->rec.text.p, m->rec.text.len, 4096);
        prefetch_w(m->rec.hdr, (size_t)schema_nslots(m->rec.schema, REC_HEADER) * sizeof(rec_val),
                   1024);
        return rc;
    }
    int rc = on_record(j, rec);
    /* a second thread pays off from about a megabyte on: a one-order file is done sooner
     * than a thread is started */
    if (rc == 0 && j->t && j->size >= PIPE_MIN_BYTES && !getenv("SAGEBRIDGE_NO_PIPELINE"))
        start_pipeline(j);
    return rc;
}

static void job_cleanup(job *j, int failed)
{
    if (failed) {
        sw_abort(j->w);
        cw_abort(j->cw);
        j->cw = NULL;
        of_abort(j->rejects);
        j->w = NULL;
        j->rejects = NULL;
    }
    if (j->t) {
        tpl_result_free(&j->res);
        tpl_run_free(j->run);
    }
    cin_free(j->cin);
    sin_free(j->sin);
    yajl_gen_free(j->gen);
    sbuf_free(&j->err);
    free(j->batch);
}

/* finish - publish outputs (or not) and choose the exit status */
static int finish(job *j)
{
    if (!j->t && !j->cin) /* a CSV whose header chose nothing: said already */
        return j->status ? j->status : 65;
    if (!j->t) { /* no record at all */
        const char *kind = cin_wrapper_kind(j->cin);
        if (!kind)
            kind = kind_from_name(j->path);
        if (j->o->template_name || kind) {
            if (choose_template(j) != 0)
                return j->status;
        } else {
            fprintf(stderr, "sagebridge: %s: no records; nothing written\n", j->path);
            return 0;
        }
    }
    if (j->cw) {
        int rc = 0;
        if (j->o->stage) {
            rc = cw_close(j->cw, &j->st.files[0], &j->err);
            j->st.nfiles = rc == 0;
        } else {
            rc = cw_commit(j->cw, &j->err);
        }
        j->cw = NULL;
        if (rc != 0) {
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&j->err));
            return 73;
        }
    }
    if (j->w) {
        int rc = j->o->stage ? sw_close(j->w, j->st.files, &j->st.nfiles, &j->err)
                             : sw_commit(j->w, &j->err);
        j->w = NULL;
        if (rc != 0) {
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&j->err));
            return 73;
        }
    }
    if (j->rejects) {
        of_puts(j->rejects, "\n]\n");
        int rc = of_commit(j->rejects, &j->err);
        j->rejects = NULL;
        j->st.rejects_written = rc == 0;
        if (rc != 0) {
            fprintf(stderr, "sagebridge: %s\n", sbuf_str(&j->err));
            return 73;
        }
    } else if (j->o->outdir && !j->o->rejects_name) {
        /* a rejects file left by an earlier run of the same input is no longer true */
        sbuf name = {0};
        sbuf_printf(&name, "%s/%s.rejects.json", j->o->outdir, j->batch);
        unlink(name.p);
        sbuf_free(&name);
    }
    if (j->st.warnings > SHOW_MAX)
        fprintf(stderr, "sagebridge: %s: … and %llu more warnings\n", j->path,
                (unsigned long long)(j->st.warnings - SHOW_MAX));
    if (j->st.duplicates)
        fprintf(stderr, "sagebridge: %s: %llu records were published before and are left out\n",
                j->path, (unsigned long long)j->st.duplicates);
    if (j->st.rejected) {
        if (j->st.rejected > SHOW_MAX)
            fprintf(stderr, "sagebridge: %s: … and %llu more rejected records\n", j->path,
                    (unsigned long long)(j->st.rejected - SHOW_MAX));
        if (j->o->outdir)
            fprintf(stderr,
                    "sagebridge: %s: %llu of %llu records rejected, listed in %s/%s%s; "
                    "the other records were written; fix the rejected ones at the source and "
                    "convert them again\n",
                    j->path, (unsigned long long)j->st.rejected, (unsigned long long)j->st.records,
                    j->o->rejects_dir ? j->o->rejects_dir : j->o->outdir,
                    j->o->rejects_name ? j->o->rejects_name : j->batch,
                    j->o->rejects_name ? "" : ".rejects.json");
        else
            fprintf(stderr, "sagebridge: %s: %llu of %llu records would be rejected\n", j->path,
                    (unsigned long long)j->st.rejected, (unsigned long long)j->st.records);
        return 65;
    }
    return 0;
}

/* is_csv - a Sage export: by name, else by a first byte that cannot start JSON */
static bool is_csv(const char *path, int fd)
{
    size_t l = strlen(path);
    if (l > 4 && strcasecmp(path + l - 4, ".csv") == 0)
        return true;
    if (l > 5 && (strcasecmp(path + l - 5, ".json") == 0))
        return false;
    char buf[64];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n')
            continue;
        if ((unsigned char)buf[i] == 0xEF && i + 3 < n) /* a byte-order mark: look past it */
            return buf[i + 3] != '[' && buf[i + 3] != '{';
        return buf[i] != '[' && buf[i] != '{';
    }
    return false;
}

/* header_has - a CSV header names this column (case-insensitively) */
static int header_has(char **head, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(head[i], key) == 0)
            return 1;
    return 0;
}

static int csv_has_column(void *ctx, const char *key)
{
    job *j = ctx;
    return header_has(j->head, j->nhead, key);
}

/* csv_header - choose the template from the header (or the name), check its columns */
static int csv_header(void *ctx, char **cols, int n)
{
    job *j = ctx;
    j->head = cols;
    j->nhead = n;
    tpl_set *s = j->o->templates;
    const char *base = strrchr(j->path, '/');
    base = base ? base + 1 : j->path;
    const char *kind = NULL;
    for (size_t i = 0; i < sizeof sage_kinds / sizeof *sage_kinds; i++)
        if (strncasecmp(base, sage_kinds[i], strlen(sage_kinds[i])) == 0)
            kind = sage_kinds[i];
    if (j->o->template_name) {
        j->t = tpl_find(s, j->o->template_name);
        if (!j->t) {
            fprintf(stderr, "sagebridge: %s: no template named \"%s\" (see templates/)\n", j->path,
                    j->o->template_name);
            j->status = 78;
            return 1;
        }
    } else {
        /* the header's column set decides (SPEC §6); the name only explains a miss */
        j->t = tpl_detect(s, NULL, 1, csv_has_column, j);
    }
    if (!j->t && kind) {
        /* named like a kind, but a required column is missing: say which */
        for (int i = 0; i < tpl_count(s); i++) {
            template *t = tpl_at(s, i);
            if (strcmp(tpl_kind(t), kind) != 0 || !tpl_output(t)->nops)
                continue;
            sbuf miss = {0};
            tpl_missing_keys(t, csv_has_column, j, &miss);
            fprintf(stderr,
                    "sagebridge: %s: line 1: by its name a Sage %s export, but the column%s "
                    "%s %s missing; add %s to the export query\n",
                    j->path, kind, strchr(sbuf_str(&miss), ',') ? "s" : "", sbuf_str(&miss),
                    strchr(sbuf_str(&miss), ',') ? "are" : "is",
                    strchr(sbuf_str(&miss), ',') ? "them" : "it");
            snprintf(j->st.cin_msg, sizeof j->st.cin_msg, "line 1: missing required column%s %s",
                     strchr(sbuf_str(&miss), ',') ? "s" : "", sbuf_str(&miss));
            j->st.cin_line = 1;
            sbuf_free(&miss);
            j->status = 65;
            return 1;
        }
    }
    if (!j->t) {
        fprintf(stderr,
                "sagebridge: %s: line 1: no template knows these columns; name one with "
                "--template or name the file after its kind (%s)\n",
                j->path, "inventory, shipments, so_status, items, customers");
        snprintf(j->st.cin_msg, sizeof j->st.cin_msg, "line 1: no template knows these columns");
        j->st.cin_line = 1;
        j->status = 65;
        return 1;
    }
    sin_bind(j->sin);
    return start_template(j) != 0;
}

static int csv_record(void *ctx, record *rec)
{
    return on_record(ctx, rec) != 0;
}

/* convert_csv - a Sage export through its template into a Clarity API batch */
static int convert_csv(job *j, int fd)
{
    j->sin = sin_new(tpl_schema(j->o->templates), csv_header, csv_record, j);
    sin_status ss = sin_read_fd(j->sin, fd);
    close(fd);
    if (ss == SIN_STOPPED) {
        j->st.cin = j->status == 65 && !j->t ? CIN_SHAPE : CIN_STOPPED;
        return j->status ? j->status : 74;
    }
    if (ss == SIN_IO) {
        fprintf(stderr, "sagebridge: %s: %s\n", j->path, sin_message(j->sin));
        j->st.cin = CIN_STOPPED;
        return 74;
    }
    if (ss == SIN_UNCLOSED || ss == SIN_EMPTY) {
        j->st.cin = ss == SIN_UNCLOSED ? CIN_TRUNCATED : CIN_EMPTY;
        snprintf(j->st.cin_msg, sizeof j->st.cin_msg, "line %llu: %s",
                 (unsigned long long)sin_line(j->sin), sin_message(j->sin));
        j->st.cin_line = sin_line(j->sin);
        if (!j->o->stage)
            fprintf(stderr, "sagebridge: %s: %s; nothing was written\n", j->path, j->st.cin_msg);
        return 65;
    }
    j->st.cin = CIN_OK;
    return finish(j);
}

int convert_file(const convert_opts *o, const char *path, convert_stats *st)
{
    job j = {.o = o, .path = o->display_name ? o->display_name : path, .file = path};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "sagebridge: %s: cannot open the input: %s\n", j.path, strerror(errno));
        return errno == ENOENT ? 66 : 74;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        fprintf(stderr, "sagebridge: %s: not a regular file\n", path);
        close(fd);
        return 66;
    }
    j.size = sb.st_size;
    j.batch = o->batch ? xstrdup(o->batch) : base_name(j.path);
    j.gen = yajl_gen_alloc(NULL);
    if (is_csv(path, fd)) {
        int crc = convert_csv(&j, fd);
        if (st)
            *st = j.st;
        job_cleanup(&j, 1); /* after finish() nothing is left to abort */
        return crc;
    }
    j.cin = cin_new(tpl_schema(o->templates), on_record_read, &j);
    char *buf = xmalloc(READ_CHUNK);
    cin_status cs = CIN_OK;
    int io_err = 0;
    for (;;) {
        ssize_t n = read(fd, buf, READ_CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            io_err = errno;
            break;
        }
        if (n == 0) {
            cs = cin_finish(j.cin);
            break;
        }
        cs = cin_feed(j.cin, buf, (size_t)n);
        if (cs != CIN_OK)
            break;
    }
    free(buf);
    close(fd);
    /* a file that is not read to its end is not written: drop the rest */
    stop_pipeline(&j, io_err || (cs != CIN_OK && cs != CIN_STOPPED));
    int rc;
    if (io_err) {
        fprintf(stderr, "sagebridge: %s: read error: %s\n", path, strerror(io_err));
        rc = 74;
    } else if (cs == CIN_STOPPED) {
        rc = j.status ? j.status : 74;
    } else if (cs != CIN_OK) {
        const char *what = cs == CIN_TRUNCATED ? "the file ends too early (truncated)"
                                               : "the file is not valid Clarity JSON";
        snprintf(j.st.cin_msg, sizeof j.st.cin_msg, "byte %llu: %s: %s",
                 (unsigned long long)cin_error_offset(j.cin), what, cin_message(j.cin));
        j.st.cin_offset = cin_error_offset(j.cin);
        j.st.cin_line = cin_error_line(j.cin);
        if (!o->stage) /* the spool decides whether a truncated file is final */
            fprintf(stderr, "sagebridge: %s: %s; nothing was written, fix or re-export the file\n",
                    j.path, j.st.cin_msg);
        rc = 65;
    } else {
        rc = finish(&j);
    }
    j.st.cin = cs;
    if (st)
        *st = j.st;
    job_cleanup(&j, 1); /* after finish() nothing is left to abort */
    return rc;
}

typedef struct {
    tpl_set *s;
    const char *name;
    const char *path;
    cin_parser *cin;
    const template *t;
    int done;
} sniff;

static int sniff_record(void *ctx, record *rec)
{
    (void)rec;
    sniff *sn = ctx;
    const char *kind = cin_wrapper_kind(sn->cin);
    if (!kind)
        kind = kind_from_name(sn->path);
    sn->t = sn->name ? tpl_find(sn->s, sn->name) : tpl_detect(sn->s, kind, 0, has_key, sn->cin);
    sn->done = 1;
    return 1; /* stop: one record is enough */
}

typedef struct {
    tpl_set *s;
    char **head;
    int n;
    const template *t;
} csv_sniff;

static int sniff_has(void *ctx, const char *key)
{
    csv_sniff *c = ctx;
    return header_has(c->head, c->n, key);
}

static int sniff_header(void *ctx, char **cols, int n)
{
    csv_sniff *c = ctx;
    c->head = cols;
    c->n = n;
    c->t = tpl_detect(c->s, NULL, 1, sniff_has, c);
    return 1; /* the header is all it takes */
}

static int sniff_row(void *ctx, record *rec)
{
    (void)ctx;
    (void)rec;
    return 1;
}

const template *convert_sniff(tpl_set *s, const char *template_name, const char *path, sbuf *err)
{
    sniff sn = {.s = s, .name = template_name, .path = path};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sbuf_printf(err, "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (is_csv(path, fd)) {
        csv_sniff c = {.s = s};
        sage_reader *r = sin_new(tpl_schema(s), sniff_header, sniff_row, &c);
        sin_read_fd(r, fd);
        sin_free(r);
        close(fd);
        if (template_name)
            c.t = tpl_find(s, template_name);
        if (!c.t)
            sbuf_printf(err, "no template knows the columns of this file");
        /* cppcheck-suppress CastIntegerToAddressAtReturn ; "template" reads as C++ to it */
        return c.t;
    }
    sn.cin = cin_new(tpl_schema(s), sniff_record, &sn);
    char buf[65536];
    ssize_t n;
    cin_status cs = CIN_OK;
    while (!sn.done && (n = read(fd, buf, sizeof buf)) > 0)
        if ((cs = cin_feed(sn.cin, buf, (size_t)n)) != CIN_OK)
            break;
    if (!sn.done && cs == CIN_OK)
        cs = cin_finish(sn.cin);
    if (!sn.done) {
        /* no record at all: the wrapper or the name may still say the kind */
        const char *kind = cin_wrapper_kind(sn.cin);
        if (!kind)
            kind = kind_from_name(path);
        if (cs == CIN_OK && (template_name || kind))
            sn.t = template_name ? tpl_find(s, template_name)
                                 : tpl_detect(s, kind, 0, has_key, sn.cin);
        else if (cs != CIN_OK)
            sbuf_printf(err, "byte %llu: %s", (unsigned long long)cin_error_offset(sn.cin),
                        cin_message(sn.cin));
    }
    if (!sn.t && !err->len)
        sbuf_printf(err, "no template recognises these records");
    cin_free(sn.cin);
    close(fd);
    /* cppcheck-suppress CastIntegerToAddressAtReturn ; "template" reads as C++ to it */
    return sn.t;
}
