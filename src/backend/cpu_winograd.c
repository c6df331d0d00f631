/* Winograd F(m x m, 3x3), m = 2 or 4, for the plain 3x3 convolutions with stride 1 and padding
 * 1 (the bulk of ResNet's and VGG's work): every (m+2)x(m+2) input tile and every 3x3 kernel go
 * to an (m+2)x(m+2) transform domain, where the convolution becomes (m+2)^2 independent products
 * (CO x CI) * (CI x tiles); the inverse transform brings the m x m outputs back (Lavin and Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2015):
 *   Y = A^T [(G g G^T) . (B^T d B)] A.
 * F(2x2) multiplies 16 times per 4 outputs instead of 36 (2.25x fewer), F(4x4) 36 times per 16
 * outputs instead of 144 (4x fewer) at the price of larger transforms and a larger rounding error
 * (its points 0, +-1, +-2 scale values by up to 8 and 1/24; measured against the reference op,
 * test_backend_cpu_vs_ref, within the tolerance the other paths meet). F(4x4) serves the maps
 * under 64 columns (ResNet's 56x56 to 4x4 maps, its tiles gathered 16 at a time) in all three
 * passes; wider maps stay on F(2x2).
 * The same transforms give the input gradient (the kernel flipped and transposed, run on dout)
 * and the weight gradient: dU = sum over tiles of (A dY A^T) . (B^T d B), then dg = G^T dU G.
 * The transforms run on whole rows of tiles (one image row band and one channel at a time, the
 * tiles of a row side by side), so they vectorise; the products are herdi_cpu_gemm calls.
 *
 * Reproducible: every phase's items are fixed by the shape and never by the thread count, each
 * product is one herdi_cpu_gemm call (a fixed-order sum), and the weight gradient accumulates chunk
 * after chunk in batch order, so results are bit-identical for any number of threads. They are
 * not bit-identical to the im2col path (another order of summation, within float rounding of
 * it). HERD_CONV=gemm in the environment turns this path off (reproducing older results),
 * HERD_CONV=wino2 keeps every shape on F(2x2) (the results of before F(4x4)). */
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

#ifdef HAVE_AVX512_KERNEL
#include <immintrin.h>

/* Tiles per chunk of images: wide enough that the K = (m+2)^2 products run at the kernel's speed
 * (at least 64 columns), few enough that a chunk's transformed tiles (K x tiles x (C + 2 OC)
 * floats) stay near 4 MB, in L2/L3, and the workspace small. A shape's chunk never depends on
 * the batch beyond being capped by it, so a plan for a batch fits any smaller one. */
#define WINO_CHUNK_FLOATS (1 << 20)
#define WINO_MIN_TILES 64
#define WINO_MAX_TILES 256
/* Inference-only calls (one thread a chunk of the batch: lanes) whose transformed kernels are at
 * most WINO_INFER_U_FLOATS: chunks of tiles 8x smaller, at least 16 tiles, so that the tiles the
 * input transform writes are still in L2 when the products read them and the products still in
 * L2 when the output transform reads them; the kernels, re-read every chunk, stay there too. The
 * example CNN at batch 256, one thread, CPU per batch (conv2 32->64 14x14: 12 images a chunk -> 2;
 * conv3 64->128 7x7: 23 -> 4), alternating runs on a loaded machine: 42-44 ms -> 35-39 ms (the
 * 8x chunk), 37-39 (4x), 34-36 (16x); later rounds could not tell them apart. A chunk's outputs are the same numbers
 * whatever its size (each tile's sums run over the input channels alone); the weight gradient's
 * sum over chunks would not be, and training keeps WINO_CHUNK_FLOATS. */
#define WINO_INFER_CHUNK_FLOATS (1 << 17)
#define WINO_INFER_MIN_TILES 16
#define WINO_INFER_U_FLOATS (1 << 19)
/* Rows of the products per work item: the item count (K x row blocks) is fixed by the shape. */
#define WINO_ROWS 64
/* The most tiles across (output width / 2) the row buffers hold on the stack; wider images
 * stay on the im2col path. */
#define WINO_MAX_TW 128
/* Output channels per item of the weight-gradient fold */
#define WINO_DW_BLOCK 16
/* Maps under this many tiles across take the gathered path (16 tiles of an image a vector) */
#define WINO_SMALL_TW 16
#define WINO_SMALL_T (WINO_SMALL_TW * WINO_MAX_TW)

/* m x m outputs a tile, (m+2)^2 transform points */
static int tiles_w(const conv2d_dims *d, int m) { return (d->OW + m - 1) / m; }
static int tiles_h(const conv2d_dims *d, int m) { return (d->OH + m - 1) / m; }
static int tiles(const conv2d_dims *d, int m) { return tiles_w(d, m) * tiles_h(d, m); }
static int points(int m) { return (m + 2) * (m + 2); }

static int chunk_images(const conv2d_dims *d, int m) {
    const int64_t per_tile = points(m) * ((int64_t)d->C + 2 * (int64_t)d->OC);
    const int small = d->inference && (int64_t)points(m) * d->C * d->OC <= WINO_INFER_U_FLOATS;
    const int64_t lo = small ? WINO_INFER_MIN_TILES : WINO_MIN_TILES;
    int64_t want = (small ? WINO_INFER_CHUNK_FLOATS : WINO_CHUNK_FLOATS) / per_tile;
    want = want < lo ? lo : want > WINO_MAX_TILES ? WINO_MAX_TILES : want;
    int T = tiles(d, m), n = (int)((want + T - 1) / T);
    if (n < 1) n = 1;
    return n < d->B ? n : d->B;
}

#define WINO_MIN_POSITIONS 64
#define WINO_INFER_MIN_POSITIONS 1024
#define WINO_MIN_CALL_TILES 16

int herdi_cpu_winograd_applies(const conv2d_dims *d) {
    if (d->KH != 3 || d->KW != 3 || d->SH != 1 || d->SW != 1 || d->PH != 1 || d->PW != 1) return 0;
    if (conv2d_is_grouped(d) || d->OH != d->H || d->OW != d->W || tiles_w(d, 2) > WINO_MAX_TW ||
        tiles_h(d, 2) > WINO_MAX_TW)
        return 0;
    /* Below 64 channels the transforms (about as much work per tile and channel as a 64-row
     * product) eat the saving; so do small maps with few channels (7x7 rounds up to 8x8 tiles,
     * 16 tiles fill a fraction of a vector) and maps under 4x4 (a tile is mostly padding).
     * Measured one thread, B32, im2col path -> F(2x2), forward / backward: 64ch 16x16 1.46x /
     * 1.43x, 128ch 8x8 1.14x / 1.15x, 512ch 7x7 2.3x / 1.7x, 256ch 4x4 1.13x / 1.19x; left out:
     * 512ch 2x2 0.97x / 0.80x, 64->128ch 7x7 0.96x / 0.78x (the example CNN's conv3). */
    /* The kernel transform (about 160 multiply-adds a channel pair, and 4x the weight's bytes
     * for F(4x4)) is paid per call, the saving (6.75 fewer products a channel pair for F(4x4))
     * per output position of the batch: under WINO_MIN_POSITIONS positions (batch-1 inference
     * on small maps) the direct paths win: ResNet-18 at 3x64x64, batch 1, 2 threads: its 4x4
     * layers took 2.2-2.6 ms each by Winograd. */
    /* Inference-only calls (d->inference) take it from 32 channels and 2048 channel-positions on:
     * the example CNN's conv2 (32->64 14x14) and conv3 (64->128 7x7) by F(4x4), one thread a chunk
     * (lanes), batch 256, CPU per batch, alternating: 50-53 ms -> 40-45 with both (before the
     * smaller inference chunks above), 46-47 with conv3 alone. Its sums run in another order than
     * im2col's (within the reference test's bound): training keeps im2col's bits on those shapes.
     * Those shapes need WINO_INFER_MIN_POSITIONS output positions a call: at batch 1 with 2
     * threads conv2 by Winograd (three hand-offs to the pool) took the example CNN's latency from
     * 0.39-0.56 ms to 0.67-0.71 ms, so batch 1 keeps the narrow path (and its bits). And with the
     * kernels prepared (inference) the products are the cost of the wide shapes too: each is (tiles
     * of the call) wide, and under WINO_MIN_CALL_TILES F(4x4) tiles a call (an 8x8 map under 4
     * images, 4x4 under 16) they fill a fraction of a vector: 128ch 8x8, three convs, one thread,
     * CPU ms: batch 1 1.87 by Winograd against 0.58 direct, batch 2 1.73 / 1.25; batch 4 (16
     * tiles) 1.85 / 2.56; 64ch 16x16 batch 1 (16 tiles) 0.42 / 0.61; 256ch 4x4 batch 4 7.3 / 2.9.
     * Training keeps its forms (and bits) at every batch. */
    const int64_t ch = d->C < d->OC ? d->C : d->OC, positions = (int64_t)d->B * d->OH * d->OW;
    const int wide = ch >= 64 && ch * d->OH * d->OW >= 4096;
    const int inference = d->inference && ch >= 32 && ch * d->OH * d->OW >= 2048 && positions >= WINO_INFER_MIN_POSITIONS;
    return !herdi_cpu_conv_gemm_only() && herdi_cpu_avx512_enabled() && (wide || inference) && d->OH >= 4 && d->OW >= 4 &&
           positions >= WINO_MIN_POSITIONS && (!d->inference || (int64_t)d->B * tiles(d, 4) >= WINO_MIN_CALL_TILES);
}

