/*
 * pipeline.c - a bounded queue of records between two threads.
 *
 * Records travel by swapping: pl_push exchanges the reader's record with a
 * free one from the pool (a struct swap: the buffers change owners, no byte
 * is copied), queues the full one, and the consumer gives it back to the
 * pool after fn.  Both sides move PL_BATCH records per lock: the reader
 * takes free records ahead into its stash and queues full ones from its
 * outbox, the consumer takes what is queued at once.  The reader waits when PL_DEPTH records are
 *queued; the consumer waits when none is.  Once fn returns nonzero the consumer takes nothing more,
 *and the next pl_push says so, which stops the reader.
 *
 * DIAGNOSTICS
 *	None of its own: fn's nonzero result is handed back by pl_push (-1)
 *	and pl_finish; fn reports its reasons where it always does.
 */
#include "pipeline.h"

#include <pthread.h>
#include <stdlib.h>

#define PL_BATCH 16 /* records moved per lock, each way */

struct pipeline {
    pl_fn fn;
    void *ctx;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t filled, freed;
    record pool[PL_DEPTH];
    int queue[PL_DEPTH]; /* pool indexes, in order: head .. head+nq */
    int head, nq;
    int free_ix[PL_DEPTH];
    int nfree;
    int closing; /* the reader pushes no more */
    int discard; /* drop what is queued */
    int stopped; /* fn returned this (nonzero), or 0 */
    /* a side asleep on its condition is woken only when half the pool is there for it: a
     * wake-up per record (a futex call and a cold cache each time) costs more than the
     * overlap gains */
    int consumer_waits, reader_waits;
    /* the reader's own, outside the lock: free records taken in advance, full ones not yet
     * queued (both moved PL_BATCH at a time) */
    int stash[PL_BATCH], nstash;
    int outbox[PL_BATCH], nout;
    int refused; /* a push was refused: so is every later one */
};

/* consumer - fn for every queued record, in order, taking up to PL_BATCH per lock */
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
            p->head = (p->head + 1) % PL_DEPTH;
            p->nq--;
        }
        pthread_mutex_unlock(&p->mu);
        int rc = 0, done = 0;
        while (done < n && rc == 0)
            rc = p->fn(p->ctx, &p->pool[batch[done++]]);
        pthread_mutex_lock(&p->mu);
        for (int i = 0; i < n; i++)
            p->free_ix[p->nfree++] = batch[i];
        if (rc != 0)
            p->stopped = rc;
        if (p->reader_waits && p->nfree >= PL_DEPTH / 2)
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
    for (int i = 0; i < PL_DEPTH; i++)
        record_free(&p->pool[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->filled);
    pthread_cond_destroy(&p->freed);
    free(p);
}

pipeline *pl_start(const rec_schema *schema, pl_fn fn, void *ctx)
{
    pipeline *p = xcalloc(1, sizeof *p);
    p->fn = fn;
    p->ctx = ctx;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->filled, NULL);
    pthread_cond_init(&p->freed, NULL);
    for (int i = 0; i < PL_DEPTH; i++) {
        record_init(&p->pool[i], schema);
        p->free_ix[p->nfree++] = i;
    }
    if (thread_start(&p->th, "sb-map", consumer, p) != 0) {
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
        p->queue[(p->head + p->nq) % PL_DEPTH] = p->outbox[i];
        p->nq++;
    }
    p->nout = 0;
    if (p->consumer_waits && (p->nq >= PL_DEPTH / 2 || !refill))
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

int pl_push(pipeline *p, record *rec)
{
    if (p->refused || (!p->nstash && post(p, 1) != 0))
        return p->refused = -1;
    int ix = p->stash[--p->nstash];
    record t = p->pool[ix];
    p->pool[ix] = *rec;
    *rec = t;
    p->outbox[p->nout++] = ix;
    if (p->nout == PL_BATCH && post(p, 0) != 0)
        return p->refused = -1;
    return 0;
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
