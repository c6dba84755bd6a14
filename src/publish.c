/*
 * publish.c - temp name, write, fsync, rename, fsync(dir).
 *
 * The temporary name (".NAME.sbtmp") starts with a dot, which every reader of our folders
 * (the spool scanner, Sage's import job patterns, SFTP listings) skips, so a
 * file is visible under its real name only when it is complete and durable.
 * The SHA-256 of the contents is computed while writing, so a .done marker
 * never has to read the files back.
 *
 * Bytes are hashed and written by the thread that writes them: a caller
 * that gathers its own output (sage_out.c gathers OF_CHUNK bytes per
 * file) hands it over in pieces that go to the hash and to write(2)
 * straight from its memory, with no copy; smaller pieces are gathered in
 * the ofile's buffer first.  There used to be a writer thread here, on the
 * second core, but with the conversion's own two threads it made three
 * busy threads for two cores: it cost a copy of every byte and two
 * wake-ups per buffer, and left a core idle whenever it waited
 * (bench/HISTORY.md, session 6).  The writer starts the kernel's writeback
 * every few megabytes (sync_file_range without waiting), and every few
 * tens of megabytes a background thread (sb-sync) calls fdatasync on the
 * file, so that the fsync of of_commit/of_finish finds little left to do.
 * The early syncs are not for safety, only to overlap the disk's work with
 * the conversion: on this project's machine (a virtual disk whose host
 * caches writes) an fsync costs about 0.5 ms per megabyte written since the
 * last one, whatever sync_file_range started, so a 460 MB batch waited
 * 0.2 s at the end for its first fsync (bench/HISTORY.md).  The final fsync
 * stays what makes a file durable; an error of an early sync is kept and
 * reported by of_write, of_commit and of_finish like a write error, since
 * Linux reports a writeback error to one fsync of a descriptor only.
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OF_WRITEBACK (8u << 20)  /* start the kernel's writeback every 8 MiB */
#define OF_SYNC      (32u << 20) /* and ask sb-sync for an fdatasync every 32 MiB */

struct ofile {
    int fd;
    char *dir, *name, *tmp, *final;
    char *buf; /* small pieces gathered: OF_CHUNK bytes, allocated at the first one */
    size_t used;
    uint64_t size;
    int err; /* errno of the first failed write (or early sync, once seen) */
    EVP_MD_CTX *md;
    char hex[65];
    uint64_t written, hinted, synced;
    /* shared with the syncer, under syncer.mu */
    int sync_err;     /* errno of a failed early sync */
    int syncing;      /* queued or being synced: the descriptor must stay open */
    ofile *sync_next; /* the syncer's list */
};

/* the syncer: one thread for the process, started at the first early sync, and its list of
 * files to fdatasync (each file at most once in it, in no order) */
static struct {
    pthread_once_t once;
    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    ofile *head;
    int ok; /* the syncer runs (else no early syncs, which changes nothing but speed) */
} syncer = {PTHREAD_ONCE_INIT,
            PTHREAD_MUTEX_INITIALIZER,
            PTHREAD_COND_INITIALIZER,
            PTHREAD_COND_INITIALIZER,
            NULL,
            0};

/* write_all - write n bytes, retrying short writes and EINTR; 0 or errno */
static int write_all(int fd, const char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        off += (size_t)w;
    }
    return 0;
}

/* sync_main - fdatasync the files the writers ask for, while they go on */
static void *sync_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&syncer.mu);
    for (;;) {
        while (!syncer.head)
            pthread_cond_wait(&syncer.work, &syncer.mu);
        ofile *f = syncer.head;
        syncer.head = f->sync_next;
        pthread_mutex_unlock(&syncer.mu);

        /* f->fd stays open while f->syncing: sync_wait comes before every close */
        int e = fdatasync(f->fd) != 0 ? errno : 0;

        pthread_mutex_lock(&syncer.mu);
        if (e && !f->sync_err)
            f->sync_err = e;
        f->syncing = 0;
        pthread_cond_broadcast(&syncer.idle);
    }
    return NULL;
}

/* sync_start - the syncer thread, started once */
static void sync_start(void)
{
    pthread_t t;
    int ok = thread_start(&t, "sb-sync", sync_main, NULL) == 0;
    if (ok)
        pthread_detach(t);
    pthread_mutex_lock(&syncer.mu);
    syncer.ok = ok;
    pthread_mutex_unlock(&syncer.mu);
}

