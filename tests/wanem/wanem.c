/* wanem: a small WAN emulator relaying Ethernet frames between TAP devices.
 *
 *   wanem --port NETNS:IFNAME [--port ...] --control SOCK [--delay MS]
 *         [--rate MBIT] [--loss PCT] [--queue BYTES] [--pidfile F]
 *         [--die-with-parent]
 *   wanem ctl SOCK COMMAND...
 *
 * Each --port is a TAP device that wanem creates inside the network
 * namespace /run/netns/NETNS and brings up (no address: the caller
 * configures addresses). Two ports make a point-to-point link; more make a
 * learning hub. Every egress port has its own queue: a frame is serialised
 * at the rate (0 = unlimited), then held for the one-way delay, lost with
 * the given probability, tail-dropped when the bytes waiting for
 * serialisation would exceed the queue, and dropped while the link is cut.
 *
 * Control socket (unix stream, one line in, one line out):
 *   set [delay=MS] [rate=MBIT] [loss=PCT] [queue=BYTES]
 *   show | cut | restore | stats | quit
 * Replies start with "ok" or "error:".
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#define FRAME_MAX 65536
#define LINE_MAX_LEN 1024
#define MAX_PORTS 64
#define MAX_CLIENTS 64
/* Frames in flight per egress port, whatever the rate and delay. */
#define HELD_BYTES_MAX (256 * 1024 * 1024)
#define READ_BATCH 64

#define NSEC_PER_SEC G_GINT64_CONSTANT(1000000000)
#define NSEC_PER_MSEC G_GINT64_CONSTANT(1000000)

enum {
    KIND_TAP = 1,
    KIND_TIMER,
    KIND_SIGNAL,
    KIND_LISTEN,
    KIND_CLIENT,
};

typedef struct Frame Frame;
struct Frame {
    Frame *next;
    gint64 due;
    gsize len;
    guint8 data[];
};

typedef struct {
    guint64 rx_frames, rx_bytes, tx_frames, tx_bytes;
    guint64 drop_loss, drop_queue, drop_cut, drop_held, drop_error;
    /* How late queued frames left, against their due time. */
    guint64 late_sum_ns, late_max_ns, late_count;
} PortStats;

typedef struct {
    char *spec;
    int fd;
    /* Egress queue: FIFO, dues never decrease. */
    Frame *head, *tail;
    gsize held_bytes;
    gint64 next_free;
    gint64 last_due;
    PortStats st;
} Port;

typedef struct {
    int fd;
    gsize len;
    char buf[LINE_MAX_LEN];
} Client;

typedef struct {
    Port ports[MAX_PORTS];
    guint n_ports;
    int epfd, timerfd, sigfd, listenfd;
    gint64 armed;
    gboolean running;
    gboolean cut;
    gint64 delay_ns;
    double rate_mbit;
    double loss_pct;
    gint64 queue_bytes;
    gboolean queue_auto;
    GHashTable *macs;
    GHashTable *clients;
    GRand *rand;
    guint8 buf[FRAME_MAX];
} Wanem;

static char **arg_ports;
static char *arg_control;
static double arg_delay;
static double arg_rate;
static double arg_loss;
static gint64 arg_queue = -1;
static char *arg_pidfile;
static gboolean arg_die_with_parent;
static gboolean pidfile_written;

static gint64
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (gint64)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static void
auto_queue(Wanem *w)
{
    /* One bandwidth-delay product of the round trip, at least 64 KiB. */
    double bdp = w->rate_mbit * 1e6 / 8 * 2 * (double)w->delay_ns / 1e9;

    if (w->queue_auto) {
        w->queue_bytes = MAX((gint64)bdp, 64 * 1024);
    }
}

