/* Blocking frame I/O of dp-conn.c: scattered writes, and how each way a
 * stream can end is reported (the daemons act on the error codes). */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp-conn.h"
#include "vc-frame.h"

typedef struct {
    int fd;
    GByteArray *data;
    struct iovec *iov;
    gsize n_iov;
    gboolean splice;
    gboolean ok;
} Writer;

static gpointer
write_thread(gpointer p)
{
    Writer *w = p;

    if (w->splice) {
        int pipe_fds[2];

        g_assert_cmpint(pipe2(pipe_fds, O_CLOEXEC), ==, 0);
        w->ok = dp_splicev_all(w->fd, pipe_fds, w->iov, w->n_iov, NULL);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
    } else if (w->iov) {
        w->ok = dp_writev_all(w->fd, w->iov, w->n_iov, NULL);
    } else {
        w->ok = dp_write_all(w->fd, w->data->data, w->data->len, NULL);
    }
    close(w->fd);
    return NULL;
}

static void
socket_pair(int *a, int *b)
{
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    ==, 0);
    *a = sv[0];
    *b = sv[1];
}

/* More pieces than one sendmsg() takes and more bytes than the socket
 * buffers hold, so that writes are partial, some inside a piece; with
 * @splice, more than the pipe holds too. */
static void
write_pieces(gboolean splice)
{
    const gsize n = 3000;
    g_autofree struct iovec *iov = g_new(struct iovec, n);
    g_autoptr(GByteArray) want = g_byte_array_new();
    g_autoptr(GByteArray) got = g_byte_array_new();
    Writer w = {0};
    GThread *t;
    guint8 buf[65536];
    ssize_t r;
    int rfd;

    for (gsize i = 0; i < n; i++) {
        gsize len = 1 + (i * 37) % 3000;
        gsize at = want->len;

        g_byte_array_set_size(want, at + len);
        for (gsize j = 0; j < len; j++) {
            want->data[at + j] = (guint8)(i + j);
        }
    }
    for (gsize i = 0, at = 0; i < n; i++) {
        gsize len = 1 + (i * 37) % 3000;

        iov[i] = (struct iovec){want->data + at, len};
        at += len;
    }
    socket_pair(&w.fd, &rfd);
    w.iov = iov;
    w.n_iov = n;
    w.splice = splice;
    t = g_thread_new("writer", write_thread, &w);
    while ((r = read(rfd, buf, sizeof(buf))) > 0) {
        g_byte_array_append(got, buf, (guint)r);
    }
    g_thread_join(t);
    close(rfd);
    g_assert_true(w.ok);
    g_assert_cmpmem(got->data, got->len, want->data, want->len);
}

static void
test_writev_all(void)
{
    write_pieces(FALSE);
}

static void
test_splicev_all(void)
{
    write_pieces(TRUE);
}

/* What a spliced frame's sender must wait for before it changes the
 * pages: the peer has read them all. */
static void
test_unread_bytes(void)
{
    g_autofree guint8 *page = g_malloc(VC_PAGE_SIZE);
    g_autofree guint8 *got = g_malloc(VC_PAGE_SIZE);
    struct iovec iov = {page, VC_PAGE_SIZE};
    int pipe_fds[2], wfd, rfd;
    gsize unread = 0;

    memset(page, 0x5a, VC_PAGE_SIZE);
    socket_pair(&wfd, &rfd);
    g_assert_cmpint(pipe2(pipe_fds, O_CLOEXEC), ==, 0);
    g_assert_true(dp_splicev_all(wfd, pipe_fds, &iov, 1, NULL));
    g_assert_true(dp_unread_bytes(wfd, &unread, NULL));
    g_assert_cmpuint(unread, >, 0);
    g_assert_cmpint(read(rfd, got, VC_PAGE_SIZE), ==, VC_PAGE_SIZE);
    g_assert_cmpmem(got, VC_PAGE_SIZE, page, VC_PAGE_SIZE);
    g_assert_true(dp_unread_bytes(wfd, &unread, NULL));
    g_assert_cmpuint(unread, ==, 0);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    close(wfd);
    close(rfd);
}

