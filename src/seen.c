/*
 * seen.c - a set of 64-bit hashes: in memory up to a limit, then on disk.
 *
 * The in-memory part is a table of mem_max hashes at most, in buckets of
 * eight (a cache line each); a hash may sit in either of two buckets that
 * it chooses (cuckoo hashing: an insert into two full buckets moves a
 * hash already there to its other bucket, and so on).  Lookups read at
 * most two cache lines, and the table can be filled to seven eighths: the
 * 2 MiB that the default limit costs hold 229,376 hashes, where the open
 * addressing table used before, kept half full, held 131,072 and a 200 MB
 * export of 212,621 orders spilled 81,549 hashes per set to disk
 * (bench/HISTORY.md, session 7).
 *
 * Once it holds mem_max hashes it stops growing, and every further hash
 * goes to the on-disk part: a table of a private temporary SQLite database
 * (sqlite3_open_v2 on "" creates one on disk and deletes it when closed)
 * with a small page cache and no journal: scratch space, never a record of
 * anything.  Two things keep the disk off the common path:
 *
 *   - new hashes wait in a small pending set and go into SQLite in sorted
 *     batches (one B-tree walk per batch instead of a random insert each);
 *   - a Bloom filter of fixed size over every spilled hash answers "not
 *     there" for almost every lookup of a new key (the usual case: a file
 *     without duplicates) without asking SQLite; only its false positives
 *     and true duplicates reach the database.
 *
 * Memory is fixed: the table, the filter, the pending set and SQLite's
 * cache, whatever the number of hashes.  A hash is in exactly one place.
 * The tables are allocated as few times as possible (the in-memory one at
 * its full size as soon as a file is seen to be more than small, the
 * pending set cleared, not freed, after each batch): on this project's
 * machine a fresh page costs about 12 us at its first touch.
 *
 * DIAGNOSTICS
 *	seen_has and seen_add return -1 and say in err what SQLite said (a full
 *	temporary folder, usually: SQLite writes where TMPDIR points).  After
 *	a batch failed to go into SQLite, every call fails so: hashes may be
 *	missing, so no answer is given.
 */
#include "seen.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/mman.h>

#define BLOOM_BITS   (1u << 22) /* 512 KiB */
#define BLOOM_BLOCKS (BLOOM_BITS / 512)
#define BLOOM_K      4
#define PEND_MAX     16384 /* hashes waiting for the next batch insert */
#define SLOTS        8     /* hashes per bucket: a cache line */
#define KICKS        500   /* hashes moved for one insert before the table counts as full */
#define RESERVE_AT   4096  /* hashes from which the table is made its full size at once */

/* the in-memory part: nb buckets of SLOTS hashes (0: an empty slot) */
typedef struct {
    uint64_t *slot;
    size_t nb;  /* a power of two; 0 before the first hash */
    int shift;  /* 64 - log2(nb): the second bucket is taken from the top bits */
    size_t max; /* buckets it may grow to */
    size_t n;
    int mapped; /* slot is an mmap (slots_new), not malloc's */
} ctab;

struct seen {
    ctab mem;
    size_t mem_max;
    /* the on-disk part, once spilled */
    uint64_t *bloom; /* BLOOM_BLOCKS blocks of 512 bits (a cache line each) */
    hset pend;
    uint64_t *pend_list;
    size_t npend;
    sqlite3 *db;
    sqlite3_stmt *ins, *get;
    sbuf failed; /* why a batch insert failed: from then on every call fails */
};

/* buckets_for - the fewest buckets (a power of two) that hold n hashes at 7/8 full */
static size_t buckets_for(size_t n)
{
    size_t nb = 1;
    while (nb * SLOTS * 7 / 8 < n)
        nb *= 2;
    return nb;
}

seen *seen_new(size_t mem_max)
{
    seen *s = xcalloc(1, sizeof *s);
    s->mem_max = mem_max ? mem_max : 1;
    s->mem.max = buckets_for(s->mem_max);
    return s;
}

/* bucket_a, bucket_b - h's two buckets: from its low bits, and from the top bits of a
 * multiple of it (so that the two are as good as independent) */
static size_t bucket_a(const ctab *t, uint64_t h)
{
    return h & (t->nb - 1);
}

static size_t bucket_b(const ctab *t, uint64_t h)
{
    return t->nb == 1 ? 0 : (size_t)((h * 0x9E3779B97F4A7C15ULL) >> t->shift);
}

static int in_bucket(const uint64_t *b, uint64_t h)
{
    int hit = 0;
    for (int i = 0; i < SLOTS; i++) /* no early exit: the compiler makes it one comparison */
        hit |= b[i] == h;
    return hit;
}

/* ctab_has - h (never 0) in the table */
static int ctab_has(const ctab *t, uint64_t h)
{
    if (!t->nb)
        return 0;
    return in_bucket(t->slot + bucket_a(t, h) * SLOTS, h) ||
           in_bucket(t->slot + bucket_b(t, h) * SLOTS, h);
}

