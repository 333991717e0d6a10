#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm-error.h"
#include "vmm-probe.h"

/* The data of each echo request, which the guest sends back as is. */
typedef struct {
    guint64 magic;
    guint64 cookie; /* this probe's: a raw socket sees every answer */
    guint64 index;
} Payload;

#define PAYLOAD_MAGIC G_GUINT64_CONSTANT(0x766d6d2d70726f62) /* vmm-prob */
#define IPV4_HEADER_MIN 20
#define RECV_MAX 512

struct VmmProbe {
    int fd;
    int family;
    gboolean raw; /* raw socket: IPv4 header in front, our own id */
    guint16 id;
    guint64 cookie;
    gint64 interval_us;
    GThread *thread;

    /* The thread's until it ended. */
    VmmEchoLog log;
    gint64 stop_us; /* when it stopped sending */

    GMutex lock;
    gint64 end_us; /* 0: the migration runs */
    GMainContext *ctx;
    GSourceFunc done;
    gpointer data;
};

static gboolean
parse_address(const char *text, struct sockaddr_storage *sa, socklen_t *len)
{
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

    memset(sa, 0, sizeof(*sa));
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        *len = sizeof(*in);
        return TRUE;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        *len = sizeof(*in6);
        return TRUE;
    }
    return FALSE;
}

gboolean
vmm_probe_address_valid(const char *text)
{
    struct sockaddr_storage sa;
    socklen_t len;

    return parse_address(text, &sa, &len);
}

/* Reachable from another host: not loopback, not link-local. */
static gboolean
address_routable(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET) {
        guint32 a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);

        return (a >> 24) != 127 && (a >> 16) != 0xa9fe && a != 0;
    }
    {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)sa)->sin6_addr;

        return !IN6_IS_ADDR_LOOPBACK(a) && !IN6_IS_ADDR_LINKLOCAL(a) &&
               !IN6_IS_ADDR_UNSPECIFIED(a) && !IN6_IS_ADDR_V4MAPPED(a);
    }
}

const char *
vmm_probe_address_pick(const char *const *addresses)
{
    const char *v6 = NULL;

    for (guint i = 0; addresses && addresses[i]; i++) {
        struct sockaddr_storage sa;
        socklen_t len;

        if (!parse_address(addresses[i], &sa, &len) || !address_routable(&sa)) {
            continue;
        }
        if (sa.ss_family == AF_INET) {
            return addresses[i];
        }
        if (!v6) {
            v6 = addresses[i];
        }
    }
    return v6;
}

GStrv
vmm_probe_macs_from_xml(const char *xml)
{
    g_autoptr(GRegex) re = g_regex_new(
        "<mac\\s+address\\s*=\\s*['\"]([0-9A-Fa-f:]{17})['\"]", 0, 0, NULL);
    g_autoptr(GMatchInfo) match = NULL;
    g_autoptr(GStrvBuilder) macs = g_strv_builder_new();

    g_regex_match(re, xml, 0, &match);
    while (g_match_info_matches(match)) {
        g_autofree char *mac = g_match_info_fetch(match, 1);

        g_strv_builder_add(macs, mac);
        g_match_info_next(match, NULL);
    }
    return g_strv_builder_end(macs);
}

/* /proc/net/arp: "IP address HW type Flags HW address Mask Device". */
#define ARP_FLAG_COMPLETE 0x2

char *
vmm_probe_arp_lookup(const char *table, const char *const *macs)
{
    g_auto(GStrv) lines = g_strsplit(table, "\n", -1);

    /* The title line has no flags field a number. */
    for (guint i = 0; lines[i]; i++) {
        g_auto(GStrv) f = g_strsplit_set(g_strstrip(lines[i]), " \t", -1);
        const char *field[4] = {NULL};
        guint n = 0;
        guint64 flags;

        for (guint j = 0; f[j] && n < G_N_ELEMENTS(field); j++) {
            if (*f[j]) {
                field[n++] = f[j];
            }
        }
        if (n < G_N_ELEMENTS(field)) {
            continue;
        }
        /* "0x2": strtoull takes the 0x with base 16. */
        flags = g_ascii_strtoull(field[2], NULL, 16);
        if (!(flags & ARP_FLAG_COMPLETE)) {
            continue;
        }
        for (guint j = 0; macs && macs[j]; j++) {
            const char *const one[] = {field[0], NULL};

            if (!g_ascii_strcasecmp(field[3], macs[j]) &&
                vmm_probe_address_pick(one)) {
                return g_strdup(field[0]);
            }
        }
    }
    return NULL;
}

