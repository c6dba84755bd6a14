/*
 * clarity_out.h - Clarity API batches (SPEC §6): CLARITY_B.json, one per input,
 * an ordered list of HTTP operations with stable idempotency keys.
 */
#ifndef SAGEBRIDGE_CLARITY_OUT_H
#define SAGEBRIDGE_CLARITY_OUT_H

#include "publish.h"
#include "template.h"

typedef struct clarity_writer clarity_writer;

/* cw_open - start PREFIX_BATCH.json in dir; source_sha makes the idempotency keys */
clarity_writer *cw_open(const tpl_output_desc *o, const char *dir, const char *batch,
                        const char *created_at, const char *source_file, const char *source_sha,
                        sbuf *err);
/* cw_record - the record's operations (or items of a collecting operation) */
int cw_record(clarity_writer *w, const tpl_result *res, sbuf *err);
/* cw_close - finish under the temporary name; frees w */
int cw_close(clarity_writer *w, pub_file *file, sbuf *err);
/* cw_commit - finish and publish; frees w */
int cw_commit(clarity_writer *w, sbuf *err);
void cw_abort(clarity_writer *w);
uint64_t cw_operations(const clarity_writer *w);

#endif
