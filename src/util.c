/*
 * util.c - buffers, arenas, hashing and UTF-8 helpers shared by all modules.
 *
 * Out of memory is the one failure that is not returned: the x*alloc
 * functions print a line and abort, because a converter that cannot allocate
 * a few kilobytes has nothing useful left to do and must not write half a
 * batch.  Every other error in sagebridge is returned to the caller.
 */
#include "util.h"

#include <pthread.h>
#include <signal.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a block holds a record's template result (about 2 KB for an order of a few lines); the
 * conversion keeps one per record in flight, so a small block keeps that pool small */
#define ARENA_BLOCK 16384

struct arena_block {
    arena_block *next;
    size_t size;
    char data[];
};

/* oom - the only fatal error */
static void oom(size_t n)
{
    fprintf(stderr, "sagebridge: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        oom(n * m);
    return p;
}

/* xzalloc_lines - n zeroed bytes starting on a cache line (64 bytes); n a multiple of 64 */
void *xzalloc_lines(size_t n)
{
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p)
        oom(n);
    memset(p, 0, n);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

/* sbuf_grow - make room for `extra` more bytes and a NUL */
void sbuf_grow(sbuf *b, size_t extra)
{
    if (b->p && b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void sbuf_adds(sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

void sbuf_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sbuf_grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sbuf_reset(sbuf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void sbuf_free(sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* sbuf_str - the contents as a C string, "" when empty */
const char *sbuf_str(sbuf *b)
{
    return b->p ? b->p : "";
}

/* arena_alloc - n bytes, 8-aligned, valid until arena_reset */
void *arena_alloc(arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (!a->head || a->used + n > a->head->size) {
        size_t size = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        arena_block *b = xmalloc(sizeof *b + size);
        b->size = size;
        b->next = a->head;
        a->head = b;
        a->used = 0;
    }
    void *p = a->head->data + a->used;
    a->used += n;
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* arena_reset - free all but the oldest block, so a steady state allocates nothing */
void arena_reset(arena *a)
{
    arena_block *b = a->head;
    if (!b)
        return;
    while (b->next) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = b;
    a->used = 0;
}

void arena_free(arena *a)
{
    arena_reset(a);
    free(a->head);
    a->head = NULL;
    a->used = 0;
}

/* hash_bytes - FNV-1a, 64 bit, then a final mix so that low bits are usable */
uint64_t hash_bytes(const void *p, size_t n)
{
    /* eight bytes per step (keys and paths are mostly 8 to 40 bytes), then a final mix;
     * only ever kept in memory, so it may change between releases */
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, s, 8);
        k *= 0x87c37b91114253d5ULL;
        k ^= k >> 31;
        h = (h ^ k) * 0x4cf5ad432745937fULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t k = 0;
        memcpy(&k, s, n);
        k *= 0x87c37b91114253d5ULL;
        k ^= k >> 31;
        h = (h ^ k) * 0x4cf5ad432745937fULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* hash_bytes_ci - as hash_bytes, ASCII letters folded to lower case */
uint64_t hash_bytes_ci(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        h ^= c;
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* utf8_count - number of code points in valid UTF-8 text */
size_t utf8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* byte_eq - the high bit of each byte of w that equals the byte broadcast in b (SWAR; a
 * borrow can mark a 0x01 byte above a match as well, so only "any" and the lowest mark are
 * exact, which is all the scanners below use) */
static inline uint64_t byte_eq(uint64_t w, uint64_t b)
{
    uint64_t x = w ^ b;
    return (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
}

#define BCAST(c) (0x0101010101010101ULL * (unsigned char)(c))

/* load_short - the n (< 8) bytes at s as one word, by two loads that may overlap, the rest
 * of the word 'a' (a byte no scanner looks for): a short value is looked at as a whole, like
 * the words of a long one, instead of byte by byte.  A byte may appear twice; every test
 * below only asks whether any byte is special. */
static inline uint64_t load_short(const unsigned char *s, size_t n)
{
    uint64_t w = BCAST('a');
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        w = lo | (uint64_t)hi << 32;
    } else if (n >= 2) {
        uint16_t lo, hi;
        memcpy(&lo, s, 2);
        memcpy(&hi, s + n - 2, 2);
        w = (w & ~0xFFFFFFFFULL) | lo | (uint64_t)hi << 16;
    } else if (n == 1) {
        w = (w & ~0xFFULL) | s[0];
    }
    return w;
}

/* forbidden_word - any byte of w below 0x20 or equal to 0xEF (the start of U+FFFE/F) */
static inline uint64_t forbidden_word(uint64_t w)
{
    uint64_t e = w ^ 0xEFEFEFEFEFEFEFEFULL;
    return (((w - 0x2020202020202020ULL) & ~w) | ((e - 0x0101010101010101ULL) & ~e)) &
           0x8080808080808080ULL;
}

/* xml_forbidden - offset of the first character XML 1.0 cannot carry (a C0 control other
 * than tab, LF and CR; U+FFFE; U+FFFF), or n when there is none */
size_t xml_forbidden(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    if (n < 8) {
        if (!forbidden_word(load_short(s, n)))
            return n;
    } else {
        /* eight bytes at a time while none is suspect, then the word that ends the value */
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (forbidden_word(w))
                break;
        }
        if (i < n && i + 8 > n) {
            uint64_t w;
            memcpy(&w, s + n - 8, 8);
            if (!forbidden_word(w))
                return n;
        }
    }
    for (; i < n; i++) {
        unsigned char c = s[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return i;
        if (c == 0xEF && i + 2 < n && s[i + 1] == 0xBF && (s[i + 2] == 0xBE || s[i + 2] == 0xBF))
            return i;
    }
    return n;
}

/* any_of - whether any byte of w is one of the k bytes of set */
static inline __attribute__((always_inline)) uint64_t any_of(uint64_t w, const char *set, int k)
{
    uint64_t hit = 0;
#pragma GCC unroll 8
    for (int j = 0; j < k; j++)
        hit |= byte_eq(w, BCAST(set[j]));
    return hit;
}

/* first_of - offset of the first byte of s[0..n) that is one of the k bytes of set, or n;
 * with dst, the bytes before it are copied there too, and nothing at or after dst[i] is
 * written (a word is stored only when none of its bytes is in the set).  Eight bytes at a
 * time while none is, since most values hold none; inlined with a constant set and dst or
 * NULL, the loops over the set unroll and a scan alone stores nothing.  Short values go byte
 * by byte: with up to seven bytes to look for, a word test of a short value costs more than
 * the comparisons (callgrind). */
static inline __attribute__((always_inline)) size_t first_of(char *dst, const char *str, size_t n,
                                                             const char *set, int k)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (any_of(w, set, k))
            break;
        if (dst)
            memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++) {
#pragma GCC unroll 8
        for (int j = 0; j < k; j++)
            if (s[i] == (unsigned char)set[j])
                return i;
        if (dst)
            dst[i] = (char)s[i];
    }
    return n;
}

/* csv_special - offset of the first byte that makes an RFC 4180 field need quotes (comma,
 * double quote, CR, LF), or n */
size_t csv_special(const char *str, size_t n)
{
    return first_of(NULL, str, n, ",\"\r\n", 4);
}

/* xml_attr_special - offset of the first byte that an attribute value must escape: the
 * markup characters and tab, LF, CR (which a parser would otherwise turn into spaces), or n */
size_t xml_attr_special(const char *str, size_t n)
{
    return first_of(NULL, str, n, "<>&\"\t\n\r", 7);
}

/* csv_copy - csv_special's answer i, with s[0..i) copied to dst (room for n bytes): the
 * writer's usual value, which needs no quotes, is scanned and copied in one pass */
size_t csv_copy(char *dst, const char *s, size_t n)
{
    return first_of(dst, s, n, ",\"\r\n", 4);
}

/* xml_attr_copy - xml_attr_special's answer i, with s[0..i) copied to dst (room for n) */
size_t xml_attr_copy(char *dst, const char *s, size_t n)
{
    return first_of(dst, s, n, "<>&\"\t\n\r", 7);
}

/* utf8_valid - well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF */
bool utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str, *e = s + n;
    /* most values are ASCII and short: one look at every byte (eight at a time, the last
     * word overlapping the one before) says so without the loop below */
    uint64_t any = 0, word;
    if (n >= 8) {
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&word, s + i, 8);
            any |= word;
        }
        memcpy(&word, s + n - 8, 8);
        any |= word;
    } else {
        any = load_short(s, n);
    }
    if (!(any & 0x8080808080808080ULL))
        return true;
    while (s < e) {
        /* most text is ASCII: eight bytes at a time while it is */
        while (e - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if (w & 0x8080808080808080ULL)
                break;
            s += 8;
        }
        if (s == e)
            break;
        unsigned char c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if ((size_t)(e - s) < len)
            return false;
        for (size_t i = 1; i < len; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        s += len;
    }
    return true;
}

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date (m 1..12; any d,
 * which counts on from the first of the month): H. Hinnant's algorithm, exact for every
 * year an int holds */
static long long days_from_civil(long long y, unsigned m, long long d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468 + (d - 1);
}

/* utc_time - timegm without the C library's time zone machinery: the seconds since the
 * epoch of tm read as UTC (fields beyond their range count on, as timegm's do); tm_mon
 * must be 0..11 */
long long utc_time(const struct tm *tm)
{
    long long days =
        days_from_civil((long long)tm->tm_year + 1900, (unsigned)tm->tm_mon + 1, tm->tm_mday);
    return days * 86400 + (long long)tm->tm_hour * 3600 + (long long)tm->tm_min * 60 + tm->tm_sec;
}

/* utc_tm - gmtime_r the same way: every field of tm (no tm_isdst, no zone), from t */
void utc_tm(long long t, struct tm *tm)
{
    long long days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    long long secs = t - days * 86400;
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    memset(tm, 0, sizeof *tm);
    tm->tm_year = (int)(y - 1900);
    tm->tm_mon = (int)m - 1;
    tm->tm_mday = (int)d;
    tm->tm_hour = (int)(secs / 3600);
    tm->tm_min = (int)(secs / 60 % 60);
    tm->tm_sec = (int)(secs % 60);
    tm->tm_wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
    tm->tm_yday = (int)(days - days_from_civil(y, 1, 1));
}

/* utf8_prefix - byte length of the first max_chars code points (never splits one) */
size_t utf8_prefix(const char *s, size_t n, size_t max_chars)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == max_chars)
                return i;
            c++;
        }
    }
    return n;
}

