/*
 * pipeline.c - a bounded queue of elements between two threads.
 *
 * Elements travel by swapping: pl_push exchanges the producer's element
 * with a free one from the pool (a struct swap: the buffers change owners,
 * no byte of them is copied), queues the full one, and the consumer gives
 * it back to the pool after fn.  Both sides move PL_BATCH elements per
 * lock: the producer takes free elements ahead into its stash and queues
 * full ones from its outbox, the consumer takes what is queued at once.
 * The producer waits when `depth` elements are queued; the consumer waits
 * when none is.  Once fn returns nonzero the consumer takes nothing more,
 * and the next pl_push says so, which stops the producer.
 *
 * DIAGNOSTICS
 *	None of its own: fn's nonzero result is handed back by pl_push (-1)
 *	and pl_finish; fn reports its reasons where it always does.
 */
#include "pipeline.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PL_BATCH 16 /* elements moved per lock, each way */

struct pipeline {
    pl_fn fn;
    void *ctx;
    pl_elem e;
    int depth;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t filled, freed;
    unsigned char *pool; /* depth elements of e.size bytes */
    unsigned char *tmp;  /* one element, for the swap */
    int *queue;          /* pool indexes, in order: head .. head+nq */
    int head, nq;
    int backlog; /* nq, stored atomically for pl_backlog */
    int *free_ix;
    int nfree;
    int closing; /* the reader pushes no more */
    int discard; /* drop what is queued */
    int stopped; /* fn returned this (nonzero), or 0 */
    /* a side asleep on its condition is woken only when half the pool is there for it: a
     * wake-up per element (a futex call and a cold cache each time) costs more than the
     * overlap gains */
    int consumer_waits, reader_waits;
    /* the producer's own, outside the lock: free elements taken in advance, full ones not
     * yet queued (both moved PL_BATCH at a time) */
    int stash[PL_BATCH], nstash;
    int outbox[PL_BATCH], nout;
    int refused; /* a push was refused: so is every later one */
};

static void *elem_at(pipeline *p, int ix)
{
    return p->pool + (size_t)ix * p->e.size;
}

/* consumer - fn for every queued element, in order, taking up to PL_BATCH per lock */
static void *consumer(void *arg)
{
    pipeline *p = arg;
    int batch[PL_BATCH];
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->nq && !p->closing) {
            p->consumer_waits = 1;
            pthread_cond_wait(&p->filled, &p->mu);
            p->consumer_waits = 0;
        }
        if (!p->nq || p->discard || p->stopped)
            break;
        int n = 0;
        while (p->nq && n < PL_BATCH) {
            batch[n++] = p->queue[p->head];
            p->head = (p->head + 1) % p->depth;
            p->nq--;
        }
        __atomic_store_n(&p->backlog, p->nq, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&p->mu);
        int rc = 0, done = 0;
        while (done < n && rc == 0) {
            if (p->e.ahead && done + 1 < n)
                p->e.ahead(elem_at(p, batch[done + 1]));
            rc = p->fn(p->ctx, elem_at(p, batch[done++]));
        }
        pthread_mutex_lock(&p->mu);
        for (int i = 0; i < n; i++)
            p->free_ix[p->nfree++] = batch[i];
        if (rc != 0)
            p->stopped = rc;
        if (p->reader_waits && p->nfree >= p->depth / 2)
            pthread_cond_signal(&p->freed);
        if (p->stopped)
            break;
    }
    pthread_cond_broadcast(&p->freed);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* pl_free - the pool and the locks (the consumer is not running) */
static void pl_free(pipeline *p)
{
    for (int i = 0; i < p->depth; i++)
        p->e.fini(elem_at(p, i));
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->filled);
    pthread_cond_destroy(&p->freed);
    free(p->pool);
    free(p->tmp);
    free(p->queue);
    free(p->free_ix);
    free(p);
}

pipeline *pl_start(const char *name, int depth, const pl_elem *e, pl_fn fn, void *ctx)
{
    pipeline *p = xcalloc(1, sizeof *p);
    p->fn = fn;
    p->ctx = ctx;
    p->e = *e;
    p->depth = depth < 2 * PL_BATCH ? 2 * PL_BATCH : depth;
    p->pool = xcalloc((size_t)p->depth, e->size);
    p->tmp = xmalloc(e->size);
    p->queue = xcalloc((size_t)p->depth, sizeof *p->queue);
    p->free_ix = xcalloc((size_t)p->depth, sizeof *p->free_ix);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->filled, NULL);
    pthread_cond_init(&p->freed, NULL);
    for (int i = 0; i < p->depth; i++) {
        e->init(elem_at(p, i), e->arg);
        p->free_ix[p->nfree++] = i;
    }
    if (thread_start(&p->th, name, consumer, p) != 0) {
        pl_free(p);
        return NULL;
    }
    return p;
}

/* post - the outbox to the queue, and the stash refilled; -1 once the consumer stopped */
static int post(pipeline *p, int refill)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nout; i++) {
        p->queue[(p->head + p->nq) % p->depth] = p->outbox[i];
        p->nq++;
    }
    p->nout = 0;
    __atomic_store_n(&p->backlog, p->nq, __ATOMIC_RELAXED);
    if (p->consumer_waits && (p->nq >= p->depth / 2 || !refill))
        pthread_cond_signal(&p->filled);
    while (refill && !p->nfree && !p->stopped) {
        p->reader_waits = 1;
        pthread_cond_wait(&p->freed, &p->mu);
        p->reader_waits = 0;
    }
    while (refill && p->nfree && p->nstash < PL_BATCH)
        p->stash[p->nstash++] = p->free_ix[--p->nfree];
    int stopped = p->stopped;
    pthread_mutex_unlock(&p->mu);
    return stopped ? -1 : 0;
}

int pl_push(pipeline *p, void *elem)
{
    if (p->refused || (!p->nstash && post(p, 1) != 0))
        return p->refused = -1;
    int ix = p->stash[--p->nstash];
    void *slot = elem_at(p, ix);
    memcpy(p->tmp, slot, p->e.size);
    memcpy(slot, elem, p->e.size);
    memcpy(elem, p->tmp, p->e.size);
    p->outbox[p->nout++] = ix;
    if (p->nout == PL_BATCH && post(p, 0) != 0)
        return p->refused = -1;
    return 0;
}

int pl_backlog(const pipeline *p)
{
    return __atomic_load_n(&p->backlog, __ATOMIC_RELAXED);
}

int pl_finish(pipeline *p, int discard)
{
    if (!discard)
        post(p, 0);
    pthread_mutex_lock(&p->mu);
    p->closing = 1;
    p->discard = discard;
    pthread_cond_broadcast(&p->filled);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    int rc = p->stopped;
    pl_free(p);
    return rc;
}
