/*
 * vcguest: the agent inside test guests.
 *
 * It gives a guest realistic, checkable memory:
 *  - the payload: real Debian files the image carries in /payload, which
 *    the initramfs keeps in RAM (identical across guests of one image);
 *  - a unique region: anonymous memory filled from a per-guest seed;
 *  - optionally a writer that keeps dirtying a separate region at a set
 *    number of pages per second.
 * and answers line commands on TCP (default port 7070):
 *   sums      "payload <sha256>", "unique <sha256>", "end"
 *   info      key=value lines, "end"
 *   ping      "pong"
 *   echo TEXT "TEXT" (a stream to count lines through, e.g. across a
 *             live migration)
 *   poweroff  "ok", then syncs and powers the guest off
 * Commands may be pipelined: answers come in order, one per command.
 *
 * It is linked statically (the guest has only busybox) and runs on the
 * host too: `vcguest --unique-sum --seed S --unique-mb N` prints the
 * unique region's checksum without allocating a guest, so tests can
 * compare what the guest reports with an independent computation.
 *
 * Parameters come from the kernel command line (vc.seed=, vc.unique_mb=,
 * vc.dirty_mb=, vc.dirty_rate=, vc.port=) or from options of the same
 * names, options winning.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nettle/sha2.h>

#define PAGE 4096
#define MAX_PAYLOAD_FILES 65536
#define MAX_MB (64 * 1024)

static const char *payload_dir = "/payload";
static uint64_t arg_seed;
static bool arg_seed_set;
static uint64_t arg_unique_mb;
static uint64_t arg_dirty_mb;
static uint64_t arg_dirty_rate; /* pages per second */
static unsigned arg_port = 7070;

static uint8_t *unique_region;
static uint8_t *dirty_region;
static volatile uint64_t dirty_pages_written;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "vcguest: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* splitmix64: a small, well-mixed generator; the same stream on host and
 * guest for a given seed. */
static uint64_t
next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
fill_unique(uint8_t *p, uint64_t len, uint64_t seed)
{
    uint64_t state = seed;

    for (uint64_t off = 0; off + 8 <= len; off += 8) {
        uint64_t v = next_random(&state);

        memcpy(p + off, &v, 8);
    }
}

static void
hex(const uint8_t *digest, char *out)
{
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    }
}

