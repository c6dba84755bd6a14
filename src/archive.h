/*
 * archive.h - write a batch's archive: archive/YYYY/MM/DD/BATCH.tar.gz with
 * input/NAME, output/NAME…, manifest.json and report.txt (SPEC §7).
 */
#ifndef SAGEBRIDGE_ARCHIVE_H
#define SAGEBRIDGE_ARCHIVE_H

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

#endif