/* The tile of every pass: F(4x4) where its tiles take the gathered path (maps under 64 columns),
 * F(2x2) on wider maps and under HERD_CONV=wino2. */
static int forward_m(const conv2d_dims *d) {
    return tiles_w(d, 4) < WINO_SMALL_TW && !herdi_cpu_conv_winograd_f2_only() ? 4 : 2;
}

/* [U or dU^T: K*C*OC | X: K*P*C | Y: K*P*OC | Z: K*P*OC, the weight gradient's dout tiles
 * before their transpose], laid out for tile m */
static size_t workspace_for(const conv2d_dims *d, int m) {
    size_t P = (size_t)chunk_images(d, m) * tiles(d, m), K = (size_t)points(m);
    return cpu_round16(K * d->C * d->OC) + cpu_round16(K * P * d->C) + 2 * cpu_round16(K * P * d->OC);
}

size_t herdi_cpu_winograd_workspace(const conv2d_dims *d) { return workspace_for(d, forward_m(d)); }

/* The kernel transform is paid per call and its saving per tile of the batch: kept across calls
 * (herd_exec.prep) where a call has at most WINO_PREP_TILES tiles (batch-1 inference: ResNet-18's
 * 14x14 layer makes 9.4 MB of transformed kernels for 16 tiles), where it is a large part of the
 * call; larger batches transform per call rather than keep 4x the weights (F(4x4)). */
#define WINO_PREP_TILES 256

size_t herdi_cpu_winograd_prepared(const conv2d_dims *d) {
    if (!herdi_cpu_winograd_applies(d) || (int64_t)d->B * tiles(d, forward_m(d)) > WINO_PREP_TILES) return 0;
    return cpu_round16((size_t)points(forward_m(d)) * d->C * d->OC);
}

typedef struct wino_job {
    const herd_exec *ex;
    const conv2d_dims *d;
    int CI, CO;         /* channels into and out of this pass */
    const float *in;    /* (B, CI, H, W) */
    float *out;         /* (B, CO, H, W): forward and din passes */
    const float *bias;  /* forward: (CO) or NULL */
    const conv2d_post *post; /* forward: a folded batch norm, then the activation (NULL: none) */
    int accumulate;     /* out += instead of = (din) */
    const float *w;     /* the layer's weights (OC, C, 3, 3) */
    float *U;           /* [16][CO][CI]: transformed kernels; dw pass: dU^T [16][CI][CO] */
    float *V;           /* [16][CI][P]: transformed input tiles */
    float *M;           /* [16][CO][P]: products; dw pass: transformed dout [16][P][CO] */
    float *Mr;          /* dw pass: transformed dout as written, [16][CO][P] */
    const float *dout;  /* dw pass: (B, OC, H, W) */
    float *dw, *db;     /* dw pass: accumulated into */
    int b0, nb, P;      /* the chunk: images [b0, b0 + nb), P = nb * tiles */
    int first;          /* dw pass: the first chunk overwrites dU */
    int m;              /* the tile: m x m outputs, (m+2)^2 transform points (2 or 4) */
} wino_job;

/* ---- kernel transforms ---- */

/* k[e] (e = 0..8), lane l = g[l*gstride + e], or tap 8 - e when flip, for the lanes under m (the
 * others 0): the 16 kernels' 9 taps read as rows and turned into 9 vectors by a transpose. The
 * 9 strided gathers this replaces ran at a fraction of a load's rate on this CPU (a kernel
 * transform per 16 kernels, in forward and din). */
static TARGET_AVX512 void load_kernels16(__m512 k[9], const float *g, int gstride, int flip, __mmask16 m) {
    float taps[9 * 16];
    int n = 0;
    while (n < 16 && (m >> n & 1)) n++; /* lanes [0, n): m is always a prefix */
    herdi_cpu_transpose_ld(taps, (size_t)n, g, (size_t)gstride, n, 9); /* taps[e*n + l] */
    for (int e = 0; e < 9; e++) k[e] = _mm512_maskz_loadu_ps(m, taps + (flip ? 8 - e : e) * n);
}

/* u[k] (k = 0..15, at u + k*ustride) = (G g G^T)[k] for 16 kernels side by side (lanes m):
 * lane l's 3x3 kernel has its tap e at g[l*gstride + e] (e = 3*row + col), or flipped (8 - e). */
static TARGET_AVX512 void kernels_to_u(float *u, size_t ustride, const float *g, int gstride, int flip,
                                       __mmask16 m) {
    const __m512 half = _mm512_set1_ps(0.5f);
    __m512 k[9], t[4][3];
    load_kernels16(k, g, gstride, flip, m);
    for (int c = 0; c < 3; c++) { /* t = G g */
        __m512 g0 = k[c], g1 = k[3 + c], g2 = k[6 + c];
        t[0][c] = g0;
        t[1][c] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g0, g1), g2));
        t[2][c] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g0, g1), g2));
        t[3][c] = g2;
    }
    for (int r = 0; r < 4; r++) { /* u = t G^T */
        __m512 t0 = t[r][0], t1 = t[r][1], t2 = t[r][2];
        _mm512_mask_storeu_ps(u + (size_t)(4 * r) * ustride, m, t0);
        _mm512_mask_storeu_ps(u + (size_t)(4 * r + 1) * ustride, m,
                              _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t0, t1), t2)));
        _mm512_mask_storeu_ps(u + (size_t)(4 * r + 2) * ustride, m,
                              _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t0, t1), t2)));
        _mm512_mask_storeu_ps(u + (size_t)(4 * r + 3) * ustride, m, t2);
    }
}

/* ---- F(4x4) transforms (Lavin and Gray's points 0, 1, -1, 2, -2, infinity) ----
 * B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 * G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 * A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] */

