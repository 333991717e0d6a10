/*
 * salguest: runs a Saline job's command inside its VM.
 *
 * The guest's init starts it when QEMU hands over the fw_cfg item
 * opt/org.saline/job (the job spec). It implements the guest side of the
 * contract in saline/README.md, "Guest contract": it configures the VM
 * from the spec (host name, eth0, the node file), mounts the job disk
 * vda on /job, runs the command with its output on one pipe, stores that
 * output and the exit status on the output drive vdb, and powers the VM
 * off. Anything that keeps the command from starting ends with exit
 * status 127 and the reason as the output.
 *
 * An SSI job (saline/README.md, "SSI jobs") runs in a virtual SSI
 * cluster of the job's VMs: salguest writes ssid's configuration, VM 0
 * starts ssid, waits for every member and runs the command through
 * `ssi run`; the other VMs run ssid as their command.
 *
 * Each step is one line on the console, so the serial log tells what
 * happened. Statically linked and libc only: the guest has only busybox.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SPEC_DIR "/sys/firmware/qemu_fw_cfg/by_name/opt/org.saline/job"
#define SPEC_PATH SPEC_DIR "/raw"
#define SPEC_SIZE_PATH SPEC_DIR "/size"
#define SPEC_MAGIC "saline-job 1"
#define JOB_DISK "/dev/vda"
#define JOB_DIR "/job"
#define JOB_FSTYPE "ext4"
#define OUTPUT_DRIVE "/dev/vdb"
#define NODEFILE_DIR "/run/saline"
#define NODEFILE NODEFILE_DIR "/nodefile"
#define IFACE "eth0"
#define IP_TOOL "/bin/ip"
#define COMMAND_PATH "/bin:/sbin:/usr/bin:/usr/sbin"
/* SSI jobs: the parts of a Saline SSI image (ssi-guest/README.md). */
#define SSID "/sbin/ssid"
#define SSI_CLI "/bin/ssi"
#define SSI_ENV "/bin/env"
#define SSID_CONF_DIR "/etc/ssi"
#define SSID_CONF SSID_CONF_DIR "/ssid.conf"
#define SSI_VIEW "/proc/ssi/nodes"
#define SSI_KEY_LEN 64
#define SSI_CLUSTER_MAX 32
/* Under TCG the VMs of a job boot one after another on busy nodes. */
#define SSI_FORM_S 180
/* Arguments the SSI wrapper adds before the command's own. */
#define SSI_WRAP_ARGS 8

/* Bounds of the spec; the last two are salcore's SAL_MAX_ARGS and
 * SAL_MAX_VMS (sal-job.h): salined never sends more. */
#define MAX_SPEC (1024 * 1024)
#define MAX_ARGS 256
#define MAX_VMS 1024
#define MAX_ID_LEN 64
#define MAX_HOSTNAME_LEN 63

/* The output drive (saline/README.md, "Output drive format"). */
#define HEADER_SIZE 512
#define DATA_OFFSET 4096

#define EXIT_NOT_STARTED 127
#define HEADER_INTERVAL_MS 1000
/* How long the pipe may stay open once the command exited: grandchildren
 * that hold it (a daemon the command started) do not keep the VM up. */
#define DRAIN_MS 1000
/* Devices of modules init loaded may show up a little later. */
#define DEVICE_WAIT_MS 3000

typedef struct {
    char *job;
    unsigned vm;
    unsigned vms;
    char *hostname;
    char *ip;      /* a.b.c.d/prefix */
    char *gateway; /* "" for none */
    char *peers[MAX_VMS];
    unsigned n_peers;
    char *argv[MAX_ARGS + SSI_WRAP_ARGS + 1];
    unsigned argc;
    bool ssi;
    char *ssi_cluster;
    char *ssi_key;
} Spec;

typedef struct {
    int fd;
    uint64_t capacity; /* bytes of output the drive holds */
    uint64_t length;
    bool truncated;
} Output;

static int console_fd = STDERR_FILENO;
/* Why the command could not start: the output of a 127 exit. */
static char reason[1024];

static void log_step(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
log_step(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    n = snprintf(line, sizeof(line), "salguest: ");
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(console_fd, line, (size_t)n) < 0) {
        /* Nowhere else to say it. */
    }
}

