/*
 * ssi-init: the init of an SSI process's PID namespace.
 *
 *   ssi-init GPID PROGRAM [ARG...]
 *
 * ssid starts it as PID 1 of a new PID namespace. It forks PROGRAM with
 * PID = GPID inside the namespace (through ns_last_pid), so getpid()
 * returns the process's global PID on every member, and CRIU restores
 * the namespace with the same PIDs after a migration. It reaps whatever
 * the process leaves behind and exits with the process's status (128+N
 * for a signal N), which ssid reports to the launcher. When it exits,
 * the kernel ends every other process of the namespace.
 *
 * Linked statically: it is also what CRIU dumps and restores, so it
 * keeps no state but the PID it waits for.
 *
 * A distant fork restores a copy of the whole namespace on another
 * member to keep one child there: ssid sends that copy's ssi-init
 * SIGUSR1 with the child's PID as value (sigqueue), and from then on it
 * waits for that child instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t adopted;

static void
on_adopt(int sig, siginfo_t *si, void *ctx)
{
    if (si->si_code == SI_QUEUE && si->si_value.sival_int > 1) {
        adopted = si->si_value.sival_int;
    }
}

static int
usage(void)
{
    fprintf(stderr, "usage: ssi-init GPID PROGRAM [ARG...]\n");
    return 2;
}

int
main(int argc, char **argv)
{
    char *end, buf[32];
    unsigned long gpid;
    pid_t job;
    int fd, len, status = 0;

    if (argc < 3) {
        return usage();
    }
    errno = 0;
    gpid = strtoul(argv[1], &end, 10);
    if (errno || *end || gpid < 2 || gpid > 4194303) {
        return usage();
    }
    if (getpid() != 1) {
        fprintf(stderr, "ssi-init: not the init of a PID namespace\n");
        return 2;
    }
    setsid();
    {
        struct sigaction sa = {.sa_sigaction = on_adopt,
                               .sa_flags = SA_SIGINFO};

        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, NULL);
    }
    fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    len = snprintf(buf, sizeof(buf), "%lu", gpid - 1);
    if (fd < 0 || write(fd, buf, (size_t)len) != len) {
        fprintf(stderr, "ssi-init: cannot set ns_last_pid: %s\n",
                strerror(errno));
        return 126;
    }
    close(fd);
    snprintf(buf, sizeof(buf), "SSI_GPID=%lu", gpid);
    putenv(buf);
    job = fork();
    if (job < 0) {
        fprintf(stderr, "ssi-init: fork: %s\n", strerror(errno));
        return 126;
    }
    if (job == 0) {
        signal(SIGCHLD, SIG_DFL);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "ssi: cannot run '%s': %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    if ((unsigned long)job != gpid) {
        fprintf(stderr, "ssi-init: got PID %d instead of %lu\n", job, gpid);
    }
    for (;;) {
        pid_t p = wait(&status);

        if (p < 0 && errno == EINTR) {
            continue;
        }
        if (p < 0) {
            return 126;
        }
        if (adopted ? p == (pid_t)adopted : p == job) {
            break;
        }
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}
