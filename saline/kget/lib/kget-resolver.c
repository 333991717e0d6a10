#include "kget-resolver.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dp-conn.h"
#include "dp-proto.h"

struct KgetResolver {
    char *path;
    int fd; /* -1: unreachable or failed, finds nothing */
    guint32 next_id;
};

KgetResolver *
kget_resolver_new(const char *path)
{
    KgetResolver *r = g_new0(KgetResolver, 1);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = KGET_RESOLVER_TIMEOUT_S};

    r->path = g_strdup(path ? path : KGET_RESOLVER_SOCKET);
    r->fd = -1;
    if (strlen(r->path) >= sizeof(sa.sun_path)) {
        g_debug("resolver socket path '%s' is too long", r->path);
        return r;
    }
    g_strlcpy(sa.sun_path, r->path, sizeof(sa.sun_path));
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_debug("cannot reach dht-pagesd at '%s', pages come from the store: "
                "%s",
                r->path, g_strerror(errno));
        if (r->fd >= 0) {
            close(r->fd);
            r->fd = -1;
        }
        return r;
    }
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return r;
}

gboolean
kget_resolver_usable(KgetResolver *r)
{
    return r->fd >= 0;
}

/* Sends the request in @out and reads its reply, of type @want. */
static gboolean
call(KgetResolver *r, GByteArray *out, guint32 id, guint8 want, DpMsg *m,
     GBytes **payload, GError **error)
{
    if (!dp_write_all(r->fd, out->data, out->len, error) ||
        !dp_msg_read(r->fd, m, payload, error)) {
        return FALSE;
    }
    if (m->type == DP_MSG_ERROR) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE, "refused: %s",
                    m->error_message);
        return FALSE;
    }
    if (m->type != want || m->id != id) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "unexpected %s (id %u) to %s %u",
                    dp_msg_type_name(m->type), m->id,
                    dp_msg_type_name(want & ~0x80), id);
        return FALSE;
    }
    return TRUE;
}

/* The resolver is of no more use: a reply cut short or out of step
 * leaves the stream unusable. */
static void
give_up(KgetResolver *r, const GError *error)
{
    g_debug("dht-pagesd at '%s' failed, pages come from the store: %s",
            r->path, error->message);
    close(r->fd);
    r->fd = -1;
}

/* One LOOKUP of at most DP_MAX_BATCH hashes. */
static gboolean
lookup_batch(KgetResolver *r, const VcPageHash *hashes, guint n,
             guint8 *pages, gboolean *found, guint *hits, GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    guint32 id = ++r->next_id;
    DpMsg m;

    dp_encode_hashes(out, DP_MSG_LOOKUP, id, hashes, n);
    if (!call(r, out, id, DP_REPLY(DP_MSG_LOOKUP), &m, &payload, error)) {
        return FALSE;
    }
    if (m.count != n) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "%u pages in reply to a LOOKUP of %u", m.count, n);
        return FALSE;
    }
    for (guint i = 0; i < n; i++) {
        const guint8 *page = dp_msg_reply_page(&m, i);

        if (page) {
            memcpy(pages + (gsize)i * VC_PAGE_SIZE, page, VC_PAGE_SIZE);
            found[i] = TRUE;
            (*hits)++;
        }
    }
    return TRUE;
}

guint
kget_resolver_lookup(const VcPageHash *hashes, guint n, guint8 *pages,
                     gboolean *found, gpointer user_data)
{
    KgetResolver *r = user_data;
    guint hits = 0;

    for (guint done = 0; done < n && r->fd >= 0; done += DP_MAX_BATCH) {
        g_autoptr(GError) error = NULL;
        guint k = MIN(n - done, (guint)DP_MAX_BATCH);

        if (!lookup_batch(r, hashes + done, k,
                          pages + (gsize)done * VC_PAGE_SIZE, found + done,
                          &hits, &error)) {
            give_up(r, error);
        }
    }
    return hits;
}

void
kget_resolver_publish(const VcPageHash *hashes, const guint8 *const *pages,
                      guint n, gpointer user_data)
{
    KgetResolver *r = user_data;

    for (guint done = 0; done < n && r->fd >= 0; done += DP_MAX_BATCH) {
        g_autoptr(GByteArray) out = g_byte_array_new();
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;
        guint k = MIN(n - done, (guint)DP_MAX_BATCH);
        guint32 id = ++r->next_id;
        DpMsg m;

        dp_encode_publish(out, id, hashes + done, pages + done, k);
        if (!call(r, out, id, DP_REPLY(DP_MSG_PUBLISH), &m, &payload,
                  &error)) {
            give_up(r, error);
        } else if (m.rejected > 0) {
            g_debug("dht-pagesd at '%s' rejected %u of %u pages", r->path,
                    m.rejected, k);
        }
    }
}

void
kget_resolver_free(KgetResolver *r)
{
    if (!r) {
        return;
    }
    if (r->fd >= 0) {
        close(r->fd);
    }
    g_free(r->path);
    g_free(r);
}