/* put_free - h into an empty slot of bucket b: 1, or 0 when it is full */
static int put_free(uint64_t *b, uint64_t h)
{
    for (int i = 0; i < SLOTS; i++)
        if (!b[i]) {
            b[i] = h;
            return 1;
        }
    return 0;
}

/* ctab_put - h (never 0, not in the table) in; 0 when KICKS moves found no room: then *left
 * is the hash left without a place (h or one it displaced), and the table holds the others */
static int ctab_put(ctab *t, uint64_t h, uint64_t *left)
{
    size_t b = bucket_a(t, h);
    if (put_free(t->slot + b * SLOTS, h))
        goto in;
    b = bucket_b(t, h);
    if (put_free(t->slot + b * SLOTS, h))
        goto in;
    for (int k = 0; k < KICKS; k++) {
        /* take a slot's place in b (which slot: varies with k and h) and move its hash on */
        uint64_t *v = t->slot + b * SLOTS + ((h >> 7) + (uint64_t)k) % SLOTS;
        uint64_t out = *v;
        *v = h;
        h = out;
        b = bucket_a(t, h) == b ? bucket_b(t, h) : bucket_a(t, h);
        if (put_free(t->slot + b * SLOTS, h))
            goto in;
    }
    *left = h;
    return 0;
in:
    t->n++;
    return 1;
}

/* Tables of POPULATE_MIN bytes or more are mapped with MAP_POPULATE: the kernel fills in all
 * their pages at once instead of at each page's first touch.  On this project's machine (a
 * virtual machine whose page faults cost about 12 us each) 2 MiB mapped so and then touched
 * take about 2 ms, touched page by page 7.8 ms; the table's growth to its full size held
 * sb-map up for 13-17 ms (bench/HISTORY.md, session 7). */
#define POPULATE_MIN (256u << 10)

/* slots_new - t's slots for nb buckets, zeroed */
static void slots_new(ctab *t, size_t nb)
{
    size_t bytes = nb * SLOTS * sizeof(uint64_t);
    t->mapped = 0;
    if (bytes >= POPULATE_MIN) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p != MAP_FAILED) {
            t->slot = p;
            t->mapped = 1;
            return;
        }
    }
    t->slot = xcalloc(nb * SLOTS, sizeof(uint64_t));
}

/* slots_free - what slots_new gave t */
static void slots_free(ctab *t)
{
    if (t->mapped)
        munmap(t->slot, t->nb * SLOTS * sizeof(uint64_t));
    else
        free(t->slot);
    t->slot = NULL;
}

/* ctab_grow - nb buckets (more than now) holding what t holds; 0 if a hash found no place
 * (t is then as it was) */
static int ctab_grow(ctab *t, size_t nb)
{
    ctab g = {NULL, nb, 64, t->max, 0, 0};
    slots_new(&g, nb);
    for (size_t m = nb; m > 1; m /= 2)
        g.shift--;
    for (size_t i = 0; i < t->nb * SLOTS; i++) {
        uint64_t left;
        if (t->slot[i] && !ctab_put(&g, t->slot[i], &left)) {
            slots_free(&g);
            return 0;
        }
    }
    slots_free(t);
    *t = g;
    return 1;
}

/* ctab_add - h (never 0, not in the table) in, growing the table within its limit; 0 when
 * there is no room: *left is then the hash left out, for the on-disk part */
static int ctab_add(ctab *t, uint64_t h, uint64_t *left)
{
    size_t want = t->nb ? t->nb : 1;
    if (t->n + 1 > want * SLOTS * 7 / 8)
        want *= 2;
    if (t->n == RESERVE_AT) /* a big file, likely: the full size now, not in several steps */
        want = t->max;
    while (want > t->nb && want <= t->max && !ctab_grow(t, want))
        want *= 2;
    return ctab_put(t, h, left);
}

/* The filter is blocked: h chooses one 512-bit block, and its BLOOM_K bits all lie in that
 * block, so that a lookup touches one cache line instead of BLOOM_K (four cache misses per
 * new key were most of seen_has in perf).  For the same size and k the false positives rise
 * a little (about 10 % of lookups at a million spilled keys, as before blocking within the
 * noise); a false positive costs one SQLite lookup, never a wrong answer. */

/* bloom_block - the first word of h's block */
static uint64_t *bloom_block(const seen *s, uint64_t h)
{
    uint64_t a = h * 0x9E3779B97F4A7C15ULL;
    return s->bloom + ((a >> 40) & (BLOOM_BLOCKS - 1)) * 8;
}

/* bloom_bit - the i-th bit of h inside its block (nine bits of a remix of h each) */
static unsigned bloom_bit(uint64_t h, int i)
{
    uint64_t b = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ULL;
    return (unsigned)(b >> (64 - 9 * (i + 1))) & 511;
}

