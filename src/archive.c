/*
 * archive.c - batch archives with libarchive (ustar, gzip through zlib).
 *
 * Archives are reproducible: every member has the same owner (0), mode
 * (0640) and time (the batch's claim time), so the bytes depend only on
 * the contents.  The archive is written under a hidden temporary name in
 * its day folder, fsync'ed and renamed, and the folder is fsync'ed: an
 * archive under its real name is always complete.
 *
 * DIAGNOSTICS
 *	-1 with "PATH: what failed" in err; the temporary file is removed.
 */
#include "archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "publish.h"

/* mkdirs - create every missing folder of path, mode 0750 */
static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

static int add_entry(struct archive *a, const arc_member *m, time_t mtime, sbuf *err)
{
    int fd = -1;
    int64_t size = (int64_t)m->len;
    if (m->path) {
        fd = open(m->path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            sbuf_printf(err, "%s: cannot read for the archive: %s", m->path, strerror(errno));
            if (fd >= 0)
                close(fd);
            return -1;
        }
        size = st.st_size;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, m->member);
    archive_entry_set_size(e, size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0640);
    archive_entry_set_mtime(e, mtime, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    int rc = archive_write_header(a, e) == ARCHIVE_OK ? 0 : -1;
    archive_entry_free(e);
    if (rc == 0 && m->path) {
        char buf[65536];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            if (archive_write_data(a, buf, (size_t)n) != n) {
                rc = -1;
                break;
            }
        if (n < 0)
            rc = -1;
    } else if (rc == 0 && m->len) {
        if (archive_write_data(a, m->data, m->len) != (la_ssize_t)m->len)
            rc = -1;
    }
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        sbuf_printf(err, "%s: cannot add to the archive: %s", m->member,
                    archive_error_string(a) ? archive_error_string(a) : strerror(errno));
    return rc;
}

int archive_write(const char *archive_dir, const char *batch_id, time_t day, time_t mtime,
                  const arc_member *m, int n, char **rel, sbuf *err)
{
    struct tm tm;
    gmtime_r(&day, &tm);
    char sub[64];
    snprintf(sub, sizeof sub, "%04d/%02d/%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    sbuf dir = {0}, tmp = {0}, fin = {0};
    sbuf_printf(&dir, "%s/%s", archive_dir, sub);
    sbuf_printf(&tmp, "%s/.%s.tar.gz.sbtmp", dir.p, batch_id);
    sbuf_printf(&fin, "%s/%s.tar.gz", dir.p, batch_id);
    int rc = -1;
    struct archive *a = NULL;
    int fd = -1;
    if (mkdirs(dir.p) != 0) {
        sbuf_printf(err, "%s: cannot create the archive folder: %s", dir.p, strerror(errno));
        goto out;
    }
    fd = open(tmp.p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        sbuf_printf(err, "%s: cannot create the archive: %s", tmp.p, strerror(errno));
        goto out;
    }
    a = archive_write_new();
    archive_write_set_format_ustar(a);
    archive_write_add_filter_gzip(a);
    archive_write_set_filter_option(a, "gzip", "compression-level", "1");
    archive_write_set_filter_option(a, "gzip", "timestamp", NULL); /* no time in the gzip header */
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        sbuf_printf(err, "%s: %s", tmp.p, archive_error_string(a));
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (add_entry(a, &m[i], mtime, err) != 0)
            goto out;
    if (archive_write_close(a) != ARCHIVE_OK) {
        sbuf_printf(err, "%s: %s", tmp.p, archive_error_string(a));
        goto out;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        sbuf_printf(err, "%s: cannot write the archive: %s", tmp.p, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.p, fin.p) != 0) {
        sbuf_printf(err, "%s: cannot rename the archive: %s", fin.p, strerror(errno));
        goto out;
    }
    if (fsync_dir(dir.p, err) != 0)
        goto out;
    sbuf r = {0};
    sbuf_printf(&r, "%s/%s.tar.gz", sub, batch_id);
    *rel = r.p;
    rc = 0;
out:
    if (a)
        archive_write_free(a);
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp.p);
    sbuf_free(&dir);
    sbuf_free(&tmp);
    sbuf_free(&fin);
    return rc;
}
