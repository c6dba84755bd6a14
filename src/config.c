/*
 * config.c - load sagebridge.conf with inih; answer lookups with the
 * environment taking precedence.
 *
 * DIAGNOSTICS
 *	cfg_load returns NULL and writes "FILE:LINE: what" into err for a file
 *	that cannot be read or has a syntax error; unknown keys are kept (other
 *	modules validate the ones they use).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *section, *key, *value;
} kv;

struct config {
    kv *items;
    size_t n, cap;
    char *path;
    char *dir;
    char **envbuf; /* values read from *_FILE variables: kept for the config's life */
    int nenv;
};

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    config *c = user;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->items = xrealloc(c->items, c->cap * sizeof *c->items);
    }
    c->items[c->n++] = (kv){xstrdup(section), xstrdup(name), xstrdup(value)};
    return 1;
}

/* cfg_load - read the file (or none) */
config *cfg_load(const char *path, sbuf *err)
{
    config *c = xcalloc(1, sizeof *c);
    int explicit = path != NULL;
    if (!path)
        path = "sagebridge.conf";
    if (!explicit && access(path, F_OK) != 0) {
        c->dir = xstrdup(".");
        return c;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        sbuf_printf(err, "%s: cannot read the configuration: %s", path, strerror(errno));
        cfg_free(c);
        return NULL;
    }
    int line = ini_parse_file(f, on_entry, c);
    fclose(f);
    if (line != 0) {
        sbuf_printf(err, "%s:%d: configuration syntax error (expected [section] or key = value)",
                    path, line);
        cfg_free(c);
        return NULL;
    }
    c->path = xstrdup(path);
    const char *slash = strrchr(path, '/');
    c->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : xstrdup(".");
    if (!c->dir)
        c->dir = xstrdup(".");
    return c;
}

void cfg_free(config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].section);
        free(c->items[i].key);
        free(c->items[i].value);
    }
    free(c->items);
    free(c->path);
    free(c->dir);
    for (int i = 0; i < c->nenv; i++)
        free(c->envbuf[i]);
    free(c->envbuf);
    free(c);
}

/* env_name - SAGEBRIDGE_SECTION_KEY, upper-cased */
static void env_name(char *buf, size_t sz, const char *section, const char *key, const char *suffix)
{
    if (*section)
        snprintf(buf, sz, "SAGEBRIDGE_%s_%s%s", section, key, suffix);
    else /* a key before any [section]: SAGEBRIDGE_KEY */
        snprintf(buf, sz, "SAGEBRIDGE_%s%s", key, suffix);
    for (char *p = buf; *p; p++)
        *p = (char)(isalnum((unsigned char)*p) ? toupper((unsigned char)*p) : '_');
}

const char *cfg_get(const config *c, const char *section, const char *key)
{
    char name[256];
    env_name(name, sizeof name, section, key, "");
    const char *v = getenv(name);
    if (v)
        return v;
    env_name(name, sizeof name, section, key, "_FILE");
    v = getenv(name);
    if (v) {
        FILE *f = fopen(v, "r");
        if (f) {
            char line[4096];
            if (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\r\n")] = '\0';
                config *mc = (config *)c; /* kept: every value handed out stays valid */
                mc->envbuf = xrealloc(mc->envbuf, (size_t)(mc->nenv + 1) * sizeof *mc->envbuf);
                mc->envbuf[mc->nenv] = xstrdup(line);
                fclose(f);
                return mc->envbuf[mc->nenv++];
            }
            fclose(f);
        }
    }
    for (size_t i = c->n; i-- > 0;)
        if (strcmp(c->items[i].section, section) == 0 && strcmp(c->items[i].key, key) == 0)
            return c->items[i].value;
    return NULL;
}

const char *cfg_get_default(const config *c, const char *section, const char *key, const char *dflt)
{
    const char *v = cfg_get(c, section, key);
    return v ? v : dflt;
}

const char *cfg_path(const config *c)
{
    return c->path;
}

const char *cfg_dir(const config *c)
{
    return c->dir;
}
