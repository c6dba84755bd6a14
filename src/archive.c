/*
 * archive.c - batch archives with libarchive (ustar) and isa-l's igzip (gzip, on two cores).
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
#include <pthread.h>
#include <isa-l/igzip_lib.h>

#include "digest.h"
#include "publish.h"

/* mkdirs - create every missing folder of path, mode 0750 */
static int mkdirs(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) /* the usual case: today's folder */
        return 0;
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

/* ------------------------------------------------------ parallel gzip */

/*
 * The tar stream that libarchive writes (ustar, no filter of its own) is
 * cut into blocks of ARC_BLOCK bytes, and each block becomes a gzip member
 * of its own (isa-l's igzip writes the header and trailer: a fixed header
 * without name or time).
 * Concatenated members are one valid gzip file (RFC 1952 §2.2) that
 * libarchive, gzip(1) and Python read as the single tar stream it is.
 * Independent members can be compressed at the same time, on both cores:
 * ARC_WORKERS threads take blocks in order and the thread that feeds
 * libarchive writes the finished ones to the file in order; they start at
 * the first full block, so a small archive (one block: the one-order
 * batch) is compressed by the caller without any thread.  Memory is
 * ARC_SLOTS blocks in and out, whatever the size of the batch.  The bytes
 * depend only on the tar stream and the level (no time in gzip headers),
 * so archives stay reproducible.  Independent blocks cost a little ratio:
 * a block starts without the previous one's window (bench/RESULTS.md).
 *
 * Why igzip and not zlib: on this kind of data (JSON and CSV) igzip level 1
 * compresses about seven times faster than zlib level 1 and a little
 * smaller (bench/HISTORY.md); the output is the same gzip format, which
 * libarchive (through zlib) reads back.
 */
#define ARC_BLOCK   (256 * 1024)
#define ARC_SLOTS   4
#define ARC_WORKERS 2

enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

typedef struct gz_state gz_state;

typedef struct {
    int state;
    unsigned char *in, *out;
    size_t in_len, out_len, out_cap;
    int zerr; /* isa-l's status when compression failed (0: none) */
} arc_slot;

struct arc_writer {
    char *dir, *tmp, *fin, *rel;
    time_t mtime;
    int fd;
    struct archive *a;
    int level;
    /* blocks: seq s lives in slots[s % ARC_SLOTS] */
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    arc_slot slots[ARC_SLOTS];
    uint64_t next_fill, next_take, next_write;
    pthread_t workers[ARC_WORKERS];
    int nworkers, stop;
    int started;  /* workers were asked for (at the first full block) */
    gz_state *gz; /* blocks compressed by the caller: small archives, or no thread */
    int werr;     /* errno of a failed write to the archive file */
    int zfail;    /* a block could not be compressed */
    /* one member added in the background (arc_add_bg) */
    pthread_t feeder;
    int feeding;
    int bg_n; /* members added in the background: their names and open files */
    char **bg_name;
    int *bg_fd;
    int bg_rc;
    sbuf bg_err;
};

/* one compressor: isa-l's stream and the buffer its level needs */
struct gz_state {
    struct isal_zstream s;
    unsigned char *lvl;
    uint32_t lvl_len;
};

/* gz_new - a compressor for level 0..3 */
static gz_state *gz_new(int level)
{
    static const uint32_t need[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
                                    ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};
    gz_state *g = xcalloc(1, sizeof *g);
    g->lvl_len = need[level];
    g->lvl = g->lvl_len ? xmalloc(g->lvl_len) : NULL;
    return g;
}

static void gz_free(gz_state *g)
{
    if (g)
        free(g->lvl);
    free(g);
}