/* Frames one after the other, then a clean end. */
static void
test_msg_read(void)
{
    g_autoptr(GByteArray) stream = g_byte_array_new();
    g_autofree guint8 *pages = g_malloc(3 * VC_PAGE_SIZE);
    const guint8 *ptrs[3];
    VcPageHash hashes[5];
    Writer w = {0};
    GThread *t;
    DpMsg m;
    int rfd;

    memset(hashes, 0xab, sizeof(hashes));
    for (guint i = 0; i < 3; i++) {
        memset(pages + i * VC_PAGE_SIZE, (int)i + 1, VC_PAGE_SIZE);
        ptrs[i] = i == 1 ? NULL : pages + i * VC_PAGE_SIZE;
    }
    dp_encode_pages_reply(stream, DP_REPLY(DP_MSG_PAGE_GET), 9, ptrs, 3);
    dp_encode_hashes(stream, DP_MSG_LOOKUP, 10, hashes, 5);
    socket_pair(&w.fd, &rfd);
    w.data = stream;
    t = g_thread_new("writer", write_thread, &w);
    {
        g_autoptr(GBytes) payload = NULL;

        g_assert_true(dp_msg_read(rfd, &m, &payload, NULL));
        g_assert_cmpuint(m.type, ==, DP_REPLY(DP_MSG_PAGE_GET));
        g_assert_cmpuint(m.n_hits, ==, 2);
        g_assert_cmpmem(dp_msg_reply_page(&m, 2), VC_PAGE_SIZE,
                        pages + 2 * VC_PAGE_SIZE, VC_PAGE_SIZE);
    }
    {
        g_autoptr(GBytes) payload = NULL;

        g_assert_true(dp_msg_read(rfd, &m, &payload, NULL));
        g_assert_cmpuint(m.type, ==, DP_MSG_LOOKUP);
        g_assert_cmpuint(m.id, ==, 10);
        g_assert_cmpuint(m.count, ==, 5);
        g_assert_cmpmem(m.hashes, sizeof(hashes), hashes, sizeof(hashes));
    }
    {
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;

        g_assert_false(dp_msg_read(rfd, &m, &payload, &error));
        g_assert_error(error, DP_ERROR, DP_ERROR_IO);
    }
    g_thread_join(t);
    close(rfd);
    g_assert_true(w.ok);
}

static void
expect_read_error(const guint8 *bytes, gsize len, gint code)
{
    g_autoptr(GByteArray) stream = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    g_autoptr(GError) error = NULL;
    Writer w = {0};
    GThread *t;
    DpMsg m;
    int rfd;

    g_byte_array_append(stream, bytes, (guint)len);
    socket_pair(&w.fd, &rfd);
    w.data = stream;
    t = g_thread_new("writer", write_thread, &w);
    g_assert_false(dp_msg_read(rfd, &m, &payload, &error));
    g_assert_error(error, DP_ERROR, code);
    g_thread_join(t);
    close(rfd);
}

static void
test_msg_read_errors(void)
{
    /* Closed inside a header, inside a payload; a length over the
     * limit; a whole frame that does not decode; closed between frames. */
    static const guint8 short_header[] = {0, 0};
    static const guint8 short_payload[] = {0, 0, 0, 0x30, 1, 1, 0, 0};
    static const guint8 too_large[] = {0xff, 0xff, 0xff, 0xff};
    static const guint8 bad_version[] = {0, 0, 0, 8, 9, 3, 0, 0, 0, 0, 0, 1};

    expect_read_error(short_header, sizeof(short_header), DP_ERROR_PROTOCOL);
    expect_read_error(short_payload, sizeof(short_payload), DP_ERROR_PROTOCOL);
    expect_read_error(too_large, sizeof(too_large), DP_ERROR_LIMIT);
    expect_read_error(bad_version, sizeof(bad_version), DP_ERROR_VERSION);
    expect_read_error(NULL, 0, DP_ERROR_IO);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/conn/writev-all", test_writev_all);
    g_test_add_func("/conn/splicev-all", test_splicev_all);
    g_test_add_func("/conn/unread-bytes", test_unread_bytes);
    g_test_add_func("/conn/msg-read", test_msg_read);
    g_test_add_func("/conn/msg-read-errors", test_msg_read_errors);
    return g_test_run();
}