static gboolean
epoll_add(Wanem *w, int fd, guint32 kind, guint32 idx, GError **error)
{
    struct epoll_event ev = {
        .events = EPOLLIN,
        .data.u64 = ((guint64)kind << 32) | idx,
    };

    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "cannot watch fd %d: %s", fd, g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

/* Enter NETNS, create the TAP IFNAME there, bring it up, come back. */
static int
tap_open(const char *spec, int selfns, GError **error)
{
    g_autofree char *ns = NULL;
    g_autofree char *nspath = NULL;
    const char *colon = strchr(spec, ':');
    const char *ifname;
    struct ifreq ifr = {0};
    int nsfd, fd = -1, sock = -1;
    int saved;

    if (!colon || colon == spec || strchr(colon + 1, ':')) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "bad port '%s': expected NETNS:IFNAME", spec);
        return -1;
    }
    ns = g_strndup(spec, colon - spec);
    ifname = colon + 1;
    if (strchr(ns, '/') || strlen(ns) > 255 || *ifname == '\0' ||
        strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/')) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "bad port '%s': expected NETNS:IFNAME", spec);
        return -1;
    }

    nspath = g_build_filename("/run/netns", ns, NULL);
    nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "cannot open namespace '%s': %s", nspath,
                    g_strerror(errno));
        return -1;
    }
    if (setns(nsfd, CLONE_NEWNET) < 0) {
        saved = errno;
        close(nsfd);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot enter namespace '%s': %s", ns, g_strerror(saved));
        return -1;
    }
    close(nsfd);

    fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot open tap '%s': %s", spec, g_strerror(saved));
        goto out;
    }
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    g_strlcpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot create tap '%s': %s", spec, g_strerror(saved));
        goto fail;
    }

    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) {
        saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot read flags of tap '%s': %s", spec,
                    g_strerror(saved));
        goto fail;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) {
        saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot bring up tap '%s': %s", spec, g_strerror(saved));
        goto fail;
    }
    goto out;

fail:
    close(fd);
    fd = -1;
out:
    if (sock >= 0) {
        close(sock);
    }
    if (setns(selfns, CLONE_NEWNET) < 0) {
        g_error("cannot return to own namespace: %s", g_strerror(errno));
    }
    return fd;
}

static void
frame_free_list(Frame *f)
{
    while (f) {
        Frame *next = f->next;

        g_free(f);
        f = next;
    }
}

static void
port_flush(Port *p)
{
    for (Frame *f = p->head; f; f = f->next) {
        p->st.drop_cut++;
    }
    frame_free_list(p->head);
    p->head = p->tail = NULL;
    p->held_bytes = 0;
}

static void
port_write(Port *p, const guint8 *data, gsize len)
{
    ssize_t n = write(p->fd, data, len);

    if (n == (ssize_t)len) {
        p->st.tx_frames++;
        p->st.tx_bytes += len;
    } else {
        p->st.drop_error++;
    }
}

