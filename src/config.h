/*
 * config.h - sagebridge.conf (INI, read with inih) plus environment overrides.
 *
 * Every setting is SECTION.KEY; SAGEBRIDGE_SECTION_KEY in the environment
 * wins over the file, and SAGEBRIDGE_SECTION_KEY_FILE names a file whose
 * first line is the value (for secrets).
 */
#ifndef SAGEBRIDGE_CONFIG_H
#define SAGEBRIDGE_CONFIG_H

#include "util.h"

typedef struct config config;

/* cfg_load - path NULL: ./sagebridge.conf if it exists, else defaults */
config *cfg_load(const char *path, sbuf *err);
void cfg_free(config *c);
/* cfg_get - the value, or NULL when neither file nor environment sets it */
const char *cfg_get(const config *c, const char *section, const char *key);
const char *cfg_get_default(const config *c, const char *section, const char *key,
                            const char *dflt);
const char *cfg_path(const config *c); /* the file read, or NULL */
/* cfg_dir - folder a relative path in the config is relative to */
const char *cfg_dir(const config *c);

#endif
