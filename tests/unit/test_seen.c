/*
 * test_seen.c - the duplicate-check set of 64-bit hashes (src/seen.h).
 *
 * The set keeps mem_max hashes in memory and continues in a private
 * temporary SQLite database.  The tests use a tiny mem_max (8) so that
 * nearly every hash goes to the on-disk part, and they add far more hashes
 * (N) than any batch the implementation may stage in memory before writing
 * to SQLite (seen.c stages PEND_MAX at a time, behind a Bloom filter), so
 * the database itself is written and read, not only its staging area.
 * Checked is what the duplicate checks rely on: a hash is reported new
 * exactly once, wherever it is kept; seen_has agrees with seen_add and
 * says 0 for hashes never added; hash 0 is the same hash as 1 (the
 * in-memory table uses 0 for an empty slot and maps 0 to 1; the on-disk part
 * applies the same mapping so both agree); and seen_free gives back the
 * temporary database: SQLite's memory and the temporary file.  The file is
 * checked through /proc/self/fd: SQLite unlinks its temporary file right
 * after opening it, so "the folder is empty" alone proves nothing; the file
 * is really gone only once no descriptor holds it.
 *
 * main() points TMPDIR (and SQLITE_TMPDIR, which SQLite prefers) at a
 * fresh mkdtemp folder before anything touches SQLite, because SQLite reads
 * the temporary folder's name once, at its first use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seen.h"

#define N     100000 /* hashes added: three times the staging batch of seen.c (PEND_MAX) */
#define SMALL 8      /* mem_max: the rest goes to the on-disk part */

static char tmpdir[64]; /* TMPDIR for the whole program, made by main */

/* mix - splitmix64's finaliser: a bijection, so distinct i give distinct hashes, spread over
 * all 64 bits (half of them with the top bit set, i.e. negative as SQLite integers) */
static uint64_t mix(uint64_t i)
{
    uint64_t z = i + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* added(i) for i < N are put into the set; added(N + i) never are */
static uint64_t added(uint64_t i)
{
    return mix(i);
}

static int add(seen *s, uint64_t h)
{
    sbuf err = {0};
    int rc = seen_add(s, h, &err);
    if (rc < 0)
        fail_msg("seen_add(%llx): %s", (unsigned long long)h, sbuf_str(&err));
    sbuf_free(&err);
    return rc;
}

static int has(seen *s, uint64_t h)
{
    sbuf err = {0};
    int rc = seen_has(s, h, &err);
    if (rc < 0)
        fail_msg("seen_has(%llx): %s", (unsigned long long)h, sbuf_str(&err));
    sbuf_free(&err);
    return rc;
}

/* push_through - add N filler hashes (added(from) ..), so that whatever was added before has
 * certainly left any in-memory staging and sits in the database */
static void push_through(seen *s, uint64_t from)
{
    for (uint64_t i = from; i < from + N; i++)
        if (add(s, added(i)) != 1)
            fail_msg("filler hash #%llu was not reported new", (unsigned long long)i);
}

/* fds_in_tmpdir - how many of this process's descriptors name a file in tmpdir (an unlinked
 * file still shows as "DIR/name (deleted)") */
static int fds_in_tmpdir(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    size_t n = strlen(tmpdir);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[300], target[PATH_MAX];
        snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(p, target, sizeof target - 1);
        if (k <= 0)
            continue;
        target[k] = '\0';
        if (!strncmp(target, tmpdir, n) && target[n] == '/')
            count++;
    }
    closedir(d);
    return count;
}

static int tmpdir_entries(void)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            count++;
    closedir(d);
    return count;
}

/* ---------------------------------------------------------------- tests */

static void test_add_then_readd(void **state)
{
    (void)state;
    seen *s = seen_new(SMALL);
    for (uint64_t i = 0; i < N; i++)
        if (add(s, added(i)) != 1)
            fail_msg("hash #%llu (%llx) was not reported new", (unsigned long long)i,
                     (unsigned long long)added(i));
    /* the first SMALL are in memory, the others on disk: every one is a duplicate now */
    for (uint64_t i = 0; i < N; i++)
        if (add(s, added(i)) != 0)
            fail_msg("hash #%llu (%llx) was reported new twice", (unsigned long long)i,
                     (unsigned long long)added(i));
    /* re-adding did not add anything: the never-added ones are still absent */
    for (uint64_t i = N; i < 2 * N; i++)
        if (has(s, added(i)) != 0)
            fail_msg("hash never added (%llx) reported present", (unsigned long long)added(i));
    seen_free(s);
}

