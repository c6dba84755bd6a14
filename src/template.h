/*
 * template.h - mapping templates: what maps to what, kept out of C.
 *
 * A template (templates/NAME.xml, schema xsd/template.xsd, language in
 * templates/README.md) says which records it reads (kind, detection keys),
 * which checks a record must pass, and how each column of each output
 * table is computed from the record.  This module loads templates, binds
 * their source paths into a record schema, and evaluates one record at a
 * time into rows of text.
 */
#ifndef SAGEBRIDGE_TEMPLATE_H
#define SAGEBRIDGE_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "decimal.h"
#include "record.h"
#include "util.h"

typedef struct {
    const char *p;
    size_t n;
} tval;

typedef struct {
    const char *field;
    const char *code;
    const char *message;
} tpl_issue;

typedef struct {
    const char *name;
    int ncols;
    const char **cols;
    bool per_item; /* one row per item of a group, else one row per record */
} tpl_table_desc;

/* an operation of a Clarity API batch (templates with <operations>) */
typedef struct {
    const char *op, *method, *path;
    const char *collect; /* records add items to this array of one operation, or NULL */
    int chunk;           /* with collect: items per operation */
    bool grouped;        /* consecutive records with the same group value make one operation */
    const char *lines;   /* grouped: the array their <lines> items go into */
} tpl_op_desc;

typedef struct {
    const char *prefix;     /* file prefix: "SO" -> SO_B_StgSalesOrder.csv */
    const char *xml_root;   /* document element */
    const char *xml_record; /* element around one record's rows */
    const char *xml_ns;
    int ntables;
    const tpl_table_desc *tables;
    int ntotals; /* control totals the template sums per currency (SPEC §7) */
    const char *const *total_names;
    int nops; /* > 0: the template writes Clarity API operations, not Sage tables */
    const tpl_op_desc *ops;
} tpl_output_desc;

typedef struct {
    arena mem;
    size_t *nrows; /* per table */
    tval **rows;   /* per table: nrows * ncols values */
    tpl_issue *errors, *warnings;
    size_t nerrors, nwarnings, cap_err, cap_warn;
    tval key;              /* business key (e.g. orderId), may be empty */
    tval key_ref;          /* the output value the key maps to (<key column=…>, e.g. TranNo) */
    tval currency;         /* of the control totals */
    decimal *totals;       /* one value per tpl_output_desc.total_names (empty counts as 0) */
    tval *op_json;         /* per operation: the body (or the collected item) as JSON text */
    tval *op_resolve;      /* per operation: JSON object of placeholders to resolve, "" if none */
    tval *op_item;         /* grouped operations: this record's <lines> item */
    tval *op_group;        /* grouped operations: the group value */
    bool *op_when;         /* grouped operations: this record allows the operation (<when>) */
    struct tpl_spec *spec; /* a speculative evaluation's questions, for tpl_settle */
} tpl_result;

typedef struct template template;
typedef struct tpl_set tpl_set;
typedef struct tpl_run tpl_run;

/* tpl_set_new - an empty set; templates loaded into it share one schema */
tpl_set *tpl_set_new(const config *cfg, const char *xsd_dir);
void tpl_set_free(tpl_set *s);
/* tpl_load - load and validate one template file; NULL with err set */
template *tpl_load(tpl_set *s, const char *path, sbuf *err);
/* tpl_load_dir - every *.xml in dir, in name order; -1 with err set */
int tpl_load_dir(tpl_set *s, const char *dir, sbuf *err);
template *tpl_find(const tpl_set *s, const char *name);
int tpl_count(const tpl_set *s);
template *tpl_at(const tpl_set *s, int i);
const rec_schema *tpl_schema(const tpl_set *s);

/* has_key - does the first record have this top-level key? */
typedef int (*tpl_has_key_fn)(void *ctx, const char *key);
/* tpl_detect - first template of kind (NULL: any kind) whose detection keys are all present;
 * ops: 1 only templates writing Clarity operations (Sage inputs), 0 only Sage tables */
template *tpl_detect(const tpl_set *s, const char *kind, int ops, tpl_has_key_fn has, void *ctx);

/* tpl_missing_keys - the template's detection keys the record (or header) lacks, "A, B" */
void tpl_missing_keys(const template *t, tpl_has_key_fn has, void *ctx, sbuf *out);
const char *tpl_name(const template *t);
const char *tpl_kind(const template *t);
const char *tpl_path(const template *t);
const char *tpl_sha256(const template *t); /* hex of the file's bytes */
const tpl_output_desc *tpl_output(const template *t);

/* tpl_hooks - what lies outside one file: values already used by earlier
 * batches (unique="file" columns) and sequences that continue across runs.
 * The spool backs them with the ledger; convert leaves them NULL. */
typedef struct {
    int (*used)(void *ctx, const char *column, const char *v, size_t n);
    uint64_t (*next)(void *ctx, const char *prefix);
    /* the business key published under an output key (the ledger's TranNo -> orderId) */
    char *(*key_of)(void *ctx, const char *kind, const char *ref, size_t n);
    void *ctx;
} tpl_hooks;

tpl_run *tpl_run_new(template *t);
/* tpl_run_new_spec - a run for a thread that evaluates records ahead of their turn: it touches
 * no duplicate set, sequence or hook; each result must pass tpl_settle, in file order, on the
 * ordinary run */
tpl_run *tpl_run_new_spec(template *t);
void tpl_run_set_hooks(tpl_run *r, const tpl_hooks *h);
void tpl_run_free(tpl_run *r);
/* tpl_eval - map one record; 0 = rows ready, 1 = rejected (errors[0] says why) */
int tpl_eval(tpl_run *r, const record *rec, tpl_result *res);
/* tpl_settle - make res, from tpl_eval on a speculative run (which returned spec_rc), what
 * tpl_eval(r, rec, res) would give, in order: the duplicate questions asked, the values added,
 * or the record evaluated again; returns as tpl_eval */
int tpl_settle(tpl_run *r, const record *rec, tpl_result *res, int spec_rc);
/* tpl_prefetch - ask for the memory that tpl_settle will read for res (the duplicate sets'
 * slots of its questions), a record ahead; no effect on any answer */
void tpl_prefetch(const tpl_run *r, const tpl_result *res);
void tpl_result_init(tpl_result *res, const template *t);
void tpl_result_free(tpl_result *res);

/* tpl_validate_file - schema and semantic check of a template file */
int tpl_validate_file(const config *cfg, const char *xsd_dir, const char *path, sbuf *err);

#endif
