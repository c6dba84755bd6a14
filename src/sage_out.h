/*
 * sage_out.h - Sage 500 import files: one CSV per staging table, one XML
 * document per batch, and the batch's .done marker, written last.
 */
#ifndef SAGEBRIDGE_SAGE_OUT_H
#define SAGEBRIDGE_SAGE_OUT_H

#include "template.h"
#include "util.h"

enum { SW_CSV = 1, SW_XML = 2 };

typedef struct sage_writer sage_writer;

/* sw_open - start PREFIX_BATCH_* files in dir; NULL with err set */
sage_writer *sw_open(const tpl_output_desc *o, const char *dir, const char *batch, int formats,
                     sbuf *err);
/* sw_record - append one record's rows (a record with no rows is skipped) */
int sw_record(sage_writer *w, const tpl_result *res, sbuf *err);
/* sw_commit - publish every file, then PREFIX_BATCH.done; frees w */
int sw_commit(sage_writer *w, sbuf *err);
/* sw_abort - remove every temporary file; frees w */
void sw_abort(sage_writer *w);

#endif