static void
timer_rearm(Wanem *w)
{
    gint64 next = G_MAXINT64;
    struct itimerspec its = {0};

    for (guint i = 0; i < w->n_ports; i++) {
        if (w->ports[i].head && w->ports[i].head->due < next) {
            next = w->ports[i].head->due;
        }
    }
    if (next == w->armed) {
        return;
    }
    w->armed = next;
    if (next != G_MAXINT64) {
        /* A zero value would disarm: a due in the past fires at once. */
        next = MAX(next, 1);
        its.it_value.tv_sec = next / NSEC_PER_SEC;
        its.it_value.tv_nsec = next % NSEC_PER_SEC;
    }
    if (timerfd_settime(w->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        g_error("cannot arm timer: %s", g_strerror(errno));
    }
}

/* Queue a frame for egress on port P, or send it at once when the link
 * adds neither delay nor serialisation and nothing waits before it. */
static void
port_enqueue(Wanem *w, Port *p, const guint8 *data, gsize len, gint64 now)
{
    gint64 start, due;
    Frame *f;

    if (w->cut) {
        p->st.drop_cut++;
        return;
    }
    if (w->loss_pct > 0 && g_rand_double(w->rand) * 100 < w->loss_pct) {
        p->st.drop_loss++;
        return;
    }
    start = MAX(now, p->next_free);
    if (w->rate_mbit > 0) {
        /* Bytes still waiting for serialisation, as a router queue. */
        double backlog = (double)(start - now) * w->rate_mbit / 8e3;

        if (backlog + len > (double)w->queue_bytes) {
            p->st.drop_queue++;
            return;
        }
        p->next_free = start + (gint64)(len * 8e3 / w->rate_mbit);
    } else {
        p->next_free = start;
    }
    due = MAX(p->next_free + w->delay_ns, p->last_due);
    if (!p->head && due <= now) {
        p->last_due = due;
        port_write(p, data, len);
        return;
    }
    if (p->held_bytes + len > HELD_BYTES_MAX) {
        p->st.drop_held++;
        return;
    }
    f = g_malloc(sizeof(*f) + len);
    f->next = NULL;
    f->due = due;
    f->len = len;
    memcpy(f->data, data, len);
    if (p->tail) {
        p->tail->next = f;
    } else {
        p->head = f;
    }
    p->tail = f;
    p->held_bytes += len;
    p->last_due = due;
}

static guint64
mac_key(const guint8 *mac)
{
    guint64 k = 0;

    for (int i = 0; i < 6; i++) {
        k = (k << 8) | mac[i];
    }
    return k;
}

static void
forward(Wanem *w, guint in, const guint8 *data, gsize len, gint64 now)
{
    if (w->n_ports == 2) {
        port_enqueue(w, &w->ports[1 - in], data, len, now);
        return;
    }
    if (w->n_ports > 2) {
        guint64 src = mac_key(data + 6);
        gpointer out;

        if (!(data[6] & 1)) {
            g_hash_table_insert(w->macs, g_memdup2(&src, sizeof(src)),
                                GUINT_TO_POINTER(in + 1));
        }
        if (!(data[0] & 1)) {
            guint64 dst = mac_key(data);

            out = g_hash_table_lookup(w->macs, &dst);
            if (out) {
                guint o = GPOINTER_TO_UINT(out) - 1;

                if (o != in) {
                    port_enqueue(w, &w->ports[o], data, len, now);
                }
                return;
            }
        }
        for (guint i = 0; i < w->n_ports; i++) {
            if (i != in) {
                port_enqueue(w, &w->ports[i], data, len, now);
            }
        }
    }
}

static void
tap_readable(Wanem *w, guint in)
{
    Port *p = &w->ports[in];

    for (int i = 0; i < READ_BATCH; i++) {
        ssize_t n = read(p->fd, w->buf, sizeof(w->buf));

        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                /* The namespace went away: stop watching, keep running. */
                g_printerr("wanem: cannot read tap '%s': %s\n", p->spec,
                           g_strerror(errno));
                epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->fd, NULL);
            }
            break;
        }
        if (n < 14) {
            continue;
        }
        p->st.rx_frames++;
        p->st.rx_bytes += n;
        forward(w, in, w->buf, n, now_ns());
    }
}

static void
timer_fired(Wanem *w)
{
    guint64 ticks;
    gint64 now = now_ns();

    if (read(w->timerfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN) {
        g_warning("cannot read timer: %s", g_strerror(errno));
    }
    for (guint i = 0; i < w->n_ports; i++) {
        Port *p = &w->ports[i];

        while (p->head && p->head->due <= now) {
            Frame *f = p->head;

            p->head = f->next;
            if (!p->head) {
                p->tail = NULL;
            }
            p->held_bytes -= f->len;
            p->st.late_sum_ns += now - f->due;
            p->st.late_max_ns = MAX(p->st.late_max_ns, (guint64)(now - f->due));
            p->st.late_count++;
            port_write(p, f->data, f->len);
            g_free(f);
        }
    }
    w->armed = -1;
}

static char *
cmd_stats(Wanem *w)
{
    g_autoptr(GString) s = g_string_new("ok");

    for (guint i = 0; i < w->n_ports; i++) {
        PortStats *st = &w->ports[i].st;

        g_string_append_printf(
            s,
            "%s port=%s rx_frames=%" G_GUINT64_FORMAT
            " rx_bytes=%" G_GUINT64_FORMAT " tx_frames=%" G_GUINT64_FORMAT
            " tx_bytes=%" G_GUINT64_FORMAT " drop_loss=%" G_GUINT64_FORMAT
            " drop_queue=%" G_GUINT64_FORMAT " drop_cut=%" G_GUINT64_FORMAT
            " drop_held=%" G_GUINT64_FORMAT " drop_error=%" G_GUINT64_FORMAT
            " late_avg_us=%" G_GUINT64_FORMAT " late_max_us=%" G_GUINT64_FORMAT,
            i ? ";" : "", w->ports[i].spec, st->rx_frames, st->rx_bytes,
            st->tx_frames, st->tx_bytes, st->drop_loss, st->drop_queue,
            st->drop_cut, st->drop_held, st->drop_error,
            st->late_count ? st->late_sum_ns / st->late_count / 1000 : 0,
            st->late_max_ns / 1000);
    }
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static char *
cmd_show(Wanem *w)
{
    return g_strdup_printf("ok delay=%g rate=%g loss=%g queue=%" G_GINT64_FORMAT
                           " cut=%d",
                           (double)w->delay_ns / NSEC_PER_MSEC, w->rate_mbit,
                           w->loss_pct, w->queue_bytes, w->cut ? 1 : 0);
}

static gboolean
parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v;

    if (!*s) {
        return FALSE;
    }
    errno = 0;
    v = g_ascii_strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi)) {
        return FALSE;
    }
    *out = v;
    return TRUE;
}

