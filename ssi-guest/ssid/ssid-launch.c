/*
 * The launcher's side of SSI processes: the `ssi run` (or `ssi restart`)
 * client of each process launched from this member, and the stream of
 * the member that runs it (ssid.h; the stream contract is in
 * ssid-proc.c).
 *
 * A launch's lock guards its fields only and is never held across a
 * send: a client that does not read, or a member that does not, must
 * not stop the other direction or anything else. Connections are shared
 * by reference (ssi_conn_ref).
 */
#include "ssid.h"

#include <string.h>
#include <unistd.h>

#include "vc-frame.h"

#define QUEUED_MAX (16 * 1024 * 1024)

struct SsidLaunch {
    guint32 gpid;
    guint32 node;       /* where it runs; 0 while it moves */
    SsiConn *client;    /* the `ssi run` connection, NULL once gone */
    SsiConn *stream;    /* the running member's relay, if attached */
    GQueue queued;      /* SsiMsgOut* for the relay, while none is attached */
    gsize queued_bytes; /* bounded: a client cannot fill our memory */
    GMutex lock;
    gboolean done;
    /* Until STARTED has gone to the client, what is for it waits here,
     * so that it always comes first. */
    gboolean client_set;
    gboolean flushing;
    GQueue for_client; /* SsiMsgOut* */
    /* A distant fork's copy: its output goes into the ghost's stdout and
     * stderr, its exit to the ghost. */
    int sink[2];
    SsidLaunchExit on_exit;
    gpointer on_exit_data;
    gint refs;
};

static void
launch_unref(SsidLaunch *l)
{
    if (!l || !g_atomic_int_dec_and_test(&l->refs)) {
        return;
    }
    g_queue_clear_full(&l->queued, (GDestroyNotify)ssi_out_free);
    g_queue_clear_full(&l->for_client, (GDestroyNotify)ssi_out_free);
    for (int i = 0; i < 2; i++) {
        if (l->sink[i] >= 0) {
            close(l->sink[i]);
        }
    }
    ssi_conn_free(l->client);
    ssi_conn_free(l->stream);
    g_mutex_clear(&l->lock);
    g_free(l);
}

SsidLaunch *
launch_register(guint32 gpid, guint32 node, SsiConn *client)
{
    SsidLaunch *l;

    g_mutex_lock(&S.lock);
    if (g_hash_table_contains(S.launches, GUINT_TO_POINTER(gpid))) {
        g_mutex_unlock(&S.lock);
        return NULL;
    }
    l = g_new0(SsidLaunch, 1);
    l->gpid = gpid;
    l->node = node;
    l->client = client ? ssi_conn_ref(client) : NULL;
    l->client_set = client != NULL;
    l->sink[0] = l->sink[1] = -1;
    l->refs = 1;
    g_mutex_init(&l->lock);
    g_queue_init(&l->queued);
    g_queue_init(&l->for_client);
    g_hash_table_insert(S.launches, GUINT_TO_POINTER(gpid), l);
    g_mutex_unlock(&S.lock);
    return l;
}

void
launch_unregister(guint32 gpid)
{
    SsidLaunch *l;

    g_mutex_lock(&S.lock);
    l = g_hash_table_lookup(S.launches, GUINT_TO_POINTER(gpid));
    if (l) {
        g_hash_table_remove(S.launches, GUINT_TO_POINTER(gpid));
    }
    g_mutex_unlock(&S.lock);
    if (l) {
        g_mutex_lock(&l->lock);
        l->done = TRUE;
        g_mutex_unlock(&l->lock);
    }
    launch_unref(l);
}

static SsidLaunch *
launch_get(guint32 gpid)
{
    SsidLaunch *l;

    g_mutex_lock(&S.lock);
    l = g_hash_table_lookup(S.launches, GUINT_TO_POINTER(gpid));
    if (l) {
        g_atomic_int_inc(&l->refs);
    }
    g_mutex_unlock(&S.lock);
    return l;
}