/* Records why the job cannot start; returns -1 for the caller to pass
 * on. */
static int
fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return -1;
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Waits for the device node @path to appear. */
static bool
wait_device(const char *path)
{
    struct stat st;

    for (int64_t end = now_ms() + DEVICE_WAIT_MS; now_ms() < end;) {
        if (stat(path, &st) == 0) {
            return true;
        }
        sleep_ms(50);
    }
    return stat(path, &st) == 0;
}

static int
pwrite_all(int fd, const void *buf, size_t len, uint64_t offset)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

/* The spec ----------------------------------------------------------- */

/* The size fw_cfg announces: fw_cfg reads a byte at a time, and a
 * spec too large is refused without reading it. */
static bool
spec_too_large(void)
{
    FILE *f = fopen(SPEC_SIZE_PATH, "re");
    unsigned long long size = 0;
    bool large;

    if (!f) {
        return false;
    }
    large = fscanf(f, "%llu", &size) == 1 && size > MAX_SPEC;
    fclose(f);
    return large;
}

/* Reads the spec, at most MAX_SPEC bytes, as a C string. NULL if it
 * cannot be read (errno set) or is refused (reason set, errno 0). */
static char *
spec_read(size_t *len)
{
    int fd = open(SPEC_PATH, O_RDONLY | O_CLOEXEC);
    char *buf;
    size_t got = 0;

    if (fd < 0) {
        return NULL;
    }
    if (spec_too_large()) {
        close(fd);
        fail("job spec is larger than %d bytes", MAX_SPEC);
        errno = 0;
        return NULL;
    }
    buf = malloc(MAX_SPEC + 1);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, MAX_SPEC + 1 - got);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;

            close(fd);
            free(buf);
            errno = e;
            return NULL;
        }
        got += (size_t)n;
        if (n == 0 || got > MAX_SPEC) {
            break;
        }
    }
    close(fd);
    if (got > MAX_SPEC) {
        free(buf);
        fail("job spec is larger than %d bytes", MAX_SPEC);
        errno = 0;
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

static int
base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Decodes canonical base64 (padded, no stray bits) in place into a C
 * string; a NUL byte, which no argument can hold, is refused too. */
static bool
base64_decode(char *text)
{
    size_t len = strlen(text), out = 0;

    if (len % 4 != 0) {
        return false;
    }
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;

        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)text[i + j];

            if (c == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad > 0 || (v[j] = base64_value(c)) < 0) {
                return false;
            }
        }
        if ((pad == 2 && (v[1] & 0x0f)) || (pad == 1 && (v[2] & 0x03))) {
            return false;
        }
        unsigned bits = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        char bytes[3] = {(char)(bits >> 16), (char)(bits >> 8), (char)bits};

        for (int j = 0; j < 3 - pad; j++) {
            if (bytes[j] == '\0') {
                return false;
            }
            text[out++] = bytes[j];
        }
    }
    text[out] = '\0';
    return true;
}

static bool
parse_uint(const char *s, unsigned max, unsigned *value)
{
    unsigned long v = 0;

    if (!*s || (s[0] == '0' && s[1])) {
        return false;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max) {
            return false;
        }
    }
    *value = (unsigned)v;
    return true;
}

static bool
valid_ipv4(const char *s)
{
    struct in_addr a;

    return inet_pton(AF_INET, s, &a) == 1;
}

/* a.b.c.d/prefix, prefix 1..32. */
static bool
valid_cidr(const char *s)
{
    const char *slash = strchr(s, '/');
    char addr[INET_ADDRSTRLEN];
    unsigned prefix;

    if (!slash || (size_t)(slash - s) >= sizeof(addr)) {
        return false;
    }
    memcpy(addr, s, (size_t)(slash - s));
    addr[slash - s] = '\0';
    return valid_ipv4(addr) && parse_uint(slash + 1, 32, &prefix) &&
           prefix >= 1;
}

/* 1..@max of [A-Za-z0-9-], not starting with '-', plus @extra. */
static bool
valid_name(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);

    if (n == 0 || n > max || s[0] == '-') {
        return false;
    }
    for (; *s; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || *s == '-' || strchr(extra, *s);

        if (!ok) {
            return false;
        }
    }
    return true;
}

/* The keys of an SSI job: ssid's cluster name ([a-z0-9-]{1,32}) and
 * key (64 hex digits). */
