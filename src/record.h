/*
 * record.h - the canonical record: one input record (an order, a product…)
 * reduced to the fields that the loaded templates actually use.
 *
 * A schema names every source path a template refers to and gives it a slot
 * number.  Header paths are dotted ("shippingAddress.city"); an item group
 * is an array of objects ("lineItems") whose members are addressed relative
 * to the current item ("sku").  Readers fill slots; fields no template uses
 * are never copied, which is what keeps a reader fast and small.
 */
#ifndef SAGEBRIDGE_RECORD_H
#define SAGEBRIDGE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define REC_HEADER (-1) /* group id of the record's own (non-item) fields */

typedef struct rec_schema rec_schema;

/* 8 bytes, not 12: records are filled on one core and read on the other, a cache line at a
 * time (bench/HISTORY.md, session 6) */
typedef struct {
    uint32_t off;  /* into record.text */
    uint32_t len1; /* the length + 1; 0: absent or null (so zeroed memory is "unset") */
} rec_val;

typedef struct {
    size_t nitems, cap;
    size_t nslots; /* the schema's, kept here for record_get */
    rec_val *vals; /* nitems * nslots */
} rec_group;

typedef struct {
    const rec_schema *schema;
    sbuf text;
    rec_val *hdr;
    rec_group *groups;
    uint64_t index;  /* 1-based position in the file */
    uint64_t offset; /* byte offset where the record starts */
    uint64_t line;   /* 1-based line where it starts */
    bool not_object; /* the array element was not a JSON object */
} record;

rec_schema *schema_new(void);
void schema_free(rec_schema *s);
int schema_group(rec_schema *s, const char *path);           /* find or add */
int schema_slot(rec_schema *s, int group, const char *path); /* find or add */
int schema_find_group(const rec_schema *s, const char *path, size_t len);
int schema_find_slot(const rec_schema *s, int group, const char *path, size_t len);
int schema_ngroups(const rec_schema *s);
int schema_nslots(const rec_schema *s, int group);
const char *schema_group_path(const rec_schema *s, int group);
const char *schema_slot_path(const rec_schema *s, int group, int slot);

void record_init(record *r, const rec_schema *s);
void record_clear(record *r);
void record_free(record *r);
/* record_copy - dst (of the same schema) becomes a copy of src; dst's memory is reused */
void record_copy(record *dst, const record *src);
int record_new_item(record *r, int group); /* returns the item index */
void record_set(record *r, int group, int slot, const char *v, size_t n);

/* record_get - a field's text; NULL when absent or null (inline: templates read every
 * field of every record through it) */
static inline const char *record_get(const record *r, int group, size_t item, int slot, size_t *len)
{
    const rec_val *v;
    if (group == REC_HEADER) {
        v = &r->hdr[slot];
    } else {
        const rec_group *g = &r->groups[group];
        if (item >= g->nitems)
            return NULL;
        v = &g->vals[item * g->nslots + (size_t)slot];
    }
    if (!v->len1)
        return NULL;
    if (len)
        *len = v->len1 - 1;
    return r->text.p + v->off;
}

static inline size_t record_nitems(const record *r, int group)
{
    return r->groups[group].nitems;
}

#endif
