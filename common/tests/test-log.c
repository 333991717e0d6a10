#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vc-log.h"

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static void
set_journal_stream(int fd, gint64 ino_delta)
{
    struct stat st;
    g_autofree char *value = NULL;

    g_assert_cmpint(fstat(fd, &st), ==, 0);
    value = g_strdup_printf("%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT,
                            (guint64)st.st_dev,
                            (guint64)st.st_ino + (guint64)ino_delta);
    g_setenv("JOURNAL_STREAM", value, TRUE);
}

/* systemd names the stream it gave as stderr in JOURNAL_STREAM; any
 * other stream, or none named, is not the journal. */
static void
test_is_journal(void)
{
    int fds[2];

    g_assert_cmpint(pipe(fds), ==, 0);
    g_unsetenv("JOURNAL_STREAM");
    g_assert_false(vc_log_is_journal(fds[1]));

    set_journal_stream(fds[1], 0);
    g_assert_true(vc_log_is_journal(fds[1]));
    /* Inherited by a child whose stderr is something else. */
    set_journal_stream(fds[1], 1);
    g_assert_false(vc_log_is_journal(fds[1]));

    g_setenv("JOURNAL_STREAM", "garbage", TRUE);
    g_assert_false(vc_log_is_journal(fds[1]));
    g_setenv("JOURNAL_STREAM", "1:", TRUE);
    g_assert_false(vc_log_is_journal(fds[1]));
    g_unsetenv("JOURNAL_STREAM");
    close(fds[0]);
    close(fds[1]);
}

/* In place: g_file_set_contents() would rename a new file over it. */
static gboolean
write_proc(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    gboolean ok;

    if (fd < 0) {
        return FALSE;
    }
    ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

/* A private /run, in new user and mount namespaces (root in them, so as
 * to make its directories). */
static gboolean
private_run(void)
{
    g_autofree char *uid_map = g_strdup_printf("0 %u 1\n", (guint)getuid());
    g_autofree char *gid_map = g_strdup_printf("0 %u 1\n", (guint)getgid());

    return unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 &&
           write_proc("/proc/self/setgroups", "deny") &&
           write_proc("/proc/self/uid_map", uid_map) &&
           write_proc("/proc/self/gid_map", gid_map) &&
           mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
           mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") == 0;
}

/* Where namespaces are not allowed, the journal test cannot run. */
static gboolean
can_private_run(void)
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        _exit(private_run() ? 0 : 1);
    }
    g_assert_cmpint(pid, >, 0);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* In the subprocess: a private /run with a journald socket of our own
 * (user and mount namespaces), then one record logged with stderr named
 * the journal. The datagram received goes to stdout. */
static void
journal_child(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[8192];
    ssize_t n;
    int fd;

    g_assert_true(private_run());
    g_assert_cmpint(g_mkdir_with_parents("/run/systemd/journal", 0755), ==, 0);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    g_strlcpy(sa.sun_path, JOURNAL_SOCKET, sizeof(sa.sun_path));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);

    set_journal_stream(fileno(stderr), 0);
    vc_log_init("test-ident", FALSE);
    g_message("hello %s", "journal");
    n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    g_assert_cmpint(n, >, 0);
    buf[n] = '\0';
    printf("%s", buf);
}

/* The record goes to journald, with its fields, not to stderr. */
static void
test_journal(void)
{
    if (g_test_subprocess()) {
        journal_child();
        return;
    }
    if (!can_private_run()) {
        g_test_skip("no user and mount namespaces for a private /run");
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stdout("*MESSAGE=hello journal\n*");
    g_test_trap_assert_stdout("*PRIORITY=5\n*");
    g_test_trap_assert_stdout("*SYSLOG_IDENTIFIER=test-ident\n*");
    g_test_trap_assert_stdout("*CODE_FILE=*test-log.c\n*");
    g_test_trap_assert_stdout("*CODE_LINE=*");
    g_test_trap_assert_stderr_unmatched("*hello journal*");
}

/* Not the journal: the usual line on stderr. */
static void
test_stderr(void)
{
    if (g_test_subprocess()) {
        g_unsetenv("JOURNAL_STREAM");
        vc_log_init("test-ident", FALSE);
        g_message("hello %s", "stderr");
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("test-ident[*]: notice: hello stderr\n");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/log/is-journal", test_is_journal);
    g_test_add_func("/log/journal", test_journal);
    g_test_add_func("/log/stderr", test_stderr);
    return g_test_run();
}