/* A datagram ICMP socket if this group may open one, else a raw one. */
static int
open_socket(int family, gboolean *raw, GError **error)
{
    int proto = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    int fd, dgram_errno;

    fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
    if (fd >= 0) {
        *raw = FALSE;
        return fd;
    }
    dgram_errno = errno;
    fd = socket(family, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
    if (fd >= 0) {
        *raw = TRUE;
        return fd;
    }
    g_set_error(error, VMM_ERROR, VMM_ERROR_IO,
                "cannot open an ICMP socket: %s; run as root or let this "
                "group open ping sockets (sysctl net.ipv4.ping_group_range)",
                g_strerror(dgram_errno));
    return -1;
}

static guint16
checksum(const guint8 *data, gsize len)
{
    guint32 sum = 0;

    for (gsize i = 0; i + 1 < len; i += 2) {
        sum += (guint32)data[i] << 8 | data[i + 1];
    }
    if (len & 1) {
        sum += (guint32)data[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return htons((guint16)~sum);
}

static void
probe_send(VmmProbe *p)
{
    guint8 buf[sizeof(struct icmphdr) + sizeof(Payload)];
    struct icmphdr h = {0};
    Payload pl = {.magic = PAYLOAD_MAGIC, .cookie = p->cookie};

    pl.index = vmm_echo_log_sent(&p->log, g_get_monotonic_time());
    /* ICMPv6's echo header has the same layout. The kernel sets the id
     * of a datagram socket, and the checksum of ICMPv6. */
    h.type = p->family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
    h.un.echo.id = htons(p->id);
    h.un.echo.sequence = htons((guint16)pl.index);
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), &pl, sizeof(pl));
    if (p->family == AF_INET) {
        guint16 sum = checksum(buf, sizeof(buf));

        memcpy(buf + offsetof(struct icmphdr, checksum), &sum, sizeof(sum));
    }
    /* A probe that cannot leave (no route, no neighbour) is lost. */
    if (send(p->fd, buf, sizeof(buf), MSG_DONTWAIT) < 0) {
        g_debug("probe %" G_GUINT64_FORMAT ": %s", pl.index, g_strerror(errno));
    }
}

/* Read every answer waiting; anything else is skipped. */
static void
probe_recv(VmmProbe *p)
{
    guint8 buf[RECV_MAX];

    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
        gint64 now = g_get_monotonic_time();
        const guint8 *icmp = buf;
        gsize len = n > 0 ? (gsize)n : 0;
        struct icmphdr h;
        Payload pl;

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            /* EAGAIN, or an ICMP error the connected socket reports. */
            return;
        }
        if (p->raw && p->family == AF_INET) {
            gsize hl = len ? (gsize)(buf[0] & 0x0f) * 4 : 0;

            if (hl < IPV4_HEADER_MIN || hl > len) {
                continue;
            }
            icmp += hl;
            len -= hl;
        }
        if (len < sizeof(h) + sizeof(pl)) {
            continue;
        }
        memcpy(&h, icmp, sizeof(h));
        memcpy(&pl, icmp + sizeof(h), sizeof(pl));
        if (h.type !=
                (p->family == AF_INET ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY) ||
            (p->raw && ntohs(h.un.echo.id) != p->id) ||
            pl.magic != PAYLOAD_MAGIC || pl.cookie != p->cookie) {
            continue;
        }
        vmm_echo_log_answered(&p->log, pl.index, now);
    }
}

/* Wait for an answer until @until_us; read what came. */
static void
probe_wait(VmmProbe *p, gint64 until_us)
{
    gint64 left = MAX(until_us - g_get_monotonic_time(), 0);
    struct timespec ts = {
        .tv_sec = left / G_USEC_PER_SEC,
        .tv_nsec = (left % G_USEC_PER_SEC) * 1000,
    };
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};

    if (ppoll(&pfd, 1, &ts, NULL) > 0 && (pfd.revents & POLLIN)) {
        probe_recv(p);
    }
}

static gboolean
probe_ended(gpointer data)
{
    VmmProbe *p = data;

    return p->done(p->data);
}

