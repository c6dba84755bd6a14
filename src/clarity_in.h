/*
 * clarity_in.h - streaming reader for Clarity JSON exports.
 *
 * Accepts a top-level array of records, NDJSON (or any run of top-level
 * objects), or a wrapper object whose array member names the kind
 * ({"orders":[...]}).  Bytes are fed in chunks of any size; each complete
 * record is handed to a callback and then forgotten, so memory depends on
 * the largest record, never on the file.
 */
#ifndef SAGEBRIDGE_CLARITY_IN_H
#define SAGEBRIDGE_CLARITY_IN_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define CIN_MAX_DEPTH  64
#define CIN_MAX_RECORD (64u << 20) /* bytes of kept text in one record */

typedef enum {
    CIN_OK = 0,
    CIN_SYNTAX,    /* not JSON (or not UTF-8) at `offset` */
    CIN_TRUNCATED, /* valid so far, but the file ends inside a value */
    CIN_TOO_DEEP,  /* nesting deeper than CIN_MAX_DEPTH */
    CIN_TOO_LARGE, /* one record larger than CIN_MAX_RECORD */
    CIN_SHAPE,     /* JSON, but not records (e.g. a bare number) */
    CIN_EMPTY,     /* no JSON value at all */
    CIN_STOPPED,   /* the callback asked to stop */
} cin_status;

typedef enum { CIN_SHAPE_UNKNOWN, CIN_SHAPE_ARRAY, CIN_SHAPE_OBJECTS, CIN_SHAPE_WRAPPER } cin_shape;

typedef struct cin_parser cin_parser;

/* return 0 to go on, non-zero to stop reading (status CIN_STOPPED) */
typedef int (*cin_record_fn)(void *ctx, record *rec);

cin_parser *cin_new(const rec_schema *schema, cin_record_fn fn, void *ctx);
cin_status cin_feed(cin_parser *p, const char *buf, size_t len);
cin_status cin_finish(cin_parser *p);
void cin_free(cin_parser *p);

const char *cin_message(const cin_parser *p);   /* words for the last error */
uint64_t cin_error_offset(const cin_parser *p); /* byte offset of the last error */
uint64_t cin_error_line(const cin_parser *p);
cin_shape cin_get_shape(const cin_parser *p);
const char *cin_wrapper_kind(const cin_parser *p); /* "orders"…, or NULL */
uint64_t cin_records(const cin_parser *p);
/* cin_has_key - the first record had this top-level key (kind detection) */
int cin_first_has_key(const cin_parser *p, const char *key);

#endif