/* r = B^T (d0 .. d5) */
static inline TARGET_AVX512 __attribute__((always_inline)) void bt6(__m512 r[6], __m512 d0, __m512 d1, __m512 d2,
                                                                    __m512 d3, __m512 d4, __m512 d5) {
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f);
    const __m512 a = _mm512_sub_ps(d3, d1), b = _mm512_sub_ps(d4, d2);
    r[0] = _mm512_fnmadd_ps(five, d2, _mm512_fmadd_ps(four, d0, d4));
    r[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d1, d2), _mm512_add_ps(d3, d4));
    r[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d1, d2), _mm512_sub_ps(d4, d3));
    r[3] = _mm512_fmadd_ps(two, a, b);
    r[4] = _mm512_fnmadd_ps(two, a, b);
    r[5] = _mm512_fnmadd_ps(five, d3, _mm512_fmadd_ps(four, d1, d5));
}

/* y = A^T (m0 .. m5) */
static inline TARGET_AVX512 __attribute__((always_inline)) void at6(__m512 y[4], __m512 m0, __m512 m1, __m512 m2,
                                                                    __m512 m3, __m512 m4, __m512 m5) {
    const __m512 s12 = _mm512_add_ps(m1, m2), d12 = _mm512_sub_ps(m1, m2);
    const __m512 s34 = _mm512_add_ps(m3, m4), d34 = _mm512_sub_ps(m3, m4);
    y[0] = _mm512_add_ps(_mm512_add_ps(m0, s12), s34);
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
    y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
    y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m5);
}

/* u = G (g0, g1, g2) */
static inline TARGET_AVX512 __attribute__((always_inline)) void g6(__m512 u[6], __m512 g0, __m512 g1, __m512 g2) {
    const __m512 s = _mm512_add_ps(g0, g2), sixth = _mm512_set1_ps(-1.0f / 6.0f);
    const __m512 b = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24.0f), g0, _mm512_mul_ps(_mm512_set1_ps(1.0f / 6.0f), g2));
    const __m512 c = _mm512_mul_ps(_mm512_set1_ps(1.0f / 12.0f), g1);
    u[0] = _mm512_mul_ps(_mm512_set1_ps(0.25f), g0);
    u[1] = _mm512_mul_ps(sixth, _mm512_add_ps(s, g1));
    u[2] = _mm512_mul_ps(sixth, _mm512_sub_ps(s, g1));
    u[3] = _mm512_add_ps(b, c);
    u[4] = _mm512_sub_ps(b, c);
    u[5] = g2;
}

/* kernels_to_u for F(4x4): u[k] (k = 0..35) = (G g G^T)[k] */
static TARGET_AVX512 void kernels_to_u6(float *u, size_t ustride, const float *g, int gstride, int flip, __mmask16 m) {
    __m512 k[9], t[3][6], r[6];
    load_kernels16(k, g, gstride, flip, m);
    for (int c = 0; c < 3; c++) g6(t[c], k[c], k[3 + c], k[6 + c]); /* t[c] = column c of G g */
    for (int a = 0; a < 6; a++) {                                  /* row a of (G g) G^T */
        g6(r, t[0][a], t[1][a], t[2][a]);
        for (int b = 0; b < 6; b++) _mm512_mask_storeu_ps(u + (size_t)(6 * a + b) * ustride, m, r[b]);
    }
}

/* d (6x6 input values per tile) -> v[k] = (B^T d B)[k], stored at v + k*ks under mask m. */
static inline TARGET_AVX512 __attribute__((always_inline)) void store_bt_d_b6(float *v, size_t ks, __mmask16 m,
                                                                              __m512 q[6][6]) {
    __m512 t[6][6], r[6];
    for (int col = 0; col < 6; col++) { /* column col of B^T d */
        bt6(r, q[0][col], q[1][col], q[2][col], q[3][col], q[4][col], q[5][col]);
        for (int a = 0; a < 6; a++) t[a][col] = r[a];
    }
    for (int a = 0; a < 6; a++) { /* row a of (B^T d) B */
        bt6(r, t[a][0], t[a][1], t[a][2], t[a][3], t[a][4], t[a][5]);
        for (int b = 0; b < 6; b++) _mm512_mask_storeu_ps(v + (size_t)(6 * a + b) * ks, m, r[b]);
    }
}

/* m[k] loaded from mb + k*ks under mask -> y[r][c] = (A^T m A)[r][c] + bias (4x4 outputs). */
static inline TARGET_AVX512 __attribute__((always_inline)) void load_at_m_a6(__m512 y[4][4], const float *mb, size_t ks,
                                                                             __mmask16 mask, __m512 bias) {
    __m512 t[4][6], r[4], q[6];
    for (int col = 0; col < 6; col++) { /* column col of A^T m */
        for (int a = 0; a < 6; a++) q[a] = _mm512_maskz_loadu_ps(mask, mb + (size_t)(6 * a + col) * ks);
        at6(r, q[0], q[1], q[2], q[3], q[4], q[5]);
        for (int a = 0; a < 4; a++) t[a][col] = r[a];
    }
    for (int a = 0; a < 4; a++) { /* row a of (A^T m) A */
        at6(r, t[a][0], t[a][1], t[a][2], t[a][3], t[a][4], t[a][5]);
        for (int b = 0; b < 4; b++) y[a][b] = _mm512_add_ps(r[b], bias);
    }
}

/* Forward: U[k][oc][c] from w[oc][c]; items are output channels, 16 input channels a vector. */
static TARGET_AVX512 void kernels_forward(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx;
    const size_t plane = (size_t)j->CO * j->CI;
    for (int64_t oc = s0; oc < s1; oc++)
        for (int c = 0; c < j->CI; c += 16)
            (j->m == 4 ? kernels_to_u6 : kernels_to_u)(j->U + (size_t)oc * j->CI + c, plane,
                                                       j->w + ((size_t)oc * j->CI + c) * 9, 9, 0, cpu_lanes16(j->CI - c));
}

/* Input gradient: the pass runs from OC channels to C with g'[c][oc] = w[oc][c] flipped in both
 * directions, so U[k][c][oc] = G g' G^T; items are the layer's input channels c, 16 output
 * channels a vector. */
static TARGET_AVX512 void kernels_din(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx; /* CI = the layer's OC, CO = the layer's C */
    const size_t plane = (size_t)j->CO * j->CI;
    for (int64_t c = s0; c < s1; c++)
        for (int oc = 0; oc < j->CI; oc += 16)
            (j->m == 4 ? kernels_to_u6 : kernels_to_u)(j->U + (size_t)c * j->CI + oc, plane,
                                                       j->w + ((size_t)oc * j->CO + c) * 9, 9 * j->CO, 1,
                                                       cpu_lanes16(j->CI - oc));
}

/* r = G^T (v0 .. v5) for F(4x4) */
static inline TARGET_AVX512 __attribute__((always_inline)) void gt6(__m512 r[3], __m512 v0, __m512 v1, __m512 v2,
                                                                    __m512 v3, __m512 v4, __m512 v5) {
    const __m512 sixth = _mm512_set1_ps(1.0f / 6.0f), s12 = _mm512_add_ps(v1, v2), s34 = _mm512_add_ps(v3, v4);
    r[0] = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24.0f), s34,
                           _mm512_fnmadd_ps(sixth, s12, _mm512_mul_ps(_mm512_set1_ps(0.25f), v0)));
    r[1] = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 12.0f), _mm512_sub_ps(v3, v4), _mm512_mul_ps(sixth, _mm512_sub_ps(v2, v1)));
    r[2] = _mm512_fmadd_ps(sixth, _mm512_sub_ps(s34, s12), v5);
}

/* F(4x4), 16 output channels side by side (lanes under m): dw[lane*wstride + 3e + f] +=
 * (G^T dU G)[e][f], the lane's dU[k] at du[k*plane + lane] */
