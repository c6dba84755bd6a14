/*
 * parse_only.c - the floor for reading JSON: push FILE through yajl_parse in 256 KiB chunks
 * with no callbacks at all (yajl still tokenises, validates and checks UTF-8), then
 * yajl_complete_parse.  Prints "BYTES" on stdout; exit 0, or 1 with yajl's message.
 *
 *   cc -O2 -o bench/out/parse_only bench/parse_only.c $(pkg-config --cflags --libs yajl)
 *   bench/out/parse_only FILE
 *
 * Options as sagebridge's reader would want them for the accepted shapes: several top-level
 * values (NDJSON) allowed, no comments.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl_parse.h>

#define CHUNK (256 * 1024)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: parse_only FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "parse_only: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    static unsigned char buf[CHUNK];
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    yajl_config(h, yajl_allow_multiple_values, 1);
    unsigned long long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "parse_only: %s: %s\n", argv[1], strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        total += (unsigned long long)n;
        if (yajl_parse(h, buf, (size_t)n) != yajl_status_ok) {
            unsigned char *e = yajl_get_error(h, 1, buf, (size_t)n);
            fprintf(stderr, "parse_only: %s: %s\n", argv[1], (const char *)e);
            return 1;
        }
    }
    if (yajl_complete_parse(h) != yajl_status_ok) {
        unsigned char *e = yajl_get_error(h, 0, NULL, 0);
        fprintf(stderr, "parse_only: %s: %s\n", argv[1], (const char *)e);
        return 1;
    }
    yajl_free(h);
    close(fd);
    printf("%llu\n", total);
    return 0;
}
