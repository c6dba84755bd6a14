/*
 * synclog.c - an LD_PRELOAD shim that writes down, in order, the calls that decide what
 * survives a power loss: fsync, fdatasync (with the path of the descriptor), rename,
 * renameat2 and unlink (with their paths).
 *
 * A kill -9 loses nothing the kernel already has, so the fault tests cannot show that a
 * step is durable before the next one starts; the order of these calls can.  Each call
 * appends one line to the file named by $SYNCLOG ("fdatasync /spool/ledger.db-wal",
 * "rename /spool/out/sage/.X.sbtmp /spool/out/sage/X"), with O_APPEND so that threads
 * and processes do not mix their lines.  Built by the test that uses it:
 *   cc -shared -fPIC -o synclog.so synclog.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* note - one line to $SYNCLOG: what, then up to two paths */
static void note(const char *what, const char *a, const char *b)
{
    const char *log = getenv("SYNCLOG");
    if (!log)
        return;
    char line[2 * PATH_MAX + 64];
    int n = snprintf(line, sizeof line, "%s %s%s%s\n", what, a ? a : "?", b ? " " : "", b ? b : "");
    if (n <= 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}

/* fd_path - the path behind a descriptor, from /proc */
static const char *fd_path(int fd, char *buf, size_t n)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t l = readlink(p, buf, n - 1);
    if (l < 0)
        return "?";
    buf[l] = '\0';
    return buf;
}

int fsync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    char buf[PATH_MAX];
    note("fsync", fd_path(fd, buf, sizeof buf), NULL);
    return real(fd);
}

int fdatasync(int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    char buf[PATH_MAX];
    note("fdatasync", fd_path(fd, buf, sizeof buf), NULL);
    return real(fd);
}

int rename(const char *from, const char *to)
{
    int (*real)(const char *, const char *) =
        (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    int rc = real(from, to);
    if (rc == 0)
        note("rename", from, to);
    return rc;
}

int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned int flags)
{
    int (*real)(int, const char *, int, const char *, unsigned int) =
        (int (*)(int, const char *, int, const char *, unsigned int))dlsym(RTLD_NEXT, "renameat2");
    int rc = real(fd1, from, fd2, to, flags);
    if (rc == 0)
        note("rename", from, to);
    return rc;
}

int unlink(const char *path)
{
    int (*real)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    int rc = real(path);
    if (rc == 0)
        note("unlink", path, NULL);
    return rc;
}
