/*
 * publish.c - temp name, write, fsync, rename, fsync(dir).
 *
 * The temporary name (".NAME.sbtmp") starts with a dot, which every reader of our folders
 * (the spool scanner, Sage's import job patterns, SFTP listings) skips, so a
 * file is visible under its real name only when it is complete and durable.
 * The SHA-256 of the contents is computed while writing, so a .done marker
 * never has to read the files back.
 *
 * DIAGNOSTICS
 *	of_open and of_commit put "PATH: what failed: strerror" in err; a
 *	write error (e.g. a full disk) is remembered and reported by of_commit,
 *	which then removes the temporary file.
 */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OF_BUF 65536

struct ofile {
    int fd;
    char *dir, *name, *tmp, *final;
    char buf[OF_BUF];
    size_t used;
    uint64_t size;
    int err; /* errno of the first failed write */
    EVP_MD_CTX *md;
    char hex[65];
};

ofile *of_open(const char *dir, const char *name, sbuf *err)
{
    ofile *f = xcalloc(1, sizeof *f);
    sbuf b = {0};
    sbuf_printf(&b, "%s/.%s.sbtmp", dir, name);
    f->tmp = b.p;
    sbuf c = {0};
    sbuf_printf(&c, "%s/%s", dir, name);
    f->final = c.p;
    f->dir = xstrdup(dir);
    f->name = xstrdup(name);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (f->fd < 0) {
        sbuf_printf(err, "%s: cannot create the output file: %s", f->final, strerror(errno));
        free(f->tmp);
        free(f->final);
        free(f->dir);
        free(f->name);
        free(f);
        return NULL;
    }
    f->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(f->md, EVP_sha256(), NULL);
    return f;
}

/* flush - write the buffer out, retrying short writes */
static int flush(ofile *f)
{
    size_t off = 0;
    EVP_DigestUpdate(f->md, f->buf, f->used);
    while (off < f->used && !f->err) {
        ssize_t w = write(f->fd, f->buf + off, f->used - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            f->err = errno;
            break;
        }
        off += (size_t)w;
    }
    f->used = 0;
    return f->err ? -1 : 0;
}

int of_write(ofile *f, const void *p, size_t n)
{
    const char *s = p;
    f->size += n;
    while (n) {
        size_t room = OF_BUF - f->used;
        size_t k = n < room ? n : room;
        memcpy(f->buf + f->used, s, k);
        f->used += k;
        s += k;
        n -= k;
        if (f->used == OF_BUF && flush(f) != 0)
            return -1;
    }
    return f->err ? -1 : 0;
}

int of_puts(ofile *f, const char *s)
{
    return of_write(f, s, strlen(s));
}

static void of_release(ofile *f)
{
    if (f->md)
        EVP_MD_CTX_free(f->md);
    free(f->tmp);
    free(f->final);
    free(f->dir);
    free(f->name);
    free(f);
}

const char *of_sha256(ofile *f)
{
    if (!f->hex[0]) {
        if (f->used)
            flush(f);
        unsigned char h[32];
        unsigned int hl = 0;
        EVP_DigestFinal_ex(f->md, h, &hl);
        for (int i = 0; i < 32; i++)
            snprintf(f->hex + 2 * i, 3, "%02x", h[i]);
    }
    return f->hex;
}

uint64_t of_size(const ofile *f)
{
    return f->size;
}

const char *of_name(const ofile *f)
{
    return f->name;
}

/* of_commit - make the file durable and visible under its name */
int of_commit(ofile *f, sbuf *err)
{
    of_sha256(f); /* flushes */
    if (!f->err && fsync(f->fd) != 0)
        f->err = errno;
    if (close(f->fd) != 0 && !f->err)
        f->err = errno;
    if (!f->err && rename(f->tmp, f->final) != 0)
        f->err = errno;
    if (f->err) {
        sbuf_printf(err, "%s: cannot write the output file: %s", f->final, strerror(f->err));
        unlink(f->tmp);
        of_release(f);
        return -1;
    }
    of_release(f);
    return 0;
}

int of_finish(ofile *f, pub_file *out, sbuf *err)
{
    snprintf(out->name, sizeof out->name, "%s", f->name);
    snprintf(out->sha256, sizeof out->sha256, "%s", of_sha256(f));
    out->size = f->size;
    if (!f->err && fsync(f->fd) != 0)
        f->err = errno;
    if (close(f->fd) != 0 && !f->err)
        f->err = errno;
    if (f->err) {
        sbuf_printf(err, "%s: cannot write the output file: %s", f->final, strerror(f->err));
        unlink(f->tmp);
        of_release(f);
        return -1;
    }
    of_release(f);
    return 0;
}

int publish_rename(const char *dir, const char *name, sbuf *err)
{
    sbuf tmp = {0}, fin = {0};
    sbuf_printf(&tmp, "%s/.%s.sbtmp", dir, name);
    sbuf_printf(&fin, "%s/%s", dir, name);
    int rc = 0;
    if (rename(tmp.p, fin.p) != 0) {
        if (errno != ENOENT) {
            sbuf_printf(err, "%s: cannot publish: %s", fin.p, strerror(errno));
            rc = -1;
        } else if (access(fin.p, F_OK) != 0) {
            rc = 1; /* neither: published before a crash and already taken by Sage */
        }
    }
    sbuf_free(&tmp);
    sbuf_free(&fin);
    return rc;
}

int publish_done(const char *dir, const pub_file *files, int n, const char *done, sbuf *err)
{
    sbuf list = {0};
    for (int i = 0; i < n; i++)
        sbuf_printf(&list, "%s  %s\n", files[i].sha256, files[i].name);
    ofile *d = of_open(dir, done, err);
    int rc = d ? of_write(d, list.p ? list.p : "", list.len) : -1;
    if (d)
        rc = of_commit(d, err) || rc;
    if (rc == 0)
        rc = fsync_dir(dir, err);
    sbuf_free(&list);
    return rc;
}

int publish_files(const char *dir, const pub_file *files, int n, const char *done, sbuf *err)
{
    for (int i = 0; i < n; i++)
        if (publish_rename(dir, files[i].name, err) < 0)
            return -1;
    if (fsync_dir(dir, err) != 0)
        return -1;
    return done ? publish_done(dir, files, n, done, err) : 0;
}

void of_abort(ofile *f)
{
    if (!f)
        return;
    close(f->fd);
    unlink(f->tmp);
    of_release(f);
}

int fsync_dir(const char *dir, sbuf *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        sbuf_printf(err, "%s: cannot sync the folder: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}
