/*
 * deliver.h - send waiting Clarity API batches (out/clarity/) to the Clarity
 * admin API with libcurl; exactly once per operation, across restarts.
 */
#ifndef SAGEBRIDGE_DELIVER_H
#define SAGEBRIDGE_DELIVER_H

#include <stdbool.h>

#include "spool.h"

/* deliver_run - every waiting batch in order; once: one pass; exit status
 * (0 all delivered, 65 some operation failed for good, 75 the API is unreachable:
 * try again later, 78 configuration or credentials) */
int deliver_run(spool *s, bool once);

#endif
