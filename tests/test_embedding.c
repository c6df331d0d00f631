/* Embedding tables and models of several inputs: i32 inputs only reach the kinds that read ids
 * (file:line:col errors otherwise), ids outside a table are one-line errors, the row-sparse
 * gradients of embedding_bag and dot models equal central differences of the loss, datasets of
 * several fields pack into batches exactly (herd_dataset_batch and the loader alike) and are
 * matched to the model's inputs, and herd_fit trains a two-input model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/herd.h"

static void expect_error(const char *spec, const char *want) {
    herd_error err = {0};
    herd_model *m = NULL;
    herd_status st = herd_model_parse(&m, spec, "x.spec", &err);
    CHECK(st != HERD_OK && strstr(err.msg, want), "spec %s: got '%s', want '%s'", spec, err.msg, want);
    herd_model_destroy(m);
}

/* mean cross-entropy (double) of a fresh forward */
static double loss_of(herd_model *m, const int32_t *labels, int B) {
    herd_error err = {0};
    if (herd_model_forward(m, B, 1, &err)) return NAN;
    const float *y = herd_model_output(m);
    int K = herd_model_output_size(m);
    double total = 0;
    for (int b = 0; b < B; b++) {
        double mx = -INFINITY, s = 0;
        for (int k = 0; k < K; k++) mx = fmax(mx, y[b * K + k]);
        for (int k = 0; k < K; k++) s += exp(y[b * K + k] - mx);
        total += log(s) + mx - y[b * K + labels[b]];
    }
    return total / B;
}

/* every parameter's gradient (sparse tables scattered into dense) against central differences */
static void gradcheck(const char *name, const char *spec, int B) {
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, spec, name, &err) == HERD_OK, "%s", err.msg);
    if (!m) return;
    herd_model_init_params(m, 5);
    CHECK(herd_model_prepare(m, "ref", B, 1, &err) == HERD_OK, "%s", err.msg);
    herd_rng r;
    herd_rng_init(&r, 11, 0);
    float *packed = herd_model_batch_buffer(m);
    int64_t slots = herd_model_input_slots(m);
    for (int b = 0; b < B; b++) {
        int64_t at = 0;
        for (int k = 0; k < herd_model_input_count(m); k++) {
            herd_tensor in = herd_model_input_desc(m, k, NULL);
            for (int64_t i = 0; i < herd_tensor_numel(&in); i++, at++) {
                float *v = packed + b * slots + at;
                if (in.dtype == HERD_I32) *(int32_t *)v = (int32_t)herd_rng_below(&r, 6); /* repeats, and pad 0 */
                else *v = 2.0f * herd_rng_uniform(&r) - 1.0f;
            }
        }
    }
    herd_model_set_inputs(m, 0, B);
    int K = herd_model_output_size(m);
    int32_t labels[16];
    for (int b = 0; b < B; b++) labels[b] = (int32_t)herd_rng_below(&r, (uint32_t)K);
    float loss;
    herd_metrics acc;
    herd_metrics_clear(&acc);
    CHECK(herd_model_forward_backward(m, labels, B, 1.0f, &loss, &acc, &err) == HERD_OK, "%s", err.msg);
    int64_t np;
    float *p = herd_model_params(m, &np);
    float *g = calloc((size_t)np, sizeof *g);
    memcpy(g, herd_model_grads(m), (size_t)herd_model_dense_params(m) * sizeof *g);
    for (int k = 0; k < herd_model_sparse_count(m); k++) {
        herd_sparse_grad sg;
        herd_model_sparse_grad(m, k, &sg);
        const herd_param_info *pi = herd_model_param(m, sg.param);
        for (int64_t rr = 0; rr < sg.rows; rr++) {
            CHECK(rr == 0 || sg.ids[rr] > sg.ids[rr - 1], "%s: sparse rows ascending and distinct", name);
            memcpy(g + pi->offset + (int64_t)sg.ids[rr] * sg.dim, sg.values + rr * sg.dim, (size_t)sg.dim * sizeof *g);
        }
    }
    double worst = 0;
    const float eps = 3e-3f;
    for (int i = 0; i < herd_model_param_count(m); i++) {
        const herd_param_info *pi = herd_model_param(m, i);
        for (int64_t k = 0; k < pi->numel; k++) {
            float *v = p + pi->offset + k, orig = *v;
            *v = orig + eps;
            double up = *v, lp = loss_of(m, labels, B);
            *v = orig - eps;
            double dn = *v, lm = loss_of(m, labels, B);
            *v = orig;
            double fd = (lp - lm) / (up - dn), an = g[pi->offset + k];
            if (fabs(an - fd) > worst) worst = fabs(an - fd);
            char label[160];
            snprintf(label, sizeof label, "%s %s[%lld]: backward vs finite difference", name, pi->name, (long long)k);
            CHECK_CLOSE(an, fd, 2e-3, 2e-2, label);
        }
    }
    printf("%s: %lld parameters, max |analytic - fd| = %.3g (atol 2e-3 rtol 2e-2)\n", name, (long long)np, worst);
    free(g);
    herd_model_destroy(m);
}