static void
sum_region(const uint8_t *p, uint64_t len, char *out)
{
    struct sha256_ctx ctx;
    uint8_t d[SHA256_DIGEST_SIZE];

    sha256_init(&ctx);
    sha256_update(&ctx, len, p);
    sha256_digest(&ctx, sizeof(d), d);
    hex(d, out);
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* SHA-256 of the payload files' contents, concatenated in byte order of
 * their names: the image builder computes the same on the host. */
static int
sum_payload(char *out, uint64_t *bytes)
{
    DIR *d = opendir(payload_dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    static uint8_t buf[1 << 16];
    int rc = 0;

    *bytes = 0;
    if (!d) {
        return -1;
    }
    while ((e = readdir(d)) && n < MAX_PAYLOAD_FILES) {
        if (e->d_name[0] == '.') {
            continue;
        }
        names = realloc(names, (n + 1) * sizeof(*names));
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_names);
    sha256_init(&ctx);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        FILE *f;
        size_t got;

        snprintf(path, sizeof(path), "%s/%s", payload_dir, names[i]);
        f = fopen(path, "rbe");
        if (!f) {
            rc = -1;
            break;
        }
        while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
            sha256_update(&ctx, got, buf);
            *bytes += got;
        }
        fclose(f);
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    sha256_digest(&ctx, sizeof(digest), digest);
    hex(digest, out);
    return rc;
}

static void *
writer_thread(void *unused)
{
    (void)unused;
    uint64_t pages = arg_dirty_mb * 1024 * 1024 / PAGE;
    uint64_t state = arg_seed ^ 0x5a5a5a5a5a5a5a5aULL;
    struct timespec next;
    /* Write in ticks of 10 ms so the rate is smooth. */
    uint64_t per_tick = arg_dirty_rate / 100 ? arg_dirty_rate / 100 : 1;
    long tick_ns = arg_dirty_rate >= 100 ? 10000000L
                                         : (long)(1000000000L / arg_dirty_rate);

    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        for (uint64_t i = 0; i < per_tick; i++) {
            uint64_t page = next_random(&state) % pages;
            uint64_t v = dirty_pages_written + 1;

            memcpy(dirty_region + page * PAGE + (v % (PAGE / 8)) * 8, &v, 8);
            dirty_pages_written = v;
        }
        next.tv_nsec += tick_ns;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    return NULL;
}

static uint8_t *
alloc_region(uint64_t mb)
{
    uint8_t *p = mmap(NULL, mb * 1024 * 1024, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

    if (p == MAP_FAILED) {
        die("cannot allocate region: %s", strerror(errno));
    }
    return p;
}

static void
write_sums(FILE *f)
{
    char sum[2 * SHA256_DIGEST_SIZE + 1];
    uint64_t bytes;

    if (sum_payload(sum, &bytes) == 0) {
        fprintf(f, "payload %s %" PRIu64 "\n", sum, bytes);
    } else {
        fprintf(f, "payload error\n");
    }
    if (unique_region) {
        sum_region(unique_region, arg_unique_mb * 1024 * 1024, sum);
        fprintf(f, "unique %s %" PRIu64 "\n", sum,
                arg_unique_mb * 1024 * 1024);
    }
    fprintf(f, "end\n");
}

static void
serve_client(int fd)
{
    /* A stream each way: a FILE opened "r+" drops the input it has
     * buffered when it turns to writing, so commands that arrived in one
     * read (pipelined, or coalesced by a TCP retransmission) were lost,
     * answers and all. */
    int wfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    FILE *in = fdopen(fd, "r");
    FILE *f = wfd < 0 ? NULL : fdopen(wfd, "w");
    char line[256];

    if (!in || !f) {
        if (in) {
            fclose(in);
        } else {
            close(fd);
        }
        if (f) {
            fclose(f);
        } else if (wfd >= 0) {
            close(wfd);
        }
        return;
    }
    while (fgets(line, sizeof(line), in)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strcmp(line, "sums") == 0) {
            write_sums(f);
        } else if (strcmp(line, "ping") == 0) {
            fprintf(f, "pong\n");
        } else if (strncmp(line, "echo", 4) == 0 &&
                   (line[4] == '\0' || line[4] == ' ')) {
            fprintf(f, "%s\n", line[4] ? line + 5 : "");
        } else if (strcmp(line, "info") == 0) {
            fprintf(f,
                    "seed=%" PRIu64 "\nunique_mb=%" PRIu64
                    "\ndirty_mb=%" PRIu64 "\ndirty_rate=%" PRIu64
                    "\ndirty_pages_written=%" PRIu64 "\nend\n",
                    arg_seed, arg_unique_mb, arg_dirty_mb, arg_dirty_rate,
                    dirty_pages_written);
        } else if (strcmp(line, "poweroff") == 0) {
            fprintf(f, "ok\n");
            fflush(f);
            sync();
            reboot(RB_POWER_OFF);
        } else if (line[0] != '\0') {
            fprintf(f, "error unknown command '%.64s'\n", line);
        }
        fflush(f);
    }
    fclose(in);
    fclose(f);
}

static void
serve(void)
{
    struct sockaddr_in addr = {
        .sin_family = AF_INET,
        .sin_port = htons((uint16_t)arg_port),
        .sin_addr.s_addr = htonl(INADDR_ANY),
    };
    int one = 1;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (s < 0) {
        die("cannot create socket: %s", strerror(errno));
    }
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(s, 16) < 0) {
        die("cannot listen: %s", strerror(errno));
    }
    for (;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0) {
            continue;
        }
        /* One client at a time: tests ask rarely, and a serial server
         * needs no locking around the regions. */
        serve_client(c);
    }
}

static bool
parse_u64(const char *s, uint64_t max, uint64_t *v)
{
    char *end = NULL;
    unsigned long long x;

    errno = 0;
    x = strtoull(s, &end, 0);
    if (errno || end == s || *end || x > max) {
        return false;
    }
    *v = x;
    return true;
}

static void
set_param(const char *name, const char *value)
{
    uint64_t v;
    uint64_t max = strcmp(name, "seed") == 0 ? UINT64_MAX
                   : strcmp(name, "dirty_rate") == 0 ? 10000000
                   : strcmp(name, "port") == 0       ? 65535
                                                     : MAX_MB;

    if (!parse_u64(value, max, &v)) {
        fprintf(stderr, "vcguest: invalid value '%s' for %s\n", value, name);
        exit(2);
    }
    if (strcmp(name, "seed") == 0) {
        arg_seed = v;
        arg_seed_set = true;
    } else if (strcmp(name, "unique_mb") == 0) {
        arg_unique_mb = v;
    } else if (strcmp(name, "dirty_mb") == 0) {
        arg_dirty_mb = v;
    } else if (strcmp(name, "dirty_rate") == 0) {
        arg_dirty_rate = v;
    } else if (strcmp(name, "port") == 0) {
        arg_port = (unsigned)v;
    }
}