static void test_has_agrees_with_add(void **state)
{
    (void)state;
    seen *s = seen_new(SMALL);
    /* before anything is added, and before the on-disk part exists */
    assert_int_equal(has(s, added(0)), 0);
    for (uint64_t i = 0; i < N; i++) {
        assert_int_equal(add(s, added(i)), 1);
        assert_int_equal(has(s, added(i)), 1); /* at once, in the part it went to */
    }
    for (uint64_t i = 0; i < N; i++)
        if (has(s, added(i)) != 1)
            fail_msg("added hash #%llu (%llx) not found", (unsigned long long)i,
                     (unsigned long long)added(i));
    for (uint64_t i = N; i < 2 * N; i++)
        if (has(s, added(i)) != 0)
            fail_msg("hash never added (%llx) reported present", (unsigned long long)added(i));
    /* a later add of a never-added hash is still new (seen_has did not insert it) */
    assert_int_equal(add(s, added(N)), 1);
    seen_free(s);
}

static void test_extreme_values_on_disk(void **state)
{
    (void)state;
    /* mem_max 1: everything after the first goes to the database, where the hash is stored
     * as a signed 64-bit integer: values around the sign bit must stay distinct */
    static const uint64_t v[] = {2,
                                 UINT64_MAX,
                                 UINT64_MAX - 1,
                                 0x8000000000000000ull,
                                 0x7FFFFFFFFFFFFFFFull,
                                 0x8000000000000001ull};
    static const uint64_t absent[] = {3, 0x8000000000000002ull, 0x7FFFFFFFFFFFFFFEull,
                                      UINT64_MAX - 2};
    seen *s = seen_new(1);
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        assert_int_equal(add(s, v[i]), 1);
    for (int round = 0; round < 2; round++) { /* while staged, then from the database */
        for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
            assert_int_equal(has(s, v[i]), 1);
            assert_int_equal(add(s, v[i]), 0);
        }
        for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
            assert_int_equal(has(s, absent[i]), 0);
        if (round == 0)
            push_through(s, 1000000000);
    }
    seen_free(s);
}

static void test_zero_is_one_in_memory(void **state)
{
    (void)state;
    seen *s = seen_new(SMALL);
    assert_int_equal(has(s, 0), 0);
    assert_int_equal(add(s, 0), 1);
    assert_int_equal(has(s, 0), 1);
    /* documented mapping: 0 is kept as 1, so 1 is already there */
    assert_int_equal(has(s, 1), 1);
    assert_int_equal(add(s, 1), 0);
    assert_int_equal(add(s, 0), 0);
    assert_int_equal(has(s, 2), 0);
    seen_free(s);
}

static void test_zero_is_one_on_disk(void **state)
{
    (void)state;
    /* the same mapping once the hash goes to the on-disk part (memory full after one) */
    seen *s = seen_new(1);
    assert_int_equal(add(s, 42), 1); /* fills memory */
    assert_int_equal(add(s, 0), 1);  /* on-disk part */
    assert_int_equal(has(s, 0), 1);
    assert_int_equal(has(s, 1), 1);
    assert_int_equal(add(s, 1), 0);
    push_through(s, 1000000000); /* and from the database itself */
    assert_int_equal(has(s, 0), 1);
    assert_int_equal(has(s, 1), 1);
    assert_int_equal(add(s, 1), 0);
    assert_int_equal(add(s, 0), 0);
    seen_free(s);

    /* and the other way round: 1 first, then 0 */
    s = seen_new(1);
    assert_int_equal(add(s, 42), 1);
    assert_int_equal(add(s, 1), 1);
    assert_int_equal(add(s, 0), 0);
    push_through(s, 1000000000);
    assert_int_equal(add(s, 0), 0);
    assert_int_equal(has(s, 0), 1);
    seen_free(s);
}

static void test_mem_max_zero_means_one(void **state)
{
    (void)state;
    seen *s = seen_new(0); /* taken as 1, not "nothing fits" */
    assert_int_equal(add(s, 7), 1);
    assert_int_equal(add(s, 8), 1);
    assert_int_equal(add(s, 7), 0);
    assert_int_equal(add(s, 8), 0);
    assert_int_equal(has(s, 9), 0);
    seen_free(s);
}