/* Send to the client, if it is still there; takes @m. */
static void
to_client(SsidLaunch *l, SsiMsgOut *m)
{
    SsiConn *c;

    g_mutex_lock(&l->lock);
    if (!l->client_set || l->flushing) {
        if (g_queue_get_length(&l->for_client) < 4096) {
            g_queue_push_tail(&l->for_client, m);
        } else {
            ssi_out_free(m);
        }
        g_mutex_unlock(&l->lock);
        return;
    }
    c = l->client ? ssi_conn_ref(l->client) : NULL;
    g_mutex_unlock(&l->lock);
    if (c && !ssi_conn_send(c, m, NULL)) {
        g_mutex_lock(&l->lock);
        if (l->client == c) {
            ssi_conn_free(l->client);
            l->client = NULL;
        }
        g_mutex_unlock(&l->lock);
    }
    ssi_conn_free(c);
    ssi_out_free(m);
}

void
launch_set_client(guint32 gpid, SsiConn *client)
{
    SsidLaunch *l = launch_get(gpid);

    if (!l) {
        return;
    }
    g_mutex_lock(&l->lock);
    if (!l->client) {
        l->client = ssi_conn_ref(client);
    }
    l->flushing = TRUE;
    l->client_set = TRUE;
    while (!g_queue_is_empty(&l->for_client)) {
        SsiMsgOut *m = g_queue_pop_head(&l->for_client);

        g_mutex_unlock(&l->lock);
        ssi_conn_send(client, m, NULL);
        ssi_out_free(m);
        g_mutex_lock(&l->lock);
    }
    l->flushing = FALSE;
    g_mutex_unlock(&l->lock);
    launch_unref(l);
}

/* Send to the running member, or keep it until one attaches. Takes @m. */
static void
to_stream(SsidLaunch *l, SsiMsgOut *m, gsize len)
{
    SsiConn *c = NULL;

    g_mutex_lock(&l->lock);
    if (l->stream) {
        c = ssi_conn_ref(l->stream);
    }
    g_mutex_unlock(&l->lock);
    if (c && ssi_conn_send(c, m, NULL)) {
        ssi_conn_free(c);
        ssi_out_free(m);
        return;
    }
    ssi_conn_free(c);
    g_mutex_lock(&l->lock);
    if (l->queued_bytes + len > QUEUED_MAX) {
        g_warning("GPID %u: input dropped, 16 MiB wait for a member to run it",
                  l->gpid);
        ssi_out_free(m);
    } else {
        l->queued_bytes += len;
        g_queue_push_tail(&l->queued, m);
    }
    g_mutex_unlock(&l->lock);
}

/* End it with @status, telling the client. */
static void
launch_end(SsidLaunch *l, guint32 status, const char *text)
{
    SsiMsgOut *m = ssi_out_new(SSI_EXIT);
    gboolean was_done;

    g_mutex_lock(&l->lock);
    was_done = l->done;
    l->done = TRUE;
    g_mutex_unlock(&l->lock);
    if (was_done) {
        ssi_out_free(m);
        return;
    }
    if (l->on_exit) {
        l->on_exit(status, l->on_exit_data);
    }
    ssi_out_u32(m, SSI_F_GPID, l->gpid);
    ssi_out_u32(m, SSI_F_STATUS, status);
    if (text) {
        ssi_out_str(m, SSI_F_TEXT, text);
    }
    to_client(l, m);
}

typedef struct {
    guint32 node;
} NodeLost;

