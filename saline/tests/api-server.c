#include "api-server.h"

struct ApiServer {
    SaldCore *core;
    const char *path;
    GThread *thread;
    GMainContext *ctx;
    GMainLoop *loop;
    GMutex lock;
    GCond cond;
    gboolean ready;
};

static gpointer
server_thread(gpointer data)
{
    ApiServer *s = data;
    g_autoptr(GError) error = NULL;
    SaldApi *api;

    g_main_context_push_thread_default(s->ctx);
    api = sald_api_new(s->core, s->path, &error);
    g_assert_no_error(error);
    g_mutex_lock(&s->lock);
    s->ready = TRUE;
    g_cond_signal(&s->cond);
    g_mutex_unlock(&s->lock);
    g_main_loop_run(s->loop);
    sald_api_free(api);
    g_main_context_pop_thread_default(s->ctx);
    return NULL;
}

ApiServer *
api_server_start(SaldCore *core, const char *socket_path)
{
    ApiServer *s = g_new0(ApiServer, 1);

    s->core = core;
    s->path = socket_path;
    s->ctx = g_main_context_new();
    s->loop = g_main_loop_new(s->ctx, FALSE);
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    s->thread = g_thread_new("api", server_thread, s);
    g_mutex_lock(&s->lock);
    while (!s->ready) {
        g_cond_wait(&s->cond, &s->lock);
    }
    g_mutex_unlock(&s->lock);
    return s;
}

static gboolean
quit_loop(gpointer data)
{
    g_main_loop_quit(data);
    return G_SOURCE_REMOVE;
}

void
api_server_stop(ApiServer *s)
{
    if (!s) {
        return;
    }
    g_main_context_invoke(s->ctx, quit_loop, s->loop);
    g_thread_join(s->thread);
    g_main_loop_unref(s->loop);
    g_main_context_unref(s->ctx);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_free(s);
}
