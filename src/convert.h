/*
 * convert.h - one input file through reader, template and writer:
 * the `convert` and `validate` commands, and each batch of the spool.
 */
#ifndef SAGEBRIDGE_CONVERT_H
#define SAGEBRIDGE_CONVERT_H

#include <stdbool.h>

#include "clarity_in.h"
#include "decimal.h"
#include "publish.h"
#include "sage_out.h"
#include "template.h"

#define CONV_MAX_CURRENCIES 16
#define CONV_MAX_TOTALS     8

/* accept - a record passed every check: 0 write it, 1 it is a duplicate
 * (why: a message), -1 stop with an error */
typedef int (*convert_accept_fn)(void *ctx, const template *t, const tpl_result *res, sbuf *why);

typedef struct {
    tpl_set *templates;
    const char *template_name; /* --template, or NULL to detect */
    const char *outdir;        /* NULL: check only, write nothing */
    const char *outdir_ops;    /* Clarity API batches go here (default outdir) */
    int formats;               /* SW_CSV | SW_XML */
    const char *batch;         /* batch id for file names; NULL: the input's base name */
    bool stage;                /* leave outputs under temporary names (the spool publishes) */
    const char *rejects_dir;   /* where NAME.rejects.json goes (default outdir) */
    const char *rejects_name;  /* its name (default BATCH.rejects.json) */
    const char *display_name;  /* name used in messages (default the path) */
    const char *created_at;    /* Clarity batches: createdAt (default now/SOURCE_DATE_EPOCH) */
    const char *source_sha;    /* the input's SHA-256: makes the operations' idempotency keys */
    const tpl_hooks *hooks;
    convert_accept_fn accept;
    void *accept_ctx;
} convert_opts;

typedef struct {
    char currency[8];
    uint64_t orders, lines;
    decimal sums[CONV_MAX_TOTALS];
} conv_totals;

typedef struct {
    uint64_t records, written, rejected, duplicates, warnings;
    const char *template_name;
    const template *tmpl;
    cin_status cin;    /* how reading ended */
    char cin_msg[300]; /* and in words */
    uint64_t cin_offset;
    uint64_t cin_line; /* line of that offset */
    pub_file files[SW_MAX_FILES];
    int nfiles;
    bool rejects_written;
    int ncur;
    conv_totals cur[CONV_MAX_CURRENCIES];
} convert_stats;

/* convert_file - exit status of sysexits.h: 0, 65 (records or file rejected), 66, 73, 74, 78 */
int convert_file(const convert_opts *o, const char *path, convert_stats *st);

/* convert_sniff - the template the file's first record selects (NULL: none; why in err) */
const template *convert_sniff(tpl_set *s, const char *template_name, const char *path, sbuf *err);

#endif