/* compress_block - one block into one gzip member; 0, else isa-l's status */
static int compress_block(gz_state *g, int level, arc_slot *sl)
{
    /* at worst deflate stores: 5 bytes per 64 KiB stored block, 18 of gzip framing */
    size_t bound = sl->in_len + sl->in_len / 1024 + 1024;
    if (sl->out_cap < bound) {
        free(sl->out);
        sl->out = xmalloc(bound);
        sl->out_cap = bound;
    }
    isal_deflate_stateless_init(&g->s);
    g->s.level = (uint32_t)level;
    g->s.level_buf = g->lvl;
    g->s.level_buf_size = g->lvl_len;
    g->s.gzip_flag = IGZIP_GZIP;
    g->s.end_of_stream = 1;
    g->s.flush = NO_FLUSH;
    g->s.next_in = sl->in;
    g->s.avail_in = (uint32_t)sl->in_len;
    g->s.next_out = sl->out;
    g->s.avail_out = (uint32_t)sl->out_cap;
    int rc = isal_deflate_stateless(&g->s);
    sl->out_len = sl->out_cap - g->s.avail_out;
    return rc == COMP_OK ? 0 : (rc ? rc : -1);
}

/* worker - compress queued blocks, oldest first, until told to stop */
static void *worker(void *arg)
{
    arc_writer *w = arg;
    gz_state *g = gz_new(w->level);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->next_take == w->next_fill && !w->stop)
            pthread_cond_wait(&w->work, &w->mu);
        if (w->next_take == w->next_fill)
            break; /* stop, and nothing left */
        arc_slot *sl = &w->slots[w->next_take++ % ARC_SLOTS];
        sl->state = SLOT_BUSY;
        pthread_mutex_unlock(&w->mu);
        int zr = compress_block(g, w->level, sl);
        pthread_mutex_lock(&w->mu);
        sl->zerr = zr;
        if (zr != 0)
            w->zfail = 1;
        sl->state = SLOT_DONE;
        pthread_cond_broadcast(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    gz_free(g);
    return NULL;
}

/* write_ready - write finished blocks in order, waiting for those before seq `wait_until`
 * (0: only what is finished; called with mu held, released around each write) */
static void write_ready(arc_writer *w, uint64_t wait_until)
{
    while (w->next_write != w->next_fill) {
        arc_slot *sl = &w->slots[w->next_write % ARC_SLOTS];
        if (sl->state != SLOT_DONE) {
            if (w->next_write >= wait_until)
                return;
            pthread_cond_wait(&w->done, &w->mu);
            continue;
        }
        pthread_mutex_unlock(&w->mu);
        if (!w->werr && sl->zerr == 0) {
            size_t off = 0;
            while (off < sl->out_len) {
                ssize_t k = write(w->fd, sl->out + off, sl->out_len - off);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k < 0) {
                    w->werr = errno;
                    break;
                }
                off += (size_t)k;
            }
        }
        pthread_mutex_lock(&w->mu);
        sl->state = SLOT_FREE;
        sl->in_len = 0;
        w->next_write++;
    }
}

/* fill_slot - the slot that takes the next bytes of the tar stream (mu held) */
static arc_slot *fill_slot(arc_writer *w)
{
    arc_slot *sl = &w->slots[w->next_fill % ARC_SLOTS];
    if (w->next_fill - w->next_write >= ARC_SLOTS) /* every slot in use: the oldest goes out */
        write_ready(w, w->next_write + 1);
    if (!sl->in)
        sl->in = xmalloc(ARC_BLOCK);
    return sl;
}

/* queue_slot - the filled block goes to the workers (mu held) */
static void queue_slot(arc_writer *w, arc_slot *sl, int last)
{
    /* the workers start with the first full block: an archive of one block (a one-order
     * batch) is compressed here, without the cost of starting and joining threads */
    if (!w->started && !last) {
        w->started = 1;
        for (int i = 0; i < ARC_WORKERS; i++)
            if (thread_start(&w->workers[w->nworkers], "sb-gzip", worker, w) == 0)
                w->nworkers++;
    }
    w->next_fill++;
    if (!w->nworkers) {
        if (!w->gz)
            w->gz = gz_new(w->level);
        w->next_take++;
        sl->zerr = compress_block(w->gz, w->level, sl);
        if (sl->zerr != 0)
            w->zfail = 1;
        sl->state = SLOT_DONE;
    } else {
        sl->state = SLOT_QUEUED;
        pthread_cond_signal(&w->work);
    }
    write_ready(w, 0); /* whatever is finished, without waiting */
}

