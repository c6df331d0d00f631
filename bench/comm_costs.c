/* bench/comm_costs: what each exchange herd makes costs across the ranks of an MPI job, timed
 * through herd's own communicator (src/dist/comm.h), so the calls are the ones training makes:
 *   p2p             rank 0 -> rank 1 and back, half the round trip (pipeline stages' activations
 *                   and gradients, parameter-server pushes and pulls are point-to-point messages)
 *   allreduce       in-place non-blocking sum (a data-parallel gradient bucket)
 *   reduce_scatter  non-blocking, equal parts (a ZeRO-1 gradient bucket)
 *   allgather       in-place allgatherv, equal parts (ZeRO-1's parameters after the update)
 * each at every size given, the median of REPS timed calls (each the slowest rank's time) after 2
 * untimed ones, and the local
 * cost of the reduction itself (float sums, seconds per byte: what a collective's reduction adds
 * per byte on top of the wire). With --spec, the data-parallel gradient buckets herd cuts for
 * that model at this world size (floats each, and the layer whose backward completes each), so
 * bench/scaling --predict models the real ones.
 * Rank 0 prints one line per figure:
 *   op=NAME ranks=P bytes=B seconds=S least=MIN | reduce seconds_per_byte=G | bucket floats=N layer=NAME
 * usage: mpirun -np P comm_costs [--reps N] [--spec MODEL.spec] BYTES... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm.h"
#include "dist/strategy.h"
#include "herd/herd.h"

#define MAX_RANKS 64

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median (and *least) of reps timings of one exchange of n floats; 0 when it failed (err says why) */
static double time_op(herd_comm *c, const char *op, float *buf, float *out, int64_t n, int reps, double *least,
                      herd_error *err) {
    int rank = herd_comm_rank(c), world = herd_comm_size(c);
    int *counts = malloc((size_t)world * sizeof *counts);
    double *t = malloc((size_t)(reps + 2) * sizeof *t);
    herd_status st = counts && t ? HERD_OK : herd_fail(err, HERD_ENOMEM, "out of memory");
    for (int r = 0; r < world && !st; r++) counts[r] = (int)(n * (r + 1) / world - n * r / world);
    for (int i = 0; i < reps + 2 && !st; i++) {
        double sync = 0;
        if ((st = herd_comm_allreduce_f64(c, &sync, 1, err))) break; /* start together */
        double t0 = herd_now();
        herd_comm_request *req = NULL;
        if (strcmp(op, "p2p") == 0) {
            if (rank == 0 && !(st = herd_comm_isend(c, buf, n * 4, 1, 7, &req, err)) && !(st = herd_comm_wait(c, req, err)) &&
                !(st = herd_comm_irecv(c, out, n * 4, 1, 8, &req, err)))
                st = herd_comm_wait(c, req, err);
            if (rank == 1 && !(st = herd_comm_irecv(c, out, n * 4, 0, 7, &req, err)) && !(st = herd_comm_wait(c, req, err)) &&
                !(st = herd_comm_isend(c, out, n * 4, 0, 8, &req, err)))
                st = herd_comm_wait(c, req, err);
        } else if (strcmp(op, "allreduce") == 0) {
            if (!(st = herd_comm_iallreduce(c, buf, n, NULL, &req, err))) st = herd_comm_wait(c, req, err);
        } else if (strcmp(op, "reduce_scatter") == 0) {
            if (!(st = herd_comm_ireduce_scatter(c, buf, counts, &req, err))) st = herd_comm_wait(c, req, err);
        } else {
            st = herd_comm_allgatherv(c, buf, counts, err);
        }
        /* the slowest rank's time: a sender's request completes once the kernel has its
         * bytes (socket buffers and the tbf queue hold megabytes), its receivers' much later */
        float mine = (float)(herd_now() - t0), all[MAX_RANKS] = {0};
        if (!st) st = herd_comm_allgather(c, &mine, all, 1, err);
        t[i] = 0;
        for (int r = 0; r < world && !st; r++) t[i] = all[r] > t[i] ? all[r] : t[i];
        if (strcmp(op, "p2p") == 0) t[i] /= 2;
    }
    double med = 0;
    if (!st) {
        qsort(t + 2, (size_t)reps, sizeof *t, cmp_double);
        med = t[2 + reps / 2];
        *least = t[2];
    }
    free(counts);
    free(t);
    return med;
}

/* seconds per byte of summing floats into a buffer, as a collective's reduction does (64 MiB,
 * out of cache, best of 5) */
