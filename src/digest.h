/*
 * digest.h - SHA-256 (OpenSSL libcrypto) as lowercase hex, the form every file
 * list of sagebridge uses (.done markers, manifests, the ledger).
 */
#ifndef SAGEBRIDGE_DIGEST_H
#define SAGEBRIDGE_DIGEST_H

#include <stddef.h>

/* sha256_hex - of bytes in memory */
void sha256_hex(const void *p, size_t n, char hex[65]);
/* sha256_fd - of a whole open file, read from its start (its offset is left alone); -1 on a
 * read error */
int sha256_fd(int fd, char hex[65]);
/* sha256_path - of a file by name; -1 (hex "") when it cannot be read */
int sha256_path(const char *path, char hex[65]);
/* digest_hex - 32 bytes as 64 hex digits */
void digest_hex(const unsigned char h[32], char hex[65]);

#endif