/* hset_resize - a table of cap slots (a power of two) holding what s holds */
static void hset_resize(hset *s, size_t cap)
{
    uint64_t *slots = xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < s->cap; i++) {
        uint64_t v = s->slots[i];
        if (!v)
            continue;
        size_t j = v & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = v;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
}

/* hset_add - insert; 0 is remapped so that it can mark empty slots */
bool hset_add(hset *s, uint64_t h)
{
    if (h == 0)
        h = 1;
    if ((s->n + 1) * 2 > s->cap)
        hset_resize(s, s->cap ? s->cap * 2 : 1024);
    size_t j = h & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == h)
            return false;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = h;
    s->n++;
    return true;
}

void hset_reserve(hset *s, size_t n)
{
    size_t cap = s->cap ? s->cap : 1024;
    while (cap < 2 * n) /* at most half full, as hset_add keeps it */
        cap *= 2;
    if (cap != s->cap)
        hset_resize(s, cap);
}

void hset_clear(hset *s)
{
    if (s->slots)
        memset(s->slots, 0, s->cap * sizeof *s->slots);
    s->n = 0;
}

bool hset_has(const hset *s, uint64_t h)
{
    if (h == 0)
        h = 1;
    if (!s->cap)
        return false;
    size_t j = h & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == h)
            return true;
        j = (j + 1) & (s->cap - 1);
    }
    return false;
}

void hset_free(hset *s)
{
    free(s->slots);
    s->slots = NULL;
    s->n = s->cap = 0;
}

/* thread_start - a thread that receives no signals: they stay with the main thread, whose
 * signalfd, poll and sigaction handlers expect them */
int thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        pthread_setname_np(*t, name); /* what top -H and perf show */
    return rc;
}