static int
ssi_spec_check(const Spec *spec)
{
    const char *c = spec->ssi_cluster, *k = spec->ssi_key;

    if (!c || !*c || strlen(c) > SSI_CLUSTER_MAX ||
        strspn(c, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(c)) {
        return fail("job spec: missing or invalid 'ssi_cluster'");
    }
    if (!k || strlen(k) != SSI_KEY_LEN ||
        strspn(k, "0123456789abcdefABCDEF") != SSI_KEY_LEN) {
        return fail("job spec: 'ssi_key' is not %d hex digits", SSI_KEY_LEN);
    }
    return 0;
}

/* Parses @text (modified in place: the spec's strings point into it). */
static int
spec_parse(char *text, size_t len, Spec *spec)
{
    char *vm = NULL, *vms = NULL, *ssi = NULL;
    const struct {
        const char *key;
        char **value;
    } single[] = {
        {"job", &spec->job},
        {"vm", &vm},
        {"vms", &vms},
        {"hostname", &spec->hostname},
        {"ip", &spec->ip},
        {"gateway", &spec->gateway},
        {"ssi", &ssi},
        {"ssi_cluster", &spec->ssi_cluster},
        {"ssi_key", &spec->ssi_key},
    };
    char *line, *next;
    unsigned n = 0;

    if (strlen(text) != len) {
        return fail("job spec holds a NUL byte");
    }
    memset(spec, 0, sizeof(*spec));
    for (line = text; line; line = next) {
        char *value;

        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        n++;
        if (n == 1) {
            if (strcmp(line, SPEC_MAGIC) != 0) {
                return fail("job spec does not start with '%s'", SPEC_MAGIC);
            }
            continue;
        }
        if (!*line) {
            continue;
        }
        value = strchr(line, '=');
        if (!value) {
            return fail("job spec line %u has no '='", n);
        }
        *value++ = '\0';
        if (strcmp(line, "arg") == 0) {
            if (spec->argc == MAX_ARGS) {
                return fail("job spec has more than %d arguments", MAX_ARGS);
            }
            if (!base64_decode(value)) {
                return fail("job spec line %u: argument %u is not valid "
                            "base64 of a string",
                            n, spec->argc);
            }
            spec->argv[spec->argc++] = value;
        } else if (strcmp(line, "peer") == 0) {
            if (spec->n_peers == MAX_VMS) {
                return fail("job spec has more than %d peers", MAX_VMS);
            }
            if (!valid_ipv4(value)) {
                return fail("job spec line %u: invalid peer address", n);
            }
            spec->peers[spec->n_peers++] = value;
        } else {
            /* Other keys come from a newer salined: ignored. */
            for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
                if (strcmp(line, single[i].key) != 0) {
                    continue;
                }
                if (*single[i].value) {
                    return fail("job spec line %u: '%s' given twice", n, line);
                }
                *single[i].value = value;
                break;
            }
        }
    }

    if (!spec->job || !valid_name(spec->job, MAX_ID_LEN, "._")) {
        return fail("job spec: missing or invalid 'job'");
    }
    if (!vms || !parse_uint(vms, MAX_VMS, &spec->vms) || spec->vms == 0) {
        return fail("job spec: 'vms' is not 1..%d", MAX_VMS);
    }
    if (!vm || !parse_uint(vm, spec->vms - 1, &spec->vm)) {
        return fail("job spec: 'vm' is not 0..%u", spec->vms - 1);
    }
    if (!spec->hostname || !valid_name(spec->hostname, MAX_HOSTNAME_LEN, "")) {
        return fail("job spec: missing or invalid 'hostname'");
    }
    if (!spec->ip || !valid_cidr(spec->ip)) {
        return fail("job spec: 'ip' is not an address/prefix");
    }
    if (!spec->gateway) {
        spec->gateway = "";
    }
    if (spec->gateway[0] && !valid_ipv4(spec->gateway)) {
        return fail("job spec: invalid 'gateway'");
    }
    if (spec->n_peers != spec->vms) {
        return fail("job spec: %u peers for %u VMs", spec->n_peers, spec->vms);
    }
    if (spec->argc == 0) {
        return fail("job spec has no command");
    }
    spec->argv[spec->argc] = NULL;
    if (ssi && strcmp(ssi, "0") != 0 && strcmp(ssi, "1") != 0) {
        return fail("job spec: 'ssi' is not 0 or 1");
    }
    spec->ssi = ssi && strcmp(ssi, "1") == 0;
    if (spec->ssi) {
        return ssi_spec_check(spec);
    }
    return 0;
}

