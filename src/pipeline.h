/*
 * pipeline.h - hand work from one thread to the next, in order.
 *
 * Reading a Clarity export (yajl, filling the record) and mapping it
 * (templates, writers) overlap on two cores: the reader pushes each
 * complete element (a record with its template result, convert.c); the
 * element's buffers are swapped with an empty element from a small pool, so
 * nothing is copied and memory is `depth` elements, whatever the file.  The
 * consumer sees the elements in order, one at a time, on its own thread.
 */
#ifndef SAGEBRIDGE_PIPELINE_H
#define SAGEBRIDGE_PIPELINE_H

#include <stddef.h>

/* records between the reader and the mapper (256 cost 1.2 MB more peak memory, no speed) */
#define PL_DEPTH 128

typedef struct pipeline pipeline;

/* pl_fn - the consumer: 0 to go on, anything else stops the pipeline */
typedef int (*pl_fn)(void *ctx, void *elem);

/* what the pool holds: elements of `size` bytes, made by init(elem, arg), freed by fini;
 * ahead(elem), when set, is called on the consumer's thread for the element after the one fn
 * is about to get, so that its memory (written on the other core) can be asked for early */
typedef struct {
    size_t size;
    void (*init)(void *elem, const void *arg);
    void (*fini)(void *elem);
    const void *arg;
    void (*ahead)(const void *elem);
} pl_elem;

/* pl_start - a consumer thread named `name` calling fn for every element pushed, with a
 * pool of depth elements; NULL when no thread can be started (the caller then calls fn
 * itself) */
pipeline *pl_start(const char *name, int depth, const pl_elem *e, pl_fn fn, void *ctx);
/* pl_push - queue elem: its contents move to the queue and elem gets a pool element in
 * exchange (with stale contents: clear it before filling it, as the readers do); -1 once the
 * consumer stopped.  Only one thread pushes. */
int pl_push(pipeline *p, void *elem);
/* pl_backlog - about how many elements wait for the consumer (read without the lock) */
int pl_backlog(const pipeline *p);
/* pl_finish - wait until the consumer has taken every element (discard: drop those still
 * queued), stop it and free p; returns what fn returned when it stopped, else 0.  Called
 * by the pushing thread, or once that thread is gone. */
int pl_finish(pipeline *p, int discard);

#endif