static void test_spill_starts_after_mem_max(void **state)
{
    (void)state;
    /* the database (SQLite's own heap) appears at the first hash beyond mem_max, not before,
     * and seen_free gives every byte of it back */
    sqlite3_int64 before = sqlite3_memory_used();
    seen *s = seen_new(SMALL);
    for (uint64_t i = 0; i < SMALL; i++)
        assert_int_equal(add(s, added(i)), 1);
    assert_int_equal(has(s, added(SMALL)), 0);
    assert_true(sqlite3_memory_used() == before); /* all in memory so far */
    assert_int_equal(add(s, added(SMALL)), 1);
    assert_true(sqlite3_memory_used() > before); /* the temporary database is open */
    for (uint64_t i = SMALL + 1; i < N; i++)
        assert_int_equal(add(s, added(i)), 1);
    seen_free(s);
    assert_true(sqlite3_memory_used() == before);
    seen_free(NULL); /* harmless */
}

static void test_free_removes_temp_file(void **state)
{
    (void)state;
    /* enough hashes that SQLite's page cache (1 MiB here) overflows into the temporary file;
     * add until a descriptor into tmpdir shows up, so the check below is not vacuous */
    assert_int_equal(fds_in_tmpdir(), 0);
    seen *s = seen_new(SMALL);
    uint64_t i = 0;
    while (fds_in_tmpdir() == 0) {
        if (i >= 2000000)
            fail_msg("no temporary file in %s after %llu hashes: is SQLite writing elsewhere?",
                     tmpdir, (unsigned long long)i);
        for (uint64_t end = i + 20000; i < end; i++)
            assert_int_equal(add(s, added(i)), 1);
    }
    print_message("temporary file in use after %llu hashes\n", (unsigned long long)i);
    /* the file's contents are really used: a sample of the early (long evicted) pages */
    for (uint64_t k = 0; k < i; k += 997)
        assert_int_equal(has(s, added(k)), 1);
    assert_int_equal(has(s, added(i)), 0);
    seen_free(s);
    assert_int_equal(fds_in_tmpdir(), 0); /* closed, hence gone from the disk */
    assert_int_equal(tmpdir_entries(), 0);
}

static void test_default_limit_in_memory(void **state)
{
    (void)state;
    /* SEEN_MEM_DEFAULT hashes (the in-memory table at 7/8 full) stay in memory: no database
     * until the one after them; each found, none of the others */
    sqlite3_int64 before = sqlite3_memory_used();
    seen *s = seen_new(SEEN_MEM_DEFAULT);
    for (uint64_t i = 0; i < SEEN_MEM_DEFAULT; i++)
        if (add(s, added(i)) != 1)
            fail_msg("hash #%llu was not reported new", (unsigned long long)i);
    assert_true(sqlite3_memory_used() == before);
    for (uint64_t i = 0; i < SEEN_MEM_DEFAULT; i++)
        if (has(s, added(i)) != 1 || add(s, added(i)) != 0)
            fail_msg("hash #%llu lost in memory", (unsigned long long)i);
    for (uint64_t i = 1000000000; i < 1000000000 + N; i++) /* far beyond the added ones */
        if (has(s, added(i)) != 0)
            fail_msg("hash never added (%llx) reported present", (unsigned long long)added(i));
    assert_true(sqlite3_memory_used() == before);
    assert_int_equal(add(s, added(SEEN_MEM_DEFAULT)), 1);
    assert_true(sqlite3_memory_used() > before);
    assert_int_equal(has(s, added(SEEN_MEM_DEFAULT)), 1);
    seen_free(s);
}

/* same_buckets - the i-th hash (from 0) whose two buckets are both bucket 0 of a 4-bucket
 * table (seen.c: the low bits, and the top bits of h * 0x9E3779B97F4A7C15) */
static uint64_t same_buckets(int i)
{
    for (uint64_t k = 0;; k++) {
        uint64_t h = mix(k);
        if ((h & 3) == 0 && (h * 0x9E3779B97F4A7C15ull) >> 62 == 0 && i-- == 0)
            return h;
    }
}