/* The VM -------------------------------------------------------------- */

/* Runs IP_TOOL with @args (NULL-terminated, without argv[0]). */
static int
run_ip(const char *const *args)
{
    const char *argv[16] = {"ip"};
    size_t n = 1;
    pid_t pid;
    int status;

    for (; *args && n < sizeof(argv) / sizeof(argv[0]) - 1; args++) {
        argv[n++] = *args;
    }
    argv[n] = NULL;
    pid = fork();
    if (pid < 0) {
        return fail("cannot fork: %s", strerror(errno));
    }
    if (pid == 0) {
        execv(IP_TOOL, (char *const *)argv);
        _exit(EXIT_NOT_STARTED);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return fail("cannot wait for '%s': %s", IP_TOOL, strerror(errno));
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char cmd[256] = "";
        size_t off = 0;

        for (size_t i = 1; i < n && off < sizeof(cmd); i++) {
            off +=
                (size_t)snprintf(cmd + off, sizeof(cmd) - off, " %s", argv[i]);
        }
        return fail("'ip%s' failed", cmd);
    }
    return 0;
}

static int
configure_network(const Spec *spec)
{
    const char *addr[] = {"addr", "add", spec->ip, "dev", IFACE, NULL};
    const char *up[] = {"link", "set", IFACE, "up", NULL};
    const char *route[] = {"route",       "add", "default", "via",
                           spec->gateway, "dev", IFACE,     NULL};

    if (run_ip(addr) < 0 || run_ip(up) < 0 ||
        (spec->gateway[0] && run_ip(route) < 0)) {
        return -1;
    }
    return 0;
}

static int
write_nodefile(const Spec *spec)
{
    FILE *f;
    bool ok = true;

    if (mkdir(NODEFILE_DIR, 0755) < 0 && errno != EEXIST) {
        return fail("cannot create '%s': %s", NODEFILE_DIR, strerror(errno));
    }
    f = fopen(NODEFILE, "we");
    if (!f) {
        return fail("cannot create '%s': %s", NODEFILE, strerror(errno));
    }
    for (unsigned i = 0; i < spec->n_peers; i++) {
        ok = ok && fprintf(f, "%s\n", spec->peers[i]) > 0;
    }
    if (fclose(f) != 0 || !ok) {
        return fail("cannot write '%s'", NODEFILE);
    }
    return 0;
}

static int
mount_job_disk(void)
{
    if (!wait_device(JOB_DISK)) {
        return fail("no job disk '%s'", JOB_DISK);
    }
    if (mkdir(JOB_DIR, 0755) < 0 && errno != EEXIST) {
        return fail("cannot create '%s': %s", JOB_DIR, strerror(errno));
    }
    if (mount(JOB_DISK, JOB_DIR, JOB_FSTYPE, 0, NULL) < 0) {
        return fail("cannot mount '%s' (%s) on '%s': %s", JOB_DISK, JOB_FSTYPE,
                    JOB_DIR, strerror(errno));
    }
    return 0;
}

/* SSI jobs ------------------------------------------------------------ */

/* /etc/ssi/ssid.conf, root only: it holds the cluster's key. VM 0
 * founds the cluster, the others join through it. */
static int
ssi_write_conf(const Spec *spec)
{
    char addr[INET_ADDRSTRLEN] = "";
    size_t alen = strcspn(spec->ip, "/");
    char text[512];
    int fd, n;

    memcpy(addr, spec->ip, alen < sizeof(addr) ? alen : sizeof(addr) - 1);
    n = snprintf(text, sizeof(text),
                 "cluster=%s\nkey=%s\naddress=%s\njoin=%s\n", spec->ssi_cluster,
                 spec->ssi_key, addr, spec->vm == 0 ? "found" : spec->peers[0]);
    if (mkdir(SSID_CONF_DIR, 0755) < 0 && errno != EEXIST) {
        return fail("cannot create '%s': %s", SSID_CONF_DIR, strerror(errno));
    }
    fd = open(SSID_CONF, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return fail("cannot create '%s': %s", SSID_CONF, strerror(errno));
    }
    if (fchmod(fd, 0600) < 0 || pwrite_all(fd, text, (size_t)n, 0) < 0) {
        close(fd);
        return fail("cannot write '%s': %s", SSID_CONF, strerror(errno));
    }
    close(fd);
    return 0;
}

