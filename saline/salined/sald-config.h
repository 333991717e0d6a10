/*
 * salined's configuration (/etc/saline/salined.conf, GKeyFile):
 *
 *   [salined]                  every key optional
 *   state-dir=/var/lib/saline  database and the output of ended jobs
 *   socket=/run/saline/saline.sock
 *   node-timeout=60            s a node may stay unreachable before its
 *                              jobs fail (or are requeued)
 *   output-size=64M            each VM's output drive
 *   virt-type=auto             kvm when the node offers it, else qemu
 *   emulator=                  QEMU binary on the nodes (libvirt's default)
 *
 *   [snapshots]                best-effort jobs' snapshots (Kget+, saline/kget)
 *   store=HOST[:PORT]          the site's kget-store; unset: no snapshots,
 *                              preempted best-effort jobs are killed
 *   key-file=/etc/kget/site.key    the store's key, here and on every node
 *   kget=kget                  the kget command on the nodes (QEMU runs it,
 *                              so their qemu.conf needs seccomp_sandbox=0)
 *   interval=600               s between snapshots, unless a job says
 *   keep=3                     snapshots kept per job
 *   timeout=600                s a snapshot or a redeploy may take
 *   on-failure=keep            a final snapshot that fails: keep the job
 *                              running (and try again), or kill it
 *   resolver=                  the nodes' dht-pagesd resolver socket
 *                              (/run/dht-pages/resolver.sock): a redeploy
 *                              takes RAM pages the site already holds from
 *                              there, only the rest from the store
 *
 *   [oar]                      OAR owns the nodes (saline/README.md, "OAR
 *                              mode"); without server= or command=,
 *                              salined's own scheduler places the jobs
 *   server=HOST                the OAR frontend: OAR's commands run there
 *                              through `ssh -o BatchMode=yes USER@HOST`
 *   command=                   or this argv prefix instead of ssh (split
 *                              as the shell would, no expansion)
 *   user=saline                the OAR user Saline's jobs belong to
 *   notify=ADDR:PORT           where salined listens for its OAR jobs'
 *                              scripts (the nodes must reach it)
 *   job-command=/usr/lib/saline/saline-oarjob   the OAR job's script, on
 *                              every node
 *   checkpoint=60              s of notice OAR gives best-effort jobs
 *   signal=12                  the notice's signal
 *   poll=5                     s between two looks at OAR's jobs
 *   timeout=30                 s an OAR command may take
 *   walltime-margin=300        s added to a job's walltime in OAR
 *
 *   [site NAME]                one per site: its address pool
 *   network=10.77.1.0/24
 *   range=10.77.1.100-10.77.1.199   (optional)
 *   gateway=10.77.1.254             (optional, never handed out)
 *
 *   [node NAME]                one per libvirt host
 *   site=NAME
 *   uri=qemu+tcp://10.77.1.1/system
 *   cpus=8
 *   memory=16G
 *   bridge=br0                 VMs' network
 *   pool-dir=/var/lib/saline/pool   overlays and output drives, on the node
 *
 *   [image NAME]               images jobs may ask for
 *   dir=/srv/saline/images/NAME     vmlinuz, initrd.img, disk.qcow2, on
 *                                   every node
 *
 * Unknown groups and keys are errors, so a typo never passes silently.
 */
#pragma once

#include "sal-node.h"

typedef struct {
    char *name;
    char *network;
    char *range;
    char *gateway;
} SaldSiteConf;

typedef struct {
    SalNode *node;
    char *bridge;
    char *pool_dir;
} SaldNodeConf;

typedef struct {
    char *name;
    char *dir;
} SaldImageConf;

typedef struct {
    char **command; /* argv prefix of OAR's commands */
    char *user;
    char *notify_host;
    guint16 notify_port;
    char *job_command;
    guint checkpoint_s;
    guint signal;
    guint poll_s;
    guint timeout_s;
    guint walltime_margin_s;
} SaldOarConf;

typedef enum {
    SALD_VIRT_AUTO,
    SALD_VIRT_KVM,
    SALD_VIRT_QEMU,
} SaldVirtType;

typedef struct {
    char *state_dir;
    char *socket_path;
    gint64 node_timeout_s;
    guint64 output_bytes;
    SaldVirtType virt_type;
    char *emulator; /* NULL: libvirt's default */
    char *kget_store; /* NULL: no snapshots */
    char *kget_key_file;
    char *kget_command;
    char *kget_resolver; /* NULL: pages come from the store only */
    gint64 snapshot_interval_s;
    guint snapshot_keep;
    guint snapshot_timeout_s;
    gboolean snapshot_failure_kills;
    SaldOarConf *oar; /* NULL: salined's own scheduler */
    GPtrArray *sites;  /* SaldSiteConf * */
    GPtrArray *nodes;  /* SaldNodeConf *, in file order */
    GPtrArray *images; /* SaldImageConf *, sorted by name */
} SaldConfig;

/* Without @path, the defaults (a grid of no node). */
SaldConfig *sald_config_load(const char *path, GError **error);
SaldConfig *sald_config_load_data(const char *data, const char *origin,
                                  GError **error);
void sald_config_free(SaldConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SaldConfig, sald_config_free)

const SaldNodeConf *sald_config_node(const SaldConfig *config,
                                     const char *name);
const SaldImageConf *sald_config_image(const SaldConfig *config,
                                       const char *name);
/* The SalNode *s of the configuration (borrowed), for the scheduler. */
GPtrArray *sald_config_sal_nodes(const SaldConfig *config);
