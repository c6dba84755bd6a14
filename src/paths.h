/*
 * paths.h - where sagebridge finds its templates and schemas.
 *
 * [paths] templates / xsd in the configuration (or SAGEBRIDGE_PATHS_*)
 * win; otherwise the folders beside the executable (a source checkout),
 * otherwise the installed data folder (make install).
 */
#ifndef SAGEBRIDGE_PATHS_H
#define SAGEBRIDGE_PATHS_H

#include "config.h"

/* paths_dir - "templates" or "xsd"; the returned string is malloc'ed */
char *paths_dir(const config *cfg, const char *what);

#endif