/* Starts ssid in the background, its output on the console. */
static pid_t
ssi_start_ssid(void)
{
    pid_t pid = fork();

    if (pid < 0) {
        fail("cannot fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int null_fd = open("/dev/null", O_RDONLY);

        setsid();
        if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
            dup2(console_fd, STDOUT_FILENO) < 0 ||
            dup2(console_fd, STDERR_FILENO) < 0 || clearenv() != 0 ||
            setenv("PATH", COMMAND_PATH, 1) < 0) {
            _exit(EXIT_NOT_STARTED);
        }
        execl(SSID, "ssid", "--config", SSID_CONF, (char *)NULL);
        _exit(EXIT_NOT_STARTED);
    }
    return pid;
}

/* Members `up` in the kernel's view (ssi.ko), -1 without one. */
static int
ssi_members_up(void)
{
    FILE *f = fopen(SSI_VIEW, "re");
    char line[256];
    int up = 0;

    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        unsigned id;
        char addr[64], state[16];

        if (sscanf(line, "%u %63s %15s", &id, addr, state) == 3 &&
            strcmp(state, "up") == 0) {
            up++;
        }
    }
    fclose(f);
    return up;
}

/* VM 0: until every VM of the job is a member, bounded. */
static int
ssi_wait_formed(const Spec *spec, pid_t ssid)
{
    int64_t end = now_ms() + SSI_FORM_S * 1000;
    int up = 0, status;

    for (;;) {
        if (waitpid(ssid, &status, WNOHANG) == ssid) {
            return fail("ssid exited with status %d before the SSI cluster "
                        "'%s' was formed",
                        WIFEXITED(status) ? WEXITSTATUS(status)
                                          : 128 + WTERMSIG(status),
                        spec->ssi_cluster);
        }
        up = ssi_members_up();
        if (up >= (int)spec->vms) {
            return 0;
        }
        if (now_ms() >= end) {
            break;
        }
        sleep_ms(500);
    }
    if (up < 0) {
        return fail("SSI cluster '%s' not formed: no '%s' (ssi.ko not "
                    "loaded)",
                    spec->ssi_cluster, SSI_VIEW);
    }
    return fail("SSI cluster '%s' not formed: %d of %u members up after %d s",
                spec->ssi_cluster, up, spec->vms, SSI_FORM_S);
}

/* The command VM 0 runs: `ssi run -- env SALINE_...=... COMMAND`; the
 * other VMs run ssid. */
static int
ssi_wrap_command(Spec *spec)
{
    static char job[MAX_ID_LEN + 32], vms[32];
    char *wrap[SSI_WRAP_ARGS];
    unsigned n = 0;

    if (spec->vm != 0) {
        spec->argv[0] = (char *)SSID;
        spec->argv[1] = (char *)"--config";
        spec->argv[2] = (char *)SSID_CONF;
        spec->argv[3] = NULL;
        spec->argc = 3;
        return 0;
    }
    snprintf(job, sizeof(job), "SALINE_JOB_ID=%s", spec->job);
    snprintf(vms, sizeof(vms), "SALINE_VMS=%u", spec->vms);
    wrap[n++] = (char *)SSI_CLI;
    wrap[n++] = (char *)"run";
    wrap[n++] = (char *)"--";
    wrap[n++] = (char *)SSI_ENV;
    wrap[n++] = job;
    wrap[n++] = vms;
    wrap[n++] = (char *)"SALINE_NODEFILE=" NODEFILE;
    memmove(spec->argv + n, spec->argv, (spec->argc + 1) * sizeof(char *));
    memcpy(spec->argv, wrap, n * sizeof(char *));
    spec->argc += n;
    return 0;
}

