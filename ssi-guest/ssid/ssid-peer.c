/*
 * Requests: from members over TCP, and from `ssi` over the control
 * socket, one thread per connection (ssid.h).
 */
#include "ssid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONNS_MAX 512

static int tcp_fd = -1, ctl_fd = -1;
static gint conns;

SsiConn *
peer_connect(guint32 node, GError **error)
{
    g_autofree char *addr = member_addr(node);
    SsiIdentity id = member_ident();

    if (!addr) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "node %u is not a member of the cluster", node);
        return NULL;
    }
    return ssi_conn_connect(&id, addr, 3000, error);
}

static gboolean
reply_ok(SsiConn *c, const char *text)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_OK);

    if (text) {
        ssi_out_str(m, SSI_F_TEXT, text);
    }
    return ssi_conn_send(c, m, NULL);
}

static void
reply(SsiConn *c, gboolean ok, GError *err, const char *text)
{
    if (ok) {
        reply_ok(c, text);
    } else {
        ssi_conn_fail(c, err ? err->message : "failed", NULL);
    }
}

SsiMsg *
peer_call(guint32 node, SsiMsgOut *m, int timeout_ms, GError **error)
{
    g_autoptr(SsiConn) c = peer_connect(node, error);

    return c ? ssi_conn_call(c, m, timeout_ms, error) : NULL;
}

/* The member running @gpid; heartbeats may lag a move by a moment. */
static guint32
locate(guint32 gpid, GError **error)
{
    for (int i = 0; i < 15; i++) {
        guint32 node = member_find_gpid(gpid);

        if (node) {
            return node;
        }
        g_usleep(200 * 1000);
    }
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                "no process with GPID %u in the cluster", gpid);
    return 0;
}

static void
serve_peer(SsiConn *c, SsiMsg *m)
{
    g_autoptr(GError) err = NULL;
    guint32 gpid = 0, v = 0;

    switch (m->hdr.type) {
    case SSI_EXEC: {
        g_auto(SsiExecRequest) req = {0};

        if (!ssi_parse_exec(m, &req, NULL)) {
            ssi_conn_fail(c, "bad EXEC request", NULL);
            return;
        }
        reply(c, proc_exec(req.gpid, req.argv, req.launcher, &err), err, NULL);
        return;
    }
    case SSI_ATTACH:
        launch_attach(c, m);
        return;
    case SSI_KILL:
        if (!ssi_parse_kill(m, &gpid, &v, NULL)) {
            ssi_conn_fail(c, "bad KILL request", NULL);
            return;
        }
        reply(c, proc_kill(gpid, (int)v, &err), err, NULL);
        return;
    case SSI_PS: {
        g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(SsiMsgOut) r = ssi_out_new(SSI_OK);

        ssi_msg_u32(m, SSI_F_FLAGS, &v);
        proc_rows(rows, (v & SSI_FLAG_ALL) != 0);
        for (guint i = 0; i < rows->len && i < 4000; i++) {
            ssi_out_str(r, SSI_F_ROW, g_ptr_array_index(rows, i));
        }
        ssi_conn_send(c, r, NULL);
        return;
    }
    case SSI_MIGRATE: {
        g_autoptr(GString) rep = g_string_new(NULL);
        gboolean ok;

        if (!ssi_parse_migrate(m, &gpid, &v, NULL)) {
            ssi_conn_fail(c, "bad MIGRATE request", NULL);
            return;
        }
        ok = mig_migrate(gpid, v, rep, &err);
        reply(c, ok, err, rep->str);
        return;
    }
    case SSI_CHECKPOINT:
        mig_serve_checkpoint(c, m);
        return;
    case SSI_IMAGE:
        mig_serve_image(c, m);
        return;
    case SSI_EVICT: {
        g_autoptr(GString) rep = g_string_new(NULL);
        gboolean ok = mig_evict_self(rep, &err);

        reply(c, ok, err, rep->str);
        return;
    }
    case SSI_MEM: {
        g_autofree char *text = mem_serve(m, &err);

        reply(c, text != NULL, err, text);
        return;
    }
    default:
        ssi_conn_fail(c, "unexpected request", NULL);
    }
}

