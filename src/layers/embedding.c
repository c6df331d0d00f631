/* embedding ROWS DIM [pad=K]: a lookup table (ROWS, DIM) read by i32 ids, as PyTorch's
 * nn.Embedding(ROWS, DIM, padding_idx=K, sparse=True): ids (T) -> (T, DIM), a single id (1) ->
 * (DIM). Its gradient is row-sparse: backward hands the rows the batch touched to the model's
 * sparse gradient (herdi_layer_sparse_row), never a dense ROWS x DIM buffer, so a step's cost does not
 * grow with ROWS. The pad row starts at zero and gets no gradient. Also the table helpers that
 * embedding_bag shares (arguments, init, id checks). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/prefetch.h"
#include "herd/data.h"
#include "layers/layer_common.h"

#define CFG(n) ((const embed_table *)(n)->cfg)

herd_status herdi_layer_table_build(layer_build *b, embed_table *t) {
    herd_status st;
    int rows = 0, dim = 0, pad = -1;
    if ((st = herdi_lb_int(b, "rows", "number of rows", 1, 1, 1 << 30, &rows)) ||
        (st = herdi_lb_int(b, "dim", "embedding size", 1, 1, 1 << 20, &dim)) ||
        (st = herdi_lb_int(b, "pad", "padding id", 0, 0, rows - 1, &pad)))
        return st;
    if (herdi_lb_in_dtype(b, 0) != HERD_I32 || b->n->in[0] >= 0)
        return herdi_lb_fail(b, HERD_ESPEC, NULL, "%s reads i32 ids from a model input (`input T dtype=i32`), not a %s %s",
                       b->keyword, herd_dtype_name(herdi_lb_in_dtype(b, 0)), b->n->in[0] >= 0 ? "layer output" : "input");
    t->std = 1.0f;
    if ((st = herdi_lb_float(b, "std", "initial standard deviation", 0, 0, 100, &t->std))) return st;
    t->rows = rows, t->dim = dim, t->pad = pad;
    t->ids = herdi_node_in_numel(b->m, b->n, 0);
    return herdi_lb_param_sparse(b, 0, "weight", rows, dim, t->ids, pad);
}

/* N(0, std^2): std 1 as nn.Embedding and nn.EmbeddingBag initialise; one stream per table; the pad row 0.
 * The stream is counter-based, value i of the table at counter 2 i, so rows [lo, hi) alone are
 * the whole table's rows bit for bit (a sharded rank writes only its own). A large table is
 * filled by every core (the model's thread count is not known yet; the values do not depend on
 * the split): a 1e7 x 64 table took ~100 s on one. */
void herdi_layer_table_init_rows(herd_model *m, const node *n, uint64_t seed, int64_t lo, int64_t hi, float *dst) {
    (void)m;
    const embed_table *t = (const embed_table *)n->cfg;
    herd_rng r;
    herd_rng_init(&r, seed, 0x656d6200ULL + (uint64_t)n->param[0]);
    r.counter += 2 * (uint64_t)(lo * t->dim); /* herd_rng_normals: two words a value */
    herd_pool *pool = NULL;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    herd_error err = {0};
    if ((hi - lo) * t->dim >= (1 << 22) && cores > 1 && herd_pool_create(&pool, cores < 64 ? (int)cores : 64, &err))
        pool = NULL; /* no threads to be had: one core does it */
    herd_rng_normals(&r, dst, (hi - lo) * t->dim, t->std, pool);
    herd_pool_destroy(pool);
    if (t->pad >= lo && t->pad < hi) memset(dst + (int64_t)(t->pad - lo) * t->dim, 0, (size_t)t->dim * sizeof *dst);
}

void herdi_layer_table_init(herd_model *m, node *n, uint64_t seed) {
    herdi_layer_table_init_rows(m, n, seed, 0, CFG(n)->rows, herdi_node_param(m, n, 0));
}

