/*
 * convert.h - one input file through reader, template and writer:
 * the `convert` and `validate` commands, and later each spool batch.
 */
#ifndef SAGEBRIDGE_CONVERT_H
#define SAGEBRIDGE_CONVERT_H

#include "sage_out.h"
#include "template.h"

typedef struct {
    tpl_set *templates;
    const char *template_name; /* --template, or NULL to detect */
    const char *outdir;        /* NULL: check only, write nothing */
    int formats;               /* SW_CSV | SW_XML */
    const char *batch;         /* batch id for file names; NULL: the input's base name */
} convert_opts;

typedef struct {
    uint64_t records, written, rejected, warnings;
    const char *template_name;
} convert_stats;

/* convert_file - exit status of sysexits.h: 0, 65 (records or file rejected), 66, 73, 74 */
int convert_file(const convert_opts *o, const char *path, convert_stats *st);

#endif
