#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vc-notify.h"

/* A service manager's end of NOTIFY_SOCKET. */
typedef struct {
    char *dir;
    char *path;
    int fd;
} Manager;

static void
manager_setup(Manager *m, gconstpointer data)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    m->dir = g_dir_make_tmp("test-notify-XXXXXX", NULL);
    g_assert_nonnull(m->dir);
    m->path = g_build_filename(m->dir, "notify", NULL);
    g_assert_cmpuint(strlen(m->path), <, sizeof(sa.sun_path));
    g_strlcpy(sa.sun_path, m->path, sizeof(sa.sun_path));
    m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(m->fd, >=, 0);
    g_assert_cmpint(bind(m->fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_setenv("NOTIFY_SOCKET", m->path, TRUE);
}

static void
manager_teardown(Manager *m, gconstpointer data)
{
    g_unsetenv("NOTIFY_SOCKET");
    close(m->fd);
    g_unlink(m->path);
    g_rmdir(m->dir);
    g_free(m->path);
    g_free(m->dir);
}

/* The next datagram, or NULL if none waits. */
static char *
manager_recv(Manager *m)
{
    char buf[4096];
    ssize_t n = recv(m->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    if (n < 0) {
        return NULL;
    }
    buf[n] = '\0';
    return g_strdup(buf);
}

static gboolean
supported(void)
{
#ifdef HAVE_LIBSYSTEMD
    return TRUE;
#else
    g_test_skip("built without libsystemd");
    return FALSE;
#endif
}

static void
test_ready(Manager *m, gconstpointer data)
{
    g_autofree char *got = NULL;

    if (!supported()) {
        return;
    }
    g_assert_true(vc_notify_enabled());
    g_assert_true(vc_notify_ready("serving %d guests", 3));
    got = manager_recv(m);
    g_assert_cmpstr(got, ==, "READY=1\nSTATUS=serving 3 guests");
    g_clear_pointer(&got, g_free);

    g_assert_true(vc_notify_ready(NULL));
    got = manager_recv(m);
    g_assert_cmpstr(got, ==, "READY=1");
}

static void
test_status(Manager *m, gconstpointer data)
{
    g_autofree char *got = NULL;

    if (!supported()) {
        return;
    }
    g_assert_true(vc_notify_status("%u peers", 4u));
    got = manager_recv(m);
    g_assert_cmpstr(got, ==, "STATUS=4 peers");
    g_clear_pointer(&got, g_free);

    /* The same status again is not sent: timers may repeat it. */
    g_assert_false(vc_notify_status("%u peers", 4u));
    g_assert_null(manager_recv(m));

    /* A status is one line of the protocol. */
    g_assert_true(vc_notify_status("two\nlines"));
    got = manager_recv(m);
    g_assert_cmpstr(got, ==, "STATUS=two lines");
}

static void
test_stopping_reloading(Manager *m, gconstpointer data)
{
    g_autofree char *got = NULL;

    if (!supported()) {
        return;
    }
    g_assert_true(vc_notify_reloading());
    got = manager_recv(m);
    g_assert_cmpstr(got, ==, "RELOADING=1");
    g_clear_pointer(&got, g_free);

    g_assert_true(vc_notify_stopping("stopping on %s", "SIGTERM"));
    got = manager_recv(m);
    g_assert_cmpstr(got, ==, "STOPPING=1\nSTATUS=stopping on SIGTERM");
}

/* Run by hand, not by a service manager: nothing is sent, no error. */
static void
test_no_socket(Manager *m, gconstpointer data)
{
    g_unsetenv("NOTIFY_SOCKET");
    g_assert_false(vc_notify_enabled());
    g_assert_false(vc_notify_ready("ready"));
    g_assert_false(vc_notify_status("status"));
    g_assert_false(vc_notify_stopping(NULL));
    g_assert_false(vc_notify_reloading());
    g_assert_null(manager_recv(m));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/notify/ready", Manager, NULL, manager_setup, test_ready,
               manager_teardown);
    g_test_add("/notify/status", Manager, NULL, manager_setup, test_status,
               manager_teardown);
    g_test_add("/notify/stopping-reloading", Manager, NULL, manager_setup,
               test_stopping_reloading, manager_teardown);
    g_test_add("/notify/no-socket", Manager, NULL, manager_setup,
               test_no_socket, manager_teardown);
    return g_test_run();
}
