/*
 * digest.c - SHA-256 helpers over OpenSSL's EVP interface.
 */
#include "digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

void digest_hex(const unsigned char h[32], char hex[65])
{
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = x[h[i] >> 4];
        hex[2 * i + 1] = x[h[i] & 15];
    }
    hex[64] = '\0';
}

void sha256_hex(const void *p, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL);
    digest_hex(d, hex);
}

int sha256_fd(int fd, char hex[65])
{
    static unsigned char buf[1 << 16];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    off_t off = 0;
    ssize_t n;
    while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
        EVP_DigestUpdate(md, buf, (size_t)n);
        off += n;
    }
    unsigned char h[32];
    unsigned int hl = 0;
    EVP_DigestFinal_ex(md, h, &hl);
    EVP_MD_CTX_free(md);
    digest_hex(h, hex);
    return n < 0 ? -1 : 0;
}

int sha256_path(const char *path, char hex[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        hex[0] = '\0';
        return -1;
    }
    int rc = sha256_fd(fd, hex);
    close(fd);
    return rc;
}
