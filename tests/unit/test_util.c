/*
 * test_util.c - the byte scanners of src/util.c that the writers and the reader rely on.
 *
 * csv_special, xml_attr_special and xml_forbidden look at eight bytes at a time and finish byte by
 * byte; a mistake in the word test shows only for some positions and neighbours (a special
 * byte in the last lane of a word, a byte one above or below a special one, a 0x80 byte that
 * makes a borrow).  Each scanner is therefore compared with the plain one-byte-at-a-time rule
 * it replaces, for every position of a special byte in strings of 0 to 40 bytes, over
 * backgrounds of ASCII text, of neighbour bytes and of non-ASCII UTF-8, and for random strings.
 * Also the hash set's reserve and clear, which seen.c uses to avoid fresh allocations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* the rules as the writers wrote them before the scanners: the reference */
static size_t ref_csv(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
            return i;
    return n;
}

static size_t ref_attr(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '<' || s[i] == '>' || s[i] == '&' || s[i] == '"' || s[i] == '\t' ||
            s[i] == '\n' || s[i] == '\r')
            return i;
    return n;
}

static size_t ref_forbidden(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return i;
        if (s[i] == 0xEF && i + 2 < n && s[i + 1] == 0xBF && (s[i + 2] == 0xBE || s[i + 2] == 0xBF))
            return i;
    }
    return n;
}

typedef size_t (*scanner)(const char *, size_t);
typedef size_t (*copier)(char *, const char *, size_t);

/* each scanner; and its copying twin, which must give the same answer and copy exactly the
 * bytes before it, writing nothing further */
static const struct {
    const char *name;
    scanner got, want;
    const char *specials;
    copier copy;
} scanners[] = {
    {"csv_special", csv_special, ref_csv, ",\"\r\n", csv_copy},
    {"xml_attr_special", xml_attr_special, ref_attr, "<>&\"\t\n\r", xml_attr_copy},
    {"xml_forbidden", xml_forbidden, ref_forbidden, "\x01\x1f\x0b", NULL},
};

/* shown - s as hex, for messages */
static const char *shown(const char *s, size_t n)
{
    static char buf[200];
    buf[0] = '\0';
    for (size_t i = 0; i < n && i < 60; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%02x", (unsigned char)s[i]);
    return buf;
}

/* check - one string through one scanner (and its copier), with a message naming it when
 * they differ */
static void check(int k, const char *s, size_t n)
{
    size_t got = scanners[k].got(s, n), want = scanners[k].want(s, n);
    if (got != want)
        fail_msg("%s(%s, %zu) = %zu, the byte rule says %zu", scanners[k].name, shown(s, n), n, got,
                 want);
    if (!scanners[k].copy)
        return;
    char dst[64 + 16];
    memset(dst, 0x5a, sizeof dst);
    size_t copied = scanners[k].copy(dst, s, n);
    if (copied != want)
        fail_msg("%s's copier(%s, %zu) = %zu, the byte rule says %zu", scanners[k].name,
                 shown(s, n), n, copied, want);
    if (memcmp(dst, s, copied) != 0)
        fail_msg("%s's copier(%s, %zu) copied other bytes", scanners[k].name, shown(s, n), n);
    /* nothing at or after the answer is written: the writer's buffer may end there */
    for (size_t i = copied; i < sizeof dst; i++)
        if (dst[i] != 0x5a)
            fail_msg("%s's copier(%s, %zu) wrote at %zu", scanners[k].name, shown(s, n), n, i);
}

/* fill - the first n bytes of bg, repeated as needed (some backgrounds are shorter than 40) */
static void fill(char *buf, const char *bg, size_t n)
{
    size_t bl = strlen(bg);
    for (size_t i = 0; i < n; i++)
        buf[i] = bg[i % bl];
}

/* every length up to 40, every position of every special byte, over several backgrounds */
static void test_special_at_every_position(void **state)
{
    (void)state;
    /* backgrounds: text; the special bytes' neighbours (one above, one below); non-ASCII */
    static const char *const backgrounds[] = {
        "The quick brown fox jumps over the lazy dog 0123",
        "++#'%=;?-/++#'%=;?-/++#'%=;?-/++#'%=;?-/++#'%=;?-",
        "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 caf\xc3\xa9 na\xc3\xafve "
        "\xc3\xa9t\xc3\xa9 !!",
        "\t\t\n\n\t\t\n\n\t\t\n\n\t\t\n\n\t\t\n\n\t\t\n\n\t\t\n\n\t\t\n\n\t\t\n\n\t\t\n\n",
    };
    char buf[64];
    size_t checked = 0;
    for (size_t k = 0; k < sizeof scanners / sizeof *scanners; k++)
        for (size_t b = 0; b < sizeof backgrounds / sizeof *backgrounds; b++)
            for (size_t n = 0; n <= 40; n++) {
                fill(buf, backgrounds[b], n);
                check((int)k, buf, n); /* none, or whatever the background holds */
                for (const char *sp = scanners[k].specials; *sp; sp++)
                    for (size_t at = 0; at < n; at++) {
                        fill(buf, backgrounds[b], n);
                        buf[at] = *sp;
                        check((int)k, buf, n);
                        if (at + 3 < n) { /* a second one further on */
                            buf[at + 3] = *sp;
                            check((int)k, buf, n);
                        }
                        checked++;
                    }
            }
    assert_true(checked > 3000);
    /* U+FFFE and U+FFFF in every lane for xml_forbidden, cut short at the end too */
    for (size_t n = 3; n <= 24; n++)
        for (size_t at = 0; at + 3 <= n + 2; at++) {
            memset(buf, 'a', sizeof buf);
            memcpy(buf + at, at % 2 ? "\xef\xbf\xbe" : "\xef\xbf\xbf", 3);
            check(2, buf, n);
        }
}

/* random bytes, biased towards the special ones and the 0x80 boundary */
static void test_random_strings(void **state)
{
    (void)state;
    unsigned long long x = 88172645463325252ULL;
    char buf[64];
    for (int round = 0; round < 200000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = (size_t)(x % 41);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            static const char pool[] = ",\"\r\n<>&\x01\x1f\t\x7f\x80\xef\xbf\xbe-+=;?abc";
            buf[i] = x % 4 ? (char)('a' + x % 26) : pool[(x >> 8) % (sizeof pool - 1)];
        }
        for (int k = 0; k < 3; k++)
            check(k, buf, n);
    }
}

