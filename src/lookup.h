/*
 * lookup.h - lookup tables: two-column CSV files (header "from,to") that a
 * person edits in a spreadsheet, e.g. templates/lookups/countries.csv.
 * Keys match case-insensitively (ASCII) after trimming spaces.
 */
#ifndef SAGEBRIDGE_LOOKUP_H
#define SAGEBRIDGE_LOOKUP_H

#include <stddef.h>

#include "util.h"

typedef struct lookup_table lookup_table;

/* lk_load - NULL on error, with "FILE:LINE: what to do" in err */
lookup_table *lk_load(const char *path, sbuf *err);
void lk_free(lookup_table *t);
/* lk_get - the "to" value for key, or NULL */
const char *lk_get(const lookup_table *t, const char *key, size_t len, size_t *outlen);
size_t lk_size(const lookup_table *t);

#endif
