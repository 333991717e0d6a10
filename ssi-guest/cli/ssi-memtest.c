/*
 * ssi-memtest: allocate MIB MiB of anonymous memory, fill it with
 * incompressible data (a counter-based generator, so nothing needs to be
 * kept to check it), then read it all back and check every word
 * (ssi-guest/README.md, "Cluster memory"). It is how the tests and the
 * benchmark make a process use more memory than its VM has.
 *
 * Exit codes: 0 every word checked; 1 a word differs (its offset is
 * printed) or the memory cannot be had; 2 usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MIB (1024u * 1024u)
#define WORDS_PER_MIB (MIB / sizeof(uint64_t))

/* splitmix64 of the word's index and the seed: incompressible, and the
 * same value when checked as when written. */
static inline uint64_t
word_at(uint64_t i, uint64_t seed)
{
    uint64_t z = i * 0x9e3779b97f4a7c15ull + seed;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double
now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int
usage(FILE *f, int code)
{
    fprintf(f,
            "Usage: ssi-memtest [--seed N] [--passes N] MIB\n"
            "\n"
            "Allocate MIB MiB, fill them with incompressible data, then read\n"
            "them back and check every word, PASSES times (default 1).\n"
            "Progress on stderr every 64 MiB; the summary on stdout:\n"
            "  ssi-memtest: MIB MiB written and checked, N passes, S s\n"
            "Exit: 0 all checked, 1 a word differs or no memory, 2 usage.\n");
    return code;
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int
main(int argc, char **argv)
{
    uint64_t seed = 1, passes = 1, mib = 0;
    uint64_t *mem;
    double t0;
    int i;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return usage(stdout, 0);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            if (parse_u64(argv[++i], UINT64_MAX, &seed) < 0) {
                fprintf(stderr, "ssi-memtest: bad seed '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--passes") && i + 1 < argc) {
            if (parse_u64(argv[++i], 1000, &passes) < 0 || passes == 0) {
                fprintf(stderr, "ssi-memtest: bad passes '%s' (1..1000)\n",
                        argv[i]);
                return 2;
            }
        } else if (argv[i][0] == '-' || mib) {
            fprintf(stderr, "ssi-memtest: unexpected '%s'\n", argv[i]);
            return usage(stderr, 2);
        } else if (parse_u64(argv[i], 1u << 20, &mib) < 0 || mib == 0) {
            fprintf(stderr, "ssi-memtest: bad size '%s' (MiB, 1..1048576)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!mib) {
        return usage(stderr, 2);
    }
    mem = mmap(NULL, mib * MIB, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        fprintf(stderr, "ssi-memtest: cannot map %llu MiB: %s\n",
                (unsigned long long)mib, strerror(errno));
        return 1;
    }
    t0 = now_s();
    for (uint64_t p = 0; p < passes; p++) {
        uint64_t s = seed + p;

        for (uint64_t m = 0; m < mib; m++) {
            uint64_t *w = mem + m * WORDS_PER_MIB;

            for (uint64_t k = 0; k < WORDS_PER_MIB; k++) {
                w[k] = word_at(m * WORDS_PER_MIB + k, s);
            }
            if ((m + 1) % 64 == 0) {
                fprintf(stderr, "ssi-memtest: pass %llu: %llu MiB written, %.1f s\n",
                        (unsigned long long)p + 1, (unsigned long long)m + 1,
                        now_s() - t0);
            }
        }
        for (uint64_t m = 0; m < mib; m++) {
            uint64_t *w = mem + m * WORDS_PER_MIB;

            for (uint64_t k = 0; k < WORDS_PER_MIB; k++) {
                if (w[k] != word_at(m * WORDS_PER_MIB + k, s)) {
                    printf("ssi-memtest: pass %llu: word at byte %llu differs\n",
                           (unsigned long long)p + 1,
                           (unsigned long long)((m * WORDS_PER_MIB + k) * 8));
                    return 1;
                }
            }
            if ((m + 1) % 64 == 0) {
                fprintf(stderr, "ssi-memtest: pass %llu: %llu MiB checked, %.1f s\n",
                        (unsigned long long)p + 1, (unsigned long long)m + 1,
                        now_s() - t0);
            }
        }
    }
    printf("ssi-memtest: %llu MiB written and checked, %llu passes, %.1f s\n",
           (unsigned long long)mib, (unsigned long long)passes, now_s() - t0);
    return 0;
}