static TARGET_AVX512 void fold_dw6(float *dw, int wstride, const float *du, size_t plane, __mmask16 m) {
    __m512 q[6][6], s[6][3], r[9];
    for (int k = 0; k < 36; k++) q[k / 6][k % 6] = _mm512_maskz_loadu_ps(m, du + (size_t)k * plane);
    for (int b = 0; b < 6; b++) gt6(s[b], q[0][b], q[1][b], q[2][b], q[3][b], q[4][b], q[5][b]); /* G^T dU */
    for (int e = 0; e < 3; e++) gt6(r + 3 * e, s[0][e], s[1][e], s[2][e], s[3][e], s[4][e], s[5][e]); /* (G^T dU) G */
    float taps[9 * 16]; /* lane l's 9 sums into dw[l*wstride ..]: a transposed add, not 9 scatters */
    for (int e = 0; e < 9; e++) _mm512_storeu_ps(taps + 16 * e, r[e]);
    int n = 0;
    while (n < 16 && (m >> n & 1)) n++;
    herdi_cpu_transpose_add(dw, (size_t)wstride, taps, 16, 9, n);
}

/* Weight gradient: dw[oc][c] += G^T dU G with dU[k] read from dU^T [K][C][OC]; items are blocks
 * of 16 output channels, read side by side for each c. */
static void kernels_dw(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx; /* CI = C, CO = OC */
    const size_t plane = (size_t)j->CI * j->CO;
    for (int64_t blk = s0; blk < s1; blk++) {
        int o0 = (int)blk * WINO_DW_BLOCK, o1 = o0 + WINO_DW_BLOCK < j->CO ? o0 + WINO_DW_BLOCK : j->CO;
        if (j->m == 4) {
            for (int c = 0; c < j->CI; c++)
                fold_dw6(j->dw + ((size_t)o0 * j->CI + c) * 9, 9 * j->CI, j->U + (size_t)c * j->CO + o0, plane,
                         cpu_lanes16(o1 - o0));
            continue;
        }
        for (int c = 0; c < j->CI; c++)
            for (int oc = o0; oc < o1; oc++) {
                const float *du = j->U + (size_t)c * j->CO + oc;
                float m[16], s[3][4];
                for (int k = 0; k < 16; k++) m[k] = du[(size_t)k * plane];
                for (int jj = 0; jj < 4; jj++) {
                    float m0 = m[jj], m1 = m[4 + jj], m2 = m[8 + jj], m3 = m[12 + jj];
                    s[0][jj] = m0 + 0.5f * (m1 + m2);
                    s[1][jj] = 0.5f * (m1 - m2);
                    s[2][jj] = 0.5f * (m1 + m2) + m3;
                }
                float *g = j->dw + ((size_t)oc * j->CI + c) * 9;
                for (int i = 0; i < 3; i++) {
                    float t0 = s[i][0], t1 = s[i][1], t2 = s[i][2], t3 = s[i][3];
                    g[3 * i + 0] += t0 + 0.5f * (t1 + t2);
                    g[3 * i + 1] += 0.5f * (t1 - t2);
                    g[3 * i + 2] += 0.5f * (t1 + t2) + t3;
                }
            }
    }
}

/* ---- tile transforms: 16 tiles of a row band side by side in each vector ---- */

/* Padded row buffers: column x of the image at [x + 1], zeros around, room for the last block's
 * full-width loads (2 * 16 past its start + 2). */
#define WINO_ROW (2 * WINO_MAX_TW + 48)

/* pr = row y of x, padded: only columns 1..W are written, so the zeros around stay from the
 * caller's one clearing of the buffer; rows outside the image are zeros. */
static void padded_row(float *pr, const float *x, int y, int H, int W) {
    if (y >= 0 && y < H)
        memcpy(pr + 1, x + (size_t)y * W, sizeof(float) * (size_t)W);
    else
        memset(pr + 1, 0, sizeof(float) * (size_t)W);
}

/* ---- the three tile transforms on 16 tiles at once (one per lane) ---- */

/* d (4x4 input values per tile) -> v[k] = (B^T d B)[k], stored at v + k*ks under mask m. */
static inline TARGET_AVX512 __attribute__((always_inline)) void store_bt_d_b(float *v, size_t ks, __mmask16 m,
                                                                             __m512 q[4][4]) {
    for (int col = 0; col < 4; col++) { /* B^T d */
        __m512 d0 = q[0][col], d1 = q[1][col], d2 = q[2][col], d3 = q[3][col];
        q[0][col] = _mm512_sub_ps(d0, d2);
        q[1][col] = _mm512_add_ps(d1, d2);
        q[2][col] = _mm512_sub_ps(d2, d1);
        q[3][col] = _mm512_sub_ps(d1, d3);
    }
    for (int r = 0; r < 4; r++) { /* (B^T d) B */
        float *vr = v + (size_t)(4 * r) * ks;
        _mm512_mask_storeu_ps(vr, m, _mm512_sub_ps(q[r][0], q[r][2]));
        _mm512_mask_storeu_ps(vr + ks, m, _mm512_add_ps(q[r][1], q[r][2]));
        _mm512_mask_storeu_ps(vr + 2 * ks, m, _mm512_sub_ps(q[r][2], q[r][1]));
        _mm512_mask_storeu_ps(vr + 3 * ks, m, _mm512_sub_ps(q[r][1], q[r][3]));
    }
}

/* m[k] loaded from mb + k*ks under mask -> y[r][c] = (A^T m A)[r][c] + bias. */
static inline TARGET_AVX512 __attribute__((always_inline)) void load_at_m_a(__m512 y[2][2], const float *mb, size_t ks,
                                                                            __mmask16 mask, __m512 bias) {
    __m512 t[2][4];
    for (int col = 0; col < 4; col++) { /* A^T m */
        __m512 m0 = _mm512_maskz_loadu_ps(mask, mb + (size_t)col * ks);
        __m512 m1 = _mm512_maskz_loadu_ps(mask, mb + (size_t)(4 + col) * ks);
        __m512 m2 = _mm512_maskz_loadu_ps(mask, mb + (size_t)(8 + col) * ks);
        __m512 m3 = _mm512_maskz_loadu_ps(mask, mb + (size_t)(12 + col) * ks);
        t[0][col] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        t[1][col] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
    }
    for (int r = 0; r < 2; r++) { /* (A^T m) A */
        y[r][0] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(t[r][0], t[r][1]), t[r][2]), bias);
        y[r][1] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(t[r][1], t[r][2]), t[r][3]), bias);
    }
}

/* dy (2x2 output gradients per tile) -> m[k] = (A dY A^T)[k], stored at mp + k*ks under mask. */
static inline TARGET_AVX512 __attribute__((always_inline)) void store_a_dy_at(float *mp, size_t ks, __mmask16 mask,
                                                                              __m512 dy[2][2]) {
    const __m512 zero = _mm512_setzero_ps();
    __m512 t[4][2];
    for (int c = 0; c < 2; c++) { /* A dY */
        t[0][c] = dy[0][c];
        t[1][c] = _mm512_add_ps(dy[0][c], dy[1][c]);
        t[2][c] = _mm512_sub_ps(dy[0][c], dy[1][c]);
        t[3][c] = _mm512_sub_ps(zero, dy[1][c]);
    }
    for (int r = 0; r < 4; r++) { /* (A dY) A^T */
        __m512 a = t[r][0], b = t[r][1];
        _mm512_mask_storeu_ps(mp + (size_t)(4 * r) * ks, mask, a);
        _mm512_mask_storeu_ps(mp + (size_t)(4 * r + 1) * ks, mask, _mm512_add_ps(a, b));
        _mm512_mask_storeu_ps(mp + (size_t)(4 * r + 2) * ks, mask, _mm512_sub_ps(a, b));
        _mm512_mask_storeu_ps(mp + (size_t)(4 * r + 3) * ks, mask, _mm512_sub_ps(zero, b));
    }
}

