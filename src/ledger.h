/*
 * ledger.h - spool/ledger.db: what the spool has seen and done (SQLite, WAL).
 *
 * Tables: files (every input seen, by SHA-256), batches (one per input:
 * state, counts, outputs, control totals, archive, manifest hash), keys
 * (business keys published: Clarity orderId -> Sage TranNo), seq (number
 * sequences), meta (schema version, chain head).  Every state change is a
 * transaction; the order of the changes is what makes recovery after a
 * crash unambiguous (see spool.c).
 */
#ifndef SAGEBRIDGE_LEDGER_H
#define SAGEBRIDGE_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

typedef struct ledger ledger;

/* batch states, in the order a batch passes through them */
#define B_CONVERTED "converted" /* outputs complete under temporary names */
#define B_PUBLISHED "published" /* outputs renamed into place, .done written */
#define B_ARCHIVED  "archived"  /* archive written and chained: the batch is done */
#define B_REJECTED  "rejected"  /* input moved to error/ */
#define B_DUPLICATE "duplicate" /* same content as an earlier batch: archived, not published */

typedef struct {
    char *id, *kind, *input_name, *input_sha256, *state, *claimed_at, *updated_at, *tmpl;
    char *outputs; /* JSON: [{"name","sha256","size"}] */
    char *totals;  /* JSON: {"USD":{"orders":…}} */
    char *archive, *manifest_sha256, *prev, *error, *duplicate_of, *out_dir;
    char *replay_of; /* the batch this one replays */
    int forced;      /* replayed with --force-republish */
    int64_t records, published, rejected, duplicate, held, warnings;
} batch_row;

ledger *ledger_open(const char *path, sbuf *err);
void ledger_close(ledger *l);
const char *ledger_error(ledger *l);

int ledger_begin(ledger *l); /* BEGIN IMMEDIATE: the spool's write lock */
int ledger_commit(ledger *l);
int ledger_sync(ledger *l); /* every commit so far made durable (the WAL synced) */
void ledger_rollback(ledger *l);

/* ledger_seen_sha - id of a batch that already processed this content, or NULL (malloc'ed) */
char *ledger_seen_sha(ledger *l, const char *sha256);
int ledger_file_seen(ledger *l, const char *sha256, const char *name, int64_t size,
                     const char *state, const char *batch_id);
int ledger_batch_insert(ledger *l, const batch_row *b);
int ledger_batch_update(ledger *l, const batch_row *b);
int ledger_batch_get(ledger *l, const char *id, batch_row *b); /* 0 found, 1 absent, -1 error */
void batch_row_free(batch_row *b);
/* ledger_unfinished - ids of batches converted or published but not archived */
int ledger_unfinished(ledger *l, char ***ids, int *n);
/* ledger_batch_by_input - newest batch of an input name in one of the states "a,b" */
int ledger_batch_by_input(ledger *l, const char *name, batch_row *b);
/* ledger_each - batches claimed in [since, until) (NULL: open), of kind (NULL: any), oldest first
 */
typedef int (*ledger_batch_fn)(void *ctx, const batch_row *b);
int ledger_each(ledger *l, const char *since, const char *until, const char *kind,
                const char *state, ledger_batch_fn fn, void *ctx);
/* ledger_batch_by_manifest - the batch whose manifest has this SHA-256 */
int ledger_batch_by_manifest(ledger *l, const char *sha, batch_row *b);
int ledger_last_batches(ledger *l, int limit, batch_row **rows, int *n);

/* business keys: 0 inserted, 1 already there (published before), -1 error */
int ledger_key_add(ledger *l, const char *kind, const char *key, size_t keylen, const char *tranno,
                   size_t trlen, const char *batch_id);
/* ledger_key_replace - a key published again on purpose (replay --force-republish) */
int ledger_key_replace(ledger *l, const char *kind, const char *key, const char *tranno,
                       const char *batch_id);
int ledger_tranno_used_by_other(ledger *l, const char *kind, const char *tranno, size_t n,
                                const char *batch_id);
int ledger_tranno_used(ledger *l, const char *kind, const char *tranno, size_t n);
/* ledger_tranno_bounds - the smallest and largest TranNo recorded for kind (malloc'ed, in
 * SQLite's text order), both NULL when there is none; -1 on error */
int ledger_tranno_bounds(ledger *l, const char *kind, char **lo, char **hi);
/* ledger_text_cmp - two texts in the order of SQLite's BINARY collation (<0, 0, >0) */
int ledger_text_cmp(const char *a, size_t an, const char *b, size_t bn);
char *ledger_key_tranno(ledger *l, const char *kind, const char *key); /* malloc'ed or NULL */
/* ledger_key_by_ref - the key published under this TranNo (malloc'ed or NULL) */
char *ledger_key_by_ref(ledger *l, const char *kind, const char *ref, size_t n);
uint64_t ledger_next_seq(ledger *l, const char *name);

/* delivery progress per operation: "done" or "failed" (malloc'ed), NULL if never sent */
char *ledger_delivery_state(ledger *l, const char *batch, int64_t seq);
int ledger_delivery_set(ledger *l, const char *batch, int64_t seq, const char *state,
                        long http_status, const char *response, const char *reason, int attempts);
typedef int (*ledger_delivery_fn)(void *ctx, int64_t seq, const char *state, long status,
                                  const char *response);
/* ledger_delivery_each - a batch's recorded operations, by seq */
int ledger_delivery_each(ledger *l, const char *batch, ledger_delivery_fn fn, void *ctx);
const char *ledger_meta(ledger *l, const char *k); /* valid until the next call */
int ledger_set_meta(ledger *l, const char *k, const char *v);
int64_t ledger_count(ledger *l, const char *table);

#endif
