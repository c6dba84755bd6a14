/*
 * util.h - small building blocks every module uses: a growable byte buffer,
 * a bump arena whose pointers never move, a string hash, and UTF-8 helpers.
 */
#ifndef SAGEBRIDGE_UTIL_H
#define SAGEBRIDGE_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* sbuf - growable byte buffer; p is NUL-terminated whenever len > 0 */
typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

void sbuf_grow(sbuf *b, size_t extra);

/* sbuf_add - append n bytes (inline: the writers call it for every value) */
static inline void sbuf_add(sbuf *b, const void *data, size_t n)
{
    if (!b->p || b->len + n + 1 > b->cap) /* (no buffer means cap 0: says so to analysers) */
        sbuf_grow(b, n);
    char *d = b->p + b->len;
    const char *s = data;
    if (n >= 8 && n <= 16) { /* two overlapping words: glibc's short copies use masked vector
                              * moves, slow on this machine's CPU (see same_bytes) */
        uint64_t x, y;
        memcpy(&x, s, 8);
        /* s[n-8 .. n) lies within the caller's n bytes; cppcheck pairs n = 16 with a caller
         * whose buffer is shorter (a literal passed with its own, smaller n) */
        // cppcheck-suppress pointerOutOfBoundsCond
        memcpy(&y, s + n - 8, 8);
        memcpy(d, &x, 8);
        memcpy(d + n - 8, &y, 8);
    } else if (n) {
        memcpy(d, s, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void sbuf_addc(sbuf *b, char c)
{
    if (!b->p || b->len + 2 > b->cap)
        sbuf_grow(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}
void sbuf_adds(sbuf *b, const char *s);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_reset(sbuf *b);
void sbuf_free(sbuf *b);
const char *sbuf_str(sbuf *b);

/* arena - bump allocator in blocks; arena_reset keeps the first block */
typedef struct arena_block arena_block;
typedef struct {
    arena_block *head;
    size_t used;
} arena;

void *arena_alloc(arena *a, size_t n);
char *arena_strndup(arena *a, const char *s, size_t n);
void arena_reset(arena *a);
void arena_free(arena *a);

/* xmalloc family - abort with a message when memory runs out */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xzalloc_lines(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

uint64_t hash_bytes(const void *p, size_t n);
uint64_t hash_bytes_ci(const void *p, size_t n);

size_t utf8_count(const char *s, size_t n);
bool utf8_valid(const char *s, size_t n);
size_t utf8_prefix(const char *s, size_t n, size_t max_chars);
size_t xml_forbidden(const char *s, size_t n);
long long utc_time(const struct tm *tm);
void utc_tm(long long t, struct tm *tm);
size_t csv_special(const char *s, size_t n);
size_t xml_attr_special(const char *s, size_t n);
size_t csv_copy(char *dst, const char *s, size_t n) __attribute__((nonnull(1)));
size_t xml_attr_copy(char *dst, const char *s, size_t n) __attribute__((nonnull(1)));

/* hset - set of 64-bit hashes (duplicate detection without keeping keys) */
typedef struct {
    uint64_t *slots;
    size_t n, cap;
} hset;

bool hset_add(hset *s, uint64_t h); /* true if newly added */
bool hset_has(const hset *s, uint64_t h);
/* hset_reserve - room for n hashes in all, so that adding up to n never resizes */
void hset_reserve(hset *s, size_t n);
/* hset_clear - empty, keeping the table (no allocation, no fresh pages, when it fills again) */
void hset_clear(hset *s);
void hset_free(hset *s);

/* thread_start - pthread_create with every signal blocked in the new thread, named (at most
 * 15 characters); 0 or errno */
int thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg);

#endif