/* y = A (d0 .. d3), A = (A^T)^T */
static inline TARGET_AVX512 __attribute__((always_inline)) void a6(__m512 y[6], __m512 d0, __m512 d1, __m512 d2,
                                                                   __m512 d3) {
    const __m512 s = _mm512_add_ps(d0, d2), t = _mm512_add_ps(d1, d3);
    const __m512 e = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), d2, d0);
    const __m512 o = _mm512_fmadd_ps(_mm512_set1_ps(8.0f), d3, _mm512_add_ps(d1, d1));
    y[0] = d0;
    y[1] = _mm512_add_ps(s, t);
    y[2] = _mm512_sub_ps(s, t);
    y[3] = _mm512_add_ps(e, o);
    y[4] = _mm512_sub_ps(e, o);
    y[5] = d3;
}

/* dy (4x4 output gradients per tile) -> m[k] = (A dY A^T)[k], stored at mp + k*ks under mask. */
static inline TARGET_AVX512 __attribute__((always_inline)) void store_a_dy_at6(float *mp, size_t ks, __mmask16 mask,
                                                                               __m512 dy[4][4]) {
    __m512 t[6][4], r[6];
    for (int c = 0; c < 4; c++) { /* column c of A dY */
        a6(r, dy[0][c], dy[1][c], dy[2][c], dy[3][c]);
        for (int a = 0; a < 6; a++) t[a][c] = r[a];
    }
    for (int a = 0; a < 6; a++) { /* row a of (A dY) A^T */
        a6(r, t[a][0], t[a][1], t[a][2], t[a][3]);
        for (int b = 0; b < 6; b++) _mm512_mask_storeu_ps(mp + (size_t)(6 * a + b) * ks, mask, r[b]);
    }
}

/* ---- maps under 16 tiles across: 16 consecutive tiles per vector, whatever their rows ----
 * A row band of such a map has fewer than 16 tiles, so the band-wise transforms below would fill
 * a fraction of each vector; here lane l is column q0 + l of the transformed tiles (q = i*T + p,
 * p = ty*TW + tx), its values gathered from a zero-padded copy of the channel (inputs) or
 * scattered into the output. Maps of fewer than 16 tiles take 16 images an item, so that every
 * vector is full (a 4x4 map is one F(4x4) tile). F(2x2) and F(4x4) (tile mt) share these loops. */

/* Images per item: 16 where an image has fewer than 16 tiles, else 1 */
static int group_images(int T) { return T < 16 ? 16 : 1; }

/* Items per channel of a chunk of nb images */
static int64_t image_groups(const wino_job *j) {
    const int T = tiles(j->d, j->m), g = tiles_w(j->d, j->m) < WINO_SMALL_TW ? group_images(T) : 1;
    return (j->nb + g - 1) / g;
}

/* first[q] (q < g*T) = the offset of column q's top-left value: image q / T at q/T * plane, its
 * tile p = q % T at mt*ty*ld + mt*tx */
static void tile_offsets(int32_t *first, int TW, int T, int ld, int mt, int g, int plane) {
    for (int q = 0; q < g * T; q++) {
        int p = q % T;
        first[q] = q / T * plane + mt * (p / TW) * ld + mt * (p % TW);
    }
}

/* q[r*n + col] = value (r, col) of the n x n tiles at idx in pad (rows ld apart), zero where m is clear */
static inline TARGET_AVX512 __attribute__((always_inline)) void gather_tiles(__m512 *q, int n, __mmask16 m, __m512i idx,
                                                                             const float *pad, int ld) {
    for (int r = 0; r < n; r++)
        for (int col = 0; col < n; col++)
            q[r * n + col] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, pad + r * ld + col, 4);
}

static TARGET_AVX512 void input_tiles_small(const wino_job *j, int64_t s0, int64_t s1) {
    const conv2d_dims *d = j->d;
    const int mt = j->m, TW = tiles_w(d, mt), TH = tiles_h(d, mt), T = TW * TH, ld = mt * TW + 2, H = d->H, W = d->W;
    const int g = group_images(T), plane = (mt * TH + 2) * ld;
    const size_t ks = (size_t)j->CI * j->P;
    float pad[(2 * WINO_MAX_TW + 2) * (4 * WINO_SMALL_TW + 2)];
    int32_t first[WINO_SMALL_T];
    tile_offsets(first, TW, T, ld, mt, g, plane);
    memset(pad, 0, sizeof(float) * (size_t)g * plane);
    for (int64_t s = s0; s < s1; s++) {
        int i0 = (int)(s / j->CI) * g, c = (int)(s % j->CI), n = (j->nb - i0 < g ? j->nb - i0 : g) * T;
        for (int i = 0; i < n / T; i++) {
            const float *x = j->in + ((size_t)(j->b0 + i0 + i) * j->CI + c) * H * W;
            for (int y = 0; y < H; y++)
                memcpy(pad + (size_t)i * plane + (size_t)(y + 1) * ld + 1, x + (size_t)y * W, sizeof(float) * (size_t)W);
        }
        float *v = j->V + (size_t)c * j->P + (size_t)i0 * T;
        for (int q0 = 0; q0 < n; q0 += 16) {
            __mmask16 m = cpu_lanes16(n - q0);
            __m512i idx = _mm512_maskz_loadu_epi32(m, first + q0);
            if (mt == 4) {
                __m512 q[6][6];
                gather_tiles(&q[0][0], 6, m, idx, pad, ld);
                store_bt_d_b6(v + q0, ks, m, q);
            } else {
                __m512 q[4][4];
                gather_tiles(&q[0][0], 4, m, idx, pad, ld);
                store_bt_d_b(v + q0, ks, m, q);
            }
        }
    }
}

/* inside[(q0/16)*mt*mt + r*mt + c]: whether output (mt*ty + r, mt*tx + c) of column q's tile
 * exists (a partial tile on the bottom or right edge); first as tile_offsets, images plane apart */
static void tile_inside(int32_t *first, uint16_t *inside, int TW, int T, int H, int W, int mt, int g, int plane) {
    for (int q0 = 0; q0 < g * T; q0 += 16)
        for (int rc = 0; rc < mt * mt; rc++) {
            uint16_t bits = 0;
            for (int l = 0; l < 16 && q0 + l < g * T; l++) {
                int p = (q0 + l) % T, y = mt * (p / TW) + rc / mt, x = mt * (p % TW) + rc % mt;
                if (y < H && x < W) bits |= (uint16_t)(1u << l);
            }
            inside[(q0 / 16) * mt * mt + rc] = bits;
        }
    tile_offsets(first, TW, T, W, mt, g, plane);
}

/* F(4x4) output tiles yy (lane l: column q0 + l, its tile's top-left at o + first[l]), the folded batch
 * norm's multiply then add (sc NULL: none) and the activation applied, stored a tile row at a time:
 * the 16 vectors transposed in registers give each tile's 4x4 values in one vector, whose four
 * rows are contiguous in the output. The values of the scatter below, 4-float stores instead of
 * 16 scattered ones; a partial tile (inside: which of its 16 outputs exist, a bit per lane) is
 * stored element by element. */