/* tar_write - libarchive's output: the raw tar stream */
static la_ssize_t tar_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
    arc_writer *w = ctx;
    const unsigned char *p = buf;
    size_t left = len;
    pthread_mutex_lock(&w->mu);
    while (left) {
        arc_slot *sl = fill_slot(w);
        size_t k = ARC_BLOCK - sl->in_len < left ? ARC_BLOCK - sl->in_len : left;
        memcpy(sl->in + sl->in_len, p, k);
        sl->in_len += k;
        p += k;
        left -= k;
        if (sl->in_len == ARC_BLOCK)
            queue_slot(w, sl, 0);
    }
    int bad = w->werr || w->zfail;
    pthread_mutex_unlock(&w->mu);
    if (bad) {
        archive_set_error(a, w->werr ? w->werr : EIO, "%s",
                          w->werr ? strerror(w->werr) : "igzip could not compress a block");
        return -1;
    }
    return (la_ssize_t)len;
}

/* drain - the last, partial block, then everything written; stops the workers */
static int drain(arc_writer *w)
{
    pthread_mutex_lock(&w->mu);
    arc_slot *sl = &w->slots[w->next_fill % ARC_SLOTS];
    if (sl->in && sl->in_len && sl->state == SLOT_FREE)
        queue_slot(w, sl, 1);
    write_ready(w, UINT64_MAX);
    w->stop = 1;
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nworkers; i++)
        pthread_join(w->workers[i], NULL);
    w->nworkers = 0;
    return w->werr || w->zfail ? -1 : 0;
}

/* ------------------------------------------------------------- writing */

