/*
 * sage_out.h - Sage 500 import files: one CSV per staging table, one XML
 * document per batch, and the batch's .done marker, written last.
 */
#ifndef SAGEBRIDGE_SAGE_OUT_H
#define SAGEBRIDGE_SAGE_OUT_H

#include "publish.h"
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
/* sw_close - finish every file under its temporary name (the spool publishes later);
 * files gets up to SW_MAX_FILES entries; frees w */
#define SW_MAX_FILES 8
int sw_close(sage_writer *w, pub_file *files, int *nfiles, sbuf *err);
/* sw_done_name - "PREFIX_BATCH.done" (malloc'ed) */
char *sw_done_name(const tpl_output_desc *o, const char *batch);
/* sw_abort - remove every temporary file; frees w */
void sw_abort(sage_writer *w);

#endif
