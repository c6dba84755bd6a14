/*
 * seen.c - a set of 64-bit hashes: in memory up to a limit, then on disk.
 *
 * The in-memory part is util's hset (open addressing, at most half full).
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
 * Memory is fixed: mem_max slots, the filter, the pending set and SQLite's
 * cache, whatever the number of hashes.  A hash is in exactly one place.
 *
 * DIAGNOSTICS
 *	seen_has and seen_add return -1 and say in err what SQLite said (a full
 *	temporary folder, usually: SQLite writes where TMPDIR points).
 */
#include "seen.h"

#include <sqlite3.h>
#include <stdlib.h>

#define BLOOM_BITS   (1u << 22) /* 512 KiB */
#define BLOOM_BLOCKS (BLOOM_BITS / 512)
#define BLOOM_K      4
#define PEND_MAX     16384 /* hashes waiting for the next batch insert */

struct seen {
    hset mem;
    size_t mem_max;
    /* the on-disk part, once spilled */
    uint64_t *bloom; /* BLOOM_BLOCKS blocks of 512 bits (a cache line each) */
    hset pend;
    uint64_t *pend_list;
    size_t npend;
    sqlite3 *db;
    sqlite3_stmt *ins, *get;
};

seen *seen_new(size_t mem_max)
{
    seen *s = xcalloc(1, sizeof *s);
    s->mem_max = mem_max ? mem_max : 1;
    return s;
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
    return 0;
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

/* flush_pending - the waiting hashes into SQLite, in key order */
static int flush_pending(seen *s, sbuf *err)
{
    qsort(s->pend_list, s->npend, sizeof *s->pend_list, cmp_u64);
    for (size_t i = 0; i < s->npend; i++)
        if (step(s, s->ins, s->pend_list[i], err) < 0)
            return -1;
    s->npend = 0;
    hset_free(&s->pend);
    return 0;
}

int seen_has(seen *s, uint64_t h, sbuf *err)
{
    h = h ? h : 1; /* as hset keeps it */
    if (hset_has(&s->mem, h))
        return 1;
    if (!s->db)
        return 0;
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
    if (!s->db && s->mem.n < s->mem_max)
        return hset_add(&s->mem, h) ? 1 : 0;
    int was = seen_has(s, h, err);
    if (was != 0)
        return was < 0 ? -1 : 0;
    if (!s->db && spill_open(s, err) != 0)
        return -1;
    bloom_add(s, h);
    hset_add(&s->pend, h);
    s->pend_list[s->npend++] = h;
    if (s->npend == PEND_MAX && flush_pending(s, err) != 0)
        return -1;
    return 1;
}

void seen_free(seen *s)
{
    if (!s)
        return;
    hset_free(&s->mem);
    hset_free(&s->pend);
    free(s->bloom);
    free(s->pend_list);
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->get);
    sqlite3_close(s->db);
    free(s);
}
