/* Synthetic click logs in Criteo's TSV format, for tests and bench/criteo: each line is a 0/1
 * label, 13 integer counts and 26 categorical ids of 8 hexadecimal digits, tab-separated, any
 * feature empty when missing (each feature its own missing rate, 0 to 45%). Counts are
 * log-normal (I2 is sometimes -1, as in Criteo's logs); categorical feature k draws value ranks
 * from a power law (log-uniform over its vocabulary of 4 to 2M values: rank r has frequency
 * ~1/r, Zipf's law) and writes a hash of (k, rank). A planted signal makes the label
 * learnable: the click logit is a bias plus an effect of +-0.9 for each of the 400 most frequent
 * values of C1..C8, two pairwise effects (C9 with C10, C11 with C12, through their values'
 * signs), and two counts (I1 up, I3 down). Lines are generated one at a time from a seeded
 * stream, so memory does not grow with ROWS and the same (ROWS, SEED) gives the same bytes.
 * Prints (stderr) the click rate and the AUC of the true click probability on these lines (over
 * 4096 bins of it): the ceiling a model's AUC on them can approach.
 * usage: criteo_synth ROWS SEED [OUT]   (OUT: a file, default standard output) */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DENSE = 13, SPARSE = 26, TOP = 400, BINS = 4096 };

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next_u64(rng *r) { return mix64(r->s += 0x9e3779b97f4a7c15ULL); }
static double uniform(rng *r) { return (double)(next_u64(r) >> 11) * 0x1.0p-53; }
static double normal(rng *r) { /* Box-Muller, one of the pair */
    double u = uniform(r), v = uniform(r);
    return sqrt(-2.0 * log(u > 0 ? u : 0x1.0p-53)) * cos(6.283185307179586 * v);
}

/* Vocabulary sizes log-spaced from 4 to 2M (Criteo's range), shuffled by a fixed rule. */
static double vocab(int k) { return exp(log(4.0) + (log(2.0e6) - log(4.0)) * (double)((k * 7) % SPARSE) / (SPARSE - 1)); }
static double missing_rate(int k, int dense) { return dense ? 0.03 * (double)((k * 5) % 16) : 0.45 * (double)((k * 11) % 13 == 0 ? 1 : (k * 3) % 4 == 0); }

/* The value's sign for the signal: +-1 from a hash of (feature, rank). */
static double sign_of(int k, uint64_t rank) { return (mix64(((uint64_t)k << 40) ^ rank ^ 0x51ULL) & 1) ? 1.0 : -1.0; }

static char *put_u64(char *p, uint64_t v) {
    char t[24];
    int n = 0;
    do t[n++] = (char)('0' + v % 10), v /= 10; while (v);
    while (n) *p++ = t[--n];
    return p;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: criteo_synth ROWS SEED [OUT]\n");
        return 2;
    }
    char *end;
    errno = 0;
    long long rows = strtoll(argv[1], &end, 10);
    if (errno || *end || rows < 0) {
        fprintf(stderr, "criteo_synth: ROWS '%s' is not a count\n", argv[1]);
        return 2;
    }
    unsigned long long seed = strtoull(argv[2], &end, 10);
    if (*end) {
        fprintf(stderr, "criteo_synth: SEED '%s' is not a number\n", argv[2]);
        return 2;
    }
    FILE *out = argc == 4 ? fopen(argv[3], "wb") : stdout;
    if (!out) {
        fprintf(stderr, "criteo_synth: %s: %s\n", argv[3], strerror(errno));
        return 1;
    }
    static char obuf[1 << 20];
    setvbuf(out, obuf, _IOFBF, sizeof obuf);
    static const char hex[] = "0123456789abcdef";
    rng r = {mix64(seed ^ 0x63726974656f0000ULL)};
    char line[1024];
    static double pos[BINS], neg[BINS]; /* lines by bin of their true click probability */
    for (long long i = 0; i < rows; i++) {
        char *p = line + 1; /* line[0], the label, is written once the logit is known */
        double logit = -1.2;
        for (int k = 0; k < DENSE; k++) {
            *p++ = '\t';
            double u = uniform(&r), z = normal(&r);
            if (u < missing_rate(k, 1)) continue;
            if (k == 1 && u > 0.97) { /* I2's -1 */
                *p++ = '-', *p++ = '1';
                continue;
            }
            uint64_t v = (uint64_t)floor(exp(0.4 * k / DENSE + 1.2 + 1.3 * z));
            double lv = log1p((double)v);
            if (k == 0) logit += 0.7 * (lv - 1.8);
            if (k == 2) logit -= 0.5 * (lv - 1.8);
            p = put_u64(p, v);
        }
        double sgn[SPARSE];
        for (int k = 0; k < SPARSE; k++) {
            *p++ = '\t';
            double u = uniform(&r), w = uniform(&r);
            sgn[k] = 0;
            if (u < missing_rate(k, 0)) continue;
            uint64_t rank = (uint64_t)floor(pow(vocab(k), w)) - 1; /* log-uniform: ~1/rank */
            sgn[k] = sign_of(k, rank);
            if (k < 8 && rank < TOP) logit += 0.9 * sgn[k];
            /* ids and signs do not depend on SEED: files of other seeds share the values and the signal */
            uint32_t id = (uint32_t)mix64((uint64_t)(k + 1) << 32 | rank);
            for (int s = 28; s >= 0; s -= 4) *p++ = hex[(id >> s) & 15];
        }
        logit += 0.8 * sgn[8] * sgn[9] + 0.8 * sgn[10] * sgn[11];
        double prob = 1.0 / (1.0 + exp(-logit));
        int click = uniform(&r) < prob, bin = (int)(prob * BINS);
        line[0] = click ? '1' : '0';
        (click ? pos : neg)[bin < BINS ? bin : BINS - 1]++;
        *p++ = '\n';
        if (fwrite(line, 1, (size_t)(p - line), out) != (size_t)(p - line)) {
            fprintf(stderr, "criteo_synth: write failed: %s\n", strerror(errno));
            return 1;
        }
    }
    if (fflush(out) != 0 || (out != stdout && fclose(out) != 0)) {
        fprintf(stderr, "criteo_synth: write failed: %s\n", strerror(errno));
        return 1;
    }
    /* AUC: P(a click's probability > a non-click's), ties (one bin) counted a half */
    double clicks = 0, others = 0, below = 0, pairs = 0;
    for (int b = 0; b < BINS; b++) clicks += pos[b], others += neg[b];
    for (int b = 0; b < BINS; b++) {
        pairs += pos[b] * (below + 0.5 * neg[b]);
        below += neg[b];
    }
    fprintf(stderr, "criteo_synth: %lld lines, click rate %.4f, AUC of the true click probability %.4f\n", rows,
            rows ? clicks / (double)rows : 0.0, clicks > 0 && others > 0 ? pairs / (clicks * others) : 0.5);
    return 0;
}
