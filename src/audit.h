/*
 * audit.h - the archive commands: what accountants use to prove, years
 * later, what went in and what came out (SPEC §7, §8).
 */
#ifndef SAGEBRIDGE_AUDIT_H
#define SAGEBRIDGE_AUDIT_H

#include "spool.h"

/* audit_main - "archive list|show|extract|verify|prune|report ARGS"; exit status */
int audit_main(spool *s, int argc, char **argv);

#endif
