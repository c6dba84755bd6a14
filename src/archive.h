/*
 * archive.h - write a batch's archive: archive/YYYY/MM/DD/BATCH.tar.gz with
 * input/NAME, output/NAME…, manifest.json and report.txt (SPEC §7).
 */
#ifndef SAGEBRIDGE_ARCHIVE_H
#define SAGEBRIDGE_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

typedef struct {
    const char *member; /* name inside the archive, e.g. "input/orders.json" */
    const char *path;   /* file on disk to copy from, or NULL with data */
    const char *data;
    size_t len;
} arc_member;

/* igzip level of archives unless the configuration says otherwise ([spool] archive_level) */
#define ARC_LEVEL_DEFAULT 1
#define ARC_LEVEL_MIN     0
#define ARC_LEVEL_MAX     3

/* an archive being written: members are added in order, then it is committed */
typedef struct arc_writer arc_writer;

/* arc_begin - start archive_dir/YYYY/MM/DD/ID.tar.gz (of `day`) under a temporary name;
 * every member gets mtime; NULL with err set */
arc_writer *arc_begin(const char *archive_dir, const char *batch_id, time_t day, time_t mtime,
                      int level, sbuf *err);
/* arc_add - the next member (a file's contents or bytes in memory); -1 with err set */
int arc_add(arc_writer *w, const arc_member *m, sbuf *err);
/* arc_add_bg - the next member, a file, added by a thread of its own while the caller goes on
 * (a batch's input is compressed while it is being converted); the next arc_add, arc_commit
 * or arc_abort waits for it.  -1 with err set (an earlier background member failed) */
int arc_add_bg(arc_writer *w, const char *member, const char *path, sbuf *err);
/* arc_add_files_bg - n members, files, added in this order by one thread of its own, the same
 * way; each file is opened before it returns, so a file renamed or removed afterwards is still
 * archived whole.  -1 with err set (a file cannot be opened, or an earlier background member
 * failed) */
int arc_add_files_bg(arc_writer *w, const char *const *members, const char *const *paths, int n,
                     sbuf *err);
/* arc_commit - finish, fsync, rename into place and fsync the folder (unless sync_dir is
 * false: the caller syncs archive/YYYY/MM/DD once for several); *rel gets
 * "YYYY/MM/DD/ID.tar.gz"; frees w (on failure too, removing the temporary file) */
int arc_commit(arc_writer *w, char **rel, bool sync_dir, sbuf *err);
/* arc_abort - drop the archive being written; frees w */
void arc_abort(arc_writer *w);

/* archive_write - all of the above in one call; *rel gets "YYYY/MM/DD/ID.tar.gz" */
int archive_write(const char *archive_dir, const char *batch_id, time_t day, time_t mtime,
                  const arc_member *m, int n, char **rel, sbuf *err);

/* one member of an archive being read: its name, type and SHA-256 of its bytes */
typedef struct {
    const char *name;
    bool regular; /* a plain file (not a link, folder or device) */
    uint64_t size;
    char sha256[65];
    const char *data; /* the bytes, when asked for (keep) */
    size_t len;
} arc_entry;

/* arc_each - call fn for every member; keep(name) says whose bytes to hold in memory
 * (only small ones: the manifest, the report); -1 with err for an unreadable archive */
typedef int (*arc_each_fn)(void *ctx, const arc_entry *e);
int arc_each(const char *path, int (*keep)(const char *name), arc_each_fn fn, void *ctx, sbuf *err);
/* arc_read_member - one member's bytes into out (small members only) */
int arc_read_member(const char *path, const char *member, sbuf *out, sbuf *err);
/* arc_save_member - one member, streamed into the file dest (any size) */
int arc_save_member(const char *path, const char *member, const char *dest, sbuf *err);
/* arc_extract - every regular member under dir; refuses absolute names, "..", links */
int arc_extract(const char *path, const char *dir, sbuf *err);

#endif