static void test_full_bucket_spills_a_hash(void **state)
{
    (void)state;
    /* mem_max 16: four buckets of eight.  Twelve hashes that can all live only in bucket 0:
     * the ninth finds it full, the moves find no room, and one hash goes to the on-disk part,
     * long before the table holds 16.  Every one is still found, once. */
    sqlite3_int64 before = sqlite3_memory_used();
    seen *s = seen_new(16);
    for (int i = 0; i < 8; i++)
        assert_int_equal(add(s, same_buckets(i)), 1);
    assert_true(sqlite3_memory_used() == before);
    for (int i = 8; i < 12; i++)
        assert_int_equal(add(s, same_buckets(i)), 1);
    assert_true(sqlite3_memory_used() > before); /* spilled, though only 12 < 16 were added */
    for (int round = 0; round < 2; round++) {    /* pending, then in the database */
        for (int i = 0; i < 12; i++) {
            assert_int_equal(has(s, same_buckets(i)), 1);
            assert_int_equal(add(s, same_buckets(i)), 0);
        }
        for (int i = 12; i < 20; i++)
            assert_int_equal(has(s, same_buckets(i)), 0);
        if (round == 0)
            push_through(s, 1000000000);
    }
    seen_free(s);
}

static void test_failed_insert_fails_every_later_call(void **state)
{
    (void)state;
    /* the temporary file may not grow beyond 1 MiB (RLIMIT_FSIZE, as a full disk would stop
     * it): a batch insert fails, with words that say what to do, and from then on every call
     * fails, since hashes may be missing (and none is added past the pending batch) */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1 << 20;
    signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of the signal */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    seen *s = seen_new(SMALL);
    sbuf err = {0};
    uint64_t i = 0;
    int rc = 1;
    while (rc == 1 && i < 3000000)
        rc = seen_add(s, added(i++), &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    print_message("insert failed after %llu hashes: %s\n", (unsigned long long)i, sbuf_str(&err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(sbuf_str(&err), "temporary database for duplicate checks"));
    assert_non_null(strstr(sbuf_str(&err), "TMPDIR"));
    for (uint64_t k = 0; k < 100000; k++) { /* more than a batch: nothing is staged now */
        sbuf e = {0};
        assert_int_equal(seen_add(s, added(i + k), &e), -1);
        assert_true(e.len > 0);
        sbuf_free(&e);
    }
    sbuf e = {0};
    assert_int_equal(seen_has(s, added(i + 100000), &e), -1); /* a new hash: no answer */
    assert_non_null(strstr(sbuf_str(&e), "TMPDIR"));
    sbuf_free(&e);
    assert_int_equal(seen_has(s, added(0), &e), 1); /* an in-memory one is still known */
    sbuf_free(&e);
    sbuf_free(&err);
    seen_free(s);
}

static void test_prefetch_changes_no_answer(void **state)
{
    (void)state;
    /* seen_prefetch only asks for memory: before the first hash (no table yet), for hash 0,
     * for hashes in memory, on disk or absent, the answers stay what they were */
    seen *s = seen_new(SMALL);
    seen_prefetch(s, added(0));
    seen_prefetch(s, 0);
    for (uint64_t i = 0; i < 2 * SMALL; i++) {
        seen_prefetch(s, added(i));
        assert_int_equal(add(s, added(i)), 1);
        seen_prefetch(s, added(i));
        assert_int_equal(has(s, added(i)), 1);
    }
    for (uint64_t i = N; i < N + 100; i++) {
        seen_prefetch(s, added(i));
        assert_int_equal(has(s, added(i)), 0);
    }
    seen_free(s);
}

int main(void)
{
    /* before any SQLite call: SQLite takes the folder's name once */
    snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/sb-unit-seen-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("TMPDIR", tmpdir, 1);
    setenv("SQLITE_TMPDIR", tmpdir, 1);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_removes_temp_file),
        cmocka_unit_test(test_add_then_readd),
        cmocka_unit_test(test_has_agrees_with_add),
        cmocka_unit_test(test_extreme_values_on_disk),
        cmocka_unit_test(test_zero_is_one_in_memory),
        cmocka_unit_test(test_zero_is_one_on_disk),
        cmocka_unit_test(test_mem_max_zero_means_one),
        cmocka_unit_test(test_spill_starts_after_mem_max),
        cmocka_unit_test(test_default_limit_in_memory),
        cmocka_unit_test(test_full_bucket_spills_a_hash),
        cmocka_unit_test(test_failed_insert_fails_every_later_call),
        cmocka_unit_test(test_prefetch_changes_no_answer),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rmdir(tmpdir) != 0) {
        fprintf(stderr, "test_seen: %s left behind (not empty?)\n", tmpdir);
        rc = rc ? rc : 1;
    }
    return rc;
}