static void
ctl_run(SsiConn *c, SsiMsg *m, gboolean restart)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(SsiMsgOut) started = ssi_out_new(SSI_STARTED);
    g_auto(GStrv) argv = NULL;
    g_autofree char *dir = NULL;
    guint32 node = 0, gpid = 0, self, period = 0;

    ssi_msg_u32(m, SSI_F_NODE, &node);
    g_mutex_lock(&S.lock);
    self = S.state == SSID_MEMBER ? S.self : 0;
    g_mutex_unlock(&S.lock);
    if (!self) {
        ssi_conn_fail(c, "this VM is not a member of an SSI cluster", NULL);
        return;
    }
    if (node && !member_is_up(node)) {
        g_autofree char *t =
            g_strdup_printf("node %u is not an up member of the cluster", node);
        ssi_conn_fail(c, t, NULL);
        return;
    }
    /* The GPID first: placements count a process from then on. */
    if (!restart && !(gpid = proc_new_gpid())) {
        ssi_conn_fail(c, "no GPID left", NULL);
        return;
    }
    if (!node) {
        node = member_place(0, gpid);
    }
    if (restart) {
        dir = ssi_msg_str(m, SSI_F_PATH, 4096);
        if (!dir || !mig_restart(dir, node, NULL, &gpid, &err)) {
            ssi_conn_fail(c, err ? err->message : "bad RESTART request", NULL);
            return;
        }
    } else {
        g_autoptr(SsiMsgOut) ex = ssi_out_new(SSI_EXEC);
        g_autoptr(SsiMsg) r = NULL;

        argv = ssi_msg_strv(m, SSI_F_ARG, 4096, 65536);
        if (!argv || !argv[0]) {
            ssi_conn_fail(c, "bad RUN request", NULL);
            return;
        }
        ssi_out_u32(ex, SSI_F_GPID, gpid);
        ssi_out_u32(ex, SSI_F_LAUNCHER, self);
        for (char **a = argv; *a; a++) {
            ssi_out_str(ex, SSI_F_ARG, *a);
        }
        if (!launch_register(gpid, node, NULL)) {
            ssi_conn_fail(c, "GPID taken, try again", NULL);
            return;
        }
        r = peer_call(node, ex, 10000, &err);
        if (!r) {
            launch_unregister(gpid);
            g_prefix_error(&err, "node %u: ", node);
            ssi_conn_fail(c, err->message, NULL);
            return;
        }
    }
    ssi_out_u32(started, SSI_F_GPID, gpid);
    ssi_out_u32(started, SSI_F_NODE, node);
    ssi_conn_send(c, started, NULL);
    launch_set_client(gpid, c);
    if (ssi_msg_u32(m, SSI_F_PERIOD, &period) && period > 0) {
        mig_auto_checkpoint(gpid, MIN(period, 86400));
    }
    launch_serve(c, gpid, node);
}

static void
ctl_ps(SsiConn *c, SsiMsg *m)
{
    g_autoptr(SsiMsgOut) r = ssi_out_new(SSI_OK);
    g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint32));
    guint32 flags = 0;

    ssi_msg_u32(m, SSI_F_FLAGS, &flags);
    g_mutex_lock(&S.lock);
    for (guint i = 0; i < S.members->len; i++) {
        SsidMember *mm = g_ptr_array_index(S.members, i);

        g_array_append_val(ids, mm->id);
    }
    g_mutex_unlock(&S.lock);
    for (guint i = 0; i < ids->len; i++) {
        g_autoptr(SsiMsgOut) q = ssi_out_new(SSI_PS);
        g_autoptr(GError) err = NULL;
        g_autoptr(SsiMsg) a = NULL;
        guint32 id = g_array_index(ids, guint32, i);

        ssi_out_u32(q, SSI_F_FLAGS, flags);
        a = peer_call(id, q, 5000, &err);
        for (guint k = 0; a && k < ssi_msg_count(a, SSI_F_ROW); k++) {
            const SsiFieldRef *f = ssi_msg_nth(a, SSI_F_ROW, k);

            ssi_out_bytes(r, SSI_F_ROW, f->value, f->len);
        }
        if (!a) {
            g_autofree char *t =
                g_strdup_printf("node %u: %s", id, err->message);
            ssi_out_str(r, SSI_F_TEXT, t);
        }
    }
    ssi_conn_send(c, r, NULL);
}

static void
ctl_add(SsiConn *c, SsiMsg *m)
{
    g_autofree char *addr = ssi_msg_str(m, SSI_F_ADDR, 15);
    struct in_addr a;

    if (!addr || inet_pton(AF_INET, addr, &a) != 1) {
        ssi_conn_fail(c, "ADD needs an IPv4 address", NULL);
        return;
    }
    for (int i = 0; i < 75; i++) {
        g_mutex_lock(&S.lock);
        for (guint k = 0; k < S.members->len; k++) {
            SsidMember *mm = g_ptr_array_index(S.members, k);

            if (strcmp(mm->addr, addr) == 0) {
                g_autofree char *t =
                    g_strdup_printf("%s is node %u", addr, mm->id);

                g_mutex_unlock(&S.lock);
                reply_ok(c, t);
                return;
            }
        }
        g_mutex_unlock(&S.lock);
        if (i % 5 == 0) {
            member_invite(addr);
        }
        g_usleep(200 * 1000);
    }
    g_autofree char *t = g_strdup_printf(
        "%s did not join within 15 s (no ssid there waiting with join=wait, "
        "or it does not hold this cluster's key)",
        addr);
    ssi_conn_fail(c, t, NULL);
}

