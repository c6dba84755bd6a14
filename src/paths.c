/*
 * paths.c - locate the templates and xsd folders.
 *
 * A relative path from the configuration file is taken relative to the
 * folder of that file, so a spool's sagebridge.conf can say
 * "templates = templates" and mean its own copy.
 */
#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SB_DATADIR
#define SB_DATADIR "/usr/local/share/sagebridge"
#endif

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

char *paths_dir(const config *cfg, const char *what)
{
    const char *v = cfg_get(cfg, "paths", what);
    sbuf b = {0};
    if (v) {
        if (v[0] != '/' && cfg_path(cfg))
            sbuf_printf(&b, "%s/%s", cfg_dir(cfg), v);
        else
            sbuf_adds(&b, v);
        return b.p;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            sbuf_printf(&b, "%s/%s", exe, what);
            if (is_dir(b.p))
                return b.p;
            sbuf_reset(&b);
        }
    }
    sbuf_printf(&b, "%s/%s", SB_DATADIR, what);
    return b.p;
}