/* u8 (2), i32 (3), f32 (1) fields: every batch value in its slot, as the loader gives it too */
static void packing(void) {
    herd_error err = {0};
    enum { N = 5 };
    int64_t d2[2] = {N, 2}, d3[2] = {N, 3}, d1[2] = {N, 1}, dn[1] = {N};
    uint8_t *a = malloc(N * 2);
    int32_t *ids = malloc(N * 3 * 4), *y = malloc(N * 4);
    float *f = malloc(N * 4);
    for (int i = 0; i < N; i++) {
        a[2 * i] = (uint8_t)(10 * i), a[2 * i + 1] = 255;
        for (int j = 0; j < 3; j++) ids[3 * i + j] = 1000 * i + j - 1;
        f[i] = 0.5f * (float)i;
        y[i] = i % 2;
    }
    herd_tensor xs[3] = {herd_tensor_make(HERD_U8, 2, d2, a), herd_tensor_make(HERD_I32, 2, d3, ids),
                         herd_tensor_make(HERD_F32, 2, d1, f)};
    herd_dataset *ds = NULL;
    CHECK(herd_dataset_from_memory_fields(&ds, xs, 3, herd_tensor_make(HERD_I32, 1, dn, y), 2, "mem", &err) == HERD_OK,
          "%s", err.msg);
    if (!ds) return;
    CHECK(herd_dataset_field_count(ds) == 3 && herd_dataset_sample_slots(ds) == 6 && herd_dataset_sample_bytes(ds) == 18,
          "fields %d slots %lld bytes %zu", herd_dataset_field_count(ds), (long long)herd_dataset_sample_slots(ds),
          herd_dataset_sample_bytes(ds));
    int64_t idx[3] = {4, 0, 2};
    float batch[3 * 6], loaded[3 * 6];
    int32_t yb[3], yl[3];
    CHECK(herd_dataset_batch(ds, idx, 3, batch, yb, &err) == HERD_OK, "%s", err.msg);
    for (int b = 0; b < 3; b++) {
        int i = (int)idx[b];
        const float *row = batch + 6 * b;
        int32_t got[3];
        memcpy(got, row + 2, sizeof got);
        CHECK(row[0] == (float)(10 * i) / 255.0f && row[1] == 1.0f, "u8 field of sample %d: %g %g", i, row[0], row[1]);
        CHECK(got[0] == 1000 * i - 1 && got[1] == 1000 * i && got[2] == 1000 * i + 1, "i32 field of sample %d: %d %d %d",
              i, got[0], got[1], got[2]);
        CHECK(row[5] == 0.5f * (float)i && yb[b] == i % 2, "f32 field / label of sample %d: %g %d", i, row[5], yb[b]);
    }
    herd_loader_config lc = {.prefetch = 2, .threads = 2, .cache_bytes = 1 << 20};
    herd_loader *l = NULL;
    CHECK(herd_loader_create(&l, ds, 3, &lc, NULL, NULL, &err) == HERD_OK, "%s", err.msg);
    if (l) {
        for (int pass = 0; pass < 2; pass++) { /* the second from the cache */
            CHECK(herd_loader_start_epoch(l, pass, idx, 3, 3, 0, &err) == HERD_OK, "%s", err.msg);
            CHECK(herd_loader_rows(l, 0, 0, 3, loaded, yl, &err) == HERD_OK, "%s", err.msg);
            CHECK(memcmp(loaded, batch, sizeof batch) == 0 && memcmp(yl, yb, sizeof yb) == 0,
                  "loader pass %d differs from herd_dataset_batch", pass);
        }
        herd_loader_destroy(l);
    }
    /* matched to a model's inputs in order */
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, "input 2\ninput 3 dtype=i32 name=ids\ninput 1 name=f\n"
                           "embedding_bag 5000 2 from=ids name=b\nconcat input,b,f\ndense 2\n", "three.spec", &err) == HERD_OK, "%s", err.msg);
    if (m) {
        CHECK(herd_model_check_data(m, ds, &err) == HERD_OK, "%s", err.msg);
        herd_model_destroy(m);
    }
    CHECK(herd_model_parse(&m, "input 2\ninput 3 name=v\ninput 1 name=f\nconcat input,v,f\ndense 2\n", "f.spec", &err) ==
          HERD_OK, "%s", err.msg);
    if (m) {
        CHECK(herd_model_check_data(m, ds, &err) == HERD_ESHAPE &&
              strstr(err.msg, "mem: field 2 of the samples is i32 3 but the model's input 'v' is f32 3"),
              "dtype mismatch: %s", err.msg);
        herd_model_destroy(m);
    }
    CHECK(herd_model_parse(&m, "input 2\ndense 2\n", "one.spec", &err) == HERD_OK, "%s", err.msg);
    if (m) {
        CHECK(herd_model_check_data(m, ds, &err) == HERD_ESHAPE &&
              strstr(err.msg, "mem: samples have 3 fields but the model has 1 input"), "count: %s", err.msg);
        herd_model_destroy(m);
    }
    herd_dataset_close(ds);
}