static double reduce_rate(void) {
    int64_t n = 16 << 20;
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    if (!a || !b) {
        free(a), free(b);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) a[i] = (float)(i & 1023), b[i] = 1.0f;
    double best = 1e30;
    for (int k = 0; k < 5; k++) {
        double t0 = herd_now();
        for (int64_t i = 0; i < n; i++) a[i] += b[i];
        double dt = herd_now() - t0;
        best = dt < best ? dt : best;
    }
    volatile float keep = a[n - 1];
    (void)keep;
    free(a), free(b);
    return best / ((double)n * sizeof(float));
}

static herd_status print_buckets(herd_comm *c, const char *spec, herd_error *err) {
    herd_model *m = NULL;
    herd_strategy *s = NULL;
    herd_strategy_config cfg = herd_strategy_defaults(HERD_STRATEGY_DP);
    herd_strategy_layout lay;
    herd_status st = herd_strategy_layout_for(&cfg, herd_comm_size(c), herd_comm_size(c), &lay, err);
    if (!st) st = herd_model_load_spec(&m, spec, err);
    if (!st) st = herd_model_prepare(m, "cpu", lay.rows, 1, err);
    if (!st) st = herd_strategy_create(&s, c, m, &cfg, err);
    if (!st && herd_comm_rank(c) == 0) {
        int64_t lo_hi[128];
        int n = herdi_data_parallel_buckets(s, lo_hi, 64);
        for (int k = 0; k < n && k < 64; k++) {
            /* the layer holding the bucket's first parameter: its backward, the last of the
             * bucket's in backward's order, starts the bucket's exchange */
            const char *name = "?";
            for (int i = 0; i < herd_model_param_count(m); i++) {
                const herd_param_info *p = herd_model_param(m, i);
                if (p->trainable && !p->sparse && p->offset == lo_hi[2 * k]) name = p->name;
            }
            int len = (int)strcspn(name, ".");
            printf("bucket floats=%lld layer=%.*s\n", (long long)(lo_hi[2 * k + 1] - lo_hi[2 * k]), len, name);
        }
    }
    herd_strategy_destroy(s);
    herd_model_destroy(m);
    return st;
}

int main(int argc, char **argv) {
    int reps = 5;
    const char *spec = NULL;
    int64_t sizes[64];
    int n_sizes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--spec") == 0 && i + 1 < argc) spec = argv[++i];
        else if (n_sizes < 64 && atoll(argv[i]) >= 64) sizes[n_sizes++] = atoll(argv[i]) / 4 * 4;
        else {
            fprintf(stderr, "comm_costs: bad argument '%s' (usage: comm_costs [--reps N] [--spec MODEL.spec] BYTES...; "
                            "sizes of at least 64 bytes)\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    herd_comm *c = NULL;
    herd_error err = {0};
    if (herd_comm_open(&c, 120, &err)) {
        fprintf(stderr, "comm_costs: %s\n", err.msg);
        return 1;
    }
    int rank = herd_comm_rank(c), world = herd_comm_size(c);
    herd_status st = HERD_OK;
    if (world < 2 || world > MAX_RANKS)
        st = herd_fail(&err, HERD_EARG, "needs 2 to %d ranks (mpirun -np P), not %d", MAX_RANKS, world);
    if (!st && rank == 0) printf("reduce seconds_per_byte=%.4g\n", reduce_rate());
    if (!st && spec) st = print_buckets(c, spec, &err);
    int64_t most = 0;
    for (int k = 0; k < n_sizes; k++) most = sizes[k] > most ? sizes[k] : most;
    float *buf = malloc((size_t)most + 4), *out = malloc((size_t)most + 4);
    if (!st && (!buf || !out)) st = herd_fail(&err, HERD_ENOMEM, "out of memory for %lld bytes", (long long)most);
    static const char *const ops[] = {"p2p", "allreduce", "reduce_scatter", "allgather"};
    for (int k = 0; k < n_sizes && !st; k++) {
        int64_t n = sizes[k] / 4;
        for (int64_t i = 0; i < n; i++) buf[i] = 1.0f;
        for (int o = 0; o < 4 && !st; o++) {
            double least = 0, s = time_op(c, ops[o], buf, out, n, reps, &least, &err);
            if (!s) st = HERD_EIO;
            else if (rank == 0)
                printf("op=%s ranks=%d bytes=%lld seconds=%.6g least=%.6g\n", ops[o], world, (long long)(n * 4), s, least);
            fflush(stdout);
        }
    }
    free(buf), free(out);
    if (st) {
        fprintf(stderr, "comm_costs: rank %d: %s\n", rank, err.msg);
        herd_comm_abort(c, 1);
    }
    herd_comm_close(c);
    return st ? 1 : 0;
}