herd_status herdi_layer_table_check(const layer_call *c, herd_error *err) {
    const embed_table *t = (const embed_table *)c->n->cfg;
    const int32_t *ids = (const int32_t *)c->in[0]; /* the input's 4-byte slots hold int32 ids */
    for (int64_t i = 0; i < (int64_t)c->B * t->ids; i++)
        if ((ids[i] < 0 || ids[i] >= t->rows) && !(t->mode && ids[i] == HERD_NO_ID)) /* a bag's unused slot */
            return herd_fail(err, HERD_EARG, "layer '%s': id %d of sample %lld (position %lld) is outside the table's "
                             "rows [0, %lld)", c->n->name, (int)ids[i], (long long)(c->row0 + i / t->ids),
                             (long long)(i % t->ids), (long long)t->rows);
    return HERD_OK;
}

static herd_status embedding_build(layer_build *b) {
    embed_table *t = (embed_table *)b->n->cfg;
    herd_status st = herdi_layer_table_build(b, t);
    if (st) return st;
    int64_t out[2] = {t->ids, t->dim};
    if (t->ids == 1) herdi_lb_set_shape(b, 1, out + 1); /* one id: a (DIM) vector, as nn.Embedding on (B,) ids */
    else herdi_lb_set_shape(b, 2, out);
    return HERD_OK;
}

/* out (B*T, D) = weight[ids] */
static void embedding_forward(const layer_call *c) {
    const embed_table *t = CFG(c->n);
    const int32_t *ids = (const int32_t *)c->in[0];
    int64_t n = (int64_t)c->B * t->ids;
    for (int64_t i = 0; i < n; i++) {
        if (i + HERD_PREFETCH_ROWS < n) /* a row a few ahead: ids are spread over the table */
            herd_prefetch(c->w[0] + (int64_t)ids[i + HERD_PREFETCH_ROWS] * t->dim, (size_t)t->dim * sizeof(float), 0);
        memcpy(c->out + i * t->dim, c->w[0] + (int64_t)ids[i] * t->dim, (size_t)t->dim * sizeof(float));
    }
}

/* each non-pad position's output gradient is its id's row of the sparse gradient; a table tied
 * to a dense layer (tie=) has a dense gradient instead, the rows added in position order */
static void embedding_backward(const layer_call *c) {
    const embed_table *t = CFG(c->n);
    const int32_t *ids = (const int32_t *)c->in[0];
    for (int64_t i = 0; i < (int64_t)c->B * t->ids; i++) {
        if (ids[i] == t->pad) continue;
        const float *g = c->dout + i * t->dim;
        if (c->sg[0]) {
            memcpy(herdi_layer_sparse_row(c->sg[0], ids[i]), g, (size_t)t->dim * sizeof(float));
        } else {
            float *row = c->dw[0] + (int64_t)ids[i] * t->dim;
            for (int64_t k = 0; k < t->dim; k++) row[k] += g[k];
        }
    }
}

static void embedding_decode(const layer_call *c, float *cache) {
    (void)cache;
    const embed_table *t = CFG(c->n);
    memcpy(c->out, c->w[0] + (int64_t)*(const int32_t *)c->in[0] * t->dim, (size_t)t->dim * sizeof(float));
}

static int64_t embedding_flops(const herd_model *m, const node *n) {
    (void)m;
    return n->numel; /* a copy per value */
}

static void embedding_describe(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    const embed_table *t = CFG(n);
    int k = snprintf(buf, size, "%lld x %lld", (long long)t->rows, (long long)t->dim);
    if (t->pad >= 0 && k > 0 && (size_t)k < size) snprintf(buf + k, size - (size_t)k, " pad %d", t->pad);
}