/* matrix factorisation with a planted signal: user u likes item i when (u + i) is even */
static void fit_two_inputs(void) {
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_create(&m, "input 1 dtype=i32 name=user\ninput 1 dtype=i32 name=item\n"
                            "embedding 20 8 from=user name=u\nembedding 30 8 from=item name=i\n"
                            "dot u,i\ndense 2\n", 64, 1, 3, &err) == HERD_OK, "%s", err.msg);
    if (!m) return;
    enum { N = 4096 };
    int64_t dn[2] = {N, 1};
    int32_t *u = malloc(N * 4), *it = malloc(N * 4), *y = malloc(N * 4);
    herd_rng r;
    herd_rng_init(&r, 1, 2);
    for (int k = 0; k < N; k++) {
        u[k] = (int32_t)herd_rng_below(&r, 20), it[k] = (int32_t)herd_rng_below(&r, 30);
        y[k] = (u[k] + it[k]) % 2;
    }
    herd_tensor xs[2] = {herd_tensor_make(HERD_I32, 2, dn, u), herd_tensor_make(HERD_I32, 2, dn, it)};
    herd_tensor yt = herd_tensor_make(HERD_I32, 1, dn, y);
    herd_train_config cfg = herd_train_defaults();
    cfg.epochs = 8, cfg.batch = 64, cfg.lr = 0.05f, cfg.seed = 1;
    CHECK(herd_fit(m, xs, &yt, &cfg, NULL, &err) == HERD_OK, "%s", err.msg);
    float *probs = malloc(N * 2 * sizeof *probs);
    CHECK(herd_predict(m, xs, probs, &err) == HERD_OK, "%s", err.msg);
    int hits = 0;
    for (int k = 0; k < N; k++) hits += (probs[2 * k + 1] > probs[2 * k]) == (y[k] == 1);
    CHECK(hits > N * 95 / 100, "matrix factorisation fits the parity of user + item: %d of %d", hits, N);
    printf("herd_fit of two id inputs: %d of %d right\n", hits, N);
    free(u), free(it), free(y), free(probs);
    herd_model_destroy(m);
}