static gpointer
probe_thread(gpointer data)
{
    VmmProbe *p = data;
    gint64 next = g_get_monotonic_time(), stop = G_MAXINT64, end_us = 0;
    guint64 tail_from = G_MAXUINT64;
    GSource *source;

    for (;;) {
        gint64 now = g_get_monotonic_time();

        if (!end_us) {
            g_mutex_lock(&p->lock);
            end_us = p->end_us;
            g_mutex_unlock(&p->lock);
            if (end_us) {
                vmm_echo_log_end(&p->log, end_us);
                stop = end_us + VMM_PROBE_WAIT_MS * 1000;
            }
        }
        if (end_us && tail_from == G_MAXUINT64 && p->log.answered_after) {
            tail_from = p->log.sent;
            stop = MIN(stop, now + VMM_PROBE_TAIL_MS * 1000);
        }
        if (now >= stop) {
            break;
        }
        if (now >= next) {
            probe_send(p);
            /* Late (a busy host): the next one an interval from now,
             * not a burst. */
            next = MAX(next + p->interval_us, now + p->interval_us / 2);
        }
        probe_wait(p, MIN(next, stop));
    }
    p->stop_us = g_get_monotonic_time();
    /* The answers to the last probes, sent when the VM answered again. */
    while (tail_from != G_MAXUINT64 &&
           vmm_echo_log_waiting(&p->log, tail_from) &&
           g_get_monotonic_time() < p->stop_us + VMM_PROBE_DRAIN_MS * 1000) {
        probe_wait(p, p->stop_us + VMM_PROBE_DRAIN_MS * 1000);
    }

    g_mutex_lock(&p->lock);
    source = g_idle_source_new();
    g_source_set_callback(source, probe_ended, p, NULL);
    g_source_attach(source, p->ctx);
    g_source_unref(source);
    g_mutex_unlock(&p->lock);
    return NULL;
}

VmmProbe *
vmm_probe_start(const char *address, guint interval_ms, GError **error)
{
    g_autofree VmmProbe *p = NULL;
    g_autoptr(GError) local = NULL;
    struct sockaddr_storage sa;
    socklen_t len;

    g_return_val_if_fail(
        interval_ms >= 1 && interval_ms <= VMM_PROBE_INTERVAL_MAX_MS, NULL);
    if (!parse_address(address, &sa, &len)) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "'%s' is not an IPv4 or IPv6 address", address);
        return NULL;
    }
    p = g_new0(VmmProbe, 1);
    p->family = sa.ss_family;
    p->fd = open_socket(p->family, &p->raw, error);
    if (p->fd < 0) {
        return NULL;
    }
    if (p->raw && p->family == AF_INET6) {
        struct icmp6_filter filter;

        ICMP6_FILTER_SETBLOCKALL(&filter);
        ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
        /* Only a saving: answers are checked anyway. */
        setsockopt(p->fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter,
                   sizeof(filter));
    }
    /* Connected: the socket takes answers from @address only. */
    if (connect(p->fd, (struct sockaddr *)&sa, len) < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_IO,
                    "cannot send probes to '%s': %s", address,
                    g_strerror(errno));
        close(p->fd);
        return NULL;
    }
    p->id = (guint16)g_random_int();
    p->cookie = (guint64)g_random_int() << 32 | g_random_int();
    p->interval_us = (gint64)interval_ms * 1000;
    vmm_echo_log_init(&p->log);
    g_mutex_init(&p->lock);
    p->thread = g_thread_try_new("probe", probe_thread, p, &local);
    if (!p->thread) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_IO,
                    "cannot start a probe thread: %s", local->message);
        g_mutex_clear(&p->lock);
        close(p->fd);
        return NULL;
    }
    return g_steal_pointer(&p);
}

void
vmm_probe_finish(VmmProbe *probe, gint64 end_us, GMainContext *ctx,
                 GSourceFunc done, gpointer data)
{
    g_mutex_lock(&probe->lock);
    probe->ctx = g_main_context_ref(ctx);
    probe->done = done;
    probe->data = data;
    probe->end_us = MAX(end_us, 1);
    g_mutex_unlock(&probe->lock);
}

void
vmm_probe_join(VmmProbe *probe, gint64 start_us, VmmStall *stall)
{
    g_thread_join(probe->thread);
    vmm_echo_log_summarize(&probe->log, start_us, probe->stop_us, stall);
    close(probe->fd);
    g_mutex_clear(&probe->lock);
    g_main_context_unref(probe->ctx);
    g_free(probe);
}