/* ref_utf8 - well-formed UTF-8 by the table of RFC 3629 section 4 (no overlong forms, no
 * surrogates, nothing above U+10FFFF), byte ranges spelled out: the reference */
static bool ref_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range */
        if (c <= 0x7F)
            len = 1;
        else if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c == 0xE0)
            len = 3, lo = 0xA0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
            len = 3;
        else if (c == 0xED)
            len = 3, hi = 0x9F;
        else if (c == 0xF0)
            len = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3)
            len = 4;
        else if (c == 0xF4)
            len = 4, hi = 0x8F;
        else
            return false;
        if (n - i < len)
            return false;
        if (len > 1 && (s[i + 1] < lo || s[i + 1] > hi))
            return false;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return false;
        i += len;
    }
    return true;
}

/* utf8_valid against the reference: ASCII runs of every length around the eight-byte words,
 * with one valid or invalid sequence at every position, and random strings */
static void test_utf8_valid(void **state)
{
    (void)state;
    static const char *const seqs[] = {
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "\xef\xbf\xbf", /* valid */
        "\xc0\xaf",
        "\xc1\xbf",
        "\xe0\x80\xaf",
        "\xed\xa0\x80", /* overlong, */
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\x80",
        "\xc3", /* surrogate, */
        "\xe2\x82",
        "\xff",
        "\xf0\x9f\x98",
        "\xed\x9f\xbf", /* too big, cut */
    };
    unsigned char buf[64];
    for (size_t q = 0; q < sizeof seqs / sizeof *seqs; q++) {
        size_t ql = strlen(seqs[q]);
        for (size_t n = ql; n <= 40; n++)
            for (size_t at = 0; at + ql <= n; at++) {
                memset(buf, 'a', n);
                memcpy(buf + at, seqs[q], ql);
                if (utf8_valid((const char *)buf, n) != ref_utf8(buf, n))
                    fail_msg("utf8_valid(%s, %zu) differs from RFC 3629", shown((char *)buf, n), n);
            }
    }
    unsigned long long x = 2463534242ULL;
    for (int round = 0; round < 200000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = (size_t)(x % 41);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            static const unsigned char pool[] = {0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0,
                                                 0xe1, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x7f};
            buf[i] = x % 3 ? (unsigned char)('a' + x % 26) : pool[(x >> 8) % sizeof pool];
        }
        if (utf8_valid((const char *)buf, n) != ref_utf8(buf, n))
            fail_msg("utf8_valid(%s, %zu) differs from RFC 3629", shown((char *)buf, n), n);
    }
}

/* utc_time and utc_tm against the C library's timegm and gmtime_r: random instants from year
 * 1 to 9999, and random broken-down times with fields past their range (which both count on) */
