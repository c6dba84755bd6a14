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

/* archive_write - write, fsync and rename into place; *rel gets "YYYY/MM/DD/ID.tar.gz" */
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