/* sync_wait - until f is not with the syncer (before its descriptor is synced, closed or the
 * file removed); takes over an early sync's error */
static void sync_wait(ofile *f)
{
    if (!f->synced) /* never asked for */
        return;
    pthread_mutex_lock(&syncer.mu);
    while (f->syncing)
        pthread_cond_wait(&syncer.idle, &syncer.mu);
    if (f->sync_err && !f->err)
        f->err = f->sync_err;
    pthread_mutex_unlock(&syncer.mu);
}

/* emit - n bytes to the hash and, unless a write failed before, to the file; starts the
 * writeback and asks for early syncs as the file grows; -1 once anything failed */
static int emit(ofile *f, const char *p, size_t n)
{
    EVP_DigestUpdate(f->md, p, n);
    if (f->err)
        return -1;
    int e = write_all(f->fd, p, n);
    if (e) {
        f->err = e;
        return -1;
    }
    f->written += n;
    if (f->written - f->hinted >= OF_WRITEBACK) {
        /* a hint: a failure here shows again, and is reported, at fsync */
        (void)sync_file_range(f->fd, (off_t)f->hinted, (off_t)(f->written - f->hinted),
                              SYNC_FILE_RANGE_WRITE);
        f->hinted = f->written;
    }
    if (f->written - f->synced >= OF_SYNC) {
        pthread_once(&syncer.once, sync_start);
        pthread_mutex_lock(&syncer.mu);
        if (f->sync_err && !f->err)
            f->err = f->sync_err;
        if (syncer.ok && !f->syncing) {
            f->synced = f->written;
            f->syncing = 1;
            f->sync_next = syncer.head;
            syncer.head = f;
            pthread_cond_signal(&syncer.work);
        }
        pthread_mutex_unlock(&syncer.mu);
    }
    return f->err ? -1 : 0;
}

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

/* flush - the gathered bytes out; -1 once a write (or an early sync) has failed */
static int flush(ofile *f)
{
    int rc = f->used ? emit(f, f->buf, f->used) : 0;
    f->used = 0;
    return rc || f->err ? -1 : 0;
}

int of_write(ofile *f, const void *p, size_t n)
{
    f->size += n;
    if (f->used + n > OF_CHUNK && flush(f) != 0)
        return -1;
    if (n >= OF_CHUNK) /* a piece as large as the buffer: written from where it is */
        return emit(f, p, n);
    if (!f->buf)
        f->buf = xmalloc(OF_CHUNK);
    memcpy(f->buf + f->used, p, n);
    f->used += n;
    return f->err ? -1 : 0;
}

int of_puts(ofile *f, const char *s)
{
    return of_write(f, s, strlen(s));
}

static void of_release(ofile *f)
{
    sync_wait(f);
    free(f->buf);
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
        flush(f);
        sync_wait(f);
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

/* put_in_place - flush, fsync (when durable), close and rename; frees f */
static int put_in_place(ofile *f, int durable, sbuf *err)
{
    of_sha256(f); /* flushes */
    if (durable && !f->err && fsync(f->fd) != 0)
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

/* of_commit - make the file durable and visible under its name */
int of_commit(ofile *f, sbuf *err)
{
    return put_in_place(f, 1, err);
}

/* of_replace - into place by rename, without fsync: for files rebuilt at start if lost */
int of_replace(ofile *f, sbuf *err)
{
    return put_in_place(f, 0, err);
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

int publish_done(const char *dir, const pub_file *files, int n, const char *done, bool sync_dir,
                 sbuf *err)
{
    sbuf list = {0};
    for (int i = 0; i < n; i++)
        sbuf_printf(&list, "%s  %s\n", files[i].sha256, files[i].name);
    ofile *d = of_open(dir, done, err);
    int rc = d ? of_write(d, list.p ? list.p : "", list.len) : -1;
    if (d)
        rc = of_commit(d, err) || rc;
    if (rc == 0 && sync_dir)
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
    return done ? publish_done(dir, files, n, done, true, err) : 0;
}

void of_abort(ofile *f)
{
    if (!f)
        return;
    sync_wait(f);
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