static TARGET_AVX512 void store_tiles_rows(float *o, int W, const int32_t *first, const uint16_t *inside, __mmask16 m,
                                           __m512 yy[4][4], const __m512 *sc, const __m512 *sh, herd_act act) {
    __m512 v[16];
    unsigned full = m;
    for (int rc = 0; rc < 16; rc++) {
        __m512 y = yy[rc / 4][rc % 4];
        if (sc) y = _mm512_add_ps(_mm512_mul_ps(y, *sc), *sh);
        v[rc] = cpu_act_vec16(y, act);
        full &= inside[rc];
    }
    cpu_transpose16(v);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int l = 0; l < 16; l++) {
        if (!(m >> l & 1)) continue;
        float *t = o + first[l];
        if (full >> l & 1) {
            _mm_storeu_ps(t, _mm512_castps512_ps128(v[l]));
            _mm_storeu_ps(t + W, _mm512_extractf32x4_ps(v[l], 1));
            _mm_storeu_ps(t + 2 * W, _mm512_extractf32x4_ps(v[l], 2));
            _mm_storeu_ps(t + 3 * W, _mm512_extractf32x4_ps(v[l], 3));
        } else { /* the outputs inside are the tile's top-left rows x cols: its inside rows under a column mask */
            __mmask16 cols = 0;
            for (int c = 0; c < 4; c++) cols |= (__mmask16)((inside[c] >> l & 1) << c);
            for (int r = 0; r < 4 && (inside[4 * r] >> l & 1); r++) /* row r moved to lanes 0-3 (no trip through memory) */
                _mm512_mask_storeu_ps(t + r * W, cols, _mm512_permutexvar_ps(_mm512_add_epi32(lane, _mm512_set1_epi32(4 * r)), v[l]));
        }
    }
}

static TARGET_AVX512 void output_tiles_small(const wino_job *j, int64_t s0, int64_t s1) {
    const conv2d_dims *d = j->d;
    const int mt = j->m, TW = tiles_w(d, mt), TH = tiles_h(d, mt), T = TW * TH, H = d->OH, W = d->OW;
    const int g = group_images(T);
    const size_t ks = (size_t)j->CO * j->P;
    int32_t first[WINO_SMALL_T];
    uint16_t inside[WINO_SMALL_T];
    tile_inside(first, inside, TW, T, H, W, mt, g, j->CO * H * W);
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t s = s0; s < s1; s++) {
        int i0 = (int)(s / j->CO) * g, oc = (int)(s % j->CO), n = (j->nb - i0 < g ? j->nb - i0 : g) * T;
        const __m512 bias = _mm512_set1_ps(j->bias ? j->bias[oc] : 0.0f);
        const int affine = j->post && j->post->scale;
        const herd_act act = j->post ? j->post->act : HERD_ACT_NONE;
        const __m512 sc = _mm512_set1_ps(affine ? j->post->scale[oc] : 1.0f), sh = _mm512_set1_ps(affine ? j->post->shift[oc] : 0.0f);
        float *o = j->out + ((size_t)(j->b0 + i0) * j->CO + oc) * H * W;
        const float *mb = j->M + (size_t)oc * j->P + (size_t)i0 * T;
        for (int q0 = 0; q0 < n; q0 += 16) {
            __mmask16 m = cpu_lanes16(n - q0);
            __m512i idx = _mm512_maskz_loadu_epi32(m, first + q0);
            __m512 yy[4][4];
            if (mt == 4)
                load_at_m_a6(yy, mb + q0, ks, m, bias);
            else {
                __m512 y2[2][2];
                load_at_m_a(y2, mb + q0, ks, m, bias);
                yy[0][0] = y2[0][0], yy[0][1] = y2[0][1], yy[1][0] = y2[1][0], yy[1][1] = y2[1][1];
            }
            if (mt == 4 && !j->accumulate) {
                store_tiles_rows(o, W, first + q0, inside + (q0 / 16) * 16, m, yy, affine ? &sc : NULL, &sh, act);
                continue;
            }
            for (int r = 0; r < mt; r++)
                for (int c = 0; c < mt; c++) {
                    __m512 y = yy[r][c];
                    __mmask16 in = m & inside[(q0 / 16) * mt * mt + r * mt + c];
                    float *base = o + r * W + c;
                    if (j->accumulate) {
                        y = _mm512_add_ps(y, _mm512_mask_i32gather_ps(zero, in, idx, base, 4));
                    } else { /* the folded batch norm's multiply then add; the activation as the act op */
                        if (affine) y = _mm512_add_ps(_mm512_mul_ps(y, sc), sh);
                        y = cpu_act_vec16(y, act);
                    }
                    _mm512_mask_i32scatter_ps(base, in, idx, y, 4);
                }
        }
    }
}

/* The weight gradient's output-gradient tiles, A dY A^T */
static TARGET_AVX512 void dout_tiles_small(const wino_job *j, int64_t s0, int64_t s1) {
    const conv2d_dims *d = j->d;
    const int mt = j->m, TW = tiles_w(d, mt), TH = tiles_h(d, mt), T = TW * TH, H = d->OH, W = d->OW;
    const int g = group_images(T);
    const size_t ks = (size_t)j->CO * j->P;
    int32_t first[WINO_SMALL_T];
    uint16_t inside[WINO_SMALL_T];
    tile_inside(first, inside, TW, T, H, W, mt, g, j->CO * H * W);
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t s = s0; s < s1; s++) {
        int i0 = (int)(s / j->CO) * g, oc = (int)(s % j->CO), n = (j->nb - i0 < g ? j->nb - i0 : g) * T;
        const float *gr = j->dout + ((size_t)(j->b0 + i0) * j->CO + oc) * H * W;
        float *mp = j->Mr + (size_t)oc * j->P + (size_t)i0 * T;
        for (int q0 = 0; q0 < n; q0 += 16) {
            __mmask16 m = cpu_lanes16(n - q0);
            __m512i idx = _mm512_maskz_loadu_epi32(m, first + q0);
            __m512 dy[4][4];
            for (int r = 0; r < mt; r++)
                for (int c = 0; c < mt; c++)
                    dy[r][c] = _mm512_mask_i32gather_ps(zero, m & inside[(q0 / 16) * mt * mt + r * mt + c], idx,
                                                        gr + r * W + c, 4);
            if (mt == 4)
                store_a_dy_at6(mp + q0, ks, m, dy);
            else {
                __m512 d2[2][2] = {{dy[0][0], dy[0][1]}, {dy[1][0], dy[1][1]}};
                store_a_dy_at(mp + q0, ks, m, d2);
            }
        }
    }
}

/* Items (image of the chunk, input channel): V[k][c][i*T + ty*TW + tx] = (B^T d B)[k]. Tile tx
 * reads padded columns 2tx .. 2tx+3: the even and odd lanes of two pairs of loads. */