static char *
cmd_set(Wanem *w, char **argv)
{
    double delay = (double)w->delay_ns / NSEC_PER_MSEC;
    double rate = w->rate_mbit, loss = w->loss_pct;
    double queue = (double)w->queue_bytes;
    gboolean queue_set = FALSE;

    if (!argv[0]) {
        return g_strdup("error: set needs delay=MS, rate=MBIT, loss=PCT "
                        "or queue=BYTES");
    }
    for (guint i = 0; argv[i]; i++) {
        const char *a = argv[i];
        gboolean ok;

        if (g_str_has_prefix(a, "delay=")) {
            ok = parse_double(a + 6, 0, 60000, &delay);
        } else if (g_str_has_prefix(a, "rate=")) {
            ok = parse_double(a + 5, 0, 100000, &rate);
        } else if (g_str_has_prefix(a, "loss=")) {
            ok = parse_double(a + 5, 0, 100, &loss);
        } else if (g_str_has_prefix(a, "queue=")) {
            ok = parse_double(a + 6, 1514, 1 << 30, &queue);
            queue_set = TRUE;
        } else {
            ok = FALSE;
        }
        if (!ok) {
            return g_strdup_printf("error: bad setting '%s'", a);
        }
    }
    w->delay_ns = (gint64)(delay * NSEC_PER_MSEC);
    w->rate_mbit = rate;
    w->loss_pct = loss;
    if (queue_set) {
        w->queue_auto = FALSE;
        w->queue_bytes = (gint64)queue;
    }
    auto_queue(w);
    return cmd_show(w);
}

static char *
run_command(Wanem *w, char *line)
{
    g_auto(GStrv) argv = NULL;

    argv = g_strsplit_set(g_strstrip(line), " \t", -1);
    /* Collapse runs of blanks. */
    {
        guint j = 0;

        for (guint i = 0; argv[i]; i++) {
            if (*argv[i]) {
                argv[j++] = argv[i];
            } else {
                g_free(argv[i]);
            }
        }
        argv[j] = NULL;
    }
    if (!argv[0]) {
        return g_strdup("error: empty command");
    }
    if (g_str_equal(argv[0], "set")) {
        return cmd_set(w, argv + 1);
    }
    if (argv[1]) {
        return g_strdup_printf("error: '%s' takes no argument", argv[0]);
    }
    if (g_str_equal(argv[0], "show")) {
        return cmd_show(w);
    }
    if (g_str_equal(argv[0], "stats")) {
        return cmd_stats(w);
    }
    if (g_str_equal(argv[0], "cut")) {
        w->cut = TRUE;
        for (guint i = 0; i < w->n_ports; i++) {
            port_flush(&w->ports[i]);
        }
        return g_strdup("ok");
    }
    if (g_str_equal(argv[0], "restore")) {
        w->cut = FALSE;
        return g_strdup("ok");
    }
    if (g_str_equal(argv[0], "quit")) {
        w->running = FALSE;
        return g_strdup("ok");
    }
    return g_strdup_printf("error: unknown command '%s'", argv[0]);
}

static void
client_free(gpointer data)
{
    Client *c = data;

    close(c->fd);
    g_free(c);
}