static gpointer
node_lost_thread(gpointer data)
{
    NodeLost *n = data;
    g_autoptr(GPtrArray) lost = g_ptr_array_new();
    GHashTableIter it;
    gpointer v;

    g_mutex_lock(&S.lock);
    g_hash_table_iter_init(&it, S.launches);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        SsidLaunch *l = v;

        g_mutex_lock(&l->lock);
        if (l->node == n->node && !l->done) {
            g_atomic_int_inc(&l->refs);
            g_ptr_array_add(lost, l);
        }
        g_mutex_unlock(&l->lock);
    }
    g_mutex_unlock(&S.lock);
    for (guint i = 0; i < lost->len; i++) {
        SsidLaunch *l = g_ptr_array_index(lost, i);
        SsiConn *s;
        g_autofree char *t =
            g_strdup_printf("GPID %u lost: node %u failed", l->gpid, n->node);

        /* Its stream is dead: wake the thread that reads it. */
        g_mutex_lock(&l->lock);
        l->node = 0;
        s = l->stream;
        l->stream = NULL;
        g_mutex_unlock(&l->lock);
        if (s) {
            ssi_conn_shutdown(s);
            ssi_conn_free(s);
        }
        if (!mig_auto_restart(l->gpid)) {
            launch_lost(l->gpid, t);
        }
        launch_unref(l);
    }
    g_free(n);
    return NULL;
}

void
launch_node_lost(guint32 node)
{
    NodeLost *n = g_new0(NodeLost, 1);

    /* Off the membership thread: it must keep its heartbeats. */
    n->node = node;
    g_thread_unref(g_thread_new("lost", node_lost_thread, n));
}

