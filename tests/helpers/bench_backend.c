/* Microbenchmark (not a test): forward and backward of each layer of the MNIST target
 * model for the ref and cpu backends, batch 32 and 256, with herd's pool and OpenBLAS
 * at 1 or 2 threads; prints ms per call, GFLOP/s and the whole-step img/s.
 * usage: bench_backend [--no-ref] [--batch N] [--min-ms M] [--rounds R] [--openblas]
 * --openblas: conv's gemm on OpenBLAS instead of the AVX-512 kernel (the "pool1 blas2"
 * column then shows OpenBLAS's own threading against herd's pool for conv too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu_internal.h"

void openblas_set_num_threads(int num_threads); /* from OpenBLAS, which herd links */

typedef enum { L_CONV, L_RELU, L_POOL, L_DENSE } layer_kind;

typedef struct layer {
    const char *name;
    layer_kind kind;
    conv2d_dims cd;
    pool2d_dims pd;
    int IN, OUT;     /* dense */
    int64_t n;       /* relu */
    int first;       /* no din needed */
    float *in, *out, *w, *b, *dout, *din, *dw, *db;
    int32_t *argmax;
} layer;

static float *buf(size_t n) {
    float *p = herd_aligned_alloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    return p;
}

static int build(layer *L, int B) {
    int n = 0;
    int C = 1, H = 28, W = 28;
    const int widths[3] = {32, 64, 128};
    for (int i = 0; i < 3; i++) {
        static const char *cn[3] = {"conv1", "conv2", "conv3"}, *rn[3] = {"relu1", "relu2", "relu3"},
                          *pn[3] = {"pool1", "pool2", "pool3"};
        layer *c = &L[n++];
        memset(c, 0, sizeof *c);
        c->name = cn[i];
        c->kind = L_CONV;
        c->cd = (conv2d_dims){.B = B, .C = C, .H = H, .W = W, .OC = widths[i], .KH = 3, .KW = 3, .SH = 1, .SW = 1,
                              .PH = 1, .PW = 1};
        herdi_conv2d_dims_finish(&c->cd);
        c->first = i == 0;
        C = widths[i];
        layer *r = &L[n++];
        memset(r, 0, sizeof *r);
        r->name = rn[i];
        r->kind = L_RELU;
        r->n = (int64_t)B * C * H * W;
        layer *p = &L[n++];
        memset(p, 0, sizeof *p);
        p->name = pn[i];
        p->kind = L_POOL;
        p->pd = (pool2d_dims){.B = B, .C = C, .H = H, .W = W, .KH = 2, .KW = 2, .SH = 2, .SW = 2};
        herdi_pool2d_dims_finish(&p->pd);
        H = p->pd.OH;
        W = p->pd.OW;
    }
    layer *d1 = &L[n++];
    memset(d1, 0, sizeof *d1);
    *d1 = (layer){.name = "dense1", .kind = L_DENSE, .IN = C * H * W, .OUT = 128};
    layer *r4 = &L[n++];
    *r4 = (layer){.name = "relu4", .kind = L_RELU, .n = (int64_t)B * 128};
    layer *d2 = &L[n++];
    *d2 = (layer){.name = "dense2", .kind = L_DENSE, .IN = 128, .OUT = 10};
    for (int i = 0; i < n; i++) {
        layer *l = &L[i];
        size_t nin, nout, nw = 0, nb = 0;
        switch (l->kind) {
        case L_CONV:
            nin = (size_t)B * l->cd.C * l->cd.H * l->cd.W;
            nout = (size_t)B * l->cd.OC * l->cd.OH * l->cd.OW;
            nw = (size_t)l->cd.OC * l->cd.C * 9;
            nb = l->cd.OC;
            break;
        case L_RELU: nin = nout = (size_t)l->n; break;
        case L_POOL:
            nin = (size_t)B * l->pd.C * l->pd.H * l->pd.W;
            nout = (size_t)B * l->pd.C * l->pd.OH * l->pd.OW;
            break;
        default:
            nin = (size_t)B * l->IN;
            nout = (size_t)B * l->OUT;
            nw = (size_t)l->IN * l->OUT;
            nb = l->OUT;
        }
        l->in = buf(nin), l->out = buf(nout), l->dout = buf(nout), l->din = buf(nin);
        l->w = buf(nw), l->dw = buf(nw), l->b = buf(nb), l->db = buf(nb);
        l->argmax = herd_aligned_alloc((nout ? nout : 1) * sizeof(int32_t));
        memset(l->argmax, 0, nout * sizeof(int32_t));
    }
    return n;
}

static void run(const herd_backend *be, const herd_exec *ex, layer *l, int B, int bwd) {
    switch (l->kind) {
    case L_CONV:
        if (!bwd)
            be->conv2d_forward(ex, l->out, l->in, l->w, l->b, &l->cd);
        else
            be->conv2d_backward(ex, l->first ? NULL : l->din, l->dw, l->db, l->dout, l->in, l->w, &l->cd);
        break;
    case L_RELU:
        if (!bwd)
            be->act_forward(ex, l->out, l->in, l->n, HERD_ACT_RELU, 0);
        else
            be->act_backward(ex, l->din, l->dout, l->in, l->out, l->n, HERD_ACT_RELU, 0);
        break;
    case L_POOL:
        if (!bwd)
            be->maxpool2d_forward(ex, l->out, l->argmax, l->in, &l->pd);
        else
            be->maxpool2d_backward(ex, l->din, l->dout, l->argmax, &l->pd);
        break;
    case L_DENSE:
        if (!bwd)
            be->dense_forward(ex, l->out, l->in, l->w, l->b, B, l->IN, l->OUT);
        else
            be->dense_backward(ex, l->din, l->dw, l->db, l->dout, l->in, l->w, B, l->IN, l->OUT);
        break;
    }
}

