/*
 * publish.h - write a file so that nobody ever sees half of it.
 *
 * An ofile is written under a hidden temporary name in its target folder
 * (".NAME.sbtmp"), hashed with SHA-256 as it is written, then fsync'ed
 * and renamed into place; the folder is fsync'ed after the renames.
 */
#ifndef SAGEBRIDGE_PUBLISH_H
#define SAGEBRIDGE_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct ofile ofile;

/* a finished file of a batch: its name in the folder, SHA-256 and size */
typedef struct {
    char name[256];
    char sha256[65];
    uint64_t size;
} pub_file;

/* of_open - start writing dir/name; NULL with err set ("DIR: cannot create …") */
ofile *of_open(const char *dir, const char *name, sbuf *err);
/* pieces of at least OF_CHUNK bytes are hashed and written from the caller's memory; smaller
 * ones are gathered to this size first */
#define OF_CHUNK (256 * 1024)

/* of_write - 0 or -1 (the error is kept and reported by of_commit and of_finish) */
int of_write(ofile *f, const void *p, size_t n);
int of_puts(ofile *f, const char *s);
/* of_commit - flush, fsync, rename into place; frees f; -1 with err set */
int of_commit(ofile *f, sbuf *err);
/* of_replace - flush, rename into place, no fsync (files repaired at start if lost); frees f */
int of_replace(ofile *f, sbuf *err);
/* of_finish - flush and fsync, keep the temporary name (publish_files renames); frees f */
int of_finish(ofile *f, pub_file *out, sbuf *err);
/* publish_files - rename finished files into place (those not already), fsync the folder,
 * then write DONE listing them in sha256sum format; safe to repeat after a crash */
int publish_files(const char *dir, const pub_file *files, int n, const char *done, sbuf *err);
/* publish_rename - ".NAME.sbtmp" -> "NAME"; 1 when neither exists (taken away already) */
int publish_rename(const char *dir, const char *name, sbuf *err);
/* publish_done - write DONE (sha256sum format) for files, then fsync the folder unless
 * sync_dir is false (the caller syncs it once for several) */
int publish_done(const char *dir, const pub_file *files, int n, const char *done, bool sync_dir,
                 sbuf *err);
/* of_abort - remove the temporary file; frees f */
void of_abort(ofile *f);
const char *of_name(const ofile *f);
/* of_sha256 - hex digest of everything written (valid after the last write) */
const char *of_sha256(ofile *f);
uint64_t of_size(const ofile *f);
/* fsync_dir - make renames in dir durable */
int fsync_dir(const char *dir, sbuf *err);

#endif