static void
ctl_policy(SsiConn *c, SsiMsg *m)
{
    g_autofree char *name = ssi_msg_str(m, SSI_F_NAME, 64);
    g_autofree char *text = NULL;
    g_autoptr(GError) err = NULL;

    if (name) {
        int fd = open("/proc/ssi/policy", O_WRONLY | O_CLOEXEC);

        if (fd < 0 || write(fd, name, strlen(name)) < 0) {
            g_autofree char *t =
                g_strdup_printf("cannot select policy '%s': %s", name,
                                errno == ENOENT ? "no such policy module loaded"
                                                : g_strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            ssi_conn_fail(c, t, NULL);
            return;
        }
        close(fd);
    }
    if (!g_file_get_contents("/proc/ssi/policy", &text, NULL, &err)) {
        ssi_conn_fail(c, err->message, NULL);
        return;
    }
    reply_ok(c, text);
}

static void
ctl_sched(SsiConn *c, SsiMsg *m)
{
    g_autofree char *verb = ssi_msg_str(m, SSI_F_NAME, 16);
    g_auto(GStrv) args = ssi_msg_strv(m, SSI_F_ARG, 64, SSI_SCHED_TEXT_MAX);
    g_autofree char *text = NULL;
    g_autoptr(GError) err = NULL;
    guint32 flags = 0;

    ssi_msg_u32(m, SSI_F_FLAGS, &flags);
    if (!verb || (!args && ssi_msg_count(m, SSI_F_ARG) > 0)) {
        ssi_conn_fail(c, "SCHED without a valid NAME or ARG", NULL);
        return;
    }
    text = sched_control(verb, args, (flags & SSI_FLAG_JSON) != 0, &err);
    if (!text) {
        ssi_conn_fail(c, err->message, NULL);
        return;
    }
    reply_ok(c, text);
}

static void
ctl_mem(SsiConn *c, SsiMsg *m)
{
    g_autofree char *verb = ssi_msg_str(m, SSI_F_NAME, 16);
    g_autofree char *arg = ssi_msg_str(m, SSI_F_ARG, 32);
    g_autofree char *text = NULL;
    g_autoptr(GError) err = NULL;
    guint32 flags = 0;

    ssi_msg_u32(m, SSI_F_FLAGS, &flags);
    if (!verb) {
        ssi_conn_fail(c, "MEM without a valid NAME", NULL);
        return;
    }
    text = mem_control(verb, arg, (flags & SSI_FLAG_JSON) != 0, &err);
    reply(c, text != NULL, err, text);
}

static void
serve_control(SsiConn *c, SsiMsg *m)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(SsiMsg) a = NULL;
    guint32 gpid = 0, node = 0;

    switch (m->hdr.type) {
    case SSI_RUN:
    case SSI_RESTART:
        ctl_run(c, m, m->hdr.type == SSI_RESTART);
        return;
    case SSI_PS:
        ctl_ps(c, m);
        return;
    case SSI_ADD:
        ctl_add(c, m);
        return;
    case SSI_POLICY:
        ctl_policy(c, m);
        return;
    case SSI_SCHED:
        ctl_sched(c, m);
        return;
    case SSI_MEM:
        ctl_mem(c, m);
        return;
    case SSI_EVICT:
        if (!ssi_msg_u32(m, SSI_F_NODE, &node) || !member_is_up(node)) {
            g_autofree char *t = g_strdup_printf(
                "node %u is not an up member of the cluster", node);
            ssi_conn_fail(c, t, NULL);
            return;
        }
        {
            g_autoptr(SsiMsgOut) f = ssi_out_new(SSI_EVICT);

            a = peer_call(node, f, 600000, &err);
        }
        break;
    case SSI_KILL:
    case SSI_MIGRATE:
    case SSI_CHECKPOINT: {
        g_autoptr(SsiMsgOut) f = ssi_out_new(m->hdr.type);
        guint32 v;

        if (!ssi_msg_u32(m, SSI_F_GPID, &gpid)) {
            ssi_conn_fail(c, "request without a GPID", NULL);
            return;
        }
        if (m->hdr.type == SSI_MIGRATE &&
            (!ssi_msg_u32(m, SSI_F_NODE, &node) || !member_is_up(node))) {
            g_autofree char *t = g_strdup_printf(
                "node %u is not an up member of the cluster", node);
            ssi_conn_fail(c, t, NULL);
            return;
        }
        node = locate(gpid, &err);
        if (!node) {
            ssi_conn_fail(c, err->message, NULL);
            return;
        }
        ssi_out_u32(f, SSI_F_GPID, gpid);
        if (ssi_msg_u32(m, SSI_F_SIGNAL, &v)) {
            ssi_out_u32(f, SSI_F_SIGNAL, v);
        }
        if (ssi_msg_u32(m, SSI_F_NODE, &v)) {
            ssi_out_u32(f, SSI_F_NODE, v);
        }
        if (m->hdr.type == SSI_CHECKPOINT) {
            g_autofree char *dir = ssi_msg_str(m, SSI_F_PATH, 4096);
            g_autoptr(SsiConn) p = NULL;

            if (!dir || dir[0] != '/') {
                ssi_conn_fail(c, "CHECKPOINT needs an absolute directory",
                              NULL);
                return;
            }
            p = peer_connect(node, &err);
            if (!p || !mig_checkpoint_to(p, gpid, dir, &err)) {
                ssi_conn_fail(c, err->message, NULL);
                return;
            }
            g_autofree char *t = g_strdup_printf(
                "GPID %u (on node %u) checkpointed into %s", gpid, node, dir);
            reply_ok(c, t);
            return;
        }
        a = peer_call(node, f, 600000, &err);
        break;
    }
    default:
        ssi_conn_fail(c, "unexpected request", NULL);
        return;
    }
    if (!a) {
        ssi_conn_fail(c, err->message, NULL);
        return;
    }
    {
        g_autofree char *t = ssi_msg_str(a, SSI_F_TEXT, 65536);

        reply_ok(c, t);
    }
}

