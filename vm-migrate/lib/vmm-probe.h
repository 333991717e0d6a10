/*
 * A probe of one VM during its migration: ICMP echo requests to the VM's
 * address every interval, from a thread of its own so that slow libvirt
 * calls never delay a probe. Guests answer echo requests in their kernel
 * and need nothing installed; ICMP, unlike a TCP or UDP probe, needs no
 * port open or closed on the guest.
 *
 * The socket is a datagram ICMP socket where net.ipv4.ping_group_range
 * allows it, else a raw one (root or CAP_NET_RAW), as ping(8) does.
 */
#pragma once

#include <glib.h>

#include "vmm-stall.h"

#define VMM_PROBE_INTERVAL_MS 10
#define VMM_PROBE_INTERVAL_MAX_MS 1000
/* After the migration: waited at most for an answer to a probe sent
 * since, and kept on probing once one came, to read the RTT there. */
#define VMM_PROBE_WAIT_MS 5000
#define VMM_PROBE_TAIL_MS 200
/* Then answers still due are waited for at most so long. */
#define VMM_PROBE_DRAIN_MS 1000

typedef struct VmmProbe VmmProbe;

/* TRUE if @text is an IPv4 or IPv6 address a probe can take. */
gboolean vmm_probe_address_valid(const char *text);

/*
 * Of a VM's addresses (NULL-terminated), the one to probe: the first
 * IPv4 address, else the first IPv6 one, neither loopback nor
 * link-local; NULL if none.
 */
const char *vmm_probe_address_pick(const char *const *addresses);

/* The MAC addresses of a domain's interfaces, from its XML. */
GStrv vmm_probe_macs_from_xml(const char *xml);

/*
 * In @table (the text of /proc/net/arp), the IPv4 address of a complete
 * entry for one of @macs (compared without case), or NULL.
 */
char *vmm_probe_arp_lookup(const char *table, const char *const *macs);

/* Open a socket to @address and start probing it every @interval_ms. */
VmmProbe *vmm_probe_start(const char *address, guint interval_ms,
                          GError **error);

/*
 * The migration ended at @end_us (monotonic): probe until a probe sent
 * since is answered (then VMM_PROBE_TAIL_MS more) or VMM_PROBE_WAIT_MS
 * passed, wait for the answers due, then call @done in @ctx once.
 */
void vmm_probe_finish(VmmProbe *probe, gint64 end_us, GMainContext *ctx,
                      GSourceFunc done, gpointer data);

/*
 * Once @done ran: wait for the thread, read what it saw into @stall (counters,
 * state, figures; @start_us is the migration's start) and free @probe.
 */
void vmm_probe_join(VmmProbe *probe, gint64 start_us, VmmStall *stall);
