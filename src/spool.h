/*
 * spool.h - the spool (SPEC §3): folders are states, rename(2) is the
 * transition, the ledger remembers, and a crash at any instant is
 * followed by a restart that finishes or redoes the batch.
 */
#ifndef SAGEBRIDGE_SPOOL_H
#define SAGEBRIDGE_SPOOL_H

#include <stdbool.h>

#include "config.h"
#include "util.h"

typedef struct spool spool;

/* spool_init - create DIR's tree (0750) and, unless it exists, a commented config */
int spool_init(const char *dir, const char *conf_path, sbuf *err);

/* spool_open - takes ownership of cfg; NULL with err set (exit 78 or 73) */
spool *spool_open(const char *cfg_path, config *cfg, sbuf *err, int *exit_code);
void spool_close(spool *s);

/* spool_run - process what waits (once) or watch until SIGTERM/SIGINT; exit status */
int spool_run(spool *s, bool once);
int spool_status(spool *s, bool json);
/* spool_move - "hold", "release" or "requeue" NAME; exit status */
int spool_move(spool *s, const char *op, const char *name);

/* spool_replay - run an archived input again through today's templates: a new batch that
 * names the one it replays; dry: only show how the outputs would differ */
int spool_replay(spool *s, const char *batch, bool dry, bool force);

/* for the archive commands (audit.c) */
struct ledger;
struct ledger *spool_ledger(spool *s);
const char *spool_archive_dir(spool *s);
const char *spool_path(spool *s);
const struct config *spool_config(spool *s);

#endif