/* Configures the VM's part of the cluster; on VM 0, waits for it. */
static int
ssi_setup(Spec *spec)
{
    pid_t ssid;

    if (access(SSID, X_OK) < 0) {
        return fail("this image has no '%s': not an SSI image", SSID);
    }
    if (ssi_write_conf(spec) < 0) {
        return -1;
    }
    log_step("%s: cluster %s, %s", SSID_CONF, spec->ssi_cluster,
             spec->vm == 0 ? "founding it" : "joining it");
    if (spec->vm == 0) {
        ssid = ssi_start_ssid();
        if (ssid < 0 || ssi_wait_formed(spec, ssid) < 0) {
            return -1;
        }
        log_step("SSI cluster %s formed: %u members", spec->ssi_cluster,
                 spec->vms);
    }
    return ssi_wrap_command(spec);
}

/* The output drive ------------------------------------------------------ */

static int
output_open(Output *out)
{
    uint64_t size = 0;

    out->fd = -1;
    if (!wait_device(OUTPUT_DRIVE)) {
        return fail("no output drive '%s'", OUTPUT_DRIVE);
    }
    out->fd = open(OUTPUT_DRIVE, O_RDWR | O_CLOEXEC);
    if (out->fd < 0) {
        return fail("cannot open '%s': %s", OUTPUT_DRIVE, strerror(errno));
    }
    if (ioctl(out->fd, BLKGETSIZE64, &size) < 0) {
        return fail("cannot get the size of '%s': %s", OUTPUT_DRIVE,
                    strerror(errno));
    }
    if (size < DATA_OFFSET + HEADER_SIZE) {
        return fail("output drive '%s' of %" PRIu64 " bytes is too small",
                    OUTPUT_DRIVE, size);
    }
    out->capacity = size - DATA_OFFSET;
    out->length = 0;
    out->truncated = false;
    return 0;
}

/* Stores what fits; the rest is read and dropped. */
static void
output_append(Output *out, const char *buf, size_t len)
{
    size_t take = len;

    if (take > out->capacity - out->length) {
        take = (size_t)(out->capacity - out->length);
    }
    if (take > 0 &&
        pwrite_all(out->fd, buf, take, DATA_OFFSET + out->length) < 0) {
        log_step("cannot write to '%s': %s; output truncated", OUTPUT_DRIVE,
                 strerror(errno));
        out->capacity = out->length;
        take = 0;
    }
    out->length += take;
    if (take < len && !out->truncated) {
        out->truncated = true;
        log_step("output drive full after %" PRIu64 " bytes", out->length);
    }
}

/* Data first, then the header: a header never counts bytes that are not
 * on the drive. @status -1: running. */