static void
client_readable(Wanem *w, int fd)
{
    Client *c = g_hash_table_lookup(w->clients, GINT_TO_POINTER(fd));
    ssize_t n;
    char *nl;

    if (!c) {
        return;
    }
    n = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        g_hash_table_remove(w->clients, GINT_TO_POINTER(fd));
        return;
    }
    c->len += n;
    c->buf[c->len] = '\0';
    while ((nl = strchr(c->buf, '\n'))) {
        g_autofree char *reply = NULL;
        g_autofree char *out = NULL;
        gsize used = nl - c->buf + 1;

        *nl = '\0';
        reply = run_command(w, c->buf);
        out = g_strconcat(reply, "\n", NULL);
        /* Replies are short: a blocking peer gets them in one write. */
        if (write(fd, out, strlen(out)) < 0) {
            g_hash_table_remove(w->clients, GINT_TO_POINTER(fd));
            return;
        }
        memmove(c->buf, c->buf + used, c->len - used + 1);
        c->len -= used;
    }
    if (c->len >= sizeof(c->buf) - 1) {
        static const char msg[] = "error: line too long\n";

        if (write(fd, msg, sizeof(msg) - 1) < 0) {
            /* Closing anyway. */
        }
        g_hash_table_remove(w->clients, GINT_TO_POINTER(fd));
    }
}

static void
listen_readable(Wanem *w)
{
    int fd = accept4(w->listenfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    Client *c;
    g_autoptr(GError) error = NULL;

    if (fd < 0) {
        return;
    }
    if (g_hash_table_size(w->clients) >= MAX_CLIENTS ||
        !epoll_add(w, fd, KIND_CLIENT, fd, &error)) {
        close(fd);
        return;
    }
    c = g_new0(Client, 1);
    c->fd = fd;
    g_hash_table_insert(w->clients, GINT_TO_POINTER(fd), c);
}

static int
control_listen(const char *path, GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;
    int saved;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "control socket path '%s' is too long", path);
        return -1;
    }
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot create control socket: %s", g_strerror(saved));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 16) < 0) {
        saved = errno;
        close(fd);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot listen on control socket '%s': %s", path,
                    g_strerror(saved));
        return -1;
    }
    return fd;
}

static int
ctl_main(int argc, char **argv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 10};
    g_autofree char *cmd = NULL;
    g_autofree char *line = NULL;
    g_autoptr(GString) reply = g_string_new(NULL);
    int fd;
    char c;

    if (argc < 4) {
        g_printerr("wanem: usage: wanem ctl SOCKPATH COMMAND...\n");
        return 2;
    }
    if (strlen(argv[2]) >= sizeof(sa.sun_path)) {
        g_printerr("wanem: control socket path '%s' is too long\n", argv[2]);
        return 2;
    }
    g_strlcpy(sa.sun_path, argv[2], sizeof(sa.sun_path));
    cmd = g_strjoinv(" ", argv + 3);
    if (strchr(cmd, '\n') || strlen(cmd) >= LINE_MAX_LEN - 1) {
        g_printerr("wanem: bad command '%s'\n", cmd);
        return 2;
    }
    line = g_strconcat(cmd, "\n", NULL);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_printerr("wanem: cannot connect to '%s': %s\n", argv[2],
                   g_strerror(errno));
        return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
        g_printerr("wanem: cannot send to '%s': %s\n", argv[2],
                   g_strerror(errno));
        close(fd);
        return 1;
    }
    /* Byte by byte: replies are one short line and this is not hot. */
    for (;;) {
        ssize_t n = read(fd, &c, 1);

        if (n <= 0) {
            g_printerr("wanem: no reply from '%s'\n", argv[2]);
            close(fd);
            return 1;
        }
        if (c == '\n') {
            break;
        }
        if (reply->len < 1 << 20) {
            g_string_append_c(reply, c);
        }
    }
    close(fd);
    g_print("%s\n", reply->str);
    return g_str_has_prefix(reply->str, "ok") ? 0 : 1;
}

static gboolean
write_pidfile(const char *path, GError **error)
{
    g_autofree char *s = g_strdup_printf("%d\n", (int)getpid());

    if (!g_file_set_contents(path, s, -1, error)) {
        return FALSE;
    }
    pidfile_written = TRUE;
    return TRUE;
}

