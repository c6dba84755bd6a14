/*
 * json.h - small yajl helpers shared by the modules that re-write JSON they read.
 */
#ifndef SAGEBRIDGE_JSON_H
#define SAGEBRIDGE_JSON_H

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/* json_emit - a parsed value back into a generator; numbers keep the text they were
 * written with (an amount never becomes a double on the way) */
void json_emit(yajl_gen g, yajl_val v);

#endif