/* add_fd - a member whose bytes are the open file fd (closed here), or m->data */
static int add_fd(struct archive *a, const arc_member *m, int fd, time_t mtime, sbuf *err)
{
    int64_t size = (int64_t)m->len;
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) != 0) {
            sbuf_printf(err, "%s: cannot read for the archive: %s", m->member, strerror(errno));
            close(fd);
            return -1;
        }
        size = st.st_size;
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
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
    if (rc == 0 && fd >= 0) {
        char *buf = xmalloc(ARC_BLOCK);
        ssize_t n;
        int64_t total = 0;
        while (total < size && (n = read(fd, buf, ARC_BLOCK)) > 0) {
            if (n > size - total) /* grown since fstat: the header said size */
                n = (ssize_t)(size - total);
            if (archive_write_data(a, buf, (size_t)n) != n) {
                rc = -1;
                break;
            }
            total += n;
        }
        free(buf);
        if (rc == 0 && total != size) {
            errno = EIO;
            rc = -1;
        }
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

/* open_member - the file of m (m->path), or -1 with err set */
static int open_member(const arc_member *m, sbuf *err)
{
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        sbuf_printf(err, "%s: cannot read for the archive: %s", m->path, strerror(errno));
    return fd;
}

static int add_entry(struct archive *a, const arc_member *m, time_t mtime, sbuf *err)
{
    int fd = -1;
    if (m->path && (fd = open_member(m, err)) < 0)
        return -1;
    return add_fd(a, m, fd, mtime, err);
}

/* bg_clear - forget the background members (the feeder is not running); open files close */
static void bg_clear(arc_writer *w)
{
    for (int i = 0; i < w->bg_n; i++) {
        free(w->bg_name[i]);
        if (w->bg_fd[i] >= 0)
            close(w->bg_fd[i]);
    }
    free(w->bg_name);
    free(w->bg_fd);
    w->bg_name = NULL;
    w->bg_fd = NULL;
    w->bg_n = 0;
}

/* free_writer - close and free everything; the temporary file goes unless kept */
static void free_writer(arc_writer *w, int remove_tmp)
{
    if (w->nworkers) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        w->next_fill = w->next_take; /* nothing more for the workers */
        pthread_cond_broadcast(&w->work);
        pthread_mutex_unlock(&w->mu);
        for (int i = 0; i < w->nworkers; i++)
            pthread_join(w->workers[i], NULL);
    }
    if (w->a)
        archive_write_free(w->a);
    gz_free(w->gz);
    if (w->fd >= 0)
        close(w->fd);
    if (remove_tmp && w->tmp)
        unlink(w->tmp);
    for (int i = 0; i < ARC_SLOTS; i++) {
        free(w->slots[i].in);
        free(w->slots[i].out);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    bg_clear(w);
    sbuf_free(&w->bg_err);
    free(w->dir);
    free(w->tmp);
    free(w->fin);
    free(w->rel);
    free(w);
}

arc_writer *arc_begin(const char *archive_dir, const char *batch_id, time_t day, time_t mtime,
                      int level, sbuf *err)
{
    struct tm tm;
    gmtime_r(&day, &tm);
    char sub[64];
    snprintf(sub, sizeof sub, "%04d/%02d/%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    arc_writer *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->done, NULL);
    w->fd = -1;
    w->mtime = mtime;
    w->level = level < ARC_LEVEL_MIN || level > ARC_LEVEL_MAX ? ARC_LEVEL_DEFAULT : level;
    sbuf b = {0};
    sbuf_printf(&b, "%s/%s", archive_dir, sub);
    w->dir = b.p;
    b = (sbuf){0};
    sbuf_printf(&b, "%s/.%s.tar.gz.sbtmp", w->dir, batch_id);
    w->tmp = b.p;
    b = (sbuf){0};
    sbuf_printf(&b, "%s/%s.tar.gz", w->dir, batch_id);
    w->fin = b.p;
    b = (sbuf){0};
    sbuf_printf(&b, "%s/%s.tar.gz", sub, batch_id);
    w->rel = b.p;
    if (mkdirs(w->dir) != 0) {
        sbuf_printf(err, "%s: cannot create the archive folder: %s", w->dir, strerror(errno));
        free_writer(w, 0);
        return NULL;
    }
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (w->fd < 0) {
        sbuf_printf(err, "%s: cannot create the archive: %s", w->tmp, strerror(errno));
        free_writer(w, 0);
        return NULL;
    }
    w->a = archive_write_new();
    archive_write_set_format_ustar(w->a);
    archive_write_add_filter_none(w->a);
    archive_write_set_bytes_in_last_block(w->a, 1);
    if (archive_write_open(w->a, w, NULL, tar_write, NULL) != ARCHIVE_OK) {
        sbuf_printf(err, "%s: %s", w->tmp, archive_error_string(w->a));
        free_writer(w, 1);
        return NULL;
    }
    return w;
}

/* join_feeder - wait for the member added in the background; its error joins err */
static int join_feeder(arc_writer *w, sbuf *err)
{
    if (!w->feeding)
        return 0;
    pthread_join(w->feeder, NULL);
    w->feeding = 0;
    if (w->bg_rc != 0 && err)
        sbuf_add(err, w->bg_err.p ? w->bg_err.p : "", w->bg_err.len);
    return w->bg_rc;
}

int arc_add(arc_writer *w, const arc_member *m, sbuf *err)
{
    if (join_feeder(w, err) != 0)
        return -1;
    return add_entry(w->a, m, w->mtime, err);
}

static void *feeder(void *arg)
{
    arc_writer *w = arg;
    for (int i = 0; i < w->bg_n; i++) {
        arc_member m = {w->bg_name[i], NULL, NULL, 0};
        int fd = w->bg_fd[i];
        w->bg_fd[i] = -1; /* add_fd closes it */
        if (w->bg_rc == 0)
            w->bg_rc = add_fd(w->a, &m, fd, w->mtime, &w->bg_err);
        else
            close(fd);
    }
    return NULL;
}

int arc_add_bg(arc_writer *w, const char *member, const char *path, sbuf *err)
{
    return arc_add_files_bg(w, &member, &path, 1, err);
}

int arc_add_files_bg(arc_writer *w, const char *const *members, const char *const *paths, int n,
                     sbuf *err)
{
    if (join_feeder(w, err) != 0)
        return -1;
    bg_clear(w);
    w->bg_rc = 0;
    sbuf_reset(&w->bg_err);
    w->bg_name = xcalloc((size_t)n + 1, sizeof *w->bg_name);
    w->bg_fd = xcalloc((size_t)n + 1, sizeof *w->bg_fd);
    off_t total = 0;
    /* every file is opened now: renamed or removed later (published, taken by Sage), it is
     * still the file that was meant */
    for (int i = 0; i < n; i++) {
        arc_member m = {members[i], paths[i], NULL, 0};
        int fd = open_member(&m, err);
        if (fd < 0) {
            bg_clear(w);
            return -1;
        }
        struct stat st;
        if (fstat(fd, &st) == 0)
            total += st.st_size;
        w->bg_name[w->bg_n] = xstrdup(members[i]);
        w->bg_fd[w->bg_n++] = fd;
    }
    /* a few small files are added here and now: a thread would cost more than it saves */
    if (total < 4 * ARC_BLOCK || thread_start(&w->feeder, "sb-archive", feeder, w) != 0) {
        feeder(w);
        int rc = w->bg_rc;
        if (rc != 0)
            sbuf_add(err, w->bg_err.p ? w->bg_err.p : "", w->bg_err.len);
        bg_clear(w);
        return rc;
    }
    w->feeding = 1;
    return 0;
}

int arc_commit(arc_writer *w, char **rel, bool sync_dir, sbuf *err)
{
    int rc = -1;
    if (join_feeder(w, err) != 0)
        goto out;
    if (archive_write_close(w->a) != ARCHIVE_OK) {
        sbuf_printf(err, "%s: %s", w->tmp, archive_error_string(w->a));
        goto out;
    }
    if (drain(w) != 0) {
        sbuf_printf(err, "%s: cannot write the archive: %s", w->tmp,
                    w->werr ? strerror(w->werr) : "igzip could not compress a block");
        goto out;
    }
    if (fsync(w->fd) != 0 || close(w->fd) != 0) {
        w->fd = -1;
        sbuf_printf(err, "%s: cannot write the archive: %s", w->tmp, strerror(errno));
        goto out;
    }
    w->fd = -1;
    if (rename(w->tmp, w->fin) != 0) {
        sbuf_printf(err, "%s: cannot rename the archive: %s", w->fin, strerror(errno));
        goto out;
    }
    if (sync_dir && fsync_dir(w->dir, err) != 0)
        goto out;
    *rel = w->rel;
    w->rel = NULL;
    rc = 0;
out:
    free_writer(w, rc != 0);
    return rc;
}

void arc_abort(arc_writer *w)
{
    if (!w)
        return;
    join_feeder(w, NULL);
    free_writer(w, 1);
}

int archive_write(const char *archive_dir, const char *batch_id, time_t day, time_t mtime,
                  const arc_member *m, int n, char **rel, sbuf *err)
{
    arc_writer *w = arc_begin(archive_dir, batch_id, day, mtime, ARC_LEVEL_DEFAULT, err);
    if (!w)
        return -1;
    for (int i = 0; i < n; i++)
        if (arc_add(w, &m[i], err) != 0) {
            arc_abort(w);
            return -1;
        }
    return arc_commit(w, rel, true, err);
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
