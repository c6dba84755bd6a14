/*
 * publish.c - temp name, write, fsync, rename, fsync(dir).
 *
 * The temporary name (".NAME.sbtmp") starts with a dot, which every reader of our folders
 * (the spool scanner, Sage's import job patterns, SFTP listings) skips, so a
 * file is visible under its real name only when it is complete and durable.
 * The SHA-256 of the contents is computed while writing, so a .done marker
 * never has to read the files back.
 *
 * A large file is hashed and written by a background thread, on the
 * second core, while the caller fills the next buffer: each ofile has two
 * buffers and at most one of them is with the writer, so its bytes reach
 * the hash and the file in order and memory stays at two buffers per open
 * file.  Small files (one buffer or less: the usual one-order batch) never
 * involve the thread.  The writer also starts the kernel's writeback every
 * few megabytes (sync_file_range without waiting), and every few tens of
 * megabytes a second background thread (sb-sync) calls fdatasync on the
 * file, so that the fsync of of_commit/of_finish finds little left to do.
 * The early syncs are not for safety, only to overlap the disk's work with
 * the conversion: on this project's machine (a virtual disk whose host
 * caches writes) an fsync costs about 0.5 ms per megabyte written since the
 * last one, whatever sync_file_range started, so a 460 MB batch waited
 * 0.2 s at the end for its first fsync (bench/HISTORY.md).  The final fsync
 * stays what makes a file durable; an error of an early sync is kept and
 * reported by of_commit/of_finish like a write error, since Linux reports a
 * writeback error to one fsync of a descriptor only.
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

#define OF_BUF       (256 * 1024)
#define OF_WRITEBACK (8u << 20)  /* start the kernel's writeback every 8 MiB */
#define OF_SYNC      (32u << 20) /* and ask sb-sync for an fdatasync every 32 MiB */

struct ofile {
    int fd;
    char *dir, *name, *tmp, *final;
    char *buf[2]; /* the one being filled is buf[cur]; the other may be with the writer */
    int cur;
    size_t used;
    uint64_t size;
    int err; /* errno of the first failed write (the caller's side) */
    EVP_MD_CTX *md;
    char hex[65];
    /* shared with the writer thread, under bg.mu */
    int busy; /* buf[busy_idx] (busy_len bytes) is queued or being written */
    int busy_idx;
    size_t busy_len;
    int bg_err;       /* errno of a failed write or early sync in a background thread */
    ofile *next;      /* writer queue */
    int syncing;      /* with sb-sync: the descriptor must stay open */
    ofile *sync_next; /* sb-sync's queue */
    /* the writer thread's own */
    uint64_t written, hinted, synced;
};

/* the background writer: one thread for the process, a FIFO of files with a buffer each;
 * and the syncer, a list of files to fdatasync (each file at most once in it, order of no
 * matter) */
static struct {
    pthread_once_t once;
    pthread_mutex_t mu;
    pthread_cond_t work, idle, sync_work;
    ofile *head, *tail;
    ofile *sync_head;
    int ok;      /* the writer runs (else every write happens in the caller) */
    int sync_ok; /* the syncer runs (else no early syncs) */
} bg = {PTHREAD_ONCE_INIT,
        PTHREAD_MUTEX_INITIALIZER,
        PTHREAD_COND_INITIALIZER,
        PTHREAD_COND_INITIALIZER,
        PTHREAD_COND_INITIALIZER,
        NULL,
        NULL,
        NULL,
        0,
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

/* bg_main - hash and write queued buffers, in order */
static void *bg_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&bg.mu);
    for (;;) {
        while (!bg.head)
            pthread_cond_wait(&bg.work, &bg.mu);
        ofile *f = bg.head;
        bg.head = f->next;
        if (!bg.head)
            bg.tail = NULL;
        int failed = f->bg_err;
        pthread_mutex_unlock(&bg.mu);

        const char *p = f->buf[f->busy_idx];
        EVP_DigestUpdate(f->md, p, f->busy_len);
        int e = failed ? 0 : write_all(f->fd, p, f->busy_len);
        if (!failed && !e) {
            f->written += f->busy_len;
            if (f->written - f->hinted >= OF_WRITEBACK) {
                /* a hint: a failure here shows again, and is reported, at fsync */
                (void)sync_file_range(f->fd, (off_t)f->hinted, (off_t)(f->written - f->hinted),
                                      SYNC_FILE_RANGE_WRITE);
                f->hinted = f->written;
            }
        }

        pthread_mutex_lock(&bg.mu);
        if (e && !f->bg_err)
            f->bg_err = e;
        if (!e && !failed && bg.sync_ok && !f->syncing && f->written - f->synced >= OF_SYNC) {
            f->synced = f->written;
            f->syncing = 1;
            f->sync_next = bg.sync_head;
            bg.sync_head = f;
            pthread_cond_signal(&bg.sync_work);
        }
        f->busy = 0;
        pthread_cond_broadcast(&bg.idle);
    }
    return NULL;
}

