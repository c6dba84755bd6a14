/*
 * test_pipeline.c - the reader -> consumer hand-over of records (src/pipeline.h).
 *
 * A producer fills one record per input record (record_clear, then
 * record_set / record_new_item, as the Clarity reader does) and pushes it;
 * the consumer, on the pipeline's own thread, copies what it sees into a
 * log that the test checks afterwards (cmocka's assertions must run on the
 * test's thread, so the consumer only records).  Covered:
 *   - every record arrives exactly once, in push order, with its own header
 *     values, item values and index/offset/line: the buffer swap neither
 *     loses nor mixes records, and a record does not change under the
 *     consumer while fn runs;
 *   - a consumer that returns nonzero stops the pipeline: a later pl_push
 *     returns -1 (within TEST_DEPTH pushes), pl_finish returns that value and
 *     nothing after the stopping record is consumed;
 *   - pl_finish(p, 1) drops what is queued and returns promptly;
 *   - pl_backlog tells how many records wait for a slow consumer;
 *   - the ahead hook sees, on the consumer's thread, the element fn gets next.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline.h"
#include "record.h"

#define N          10000
#define TEST_DEPTH 256 /* the pool of the pipelines under test (convert.c uses PL_DEPTH) */
#define MAXITEMS   3

/* what the consumer saw of one record */
typedef struct {
    uint64_t index, offset, line;
    char order_id[48];
    char total[48];
    int total_set;
    size_t nitems;
    char sku[MAXITEMS][48];
} seen_rec;

typedef struct {
    rec_schema *schema;
    int s_order, s_total, g_items, s_sku;
    /* filled by the consumer */
    seen_rec *log;
    size_t n, cap;
    int wrong_schema; /* a record not bound to the schema */
    int changed;      /* a record's text changed while fn had it */
    int on_pusher;    /* fn ran on the thread that pushes */
    pthread_t pusher;
    uint64_t stop_at; /* return stop_rc at this index (0 = never) */
    int stop_rc;
    useconds_t delay; /* per record, to make the consumer the slow side */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->schema = schema_new();
    f->s_order = schema_slot(f->schema, REC_HEADER, "orderId");
    f->s_total = schema_slot(f->schema, REC_HEADER, "totalAmount");
    f->g_items = schema_group(f->schema, "lineItems");
    f->s_sku = schema_slot(f->schema, f->g_items, "sku");
    f->cap = N + 1;
    f->log = calloc(f->cap, sizeof *f->log);
    f->pusher = pthread_self();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    schema_free(f->schema);
    free(f->log);
    free(f);
    return 0;
}

/* the values of record i, 1-based: derived from i so the consumer's view can be checked */
static void want_order(uint64_t i, char *b, size_t n)
{
    snprintf(b, n, "CL-%06llu", (unsigned long long)i);
}
static int want_total_set(uint64_t i)
{
    return i % 7 != 0; /* every seventh record has no total: stays unset */
}
static void want_total(uint64_t i, char *b, size_t n)
{
    snprintf(b, n, "%llu.%02llu", (unsigned long long)(i * 3), (unsigned long long)(i % 100));
}
static size_t want_nitems(uint64_t i)
{
    return (size_t)(i % (MAXITEMS + 1)); /* 0 .. MAXITEMS items */
}
static void want_sku(uint64_t i, size_t k, char *b, size_t n)
{
    snprintf(b, n, "SKU-%llu-%zu", (unsigned long long)i, k);
}

/* fill - what a reader does for record i: clear, then set every field */
static void fill(fixture *f, record *r, uint64_t i)
{
    char b[48];
    record_clear(r);
    r->index = i;
    r->offset = i * 100;
    r->line = i + 1;
    want_order(i, b, sizeof b);
    record_set(r, REC_HEADER, f->s_order, b, strlen(b));
    if (want_total_set(i)) {
        want_total(i, b, sizeof b);
        record_set(r, REC_HEADER, f->s_total, b, strlen(b));
    }
    for (size_t k = 0; k < want_nitems(i); k++) {
        record_new_item(r, f->g_items);
        want_sku(i, k, b, sizeof b);
        record_set(r, f->g_items, f->s_sku, b, strlen(b));
    }
}

static void copy(char *dst, size_t n, const char *p, size_t len)
{
    if (len >= n)
        len = n - 1;
    memcpy(dst, p, len);
    dst[len] = '\0';
}

/* snapshot - the record as the consumer sees it */
static void snapshot(const fixture *f, const record *r, seen_rec *s)
{
    size_t len = 0;
    const char *p;
    memset(s, 0, sizeof *s);
    s->index = r->index;
    s->offset = r->offset;
    s->line = r->line;
    if ((p = record_get(r, REC_HEADER, 0, f->s_order, &len)) != NULL)
        copy(s->order_id, sizeof s->order_id, p, len);
    if ((p = record_get(r, REC_HEADER, 0, f->s_total, &len)) != NULL) {
        copy(s->total, sizeof s->total, p, len);
        s->total_set = 1;
    }
    s->nitems = record_nitems(r, f->g_items);
    for (size_t k = 0; k < s->nitems && k < MAXITEMS; k++)
        if ((p = record_get(r, f->g_items, k, f->s_sku, &len)) != NULL)
            copy(s->sku[k], sizeof s->sku[k], p, len);
}