int main(void) {
    expect_error("input 4 dtype=i32 name=ids\ndense 2\n", "x.spec:2:1: dense reads input 'ids', which holds i32 ids");
    expect_error("input 4\nembedding 10 3\ndense 2\n", "x.spec:2:1: embedding reads i32 ids");
    expect_error("input 4 dtype=u8\n", "x.spec:1:9: input: dtype 'u8' (expected f32 or i32)");
    expect_error("input 4 dtype=i32\nembedding 10 3 pad=10\nflatten\ndense 2\n", "x.spec:2:");
    expect_error("input 4 dtype=i32\nembedding_bag 10 3 mode=max\ndense 2\n", "mode 'max' (expected sum or mean)");
    expect_error("input 3\ninput 5 name=b\ndot input,b\ndense 2\n", "dot: input 2 has vectors of 5 values, input 1 of 3");
    /* an id outside the table: one line naming the layer, the id and the sample */
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_create(&m, "input 3 dtype=i32\nembedding_bag 10 4 name=bag\ndense 2\n", 4, 1, 1, &err) == HERD_OK,
          "%s", err.msg);
    if (m) {
        int32_t *x = (int32_t *)herd_model_input(m);
        for (int i = 0; i < 12; i++) x[i] = i % 10;
        x[7] = 10;
        CHECK(herd_model_forward(m, 4, 0, &err) == HERD_EARG &&
              strstr(err.msg, "layer 'bag': id 10 of sample 2 (position 1) is outside the table's rows [0, 10)"),
              "bad id: %s", err.msg);
        x[7] = -2;
        CHECK(herd_model_forward(m, 4, 0, &err) == HERD_EARG && strstr(err.msg, "id -2 of sample 2"), "negative id: %s",
              err.msg);
        /* HERD_NO_ID: an unused slot of a bag, skipped (bag 2 is bag {6} then; mean: row 6 itself) */
        x[7] = HERD_NO_ID, x[8] = HERD_NO_ID;
        CHECK(herd_model_forward(m, 4, 0, &err) == HERD_OK, "bag of one id: %s", err.msg);
        const float *w = herd_model_params(m, NULL);
        for (int i = 0; i < herd_model_param_count(m); i++)
            if (!strcmp(herd_model_param(m, i)->name, "bag.weight")) w += herd_model_param(m, i)->offset;
        float *o, *dout;
        int64_t per;
        herd_model_layer_buffers(m, 0, &o, &dout, &per); /* the bag: layer 0 */
        for (int d = 0; d < 4; d++) CHECK(per == 4 && o[2 * 4 + d] == w[6 * 4 + d], "bag of one id: value %d", d);
        herd_model_destroy(m);
    }
    CHECK(herd_model_create(&m, "input 3 dtype=i32\nembedding 10 4 name=seq\nflatten\ndense 2\n", 4, 1, 1, &err) == HERD_OK,
          "%s", err.msg);
    if (m) { /* a sequence has no unused slots */
        int32_t *x = (int32_t *)herd_model_input(m);
        for (int i = 0; i < 12; i++) x[i] = i % 10;
        x[4] = HERD_NO_ID;
        CHECK(herd_model_forward(m, 4, 0, &err) == HERD_EARG && strstr(err.msg, "id -1 of sample 1"), "-1 in a sequence: %s",
              err.msg);
        herd_model_destroy(m);
    }
    /* (a pad row is read but never trained, so finite differences would see it: none here) */
    gradcheck("embedding", "input 3 dtype=i32\nembedding 8 3\nflatten\ndense 3\n", 4);
    gradcheck("embedding_bag", "input 4 dtype=i32\ninput 2 name=f\nembedding_bag 8 3 mode=mean pad=0 from=input name=b\n"
              "dense 3 from=f name=d\ndot b,d name=s\nembedding_bag 6 2 mode=sum from=input name=c\n"
              "concat s,c,b\ndense 3\n", 5);
    packing();
    fit_two_inputs();
    return check_summary();
}
