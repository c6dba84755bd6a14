/*
 * json.c - re-emit parsed JSON (yajl_tree) through a generator (yajl_gen).
 */
#include "json.h"

#include <string.h>

void json_emit(yajl_gen g, yajl_val v)
{
    if (v && YAJL_IS_STRING(v)) {
        yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
    } else if (v && YAJL_IS_NUMBER(v)) {
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    } else if (v && YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            const char *k = v->u.object.keys[i];
            yajl_gen_string(g, (const unsigned char *)k, strlen(k));
            json_emit(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
    } else if (v && YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            json_emit(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
    } else if (v && (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))) {
        yajl_gen_bool(g, YAJL_IS_TRUE(v));
    } else {
        yajl_gen_null(g);
    }
}