static void
read_cmdline(void)
{
    static const char *names[] = {"seed", "unique_mb", "dirty_mb",
                                  "dirty_rate", "port"};
    char buf[4096];
    FILE *f = fopen("/proc/cmdline", "re");
    size_t n;
    char *save = NULL;

    if (!f) {
        return;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (char *tok = strtok_r(buf, " \n", &save); tok;
         tok = strtok_r(NULL, " \n", &save)) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            size_t len = strlen(names[i]);

            if (strncmp(tok, "vc.", 3) == 0 &&
                strncmp(tok + 3, names[i], len) == 0 && tok[3 + len] == '=') {
                set_param(names[i], tok + 4 + len);
            }
        }
    }
}

static void
usage(void)
{
    printf("Usage: vcguest [OPTION...]\n"
           "Guest agent: payload, unique and dirtied memory regions and a\n"
           "TCP service reporting their checksums.\n\n"
           "  --seed N          seed of the unique region (default: from the\n"
           "                    host name)\n"
           "  --unique-mb N     size of the unique region (default 0)\n"
           "  --dirty-mb N      size of the region the writer dirties\n"
           "  --dirty-rate N    pages written per second (default 0: off)\n"
           "  --port N          TCP port (default 7070)\n"
           "  --payload DIR     payload directory (default /payload)\n"
           "  --unique-sum      print the unique region's checksum and "
           "exit\n"
           "  --payload-sum     print the payload's checksum and exit\n"
           "  --no-cmdline      ignore /proc/cmdline\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"seed", required_argument, NULL, 's'},
        {"unique-mb", required_argument, NULL, 'u'},
        {"dirty-mb", required_argument, NULL, 'd'},
        {"dirty-rate", required_argument, NULL, 'r'},
        {"port", required_argument, NULL, 'p'},
        {"payload", required_argument, NULL, 'P'},
        {"unique-sum", no_argument, NULL, 'U'},
        {"payload-sum", no_argument, NULL, 'S'},
        {"no-cmdline", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool only_unique = false, only_payload = false, cmdline = true;
    char sum[2 * SHA256_DIGEST_SIZE + 1];
    int c;

    /* Options override the kernel command line: scan for --no-cmdline
     * first, then apply the cmdline, then the options. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-cmdline") == 0) {
            cmdline = false;
        }
    }
    if (cmdline) {
        read_cmdline();
    }
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            set_param("seed", optarg);
            break;
        case 'u':
            set_param("unique_mb", optarg);
            break;
        case 'd':
            set_param("dirty_mb", optarg);
            break;
        case 'r':
            set_param("dirty_rate", optarg);
            break;
        case 'p':
            set_param("port", optarg);
            break;
        case 'P':
            payload_dir = optarg;
            break;
        case 'U':
            only_unique = true;
            break;
        case 'S':
            only_payload = true;
            break;
        case 'n':
            break;
        case 'h':
            usage();
            return 0;
        default:
            fprintf(stderr, "vcguest: unknown option, see --help\n");
            return 2;
        }
    }
    if (optind < argc) {
        die("unexpected argument '%s'", argv[optind]);
    }
    if (!arg_seed_set) {
        char host[256] = "";
        uint64_t h = 1469598103934665603ULL;

        gethostname(host, sizeof(host) - 1);
        for (const char *p = host; *p; p++) {
            h = (h ^ (uint8_t)*p) * 1099511628211ULL;
        }
        arg_seed = h;
    }

    if (arg_unique_mb) {
        unique_region = alloc_region(arg_unique_mb);
        fill_unique(unique_region, arg_unique_mb * 1024 * 1024, arg_seed);
    }
    if (only_unique || only_payload) {
        uint64_t bytes;

        if (only_payload) {
            if (sum_payload(sum, &bytes) < 0) {
                die("cannot read payload '%s'", payload_dir);
            }
            printf("%s\n", sum);
        }
        if (only_unique) {
            sum_region(unique_region, arg_unique_mb * 1024 * 1024, sum);
            printf("%s\n", sum);
        }
        return 0;
    }

    if (arg_dirty_mb && arg_dirty_rate) {
        pthread_t t;

        dirty_region = alloc_region(arg_dirty_mb);
        if (pthread_create(&t, NULL, writer_thread, NULL) != 0) {
            die("cannot start writer: %s", strerror(errno));
        }
    }
    signal(SIGPIPE, SIG_IGN);
    mlockall(MCL_CURRENT);

    /* Boot-time report on the console, then the service. */
    write_sums(stdout);
    printf("VC-READY port=%u\n", arg_port);
    fflush(stdout);
    serve();
    return 0;
}