/* sync_main - fdatasync the files the writer asks for, while it and the caller go on */
static void *sync_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&bg.mu);
    for (;;) {
        while (!bg.sync_head)
            pthread_cond_wait(&bg.sync_work, &bg.mu);
        ofile *f = bg.sync_head;
        bg.sync_head = f->sync_next;
        pthread_mutex_unlock(&bg.mu);

        /* f->fd stays open while f->syncing: bg_wait(f, 1) comes before every close */
        int e = fdatasync(f->fd) != 0 ? errno : 0;

        pthread_mutex_lock(&bg.mu);
        if (e && !f->bg_err)
            f->bg_err = e;
        f->syncing = 0;
        pthread_cond_broadcast(&bg.idle);
    }
    return NULL;
}

/* bg_start - the writer and syncer threads, started once */
static void bg_start(void)
{
    pthread_t t;
    bg.ok = thread_start(&t, "sb-write", bg_main, NULL) == 0;
    if (bg.ok)
        pthread_detach(t);
    if (bg.ok) {
        /* under the lock the writer reads it with; until it is set the writer asks for no
         * early sync, which changes nothing but speed */
        pthread_mutex_lock(&bg.mu);
        bg.sync_ok = thread_start(&t, "sb-sync", sync_main, NULL) == 0;
        pthread_mutex_unlock(&bg.mu);
        if (bg.sync_ok)
            pthread_detach(t);
    }
}

/* bg_wait - until f has no buffer with the writer (all: and no sync with the syncer, before
 * its descriptor is synced, closed or the file removed); takes over their error */
static void bg_wait(ofile *f, int all)
{
    if (!bg.ok)
        return;
    pthread_mutex_lock(&bg.mu);
    while (f->busy || (all && f->syncing))
        pthread_cond_wait(&bg.idle, &bg.mu);
    if (f->bg_err && !f->err)
        f->err = f->bg_err;
    pthread_mutex_unlock(&bg.mu);
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
    f->buf[0] = xmalloc(OF_BUF);
    f->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(f->md, EVP_sha256(), NULL);
    return f;
}

/* flush - the buffer to the hash and the file: handed to the writer thread while more is
 * to come (async), in the caller at the end; -1 once a write has failed */
static int flush(ofile *f, int async)
{
    if (async) {
        pthread_once(&bg.once, bg_start);
        if (bg.ok) {
            bg_wait(f, 0); /* the other buffer is free again */
            if (!f->buf[1])
                f->buf[1] = xmalloc(OF_BUF);
            pthread_mutex_lock(&bg.mu);
            f->busy = 1;
            f->busy_idx = f->cur;
            f->busy_len = f->used;
            f->next = NULL;
            if (bg.tail)
                bg.tail->next = f;
            else
                bg.head = f;
            bg.tail = f;
            pthread_cond_signal(&bg.work);
            pthread_mutex_unlock(&bg.mu);
            f->cur ^= 1;
            f->used = 0;
            return f->err ? -1 : 0;
        }
    }
    bg_wait(f, 1);
    EVP_DigestUpdate(f->md, f->buf[f->cur], f->used);
    if (!f->err) {
        int e = write_all(f->fd, f->buf[f->cur], f->used);
        if (e)
            f->err = e;
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
        memcpy(f->buf[f->cur] + f->used, s, k);
        f->used += k;
        s += k;
        n -= k;
        if (f->used == OF_BUF && flush(f, 1) != 0)
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
    bg_wait(f, 1);
    free(f->buf[0]);
    free(f->buf[1]);
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
        flush(f, 0); /* also waits for the writer */
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
    bg_wait(f, 1);
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
