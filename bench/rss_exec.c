/*
 * rss_exec.c - run a command and report its wall time and peak RSS, for bench/measure.py.
 *
 *   rss_exec REPORT CMD [ARG...]
 *
 * Writes "WALL_SECONDS MAXRSS_KIB EXIT_STATUS" to REPORT once CMD has ended; exits 0 when it
 * could run CMD (whatever CMD's status), 127 when not.  SIGTERM, SIGINT and SIGHUP are passed
 * on to CMD (bench/latency.py stops a watching `sagebridge run` through this launcher).
 *
 * Why not Python's resource module directly: Linux keeps a process's peak RSS across fork and
 * exec (the parent's memory at fork time counts), so any command spawned from Python reports
 * at least the interpreter's ~14 MB.  This launcher is ~1 MB, so the figure is the command's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child;

static void pass_on(int sig)
{
    if (child > 0)
        kill(child, sig);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: rss_exec REPORT CMD [ARG...]\n");
        return 127;
    }
    struct timespec t0, t1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pass_on;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("rss_exec: fork");
        return 127;
    }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "rss_exec: %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    child = pid;
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR) {
            perror("rss_exec: wait4");
            return 127;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror("rss_exec: report");
        return 127;
    }
    fprintf(f, "%.6f %ld %d\n", wall, ru.ru_maxrss, code);
    return fclose(f) == 0 ? 0 : 127;
}