static gboolean
wanem_setup(Wanem *w, GError **error)
{
    g_autoptr(GError) local = NULL;
    sigset_t mask;
    int selfns;

    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (w->epfd < 0 || w->timerfd < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "cannot create event loop: %s", g_strerror(errno));
        return FALSE;
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    w->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (w->sigfd < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "cannot create signalfd: %s", g_strerror(errno));
        return FALSE;
    }
    if (arg_die_with_parent) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1) {
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                        "parent exited before start");
            return FALSE;
        }
    }
    /* Timer slack would add up to 50 us of jitter to every deadline. */
    prctl(PR_SET_TIMERSLACK, 1UL);

    selfns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (selfns < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "cannot open own namespace: %s", g_strerror(errno));
        return FALSE;
    }
    for (guint i = 0; arg_ports[i]; i++) {
        Port *p = &w->ports[i];

        p->spec = arg_ports[i];
        p->fd = tap_open(arg_ports[i], selfns, error);
        if (p->fd < 0) {
            close(selfns);
            return FALSE;
        }
        w->n_ports = i + 1;
        if (!epoll_add(w, p->fd, KIND_TAP, i, error)) {
            close(selfns);
            return FALSE;
        }
    }
    close(selfns);

    w->listenfd = control_listen(arg_control, error);
    if (w->listenfd < 0) {
        return FALSE;
    }
    if (!epoll_add(w, w->timerfd, KIND_TIMER, 0, error) ||
        !epoll_add(w, w->sigfd, KIND_SIGNAL, 0, error) ||
        !epoll_add(w, w->listenfd, KIND_LISTEN, 0, error)) {
        return FALSE;
    }
    if (arg_pidfile && !write_pidfile(arg_pidfile, &local)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                    "cannot write pidfile '%s': %s", arg_pidfile,
                    local->message);
        return FALSE;
    }
    return TRUE;
}