static double flops(const layer *l, int B, int bwd) {
    double f;
    if (l->kind == L_CONV)
        f = 2.0 * B * l->cd.OC * l->cd.OH * l->cd.OW * l->cd.C * 9;
    else if (l->kind == L_DENSE)
        f = 2.0 * B * l->IN * l->OUT;
    else
        return 0;
    return bwd ? f * (l->first ? 1 : 2) : f;
}

/* Best of `rounds` rounds, each averaging calls until min_ms has passed (ref: 1 round):
 * the dev VM is shared, and the best round is the one least disturbed by other work. */
static double time_ms(const herd_backend *be, const herd_exec *ex, layer *l, int B, int bwd, double min_ms,
                      int rounds) {
    run(be, ex, l, B, bwd); /* warm caches and page in buffers */
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        int calls = 0;
        double t0 = herd_now(), el;
        do {
            run(be, ex, l, B, bwd);
            calls++;
            el = (herd_now() - t0) * 1e3;
        } while (el < min_ms);
        if (el / calls < best) best = el / calls;
    }
    return best;
}

int main(int argc, char **argv) {
    int with_ref = 1, only_batch = 0;
    double min_ms = 10;
    int rounds = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-ref"))
            with_ref = 0;
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            only_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-ms") && i + 1 < argc)
            min_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--openblas"))
            herdi_cpu_gemm_select(0);
        else {
            fprintf(stderr, "usage: %s [--no-ref] [--batch N] [--min-ms M] [--rounds R] [--openblas]\n", argv[0]);
            return 2;
        }
    }
    struct cfg {
        const char *name;
        const herd_backend *be;
        int pool_threads, blas_threads;
    } cfgs[] = {
        {"ref", &herd_backend_ref, 1, 1},
        {"cpu pool1 blas1", &herd_backend_cpu, 1, 1},
        {"cpu pool2 blas1", &herd_backend_cpu, 2, 1},
        {"cpu pool1 blas2", &herd_backend_cpu, 1, 2},
    };
    printf("conv gemm kernel: %s\n", herdi_cpu_gemm_kernel());
    const int batches[2] = {32, 256};
    for (int bi = 0; bi < 2; bi++) {
        int B = batches[bi];
        if (only_batch && B != only_batch) continue;
        layer L[16];
        int n = build(L, B);
        printf("\n=== batch %d ===\n%-16s", B, "layer");
        for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++)
            if (with_ref || c) printf(" | %-26s", cfgs[c].name);
        printf("\n%-16s", "");
        for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++)
            if (with_ref || c) printf(" | %10s %14s", "ms", "GFLOP/s");
        printf("\n");
        double total[4] = {0};
        double res[16][2][4];
        for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
            if (!with_ref && !c) continue;
            herd_pool *pool = NULL;
            herd_error err;
            if (herd_pool_create(&pool, cfgs[c].pool_threads, &err) != HERD_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            openblas_set_num_threads(cfgs[c].blas_threads);
            size_t wsn = 0;
            for (int i = 0; i < n; i++)
                if (L[i].kind == L_CONV) {
                    size_t k = cfgs[c].be->conv2d_workspace(&L[i].cd, cfgs[c].pool_threads);
                    if (k > wsn) wsn = k;
                }
            herd_exec ex = {.pool = pool, .workspace = buf(wsn), .workspace_floats = wsn};
            for (int i = 0; i < n; i++)
                for (int bwd = 0; bwd < 2; bwd++) {
                    int is_ref = cfgs[c].be == &herd_backend_ref;
                    res[i][bwd][c] = time_ms(cfgs[c].be, &ex, &L[i], B, bwd, is_ref ? 0 : min_ms, is_ref ? 1 : rounds);
                    total[c] += res[i][bwd][c];
                }
            herd_aligned_free(ex.workspace);
            herd_pool_destroy(pool);
        }
        for (int i = 0; i < n; i++)
            for (int bwd = 0; bwd < 2; bwd++) {
                char nm[32];
                snprintf(nm, sizeof nm, "%s %s", L[i].name, bwd ? "bwd" : "fwd");
                printf("%-16s", nm);
                for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
                    if (!with_ref && !c) continue;
                    double f = flops(&L[i], B, bwd);
                    if (f > 0)
                        printf(" | %10.3f %14.1f", res[i][bwd][c], f / (res[i][bwd][c] * 1e6));
                    else
                        printf(" | %10.3f %14s", res[i][bwd][c], "-");
                }
                printf("\n");
            }
        printf("%-16s", "step total");
        for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++)
            if (with_ref || c) printf(" | %10.3f %9.0f img/s", total[c], B / (total[c] * 1e-3));
        printf("\n");
    }
    return 0;
}