static TARGET_AVX512 void input_tiles(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int TW = tiles_w(d, j->m), TH = tiles_h(d, j->m), T = TW * TH;
    if (TW < WINO_SMALL_TW) {
        input_tiles_small(j, s0, s1);
        return;
    }
    const size_t ks = (size_t)j->CI * j->P;
    const __m512i even = cpu_even_lanes();
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    float buf[4][WINO_ROW];
    memset(buf, 0, sizeof buf);
    for (int64_t s = s0; s < s1; s++) {
        int i = (int)(s / j->CI), c = (int)(s % j->CI);
        const float *x = j->in + ((size_t)(j->b0 + i) * j->CI + c) * d->H * d->W;
        float *v = j->V + (size_t)c * j->P + (size_t)i * T;
        float *pr[4] = {buf[0], buf[1], buf[2], buf[3]}; /* band ty's rows 2ty-1 .. 2ty+2 */
        for (int r = 0; r < 4; r++) padded_row(pr[r], x, r - 1, d->H, d->W);
        for (int ty = 0; ty < TH; ty++) {
            if (ty > 0) { /* the last two rows of the band before are this band's first two */
                float *a = pr[0], *b = pr[1];
                pr[0] = pr[2], pr[1] = pr[3], pr[2] = a, pr[3] = b;
                padded_row(pr[2], x, 2 * ty + 1, d->H, d->W);
                padded_row(pr[3], x, 2 * ty + 2, d->H, d->W);
            }
            for (int t0 = 0; t0 < TW; t0 += 16) {
                __mmask16 m = cpu_lanes16(TW - t0);
                __m512 q[4][4]; /* the tiles' input values d[row][col] */
                for (int r = 0; r < 4; r++) {
                    const float *p = pr[r] + 2 * t0;
                    __m512 lo = _mm512_loadu_ps(p), hi = _mm512_loadu_ps(p + 16);
                    __m512 lo2 = _mm512_loadu_ps(p + 2), hi2 = _mm512_loadu_ps(p + 18);
                    q[r][0] = _mm512_permutex2var_ps(lo, even, hi);
                    q[r][1] = _mm512_permutex2var_ps(lo, odd, hi);
                    q[r][2] = _mm512_permutex2var_ps(lo2, even, hi2);
                    q[r][3] = _mm512_permutex2var_ps(lo2, odd, hi2);
                }
                store_bt_d_b(v + (size_t)ty * TW + t0, ks, m, q);
            }
        }
    }
}

/* Items (image of the chunk, output channel): the 2x2 outputs of every tile, A^T m A, plus the
 * bias, then ReLU, stored or added into out; the two output columns of 16 tiles are interleaved
 * into 32 floats of a row. */
static TARGET_AVX512 void output_tiles(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int TW = tiles_w(d, j->m), TH = tiles_h(d, j->m), T = TW * TH, H = d->OH, W = d->OW;
    if (TW < WINO_SMALL_TW) {
        output_tiles_small(j, s0, s1);
        return;
    }
    const size_t ks = (size_t)j->CO * j->P;
    const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_idx = _mm512_add_epi32(lo_idx, _mm512_set1_epi32(8));
    for (int64_t s = s0; s < s1; s++) {
        int i = (int)(s / j->CO), oc = (int)(s % j->CO);
        const __m512 bias = _mm512_set1_ps(j->bias ? j->bias[oc] : 0.0f);
        const int affine = j->post && j->post->scale;
        const herd_act act = j->post ? j->post->act : HERD_ACT_NONE;
        const __m512 sc = _mm512_set1_ps(affine ? j->post->scale[oc] : 1.0f), sh = _mm512_set1_ps(affine ? j->post->shift[oc] : 0.0f);
        float *o = j->out + ((size_t)(j->b0 + i) * j->CO + oc) * H * W;
        const float *m = j->M + (size_t)oc * j->P + (size_t)i * T;
        for (int ty = 0; ty < TH; ty++)
            for (int t0 = 0; t0 < TW; t0 += 16) {
                __mmask16 mt = cpu_lanes16(TW - t0);
                const float *mb = m + (size_t)ty * TW + t0;
                __m512 y[2][2];
                load_at_m_a(y, mb, ks, mt, bias);
                int n = W - 2 * t0; /* output columns from 2*t0 on */
                if (n > 32) n = 32;
                __mmask16 ma = cpu_lanes16(n), mb2 = cpu_lanes16(n - 16 > 0 ? n - 16 : 0);
                for (int r = 0; r < 2 && 2 * ty + r < H; r++) {
                    __m512 a = _mm512_permutex2var_ps(y[r][0], lo_idx, y[r][1]);
                    __m512 b = _mm512_permutex2var_ps(y[r][0], hi_idx, y[r][1]);
                    float *orow = o + (size_t)(2 * ty + r) * W + 2 * t0;
                    if (j->accumulate) {
                        a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(ma, orow));
                        b = _mm512_add_ps(b, _mm512_maskz_loadu_ps(mb2, orow + 16));
                    } else { /* the folded batch norm's multiply then add; the activation as the act op */
                        if (affine) a = _mm512_add_ps(_mm512_mul_ps(a, sc), sh), b = _mm512_add_ps(_mm512_mul_ps(b, sc), sh);
                        a = cpu_act_vec16(a, act);
                        b = cpu_act_vec16(b, act);
                    }
                    _mm512_mask_storeu_ps(orow, ma, a);
                    _mm512_mask_storeu_ps(orow + 16, mb2, b);
                }
            }
    }
}

/* Items (image of the chunk, output channel): the transformed output gradient A dY A^T of every
 * tile, Mr[k][oc][i*T + p] (the layout of the forward products; transposed after). */
static TARGET_AVX512 void dout_tiles(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx;
    const conv2d_dims *d = j->d;
    const int TW = tiles_w(d, j->m), TH = tiles_h(d, j->m), T = TW * TH, H = d->OH, W = d->OW;
    if (TW < WINO_SMALL_TW) {
        dout_tiles_small(j, s0, s1);
        return;
    }
    const size_t ks = (size_t)j->CO * j->P;
    const __m512i even = cpu_even_lanes();
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int64_t s = s0; s < s1; s++) {
        int i = (int)(s / j->CO), oc = (int)(s % j->CO);
        const float *g = j->dout + ((size_t)(j->b0 + i) * j->CO + oc) * H * W;
        float *m = j->Mr + (size_t)oc * j->P + (size_t)i * T;
        for (int ty = 0; ty < TH; ty++)
            for (int t0 = 0; t0 < TW; t0 += 16) {
                __mmask16 mt = cpu_lanes16(TW - t0);
                int n = W - 2 * t0;
                if (n > 32) n = 32;
                __mmask16 ma = cpu_lanes16(n), mb = cpu_lanes16(n - 16 > 0 ? n - 16 : 0);
                __m512 e[2], od[2]; /* dY rows 0, 1 at the tiles' columns 0 and 1 */
                for (int r = 0; r < 2; r++) {
                    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
                    if (2 * ty + r < H) {
                        const float *row = g + (size_t)(2 * ty + r) * W + 2 * t0;
                        lo = _mm512_maskz_loadu_ps(ma, row);
                        hi = _mm512_maskz_loadu_ps(mb, row + 16);
                    }
                    e[r] = _mm512_permutex2var_ps(lo, even, hi);
                    od[r] = _mm512_permutex2var_ps(lo, odd, hi);
                }
                __m512 dy[2][2] = {{e[0], od[0]}, {e[1], od[1]}};
                store_a_dy_at(m + (size_t)ty * TW + t0, ks, mt, dy);
            }
    }
}

/* Items k: M[k] (P, CO) = Mr[k]^T, as the weight-gradient product reads it. */
static void dout_transpose(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx;
    for (int64_t k = s0; k < s1; k++)
        herdi_cpu_transpose(j->M + (size_t)k * j->P * j->CO, j->Mr + (size_t)k * j->CO * j->P, j->CO, j->P);
}

static int row_blocks(int rows) { return (rows + WINO_ROWS - 1) / WINO_ROWS; }

/* Items (k, block of CO rows): M[k] (CO, P) = U[k] (CO, CI) * V[k] (CI, P). */
static void products(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx;
    const int nb = row_blocks(j->CO);
    for (int64_t s = s0; s < s1; s++) {
        int k = (int)(s / nb), r0 = (int)(s % nb) * WINO_ROWS, rows = j->CO - r0 < WINO_ROWS ? j->CO - r0 : WINO_ROWS;
        const float *u = j->U + ((size_t)k * j->CO + r0) * j->CI;
        const float *v = j->V + (size_t)k * j->CI * j->P;
        float *m = j->M + ((size_t)k * j->CO + r0) * j->P;
        herdi_cpu_gemm(rows, j->P, j->CI, u, j->CI, 1, v, j->P, 0, m, j->P);
    }
}

