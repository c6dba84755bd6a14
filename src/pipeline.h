/*
 * pipeline.h - hand records from the reader's thread to a consumer thread.
 *
 * Reading a Clarity export (yajl, and filling the record) and mapping it
 * (templates, writers) take about a third and two thirds of a conversion:
 * on two cores they can overlap.  The reader pushes each complete record;
 * the record's buffers are swapped with an empty record from a small pool,
 * so nothing is copied and memory is PL_DEPTH records, whatever the file.
 * The consumer sees the records in order, one at a time.
 */
#ifndef SAGEBRIDGE_PIPELINE_H
#define SAGEBRIDGE_PIPELINE_H

#include "record.h"

#define PL_DEPTH 256 /* records between the reader and the consumer */

typedef struct pipeline pipeline;

/* pl_fn - the consumer: 0 to go on, anything else stops the pipeline */
typedef int (*pl_fn)(void *ctx, record *rec);

/* pl_start - a consumer thread calling fn for every record pushed; NULL when no thread can be
 * started (the caller then calls fn itself) */
pipeline *pl_start(const rec_schema *schema, pl_fn fn, void *ctx);
/* pl_push - queue rec: its contents move to the queue and rec gets a pool record in exchange
 * (with stale contents: clear it before filling it, as the readers do); -1 once the consumer
 * stopped */
int pl_push(pipeline *p, record *rec);
/* pl_finish - wait until the consumer has taken every record (discard: drop those still
 * queued), stop it and free p; returns what fn returned when it stopped, else 0 */
int pl_finish(pipeline *p, int discard);

#endif
