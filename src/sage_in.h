/*
 * sage_in.h - streaming reader for Sage 500 export files (CSV with a header).
 *
 * Header names match the template's source paths case-insensitively, in any
 * order; unknown columns are ignored.  Each data row becomes a record (its
 * line number and byte offset kept for messages); rows are handed to a
 * callback one at a time, so memory depends on the longest row only.
 */
#ifndef SAGEBRIDGE_SAGE_IN_H
#define SAGEBRIDGE_SAGE_IN_H

#include <stdint.h>

#include "record.h"
#include "util.h"

typedef enum {
    SIN_OK = 0,
    SIN_EMPTY,      /* no header row */
    SIN_UNCLOSED,   /* the file ends inside a quoted field */
    SIN_NO_NEWLINE, /* (information) the last line has no line end */
    SIN_IO,
    SIN_STOPPED,
} sin_status;

typedef struct sage_reader sage_reader;

/* header - called once with the header's column names (for kind detection and
 * required columns); return non-zero to stop */
typedef int (*sin_header_fn)(void *ctx, char **cols, int ncols);
typedef int (*sin_record_fn)(void *ctx, record *rec);

sage_reader *sin_new(const rec_schema *schema, sin_header_fn hf, sin_record_fn rf, void *ctx);
/* sin_bind - map the header's columns to the schema's slots (call from the header callback
 * once the templates are chosen; the schema must then be complete) */
void sin_bind(sage_reader *r);
sin_status sin_read_fd(sage_reader *r, int fd);
void sin_free(sage_reader *r);
const char *sin_message(const sage_reader *r);
uint64_t sin_line(const sage_reader *r);
int sin_ended_without_newline(const sage_reader *r);

/* sin_tail_state - for arrival: 0 ends with a line end, 1 ends without one */
int sin_tail_state(int fd);

#endif