typedef struct {
    int fd;
    gboolean control;
} Accepted;

static void
serve_conn(gpointer data)
{
    Accepted *a = data;
    SsiIdentity id = member_ident();
    g_autoptr(GError) err = NULL;
    g_autoptr(SsiConn) c = NULL;
    g_autoptr(SsiMsg) m = NULL;

    if (a->control) {
        id.key = NULL;
    }
    c = ssi_conn_accept(&id, a->fd, 5000, &err);
    g_free(a);
    if (!c) {
        g_debug("connection refused: %s", err->message);
        return;
    }
    m = ssi_conn_recv(c, 10000, &err);
    if (!m) {
        if (err) {
            g_message("dropped a connection: %s", err->message);
        }
        return;
    }
    if (id.key) {
        serve_peer(c, m);
    } else {
        serve_control(c, m);
    }
}

static gpointer
conn_thread(gpointer data)
{
    serve_conn(data);
    g_atomic_int_add(&conns, -1);
    return NULL;
}

static gpointer
accept_thread(gpointer data)
{
    int lfd = GPOINTER_TO_INT(data);

    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        Accepted *a;

        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED) {
                g_usleep(100 * 1000);
            }
            continue;
        }
        if (lfd == ctl_fd) {
            struct ucred cr;
            socklen_t l = sizeof(cr);

            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 ||
                cr.uid != 0) {
                close(fd);
                continue;
            }
        }
        /* Bounded: each connection is a thread. */
        if (g_atomic_int_add(&conns, 1) >= CONNS_MAX) {
            g_atomic_int_add(&conns, -1);
            close(fd);
            continue;
        }
        a = g_new0(Accepted, 1);
        a->fd = fd;
        a->control = lfd == ctl_fd;
        GThread *t = g_thread_try_new("conn", conn_thread, a, NULL);
        if (t) {
            g_thread_unref(t);
        } else {
            g_atomic_int_add(&conns, -1);
            close(fd);
            g_free(a);
        }
    }
    return NULL;
}

gboolean
peer_start(GError **error)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(SSI_PORT)};
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    int one = 1;

    signal(SIGPIPE, SIG_IGN);
    inet_pton(AF_INET, S.address, &sa.sin_addr);
    tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (tcp_fd < 0 || bind(tcp_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(tcp_fd, 64) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot listen on TCP %s:%d: %s", S.address, SSI_PORT,
                    g_strerror(errno));
        return FALSE;
    }
    g_strlcpy(su.sun_path, SSID_CONTROL, sizeof(su.sun_path));
    unlink(SSID_CONTROL);
    ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ctl_fd < 0 || bind(ctl_fd, (struct sockaddr *)&su, sizeof(su)) < 0 ||
        chmod(SSID_CONTROL, 0600) < 0 || listen(ctl_fd, 16) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot listen on '%s': %s", SSID_CONTROL,
                    g_strerror(errno));
        return FALSE;
    }
    g_thread_unref(g_thread_new("tcp", accept_thread, GINT_TO_POINTER(tcp_fd)));
    g_thread_unref(
        g_thread_new("control", accept_thread, GINT_TO_POINTER(ctl_fd)));
    return TRUE;
}
