/*
 * log.c - event lines on stderr or syslog.
 *
 * Every line says when, how bad, which batch and file, and what happened,
 * as key=value pairs.  Callers never pass secrets here; values come from
 * file names, counts and messages about data.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int use_syslog;

void log_open(const char *where)
{
    use_syslog = where && strcmp(where, "syslog") == 0;
    if (use_syslog)
        openlog("sagebridge", LOG_PID, LOG_DAEMON);
}

static const char *const names[] = {"debug", "info", "warn", "error"};

const char *log_q(const char *v)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    if (!v)
        v = "";
    if (*v && !strpbrk(v, " \t\"=")) {
        snprintf(b, sizeof buf[0], "%s", v);
        return b;
    }
    size_t o = 0;
    b[o++] = '"';
    for (; *v && o < sizeof buf[0] - 3; v++) {
        if (*v == '"' || *v == '\\')
            b[o++] = '\\';
        b[o++] = *v == '\n' ? ' ' : *v;
    }
    b[o++] = '"';
    b[o] = '\0';
    return b;
}

void log_event(log_level lvl, const char *batch, const char *file, const char *event,
               const char *fmt, ...)
{
    char extra[2048] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    char line[4096];
    snprintf(line, sizeof line, "level=%s event=%s%s%s%s%s%s%s", names[lvl], event,
             batch ? " batch=" : "", batch ? batch : "", file ? " file=" : "",
             file ? log_q(file) : "", *extra ? " " : "", extra);
    if (use_syslog) {
        static const int pri[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        syslog(pri[lvl], "%s", line);
        return;
    }
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s sagebridge[%ld]: %s\n", ts, (long)getpid(), line);
}