void herdi_layer_table_spec(const node *n, char *buf, size_t size) {
    const embed_table *t = CFG(n);
    int k = snprintf(buf, size, "%s %lld %lld", n->kind->keywords[0], (long long)t->rows, (long long)t->dim);
    if (t->pad >= 0 && k > 0 && (size_t)k < size) k += snprintf(buf + k, size - (size_t)k, " pad=%d", t->pad);
    if (t->mode && k > 0 && (size_t)k < size)
        k += snprintf(buf + k, size - (size_t)k, " mode=%s", t->mode == 2 ? "mean" : "sum");
    char f[32];
    if (t->std != 1.0f && k > 0 && (size_t)k < size)
        snprintf(buf + k, size - (size_t)k, " std=%s", herdi_layer_float_str(t->std, f, sizeof f));
}

static void embedding_spec(const herd_model *m, const node *n, char *buf, size_t size) {
    (void)m;
    herdi_layer_table_spec(n, buf, size);
}

/* Gather(weight, ids) along axis 0: (N, T, D); one id a sample: Flatten to (N, D) as herd's output */
static herd_status embedding_onnx(onnx_exporter *x, const node *n) {
    const char *in[2] = {herdi_onnx_param(x, n, 0), herdi_onnx_in(x, n, 0)};
    onnx_xattr axis = {.name = "axis", .type = 'i', .i = 0};
    if (CFG(n)->ids > 1) {
        herdi_onnx_emit(x, "Gather", n->name, herdi_onnx_out(x, n), in, 2, &axis, 1);
        herdi_onnx_set_out(x, n, herdi_onnx_out(x, n), 0);
        return HERD_OK;
    }
    char rows[HERD_NAME_MAX + 8];
    snprintf(rows, sizeof rows, "%s.rows", n->name);
    herdi_onnx_emit(x, "Gather", rows, rows, in, 2, &axis, 1);
    const char *g = rows;
    onnx_xattr one = {.name = "axis", .type = 'i', .i = 1};
    herdi_onnx_emit(x, "Flatten", n->name, herdi_onnx_out(x, n), &g, 1, &one, 1);
    herdi_onnx_set_out(x, n, herdi_onnx_out(x, n), 0);
    return HERD_OK;
}

/* Gather(table [ROWS, DIM], ids (N, T)) along axis 0 (the ids a model input of T > 1 of them) */
static herd_status embedding_onnx_import(onnx_importer *x) {
    int64_t w[8];
    if (herdi_onnx_attr_int(x, "axis", 0) != 0)
        return herdi_onnx_refuse(x, "axis=%lld (an embedding gathers rows: axis 0)", (long long)herdi_onnx_attr_int(x, "axis", 0));
    if (herdi_onnx_const_dims(x, 0, w) != 2) return herdi_onnx_refuse(x, "the table (input 0) must be a 2-D initializer");
    if (herdi_onnx_in_ndim(x) != 1 || herdi_onnx_in_dims(x)[0] < 2)
        return herdi_onnx_refuse(x, "herd's embedding reads (N, T) ids with T > 1 here (one id gives (N, 1, D) in ONNX, (N, D) "
                              "in herd)");
    herdi_onnx_arg(x, "rows", "%lld", (long long)w[0]);
    herdi_onnx_arg(x, "dim", "%lld", (long long)w[1]);
    return herdi_onnx_weight(x, 0, 0, 0);
}

static const char *const embedding_keywords[] = {"embedding", NULL};
static const char *const embedding_ops[] = {"Gather", NULL};
static const char *const embedding_positional[] = {"rows", "dim", NULL};

const layer_kind herdi_layer_embedding = {
    .name = "embedding", .keywords = embedding_keywords, .prefix = "emb", .positional = embedding_positional,
    .min_inputs = 1, .max_inputs = 1, .flags = LAYER_READS_IDS, .build = embedding_build, .check = herdi_layer_table_check,
    .init = herdi_layer_table_init, .init_rows = herdi_layer_table_init_rows, .forward = embedding_forward,
    .backward = embedding_backward,
    .backward_reads = herdi_layer_reads_input, .flops = embedding_flops, .describe = embedding_describe,
    .onnx_export = embedding_onnx, .onnx_ops = embedding_ops, .onnx_import = embedding_onnx_import,
    .spec = embedding_spec, .decode = embedding_decode,
};
