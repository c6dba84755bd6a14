/*
 * seen.h - a set of 64-bit hashes whose memory does not grow with the input.
 *
 * Duplicate checks inside one file (an orderId seen twice, a TranNo used
 * twice) keep one hash per record.  The first SEEN_MEM_DEFAULT of them live
 * in memory (a 2 MiB table; more than the 200,000 orders of the export SPEC
 * §10 measures); beyond that the set continues in a private temporary SQLite
 * database on disk (deleted when the set is freed), behind a Bloom filter,
 * so that a 1 GB export is checked in the same few megabytes as a small one.
 */
#ifndef SAGEBRIDGE_SEEN_H
#define SAGEBRIDGE_SEEN_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define SEEN_MEM_DEFAULT 229376 /* hashes kept in memory: a 2 MiB table, 7/8 full */

typedef struct seen seen;

/* seen_new - an empty set keeping up to mem_max hashes in memory */
seen *seen_new(size_t mem_max);
/* seen_has - 1 when h is in the set, 0 when not, -1 with err set (temporary storage failed) */
int seen_has(seen *s, uint64_t h, sbuf *err);
/* seen_add - 1 when added, 0 when it was there, -1 with err set */
int seen_add(seen *s, uint64_t h, sbuf *err);
/* seen_prefetch - ask for the memory seen_has(s, h) and seen_add(s, h) will touch first (the
 * in-memory table's two buckets of h): they are cache misses in a table of megabytes */
void seen_prefetch(const seen *s, uint64_t h);
void seen_free(seen *s);

#endif