static void
wanem_loop(Wanem *w)
{
    struct epoll_event evs[32];

    w->running = TRUE;
    while (w->running) {
        int n;

        timer_rearm(w);
        n = epoll_wait(w->epfd, evs, G_N_ELEMENTS(evs), -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            g_error("cannot wait for events: %s", g_strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            guint32 kind = evs[i].data.u64 >> 32;
            guint32 idx = evs[i].data.u64 & 0xffffffff;

            switch (kind) {
            case KIND_TAP:
                tap_readable(w, idx);
                break;
            case KIND_TIMER:
                timer_fired(w);
                break;
            case KIND_SIGNAL:
                w->running = FALSE;
                break;
            case KIND_LISTEN:
                listen_readable(w);
                break;
            case KIND_CLIENT:
                client_readable(w, (int)idx);
                break;
            default:
                g_assert_not_reached();
            }
        }
    }
}

static void
wanem_free(Wanem *w)
{
    for (guint i = 0; i < w->n_ports; i++) {
        frame_free_list(w->ports[i].head);
        close(w->ports[i].fd);
    }
    g_clear_pointer(&w->clients, g_hash_table_destroy);
    g_clear_pointer(&w->macs, g_hash_table_destroy);
    g_clear_pointer(&w->rand, g_rand_free);
    if (w->listenfd >= 0) {
        close(w->listenfd);
        unlink(arg_control);
    }
    if (w->sigfd >= 0) {
        close(w->sigfd);
    }
    if (w->timerfd >= 0) {
        close(w->timerfd);
    }
    if (w->epfd >= 0) {
        close(w->epfd);
    }
    if (pidfile_written) {
        unlink(arg_pidfile);
    }
    g_free(w);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Wanem, wanem_free)

static GOptionEntry entries[] = {
    {"port", 'p', 0, G_OPTION_ARG_STRING_ARRAY, &arg_ports,
     "TAP to create in a namespace (repeat)", "NETNS:IFNAME"},
    {"control", 'c', 0, G_OPTION_ARG_FILENAME, &arg_control,
     "Control socket to listen on", "SOCKPATH"},
    {"delay", 'd', 0, G_OPTION_ARG_DOUBLE, &arg_delay,
     "One-way delay in milliseconds (default 0)", "MS"},
    {"rate", 'r', 0, G_OPTION_ARG_DOUBLE, &arg_rate,
     "Rate per direction in Mbit/s, 0 = unlimited (default)", "MBIT"},
    {"loss", 'l', 0, G_OPTION_ARG_DOUBLE, &arg_loss,
     "Frame loss in percent (default 0)", "PCT"},
    {"queue", 'q', 0, G_OPTION_ARG_INT64, &arg_queue,
     "Egress queue in bytes (default one round-trip BDP, >= 64 KiB)", "BYTES"},
    {"pidfile", 0, 0, G_OPTION_ARG_FILENAME, &arg_pidfile,
     "Write the PID here once the ports and socket are ready", "FILE"},
    {"die-with-parent", 0, 0, G_OPTION_ARG_NONE, &arg_die_with_parent,
     "Exit when the parent process exits", NULL},
    {NULL}};

static int
usage_error(const char *msg)
{
    g_printerr("wanem: %s\n", msg);
    return 2;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(Wanem) w = NULL;
    g_autofree char *msg = NULL;

    if (argc >= 2 && g_str_equal(argv[1], "ctl")) {
        return ctl_main(argc, argv);
    }

    ctx = g_option_context_new("- relay Ethernet frames between TAPs in "
                               "network namespaces, as a WAN");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(
        ctx, "Client mode: wanem ctl SOCKPATH COMMAND...\n"
             "Commands: set [delay=MS] [rate=MBIT] [loss=PCT] "
             "[queue=BYTES], show, cut, restore, stats, quit\n");
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        return usage_error(error->message);
    }
    if (argc > 1) {
        msg = g_strdup_printf("unexpected argument '%s'", argv[1]);
        return usage_error(msg);
    }
    if (!arg_ports || !arg_ports[0]) {
        return usage_error("at least one --port NETNS:IFNAME is needed");
    }
    if (g_strv_length(arg_ports) > MAX_PORTS) {
        msg = g_strdup_printf("too many ports '%u', at most '%d'",
                              g_strv_length(arg_ports), MAX_PORTS);
        return usage_error(msg);
    }
    if (!arg_control) {
        return usage_error("--control SOCKPATH is needed");
    }
    if (!(arg_delay >= 0 && arg_delay <= 60000)) {
        msg = g_strdup_printf("bad delay '%g': expected 0 to 60000 ms",
                              arg_delay);
        return usage_error(msg);
    }
    if (!(arg_rate >= 0 && arg_rate <= 100000)) {
        msg = g_strdup_printf("bad rate '%g': expected 0 to 100000 Mbit/s",
                              arg_rate);
        return usage_error(msg);
    }
    if (!(arg_loss >= 0 && arg_loss <= 100)) {
        msg = g_strdup_printf("bad loss '%g': expected 0 to 100 %%", arg_loss);
        return usage_error(msg);
    }
    if (arg_queue != -1 && (arg_queue < 1514 || arg_queue > (1 << 30))) {
        msg = g_strdup_printf("bad queue '%" G_GINT64_FORMAT
                              "': expected 1514 to 1073741824 bytes",
                              arg_queue);
        return usage_error(msg);
    }
    for (guint i = 0; arg_ports[i]; i++) {
        const char *c = strchr(arg_ports[i], ':');

        if (!c || c == arg_ports[i] || !c[1] || strchr(c + 1, ':') ||
            strlen(c + 1) >= IFNAMSIZ) {
            msg = g_strdup_printf("bad port '%s': expected NETNS:IFNAME",
                                  arg_ports[i]);
            return usage_error(msg);
        }
    }

    w = g_new0(Wanem, 1);
    w->epfd = w->timerfd = w->sigfd = w->listenfd = -1;
    w->armed = G_MAXINT64;
    w->delay_ns = (gint64)(arg_delay * NSEC_PER_MSEC);
    w->rate_mbit = arg_rate;
    w->loss_pct = arg_loss;
    w->queue_auto = arg_queue == -1;
    w->queue_bytes = arg_queue;
    auto_queue(w);
    w->macs = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    w->clients =
        g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, client_free);
    w->rand = g_rand_new();

    if (!wanem_setup(w, &error)) {
        g_printerr("wanem: %s\n", error->message);
        return 1;
    }
    wanem_loop(w);
    return 0;
}