static void test_utc_time_and_tm(void **state)
{
    (void)state;
    unsigned long long x = 0x2545F4914F6CDD1DULL;
    const long long lo = -62135596800LL, hi = 253402300799LL; /* 0001-01-01, 9999-12-31 */
    for (int round = 0; round < 300000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        long long t = lo + (long long)(x % (unsigned long long)(hi - lo + 1));
        if (round < 1000) /* near the epoch, both sides, and on day boundaries */
            t = (long long)(round - 500) * 86400 + (round % 3 ? 0 : round % 86400);
        struct tm want, got;
        time_t tt = (time_t)t;
        assert_non_null(gmtime_r(&tt, &want));
        utc_tm(t, &got);
        if (got.tm_year != want.tm_year || got.tm_mon != want.tm_mon ||
            got.tm_mday != want.tm_mday || got.tm_hour != want.tm_hour ||
            got.tm_min != want.tm_min || got.tm_sec != want.tm_sec || got.tm_wday != want.tm_wday ||
            got.tm_yday != want.tm_yday)
            fail_msg("utc_tm(%lld) = %d-%d-%d %d:%d:%d wday %d yday %d, gmtime_r says "
                     "%d-%d-%d %d:%d:%d wday %d yday %d",
                     t, got.tm_year, got.tm_mon, got.tm_mday, got.tm_hour, got.tm_min, got.tm_sec,
                     got.tm_wday, got.tm_yday, want.tm_year, want.tm_mon, want.tm_mday,
                     want.tm_hour, want.tm_min, want.tm_sec, want.tm_wday, want.tm_yday);
        assert_int_equal(utc_time(&want), t);
        /* fields past their range: 2026-02-31 25:61:61 and the like */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        struct tm odd = {.tm_year = (int)(x % 9999) + 1 - 1900,
                         .tm_mon = (int)((x >> 14) % 12),
                         .tm_mday = (int)((x >> 18) % 31) + 1,
                         .tm_hour = (int)((x >> 23) % 30),
                         .tm_min = (int)((x >> 28) % 70),
                         .tm_sec = (int)((x >> 35) % 70)};
        struct tm copy = odd;
        assert_int_equal(utc_time(&odd), (long long)timegm(&copy));
    }
}

/* sbuf_add copies 8 to 16 bytes as two overlapping words, others with memcpy: every length
 * from 0 to 40, after every length already in the buffer (and across its growth), gives the
 * same bytes as the plain rule, NUL-terminated, and reads nothing past the source */
static void test_sbuf_add_every_length(void **state)
{
    (void)state;
    char src[64], want[256];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (char)('A' + i % 53);
    for (size_t pre = 0; pre < 40; pre++)
        for (size_t n = 0; n <= 40; n++) {
            sbuf b = {0};
            for (size_t i = 0; i < pre; i++)
                sbuf_addc(&b, (char)('0' + i % 10));
            /* the source ends at the end of a heap block: an over-read is ASan's to see */
            char *exact = malloc(n ? n : 1);
            memcpy(exact, src + n % 7, n);
            sbuf_add(&b, exact, n);
            free(exact);
            for (size_t i = 0; i < pre; i++)
                want[i] = (char)('0' + i % 10);
            memcpy(want + pre, src + n % 7, n);
            assert_int_equal(b.len, pre + n);
            assert_memory_equal(b.p, want, pre + n);
            assert_int_equal(b.p[b.len], '\0');
            sbuf_free(&b);
        }
}

/* hset_reserve makes room once: adding up to n afterwards never moves the table (seen.c's
 * pending set relies on it not to touch fresh pages); hset_clear empties the set and keeps
 * the table, and the set works as new after it; 0 and 1 are one hash, as documented */
static void test_hset_reserve_and_clear(void **state)
{
    (void)state;
    hset s = {0};
    hset_reserve(&s, 5000);
    const uint64_t *table = s.slots;
    size_t cap = s.cap;
    assert_true(cap >= 10000);
    for (uint64_t i = 0; i < 5000; i++)
        assert_true(hset_add(&s, i * 0x9E3779B97F4A7C15ull + 7));
    assert_ptr_equal(s.slots, table);
    assert_int_equal(s.cap, cap);
    assert_int_equal(s.n, 5000);
    for (uint64_t i = 0; i < 5000; i++)
        assert_true(hset_has(&s, i * 0x9E3779B97F4A7C15ull + 7));
    hset_reserve(&s, 100); /* never shrinks */
    assert_ptr_equal(s.slots, table);
    hset_clear(&s);
    assert_int_equal(s.n, 0);
    assert_ptr_equal(s.slots, table);
    for (uint64_t i = 0; i < 5000; i++)
        assert_false(hset_has(&s, i * 0x9E3779B97F4A7C15ull + 7));
    assert_true(hset_add(&s, 0));
    assert_true(hset_has(&s, 1));
    assert_false(hset_add(&s, 1));
    assert_int_equal(s.n, 1);
    /* a reserve beyond the table moves what it holds */
    hset_reserve(&s, 100000);
    assert_true(s.cap >= 200000);
    assert_true(hset_has(&s, 0));
    assert_false(hset_has(&s, 2));
    hset_free(&s);
    hset_clear(&s); /* harmless on an empty set */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hset_reserve_and_clear),
        cmocka_unit_test(test_special_at_every_position),
        cmocka_unit_test(test_random_strings),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utc_time_and_tm),
        cmocka_unit_test(test_sbuf_add_every_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