static int consume(void *ctx, void *elem)
{
    fixture *f = ctx;
    record *rec = elem;
    if (pthread_equal(pthread_self(), f->pusher))
        f->on_pusher = 1;
    if (rec->schema != f->schema)
        f->wrong_schema = 1;
    if (f->n >= f->cap)
        return 99; /* more records than were pushed: the log check below fails */
    seen_rec *s = &f->log[f->n++];
    snapshot(f, rec, s);
    if (f->delay)
        usleep(f->delay);
    else if (s->index % 64 == 0)
        usleep(200); /* now and then let the reader run ahead while we hold a record */
    seen_rec again;
    snapshot(f, rec, &again);
    if (memcmp(s, &again, sizeof again) != 0)
        f->changed = 1;
    if (f->stop_at && rec->index == f->stop_at)
        return f->stop_rc;
    return 0;
}

/* check_log - the consumer saw records 1..n, in order, each with its own values */
static void check_log(const fixture *f, size_t n)
{
    char b[48];
    assert_int_equal(f->n, n);
    assert_false(f->wrong_schema);
    assert_false(f->changed);
    assert_false(f->on_pusher);
    for (size_t j = 0; j < n; j++) {
        const seen_rec *s = &f->log[j];
        uint64_t i = j + 1;
        if (s->index != i)
            fail_msg("consumer's record #%zu has index %llu, want %llu", j + 1,
                     (unsigned long long)s->index, (unsigned long long)i);
        assert_int_equal(s->offset, i * 100);
        assert_int_equal(s->line, i + 1);
        want_order(i, b, sizeof b);
        assert_string_equal(s->order_id, b);
        assert_int_equal(s->total_set, want_total_set(i));
        if (want_total_set(i)) {
            want_total(i, b, sizeof b);
            assert_string_equal(s->total, b);
        }
        assert_int_equal(s->nitems, want_nitems(i));
        for (size_t k = 0; k < s->nitems; k++) {
            want_sku(i, k, b, sizeof b);
            assert_string_equal(s->sku[k], b);
        }
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void rec_init(void *elem, const void *schema)
{
    record_init(elem, schema);
}

static void rec_free(void *elem)
{
    record_free(elem);
}

/* start - a pipeline of records, as the reader's */
static pipeline *start(fixture *f, pl_fn fn, void *ctx)
{
    pl_elem e = {sizeof(record), rec_init, rec_free, f->schema, NULL};
    return pl_start("sb-test", TEST_DEPTH, &e, fn, ctx);
}

/* ---------------------------------------------------------------- tests */

/* push_all_check - records 1..N through p as the reader pushes them, then the consumer's log */
static void push_all_check(fixture *f, pipeline *p)
{
    assert_non_null(p);
    record r;
    record_init(&r, f->schema);
    for (uint64_t i = 1; i <= N; i++) {
        fill(f, &r, i);
        assert_int_equal(pl_push(p, &r), 0);
        /* what the reader gets back is a record of the same schema, ready to refill */
        assert_ptr_equal(r.schema, f->schema);
    }
    assert_int_equal(pl_finish(p, 0), 0);
    record_free(&r);
    check_log(f, N);
}

static void test_every_record_once_in_order(void **state)
{
    fixture *f = *state;
    push_all_check(f, start(f, consume, f));
}

/* the ahead hook: on the consumer's thread, called with the element fn gets next (a complete
 * record, pushed before), never with one already consumed; and not for every element (the
 * last of a batch has none after it) */
static struct {
    pthread_t pusher;
    uint64_t last; /* index the hook saw last, 0 after fn took it */
    size_t calls;
    int wrong; /* a call off the consumer's thread, or not for the next element */
} ahead_log;

static void ahead_hook(const void *elem)
{
    const record *r = elem;
    if (pthread_equal(pthread_self(), ahead_log.pusher) || r->index == 0)
        ahead_log.wrong = 1;
    ahead_log.last = r->index;
    ahead_log.calls++;
}

static int consume_after_ahead(void *ctx, void *elem)
{
    const record *r = elem;
    if (ahead_log.last && ahead_log.last != r->index + 1)
        ahead_log.wrong = 1;
    ahead_log.last = 0;
    return consume(ctx, elem);
}

static void test_ahead_sees_the_next_element(void **state)
{
    fixture *f = *state;
    memset(&ahead_log, 0, sizeof ahead_log);
    ahead_log.pusher = pthread_self();
    pl_elem e = {sizeof(record), rec_init, rec_free, f->schema, ahead_hook};
    push_all_check(f, pl_start("sb-test", TEST_DEPTH, &e, consume_after_ahead, f));
    assert_false(ahead_log.wrong);
    assert_true(ahead_log.calls > 0);
    assert_true(ahead_log.calls < N);
}

static void test_few_records_reach_consumer(void **state)
{
    /* fewer records than the pool holds (the consumer is woken only by pl_finish): still
     * every one is consumed before pl_finish returns */
    fixture *f = *state;
    pipeline *p = start(f, consume, f);
    assert_non_null(p);
    record r;
    record_init(&r, f->schema);
    for (uint64_t i = 1; i <= 3; i++) {
        fill(f, &r, i);
        assert_int_equal(pl_push(p, &r), 0);
    }
    assert_int_equal(pl_finish(p, 0), 0);
    record_free(&r);
    check_log(f, 3);
}

static void test_no_records(void **state)
{
    fixture *f = *state;
    pipeline *p = start(f, consume, f);
    assert_non_null(p);
    assert_int_equal(pl_finish(p, 0), 0);
    assert_int_equal(f->n, 0);
}

static void test_consumer_stop(void **state)
{
    fixture *f = *state;
    f->stop_at = 500;
    f->stop_rc = 7;
    pipeline *p = start(f, consume, f);
    assert_non_null(p);
    record r;
    record_init(&r, f->schema);
    uint64_t first_fail = 0;
    for (uint64_t i = 1; i <= N; i++) {
        fill(f, &r, i);
        int rc = pl_push(p, &r);
        if (rc != 0) {
            assert_int_equal(rc, -1);
            if (!first_fail)
                first_fail = i;
        } else if (first_fail) {
            fail_msg("pl_push #%llu succeeded after #%llu had failed", (unsigned long long)i,
                     (unsigned long long)first_fail);
        }
    }
    assert_int_equal(pl_finish(p, 0), 7);
    record_free(&r);
    /* the reader learns of the stop at the latest when the pool runs out */
    assert_true(first_fail > 500);
    if (first_fail > 500 + TEST_DEPTH)
        fail_msg("first failing pl_push was #%llu, later than 500 + TEST_DEPTH",
                 (unsigned long long)first_fail);
    /* records 1..500 consumed, in order; none after the stopping one */
    check_log(f, 500);
}

static void test_consumer_stop_on_last_record(void **state)
{
    /* the stop happens while pl_finish waits: pl_finish still returns fn's value */
    fixture *f = *state;
    f->stop_at = 100;
    f->stop_rc = 3;
    pipeline *p = start(f, consume, f);
    assert_non_null(p);
    record r;
    record_init(&r, f->schema);
    for (uint64_t i = 1; i <= 100; i++) {
        fill(f, &r, i);
        assert_int_equal(pl_push(p, &r), 0); /* fewer than TEST_DEPTH: none can fail */
    }
    assert_int_equal(pl_finish(p, 0), 3);
    record_free(&r);
    check_log(f, 100);
}

static void test_finish_discard(void **state)
{
    fixture *f = *state;
    const uint64_t pushed = 200; /* fewer than TEST_DEPTH: pushing never waits */
    f->delay = 5000;             /* 5 ms a record: 1 s for all of them */
    pipeline *p = start(f, consume, f);
    assert_non_null(p);
    record r;
    record_init(&r, f->schema);
    for (uint64_t i = 1; i <= pushed; i++) {
        fill(f, &r, i);
        assert_int_equal(pl_push(p, &r), 0);
    }
    double t0 = now_ms();
    assert_int_equal(pl_finish(p, 1), 0);
    double ms = now_ms() - t0;
    record_free(&r);
    /* at most the record in hand is finished: far less than the queue's 1 s */
    if (ms > 500)
        fail_msg("pl_finish(p, 1) took %.0f ms with %llu records of 5 ms queued", ms,
                 (unsigned long long)pushed);
    assert_true(f->n < pushed);
    check_log(f, f->n); /* a prefix, in order */
}

/* pl_backlog counts what waits for a slow consumer (convert.c speculates on it) */
static void test_backlog(void **state)
{
    fixture *f = *state;
    f->delay = 2000; /* 2 ms a record */
    pipeline *p = start(f, consume, f);
    assert_non_null(p);
    assert_int_equal(pl_backlog(p), 0);
    record r;
    record_init(&r, f->schema);
    for (uint64_t i = 1; i <= 200; i++) { /* fewer than TEST_DEPTH: pushing never waits */
        fill(f, &r, i);
        assert_int_equal(pl_push(p, &r), 0);
    }
    /* 192 are queued (the last 8 wait in the pusher's batch); the consumer took at most a
     * batch or two of them in the few milliseconds since */
    int b = pl_backlog(p);
    if (b < 100 || b > 192)
        fail_msg("pl_backlog is %d with 192 records queued for a 2 ms consumer", b);
    assert_int_equal(pl_finish(p, 0), 0);
    record_free(&r);
    check_log(f, 200);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_every_record_once_in_order),
        T(test_ahead_sees_the_next_element),
        T(test_few_records_reach_consumer),
        T(test_no_records),
        T(test_consumer_stop),
        T(test_consumer_stop_on_last_record),
        T(test_finish_discard),
        T(test_backlog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