/* Items (k, block of CI rows): dU^T[k] (CI, CO) (+)= V[k] (CI, P) * M[k] (P, CO). */
static void products_dw(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx;
    const int nb = row_blocks(j->CI);
    for (int64_t s = s0; s < s1; s++) {
        int k = (int)(s / nb), r0 = (int)(s % nb) * WINO_ROWS, rows = j->CI - r0 < WINO_ROWS ? j->CI - r0 : WINO_ROWS;
        const float *v = j->V + ((size_t)k * j->CI + r0) * j->P;
        const float *m = j->M + (size_t)k * j->P * j->CO;
        float *du = j->U + ((size_t)k * j->CI + r0) * j->CO;
        herdi_cpu_gemm(rows, j->CO, j->P, v, j->P, 1, m, j->CO, !j->first, du, j->CO);
    }
}

/* db[oc] += every output gradient of channel oc, image after image; items are oc. */
static void bias_grad(void *ctx, int64_t s0, int64_t s1, int thread) {
    (void)thread;
    const wino_job *j = ctx;
    const int N = j->d->OH * j->d->OW;
    for (int64_t oc = s0; oc < s1; oc++) {
        float acc = j->db[oc];
        for (int b = 0; b < j->d->B; b++) acc += cpu_sum_floats(j->dout + ((size_t)b * j->CO + oc) * N, N);
        j->db[oc] = acc;
    }
}

/* The buffers of one pass: U first, then the tiles of CI and of CO channels. */
static void place(wino_job *j, const conv2d_dims *d) {
    size_t P = (size_t)chunk_images(d, j->m) * tiles(d, j->m), K = (size_t)points(j->m);
    j->U = j->ex->workspace;
    float *x = j->U + cpu_round16(K * d->C * d->OC);
    float *y = x + cpu_round16(K * P * d->C);
    /* the layer's C-channel tiles always go in x, its OC-channel tiles in y */
    j->Mr = y + cpu_round16(K * P * d->OC);
    if (j->CI == d->C) {
        j->V = x;
        j->M = y;
    } else {
        j->V = y;
        j->M = x;
    }
}

/* out = conv(in) over every chunk of images with the kernels already in j->U. */
static void run_chunks(wino_job *j) {
    const conv2d_dims *d = j->d;
    const int T = tiles(d, j->m), chunk = chunk_images(d, j->m), K = points(j->m);
    const int64_t HW = (int64_t)d->H * d->W;
    for (int b0 = 0; b0 < d->B; b0 += chunk) {
        j->b0 = b0;
        j->nb = d->B - b0 < chunk ? d->B - b0 : chunk;
        j->P = j->nb * T;
        cpu_for(j->ex, image_groups(j) * j->CI, CPU_NS_PER_STREAM_ELEM(8 * j->nb * j->CI * HW), input_tiles, j);
        cpu_for(j->ex, K * row_blocks(j->CO), CPU_NS_PER_MAC((int64_t)K * j->CO * j->CI * j->P), products, j);
        cpu_for(j->ex, image_groups(j) * j->CO, CPU_NS_PER_STREAM_ELEM(8 * j->nb * j->CO * HW), output_tiles, j);
    }
}

void herdi_cpu_winograd_kernels(const herd_exec *ex, float *U, const float *w, const conv2d_dims *d) {
    wino_job j = {.ex = ex, .d = d, .CI = d->C, .CO = d->OC, .w = w, .m = forward_m(d), .U = U};
    cpu_for(ex, d->OC, CPU_NS_PER_STREAM_ELEM(2LL * points(j.m) * d->OC * d->C), kernels_forward, &j);
}

void herdi_cpu_winograd_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                          const conv2d_dims *d, const conv2d_post *post, const float *U) {
    wino_job j = {.ex = ex, .d = d, .CI = d->C, .CO = d->OC, .in = in, .out = out, .bias = b, .post = post, .w = w,
                  .m = forward_m(d)};
    place(&j, d);
    if (U)
        j.U = (float *)U; /* only read by the products */
    else
        herdi_cpu_winograd_kernels(ex, j.U, w, d);
    run_chunks(&j);
}

void herdi_cpu_winograd_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const conv2d_dims *d) {
    const int mt = forward_m(d), T = tiles(d, mt), chunk = chunk_images(d, mt), K = points(mt);
    const int64_t HW = (int64_t)d->H * d->W;
    if (dw) { /* dU^T accumulated chunk by chunk, then folded into dw */
        wino_job j = {.ex = ex, .d = d, .CI = d->C, .CO = d->OC, .in = in, .dout = dout, .dw = dw, .m = mt};
        place(&j, d);
        for (int b0 = 0; b0 < d->B; b0 += chunk) {
            j.b0 = b0;
            j.nb = d->B - b0 < chunk ? d->B - b0 : chunk;
            j.P = j.nb * T;
            j.first = b0 == 0;
            cpu_for(ex, image_groups(&j) * j.CI, CPU_NS_PER_STREAM_ELEM(8 * j.nb * j.CI * HW), input_tiles, &j);
            cpu_for(ex, image_groups(&j) * j.CO, CPU_NS_PER_STREAM_ELEM(8 * j.nb * j.CO * HW), dout_tiles, &j);
            cpu_for(ex, K, CPU_NS_PER_STREAM_ELEM(2LL * K * j.P * j.CO), dout_transpose, &j);
            cpu_for(ex, K * row_blocks(j.CI), CPU_NS_PER_MAC((int64_t)K * j.CO * j.CI * j.P), products_dw, &j);
        }
        cpu_for(ex, (d->OC + WINO_DW_BLOCK - 1) / WINO_DW_BLOCK, CPU_NS_PER_STREAM_ELEM(48LL * d->OC * d->C), kernels_dw, &j);
    }
    if (db) {
        wino_job j = {.ex = ex, .d = d, .CO = d->OC, .dout = dout, .db = db};
        cpu_for(ex, d->OC, CPU_NS_PER_STREAM_ELEM((int64_t)d->B * d->OC * HW), bias_grad, &j);
    }
    if (din) { /* the flipped, transposed kernels run from dout to din, added into din */
        wino_job j = {.ex = ex, .d = d, .CI = d->OC, .CO = d->C, .in = dout, .out = din, .accumulate = 1, .w = w,
                      .m = mt};
        place(&j, d);
        cpu_for(ex, d->C, CPU_NS_PER_STREAM_ELEM(2LL * points(j.m) * d->OC * d->C), kernels_din, &j);
        run_chunks(&j);
    }
}

#else /* no AVX-512 kernels in this build: never taken */
int herdi_cpu_winograd_applies(const conv2d_dims *d) {
    (void)d;
    return 0;
}
size_t herdi_cpu_winograd_workspace(const conv2d_dims *d) {
    (void)d;
    return 0;
}
size_t herdi_cpu_winograd_prepared(const conv2d_dims *d) {
    (void)d;
    return 0;
}
void herdi_cpu_winograd_kernels(const herd_exec *ex, float *U, const float *w, const conv2d_dims *d) {
    (void)ex, (void)U, (void)w, (void)d;
}
void herdi_cpu_winograd_forward(const herd_exec *ex, float *out, const float *in, const float *w, const float *b,
                          const conv2d_dims *d, const conv2d_post *post, const float *U) {
    (void)ex, (void)out, (void)in, (void)w, (void)b, (void)d, (void)post, (void)U;
}
void herdi_cpu_winograd_backward(const herd_exec *ex, float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const conv2d_dims *d) {
    (void)ex, (void)din, (void)dw, (void)db, (void)dout, (void)in, (void)w, (void)d;
}
#endif
