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

#include <openssl/evp.h>

#include "digest.h"
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

/* ---------------------------------------------------------------- reading */

#define ARC_KEEP_MAX (16u << 20) /* a member held in memory: manifests and reports only */

static int hexdigest(EVP_MD_CTX *md, char hex[65])
{
    unsigned char h[32];
    unsigned int hl = 0;
    EVP_DigestFinal_ex(md, h, &hl);
    digest_hex(h, hex);
    return 0;
}

/* open_reader - a .tar.gz open for reading; NULL with err set */
static struct archive *open_reader(const char *path, sbuf *err)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
        sbuf_printf(err, "%s: %s", path, archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

int arc_each(const char *path, int (*keep)(const char *name), arc_each_fn fn, void *ctx, sbuf *err)
{
    struct archive *a = open_reader(path, err);
    if (!a)
        return -1;
    struct archive_entry *e;
    int rc = 0, r;
    sbuf data = {0};
    char buf[65536];
    while (rc == 0 && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        arc_entry ent = {0};
        ent.name = archive_entry_pathname(e);
        ent.regular = archive_entry_filetype(e) == AE_IFREG && !archive_entry_hardlink(e) &&
                      !archive_entry_symlink(e);
        bool hold = keep && keep(ent.name);
        sbuf_reset(&data);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        la_ssize_t n;
        while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
            EVP_DigestUpdate(md, buf, (size_t)n);
            ent.size += (uint64_t)n;
            if (hold && data.len + (size_t)n <= ARC_KEEP_MAX)
                sbuf_add(&data, buf, (size_t)n);
        }
        hexdigest(md, ent.sha256);
        EVP_MD_CTX_free(md);
        if (n < 0) {
            sbuf_printf(err, "%s: member %s: %s", path, ent.name, archive_error_string(a));
            rc = -1;
            break;
        }
        ent.data = data.p ? data.p : "";
        ent.len = data.len;
        rc = fn(ctx, &ent);
    }
    if (rc == 0 && r != ARCHIVE_EOF) {
        sbuf_printf(err, "%s: %s", path, archive_error_string(a));
        rc = -1;
    }
    sbuf_free(&data);
    archive_read_free(a);
    return rc;
}

typedef struct {
    const char *want;
    sbuf *out;
    int found;
} member_ctx;

static const char *keep_name;
static int keep_one(const char *name)
{
    return strcmp(name, keep_name) == 0;
}

static int take_member(void *ctx, const arc_entry *e)
{
    member_ctx *m = ctx;
    if (strcmp(e->name, m->want) == 0) {
        sbuf_add(m->out, e->data, e->len);
        m->found = 1;
    }
    return 0;
}

int arc_read_member(const char *path, const char *member, sbuf *out, sbuf *err)
{
    member_ctx m = {member, out, 0};
    keep_name = member;
    if (arc_each(path, keep_one, take_member, &m, err) != 0)
        return -1;
    if (!m.found) {
        sbuf_printf(err, "%s: no member %s", path, member);
        return -1;
    }
    return 0;
}

/* safe_name - a member name that stays inside the target folder */
static bool safe_name(const char *n)
{
    if (!*n || n[0] == '/')
        return false;
    for (const char *p = n; *p;) {
        size_t l = strcspn(p, "/");
        if ((l == 2 && p[0] == '.' && p[1] == '.') || l == 0)
            return false;
        p += l;
        if (*p == '/')
            p++;
    }
    return true;
}

int arc_extract(const char *path, const char *dir, sbuf *err)
{
    struct archive *a = open_reader(path, err);
    if (!a)
        return -1;
    struct archive *w = archive_write_disk_new();
    /* names were checked above (relative, no ".."); they are joined to dir below, which
     * makes them absolute, so libarchive's own absolute-path refusal cannot be used */
    archive_write_disk_set_options(w, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                          ARCHIVE_EXTRACT_NO_OVERWRITE);
    struct archive_entry *e;
    int rc = 0, r;
    /* refuse the whole archive before writing anything if one member is unsafe */
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *n = archive_entry_pathname(e);
        if (!safe_name(n) || archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) ||
            archive_entry_symlink(e)) {
            sbuf_printf(err,
                        "%s: member \"%s\" is not a plain file inside the folder "
                        "(absolute, .. or a link): nothing extracted",
                        path, n);
            rc = -1;
            break;
        }
    }
    archive_read_free(a);
    if (rc == 0 && r != ARCHIVE_EOF) {
        sbuf_printf(err, "%s: unreadable archive", path);
        rc = -1;
    }
    if (rc == 0) {
        a = open_reader(path, err);
        while (a && rc == 0 && archive_read_next_header(a, &e) == ARCHIVE_OK) {
            sbuf full = {0};
            sbuf_printf(&full, "%s/%s", dir, archive_entry_pathname(e));
            archive_entry_set_pathname(e, full.p);
            if (archive_write_header(w, e) != ARCHIVE_OK) {
                sbuf_printf(err, "%s: %s", full.p, archive_error_string(w));
                rc = -1;
            } else {
                const void *blk;
                size_t sz;
                la_int64_t off;
                while (archive_read_data_block(a, &blk, &sz, &off) == ARCHIVE_OK)
                    if (archive_write_data_block(w, blk, sz, off) != ARCHIVE_OK) {
                        sbuf_printf(err, "%s: %s", full.p, archive_error_string(w));
                        rc = -1;
                        break;
                    }
                archive_write_finish_entry(w);
            }
            sbuf_free(&full);
        }
        if (a)
            archive_read_free(a);
        else
            rc = -1;
    }
    archive_write_free(w);
    return rc;
}

int arc_save_member(const char *path, const char *member, const char *dest, sbuf *err)
{
    struct archive *a = open_reader(path, err);
    if (!a)
        return -1;
    struct archive_entry *e;
    int rc = -1;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        if (strcmp(archive_entry_pathname(e), member) != 0)
            continue;
        int fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd < 0) {
            sbuf_printf(err, "%s: %s", dest, strerror(errno));
            break;
        }
        rc = archive_read_data_into_fd(a, fd) == ARCHIVE_OK ? 0 : -1;
        if (rc != 0)
            sbuf_printf(err, "%s: %s", path, archive_error_string(a));
        if (close(fd) != 0 && rc == 0) {
            sbuf_printf(err, "%s: %s", dest, strerror(errno));
            rc = -1;
        }
        break;
    }
    if (rc != 0 && !err->len)
        sbuf_printf(err, "%s: no member %s", path, member);
    archive_read_free(a);
    return rc;
}