static int
output_header(Output *out, int status)
{
    char block[HEADER_SIZE] = {0};

    snprintf(block, sizeof(block),
             "SALOUT1 state=%s exit=%d length=%" PRIu64 " truncated=%d\n",
             status < 0 ? "running" : "exited", status, out->length,
             out->truncated ? 1 : 0);
    if (fsync(out->fd) < 0 ||
        pwrite_all(out->fd, block, sizeof(block), 0) < 0 ||
        fsync(out->fd) < 0) {
        log_step("cannot write the header of '%s': %s", OUTPUT_DRIVE,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* The command --------------------------------------------------------- */

/* In the child: the contract's process environment, then exec. */
static void __attribute__((noreturn))
exec_command(const Spec *spec, int pipe_fd)
{
    char vm[16], vms[16];
    sigset_t none;
    int null_fd;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
        dup2(pipe_fd, STDOUT_FILENO) < 0 || dup2(pipe_fd, STDERR_FILENO) < 0) {
        _exit(EXIT_NOT_STARTED);
    }
    if (chdir(JOB_DIR) < 0) {
        dprintf(STDOUT_FILENO, "salguest: cannot change to '%s': %s\n", JOB_DIR,
                strerror(errno));
        _exit(EXIT_NOT_STARTED);
    }
    snprintf(vm, sizeof(vm), "%u", spec->vm);
    snprintf(vms, sizeof(vms), "%u", spec->vms);
    /* execvp() searches the caller's PATH: set the environment here. */
    if (clearenv() != 0 || setenv("PATH", COMMAND_PATH, 1) < 0 ||
        setenv("HOME", JOB_DIR, 1) < 0 ||
        setenv("SALINE_JOB_ID", spec->job, 1) < 0 ||
        setenv("SALINE_VM_INDEX", vm, 1) < 0 ||
        setenv("SALINE_VMS", vms, 1) < 0 ||
        setenv("SALINE_NODEFILE", NODEFILE, 1) < 0) {
        dprintf(STDOUT_FILENO, "salguest: cannot set the environment\n");
        _exit(EXIT_NOT_STARTED);
    }
    execvp(spec->argv[0], spec->argv);
    dprintf(STDOUT_FILENO, "salguest: cannot execute '%s': %s\n", spec->argv[0],
            strerror(errno));
    _exit(EXIT_NOT_STARTED);
}

/* Reaps every exited child (orphans come to us: we are a subreaper);
 * records @pid's status. */
static void
reap(pid_t pid, int *status, bool *exited)
{
    pid_t r;
    int st;

    while ((r = waitpid(-1, &st, WNOHANG)) > 0) {
        if (r == pid) {
            *status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
            *exited = true;
        }
    }
}

/* Runs the command, storing its output; returns its exit status, or -1
 * if it could not be forked (reason set). */
static int
run_command(const Spec *spec, Output *out)
{
    static char buf[65536];
    int64_t last_header, exit_time = 0;
    bool exited = false, dirty = false;
    int status = EXIT_NOT_STARTED;
    int pipe_fds[2], sig_fd;
    sigset_t chld;
    pid_t pid;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0 ||
        (sig_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        return fail("cannot watch children: %s", strerror(errno));
    }
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
        return fail("cannot create a pipe: %s", strerror(errno));
    }
    pid = fork();
    if (pid < 0) {
        return fail("cannot fork: %s", strerror(errno));
    }
    if (pid == 0) {
        exec_command(spec, pipe_fds[1]);
    }
    close(pipe_fds[1]);
    log_step("started '%s' (%u arguments), pid %d", spec->argv[0], spec->argc,
             (int)pid);
    output_header(out, -1);
    last_header = now_ms();

    while (pipe_fds[0] >= 0 || !exited) {
        struct pollfd fds[2] = {{.fd = sig_fd, .events = POLLIN},
                                {.fd = pipe_fds[0], .events = POLLIN}};
        int64_t now = now_ms();
        int timeout = -1;

        if (exited) {
            if (now >= exit_time + DRAIN_MS) {
                log_step("output pipe still open %d ms after the command "
                         "exited: closing it",
                         DRAIN_MS);
                break;
            }
            timeout = (int)(exit_time + DRAIN_MS - now);
        }
        if (dirty) {
            int until = (int)(last_header + HEADER_INTERVAL_MS - now);

            if (until < 0) {
                until = 0;
            }
            if (timeout < 0 || until < timeout) {
                timeout = until;
            }
        }
        if (poll(fds, 2, timeout) < 0 && errno != EINTR) {
            log_step("poll failed: %s", strerror(errno));
            break;
        }
        if (fds[0].revents) {
            struct signalfd_siginfo si;

            while (read(sig_fd, &si, sizeof(si)) > 0) {
            }
            if (!exited) {
                reap(pid, &status, &exited);
                if (exited) {
                    exit_time = now_ms();
                    log_step("command exited with status %d", status);
                }
            } else {
                reap(-1, &status, &exited);
            }
        }
        if (fds[1].revents) {
            ssize_t n = read(pipe_fds[0], buf, sizeof(buf));

            if (n > 0) {
                output_append(out, buf, (size_t)n);
                dirty = true;
            } else if (n == 0 || errno != EINTR) {
                close(pipe_fds[0]);
                pipe_fds[0] = -1;
            }
        }
        if (dirty && !exited && now_ms() >= last_header + HEADER_INTERVAL_MS) {
            output_header(out, -1);
            last_header = now_ms();
            dirty = false;
        }
    }
    if (pipe_fds[0] >= 0) {
        close(pipe_fds[0]);
    }
    close(sig_fd);
    return status;
}

/* The VM is about to go: what the command left running goes first, so
 * that /job can be unmounted cleanly. They are all our children by now
 * (we are a subreaper). */
static void
end_leftovers(void)
{
    unsigned ended = 0;
    int64_t end;

    /* Spares init and ourselves. */
    kill(-1, SIGKILL);
    for (end = now_ms() + 2000; now_ms() < end;) {
        pid_t r = waitpid(-1, NULL, WNOHANG);

        if (r < 0) {
            break;
        }
        if (r == 0) {
            sleep_ms(20);
        } else {
            ended++;
        }
    }
    if (ended > 0) {
        log_step("ended %u processes the command left behind", ended);
    }
}

static void __attribute__((noreturn)) power_off(bool mounted)
{
    sync();
    if (mounted) {
        if (umount(JOB_DIR) < 0) {
            log_step("cannot unmount '%s': %s", JOB_DIR, strerror(errno));
        } else {
            log_step("unmounted '%s'", JOB_DIR);
        }
        sync();
    }
    log_step("powering off");
    reboot(RB_POWER_OFF);
    log_step("cannot power off: %s", strerror(errno));
    exit(1);
}

/* The command cannot start: the reason is its output, 127 its status. */
static void
report_not_started(Output *out)
{
    char line[sizeof(reason) + 16];
    int n;

    log_step("%s", reason);
    if (out->fd < 0) {
        return;
    }
    n = snprintf(line, sizeof(line), "salguest: %s\n", reason);
    output_append(out, line, (size_t)n);
    output_header(out, EXIT_NOT_STARTED);
}

int
main(int argc, char **argv)
{
    Output out = {.fd = -1};
    bool mounted = false;
    Spec spec;
    char *text;
    size_t len = 0;
    int status, fd;

    if (argc == 2 &&
        (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs("Usage: salguest\n"
              "Runs a Saline job's command inside its VM, as a child of the\n"
              "guest's init: reads the job spec (fw_cfg opt/org.saline/job),\n"
              "mounts " JOB_DISK " on " JOB_DIR ", runs the command there, "
              "writes its output\n"
              "and exit status to " OUTPUT_DRIVE " and powers the VM off.\n"
              "\n"
              "  -h, --help   Show this help\n"
              "\n"
              "Exit status: 2 usage error; a command that cannot start gets "
              "127\n"
              "on the output drive.\n",
              stdout);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "salguest: takes no arguments\n");
        return 2;
    }
    /* It unmounts, kills and powers off: only ever as the guest's init's
     * child, never by mistake on a host. */
    if (getppid() != 1) {
        fprintf(stderr, "salguest: runs only as a child of the guest's "
                        "init\n");
        return 2;
    }
    fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0) {
        console_fd = fd;
    }
    text = spec_read(&len);
    if (!text && errno != 0) {
        log_step("cannot read the job spec '%s': %s", SPEC_PATH,
                 strerror(errno));
        return 1;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    if (output_open(&out) < 0) {
        /* Nowhere to report: salined sees a drive of zeros. */
        log_step("%s", reason);
        power_off(false);
    }
    log_step("output drive '%s', %" PRIu64 " bytes for output", OUTPUT_DRIVE,
             out.capacity);
    if (!text || spec_parse(text, len, &spec) < 0) {
        report_not_started(&out);
        power_off(false);
    }
    log_step("job %s, VM %u of %u, %u arguments", spec.job, spec.vm, spec.vms,
             spec.argc);

    if (sethostname(spec.hostname, strlen(spec.hostname)) < 0) {
        fail("cannot set host name '%s': %s", spec.hostname, strerror(errno));
        report_not_started(&out);
        power_off(false);
    }
    log_step("host name %s", spec.hostname);
    if (configure_network(&spec) < 0) {
        report_not_started(&out);
        power_off(false);
    }
    log_step("%s %s, gateway %s", IFACE, spec.ip,
             spec.gateway[0] ? spec.gateway : "none");
    if (write_nodefile(&spec) < 0) {
        report_not_started(&out);
        power_off(false);
    }
    log_step("%s: %u peers", NODEFILE, spec.n_peers);
    if (mount_job_disk() < 0) {
        report_not_started(&out);
        power_off(false);
    }
    mounted = true;
    log_step("mounted %s on %s", JOB_DISK, JOB_DIR);
    if (spec.ssi && ssi_setup(&spec) < 0) {
        report_not_started(&out);
        end_leftovers();
        power_off(mounted);
    }

    status = run_command(&spec, &out);
    if (status < 0) {
        report_not_started(&out);
    } else {
        output_header(&out, status);
        log_step("exit status %d, %" PRIu64 " bytes of output%s", status,
                 out.length, out.truncated ? " (truncated)" : "");
    }
    end_leftovers();
    power_off(mounted);
}
