/*
 * test_util.c - the byte scanners of src/util.c that the writers and the reader rely on.
 *
 * csv_special, xml_attr_special and xml_forbidden look at eight bytes at a time and finish byte by
 * byte; a mistake in the word test shows only for some positions and neighbours (a special
 * byte in the last lane of a word, a byte one above or below a special one, a 0x80 byte that
 * makes a borrow).  Each scanner is therefore compared with the plain one-byte-at-a-time rule
 * it replaces, for every position of a special byte in strings of 0 to 40 bytes, over
 * backgrounds of ASCII text, of neighbour bytes and of non-ASCII UTF-8, and for random strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        fail_msg("%s(%s, %zu) = %zu, the byte rule says %zu", scanners[k].name, shown(s, n), n,
                 got, want);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_special_at_every_position),
        cmocka_unit_test(test_random_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