static int bloom_may_have(const seen *s, uint64_t h)
{
    const uint64_t *blk = bloom_block(s, h);
    for (int i = 0; i < BLOOM_K; i++) {
        unsigned p = bloom_bit(h, i);
        if (!(blk[p >> 6] & (1ULL << (p & 63))))
            return 0;
    }
    return 1;
}

static void bloom_add(seen *s, uint64_t h)
{
    uint64_t *blk = bloom_block(s, h);
    for (int i = 0; i < BLOOM_K; i++) {
        unsigned p = bloom_bit(h, i);
        blk[p >> 6] |= 1ULL << (p & 63);
    }
}

/* step - run a one-parameter statement; SQLITE_ROW / SQLITE_DONE, or -1 with err set */
static int step(seen *s, sqlite3_stmt *st, uint64_t h, sbuf *err)
{
    sqlite3_bind_int64(st, 1, (sqlite3_int64)h);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sbuf_printf(err,
                    "the temporary database for duplicate checks failed: %s; make room where "
                    "TMPDIR points (or /var/tmp, /tmp)",
                    sqlite3_errmsg(s->db));
        return -1;
    }
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* flush_pending - the waiting hashes into SQLite, in key order; on failure, every later call
 * fails */
static int flush_pending(seen *s, sbuf *err)
{
    qsort(s->pend_list, s->npend, sizeof *s->pend_list, cmp_u64);
    for (size_t i = 0; i < s->npend; i++)
        if (step(s, s->ins, s->pend_list[i], &s->failed) < 0) {
            sbuf_printf(err, "%s", sbuf_str(&s->failed));
            return -1;
        }
    s->npend = 0;
    hset_clear(&s->pend);
    return 0;
}

/* spill_open - the on-disk part, at the first hash that does not fit in memory */
static int spill_open(seen *s, sbuf *err)
{
    if (sqlite3_open_v2("", &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_exec(s->db,
                     "PRAGMA cache_size=-256; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                     "PRAGMA temp_store=FILE; CREATE TABLE k(h INTEGER PRIMARY KEY); BEGIN",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO k VALUES(?)", -1, &s->ins, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "SELECT 1 FROM k WHERE h=?", -1, &s->get, NULL) != SQLITE_OK) {
        sbuf_printf(err,
                    "cannot create the temporary database for duplicate checks: %s; make room "
                    "where TMPDIR points (or /var/tmp, /tmp)",
                    s->db ? sqlite3_errmsg(s->db) : "out of memory");
        return -1;
    }
    s->bloom = xzalloc_lines(BLOOM_BITS / 8); /* a block is a cache line */
    s->pend_list = xmalloc(PEND_MAX * sizeof *s->pend_list);
    hset_reserve(&s->pend, PEND_MAX);
    return 0;
}

int seen_has(seen *s, uint64_t h, sbuf *err)
{
    h = h ? h : 1; /* as the in-memory table keeps it */
    if (ctab_has(&s->mem, h))
        return 1;
    if (!s->db)
        return 0;
    if (s->failed.len) {
        sbuf_printf(err, "%s", sbuf_str(&s->failed));
        return -1;
    }
    if (hset_has(&s->pend, h))
        return 1;
    if (!bloom_may_have(s, h))
        return 0;
    int rc = step(s, s->get, h, err);
    return rc < 0 ? -1 : rc == SQLITE_ROW;
}

int seen_add(seen *s, uint64_t h, sbuf *err)
{
    h = h ? h : 1;
    int was = seen_has(s, h, err);
    if (was != 0)
        return was < 0 ? -1 : 0;
    uint64_t left = h;
    if (!s->db && s->mem.n < s->mem_max && ctab_add(&s->mem, h, &left))
        return 1;
    /* left: h, or a hash that h took the place of; either way one for the disk */
    if (!s->db && spill_open(s, err) != 0)
        return -1;
    bloom_add(s, left);
    hset_add(&s->pend, left);
    s->pend_list[s->npend++] = left;
    if (s->npend == PEND_MAX && flush_pending(s, err) != 0)
        return -1;
    return 1;
}

void seen_prefetch(const seen *s, uint64_t h)
{
    const ctab *t = &s->mem;
    if (!t->nb)
        return;
    h = h ? h : 1;
    __builtin_prefetch(t->slot + bucket_a(t, h) * SLOTS, 1, 3);
    __builtin_prefetch(t->slot + bucket_b(t, h) * SLOTS, 1, 3);
}

void seen_free(seen *s)
{
    if (!s)
        return;
    slots_free(&s->mem);
    hset_free(&s->pend);
    free(s->bloom);
    free(s->pend_list);
    sbuf_free(&s->failed);
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->get);
    sqlite3_close(s->db);
    free(s);
}