void
launch_serve(SsiConn *client, guint32 gpid, guint32 node)
{
    SsidLaunch *l = launch_get(gpid);

    if (!l) {
        return;
    }
    for (;;) {
        g_autoptr(GError) err = NULL;
        g_autoptr(SsiMsg) m = NULL;
        gboolean done;

        g_mutex_lock(&l->lock);
        done = l->done;
        g_mutex_unlock(&l->lock);
        if (done) {
            break;
        }
        m = ssi_conn_recv(client, 500, &err);
        if (!m && err &&
            g_error_matches(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
            continue;
        }
        if (!m) {
            break; /* the client is gone; the process runs on */
        }
        if (m->hdr.type == SSI_IN || m->hdr.type == SSI_IN_EOF ||
            m->hdr.type == SSI_SIGNAL) {
            SsiMsgOut *f = ssi_out_new(m->hdr.type);
            gsize len = 0;
            const guint8 *d = ssi_msg_bytes(m, SSI_F_DATA, &len);
            guint32 sig;

            ssi_out_u32(f, SSI_F_GPID, gpid);
            if (d) {
                ssi_out_bytes(f, SSI_F_DATA, d, len);
            }
            if (ssi_msg_u32(m, SSI_F_SIGNAL, &sig)) {
                ssi_out_u32(f, SSI_F_SIGNAL, sig);
            }
            to_stream(l, f, d ? len : 0);
        }
    }
    g_mutex_lock(&l->lock);
    if (l->client == client) {
        ssi_conn_free(l->client);
        l->client = NULL;
    }
    g_mutex_unlock(&l->lock);
    launch_unref(l);
    (void)node;
}

/* The relay @c is no longer this launch's stream. */
static void
detach_stream(SsidLaunch *l, SsiConn *c)
{
    g_mutex_lock(&l->lock);
    if (l->stream == c) {
        ssi_conn_free(l->stream);
        l->stream = NULL;
    }
    g_mutex_unlock(&l->lock);
}

void
launch_attach(SsiConn *c, SsiMsg *first)
{
    g_autoptr(SsiMsgOut) ok = ssi_out_new(SSI_OK);
    GQueue queued = G_QUEUE_INIT;
    SsiConn *old;
    guint32 gpid = 0;
    SsidLaunch *l = NULL;

    if (!ssi_msg_u32(first, SSI_F_GPID, &gpid) || !(l = launch_get(gpid))) {
        ssi_conn_fail(c, "no launcher for this GPID here", NULL);
        return;
    }
    g_mutex_lock(&l->lock);
    old = l->stream;
    l->stream = ssi_conn_ref(c);
    l->node = ssi_conn_peer_node(c);
    queued = l->queued;
    g_queue_init(&l->queued);
    l->queued_bytes = 0;
    g_mutex_unlock(&l->lock);
    ssi_conn_free(old);
    while (!g_queue_is_empty(&queued)) {
        SsiMsgOut *f = g_queue_pop_head(&queued);

        ssi_conn_send(c, f, NULL);
        ssi_out_free(f);
    }
    for (;;) {
        g_autoptr(SsiMsg) m = ssi_conn_recv(c, -1, NULL);
        guint32 status = 255;

        if (!m) {
            break;
        }
        if (m->hdr.type == SSI_OUT || m->hdr.type == SSI_ERRDATA) {
            gsize len = 0;
            const guint8 *d = ssi_msg_bytes(m, SSI_F_DATA, &len);

            int sink = l->sink[m->hdr.type == SSI_OUT ? 0 : 1];

            if (d && sink >= 0) {
                vc_write_all(sink, d, len, NULL);
            } else if (d) {
                SsiMsgOut *f = ssi_out_new(m->hdr.type);

                ssi_out_bytes(f, SSI_F_DATA, d, len);
                to_client(l, f);
            }
        } else if (m->hdr.type == SSI_EXIT) {
            ssi_msg_u32(m, SSI_F_STATUS, &status);
            launch_end(l, status, NULL);
            detach_stream(l, c);
            ssi_conn_send(c, ok, NULL);
            launch_unregister(gpid);
            break;
        } else if (m->hdr.type == SSI_DETACH) {
            g_mutex_lock(&l->lock);
            l->node = 0;
            g_mutex_unlock(&l->lock);
            detach_stream(l, c);
            ssi_conn_send(c, ok, NULL);
            break;
        }
    }
    detach_stream(l, c);
    launch_unref(l);
}

gboolean
launch_node(guint32 gpid, guint32 *node)
{
    SsidLaunch *l = launch_get(gpid);
    gboolean live;

    if (!l) {
        return FALSE;
    }
    g_mutex_lock(&l->lock);
    live = !l->done;
    *node = l->node;
    g_mutex_unlock(&l->lock);
    launch_unref(l);
    return live;
}

void
launch_note(guint32 gpid, const char *text)
{
    SsidLaunch *l = launch_get(gpid);
    SsiMsgOut *m;
    g_autofree char *line = g_strdup_printf("ssi: %s\n", text);

    if (!l) {
        return;
    }
    m = ssi_out_new(SSI_ERRDATA);
    ssi_out_str(m, SSI_F_DATA, line);
    to_client(l, m);
    launch_unref(l);
}

void
launch_lost(guint32 gpid, const char *text)
{
    SsidLaunch *l = launch_get(gpid);

    if (!l) {
        return;
    }
    g_message("%s", text);
    launch_end(l, 255, text);
    launch_unregister(gpid);
    launch_unref(l);
}

void
launch_end_all(const char *why)
{
    g_autoptr(GArray) gpids = g_array_new(FALSE, FALSE, sizeof(guint32));
    GHashTableIter it;
    gpointer k;

    g_mutex_lock(&S.lock);
    g_hash_table_iter_init(&it, S.launches);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        guint32 g = GPOINTER_TO_UINT(k);

        g_array_append_val(gpids, g);
    }
    g_mutex_unlock(&S.lock);
    for (guint i = 0; i < gpids->len; i++) {
        guint32 g = g_array_index(gpids, guint32, i);
        g_autofree char *t = g_strdup_printf("GPID %u: %s", g, why);

        launch_lost(g, t);
    }
}

gboolean
launch_register_fork(guint32 gpid, guint32 node, int out_fd, int err_fd,
                     SsidLaunchExit on_exit, gpointer data)
{
    SsidLaunch *l = launch_register(gpid, node, NULL);

    if (!l) {
        return FALSE;
    }
    g_mutex_lock(&l->lock);
    l->client_set = TRUE; /* no client: nothing waits for one */
    l->sink[0] = out_fd;
    l->sink[1] = err_fd;
    l->on_exit = on_exit;
    l->on_exit_data = data;
    g_mutex_unlock(&l->lock);
    return TRUE;
}
