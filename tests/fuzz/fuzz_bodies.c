/* The fuzz target bodies (see fuzz_bodies.h). Beyond "no crash, no sanitizer report",
 * each checks what herd promises about bad input: an error is one line that names the
 * file, and whatever a parser accepts is self-consistent enough to use. */
#include "fuzz_bodies.h"

#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/options.h"
#include "herd/data.h"
#include "herd/io.h"
#include "herd/model.h"
#include "herd/onnx.h"
#include "io/onnx_decode.h"
#include "data/image_decode.h"
#include "dist/param_server.h"
#include "herd/train.h"
#include "io/json.h"
#include "train/trainer_internal.h"

/* Under AddressSanitizer (libFuzzer or HERD_SANITIZE), an allocation above 256 MiB returns
 * NULL instead of being made, so hostile sizes exercise herd's out-of-memory errors rather
 * than the machine's swap. */
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1:max_allocation_size_mb=256"; }
#endif

/* A broken promise is a finding: say what, then abort so libFuzzer (or CTest) reports it. */
static void fuzz_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
int fuzz_report_fd = 2;

static void fuzz_fail(const char *fmt, ...) {
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dprintf(fuzz_report_fd, "fuzz invariant broken: %s\n", msg);
    abort();
}

/* ---- scratch files: one directory per process, in /dev/shm when there is one ---- */

static char scratch_dir[256];

static void scratch_cleanup(void) {
    static const char *const names[] = {"fuzz.idx", "fuzz.idx.gz", "fuzz.parquet", "fuzz_batch.bin", "fuzz.safetensors",
                                        "fuzz_a.txt", "fuzz_b.txt", "fuzz.tok", "fuzz_b.tok",
                                        "ckpt/ckpt-0000000001.safetensors", "ckpt", NULL};
    char p[512];
    for (int i = 0; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", scratch_dir, names[i]);
        remove(p);
    }
    rmdir(scratch_dir);
}

static const char *scratch_path(const char *name) {
    static char p[512];
    if (!scratch_dir[0]) {
        snprintf(scratch_dir, sizeof scratch_dir, "%s", access("/dev/shm", W_OK) == 0 ? "/dev/shm/herd_fuzz_XXXXXX"
                                                                                     : "/tmp/herd_fuzz_XXXXXX");
        if (!mkdtemp(scratch_dir)) fuzz_fail("cannot create a scratch directory %s", scratch_dir);
        atexit(scratch_cleanup);
    }
    snprintf(p, sizeof p, "%s/%s", scratch_dir, name);
    return p;
}

static void write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) fuzz_fail("cannot write %s", path);
}

/* herd's promise for every failure: a known status and one line that starts with `prefix`. */
static void check_error(herd_status st, const herd_error *err, const char *prefix, const char *what) {
    if (st == HERD_OK) return;
    if (st > 0 || st < HERD_ESTOPPED) fuzz_fail("%s: status %d is not a herd_status", what, st);
    if (st == HERD_EINTERNAL) fuzz_fail("%s: internal error: %s", what, err->msg);
    if (!err->msg[0]) fuzz_fail("%s: status %d without a message", what, st);
    for (const char *c = err->msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7F) fuzz_fail("%s: message holds control character %d: %s", what, *c, err->msg);
    if (prefix && strncmp(err->msg, prefix, strlen(prefix)) != 0)
        fuzz_fail("%s: message does not start with '%s': %s", what, prefix, err->msg);
}

/* Reads every byte, so AddressSanitizer checks the size a parser claims. */
static unsigned touch(const void *p, size_t n) {
    const volatile uint8_t *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    return s;
}

/* ---- model spec: parse, then plan (and for small models run one training step) ---- */

int fuzz_spec(const uint8_t *data, size_t size) {
    if (size > (1 << 16)) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0; /* an embedded NUL ends the text early, as herd_model_load_spec refuses it */
    herd_model *m = NULL;
    herd_error err = {0};
    herd_status st = herd_model_parse(&m, text, "fuzz.spec", &err);
    free(text);
    check_error(st, &err, "fuzz.spec", "spec parse");
    if (st != HERD_OK) return 0;

    int64_t n_params, n_buffers, flops = 0;
    herd_model_params(m, &n_params);
    herd_model_buffers(m, &n_buffers);
    int64_t reg = 0;
    for (int i = 0; i < herd_model_param_count(m); i++) {
        const herd_param_info *p = herd_model_param(m, i);
        int64_t numel = 1;
        for (int d = 0; d < p->ndim; d++) numel *= p->shape[d];
        if (numel != p->numel || p->offset < 0 || p->offset + p->numel > (p->trainable ? n_params : n_buffers))
            fuzz_fail("parameter %s: numel %lld, offset %lld outside its buffer", p->name, (long long)p->numel,
                      (long long)p->offset);
        reg += p->trainable ? p->numel : 0;
    }
    if (reg != n_params) fuzz_fail("registry holds %lld trainable floats, buffer %lld", (long long)reg, (long long)n_params);
    for (int i = 0; i < herd_model_layer_count(m); i++) {
        herd_layer_info info;
        herd_model_layer(m, i, &info);
        if (info.c < 1 || info.h < 1 || info.w < 1) fuzz_fail("layer %s has shape %dx%dx%d", info.name, info.c, info.h, info.w);
        flops += info.flops;
    }
    const int B = 2;
    /* the compute is kept small (under the fuzzer's instrumentation it dominates otherwise):
     * what is fuzzed is the shape logic, not the arithmetic */
    if (n_params <= (1 << 16)) herd_model_init_params(m, 7);
    st = herd_model_prepare(m, (size & 1) ? "cpu" : "ref", B, 1, &err);
    check_error(st, &err, "fuzz.spec", "prepare");
    /* one forward/backward when it is cheap: the executor on shapes no test wrote */
    if (st == HERD_OK && n_params <= (1 << 16) && flops <= 200000 && herd_model_planned_bytes(m) <= (1u << 20)) {
        int c, h, w;
        herd_model_input_shape(m, &c, &h, &w);
        float *x = herd_model_input(m);
        for (int64_t i = 0; i < (int64_t)B * c * h * w; i++) x[i] = (float)((i * 7919) % 255) / 255.0f;
        st = herd_model_forward(m, B, 1, &err);
        check_error(st, &err, "fuzz.spec", "forward");
        if (st == HERD_OK) {
            int out = herd_model_output_size(m);
            /* targets as the model's loss takes them: class ids below the last dim, or values in [0, 1] */
            herd_layer_info last;
            herd_model_layer(m, herd_model_layer_count(m) - 1, &last);
            const herd_tensor *tt = herd_model_target(m);
            int64_t per = herd_tensor_numel(tt), K = last.dims[last.ndim - 1];
            void *targets = malloc((size_t)B * herd_model_target_bytes(m));
            if (!targets) fuzz_fail("out of memory");
            for (int64_t i = 0; i < B * per; i++) {
                if (tt->dtype == HERD_I32) ((int32_t *)targets)[i] = (int32_t)(i % (K < 2 ? 1 : K));
                else ((float *)targets)[i] = (float)(i % 2);
            }
            static herd_metrics acc;
            herd_metrics_clear(&acc);
            touch(herd_model_output(m), (size_t)B * (size_t)out * sizeof(float));
            herd_model_loss(m, targets, B, &acc);
            herd_model_backward(m, targets, B, 1.0f);
            free(targets);
            if (acc.hits < 0 || acc.hits > acc.counted || acc.samples != B)
                fuzz_fail("%g of %g correct, batch %d", acc.hits, acc.counted, B);
        }
    }
    herd_model_destroy(m);
    return 0;
}

/* ---- IDX: the bytes as a plain file, and the same bytes gzip-compressed ---- */

static herd_status idx_read_checked(const char *path, uint8_t **out, int *nd, int64_t dims[4], const char *what) {
    herd_error err = {0};
    herd_status st = herd_idx_read(path, out, nd, dims, &err);
    check_error(st, &err, path, what);
    if (st == HERD_OK) {
        if (*nd < 1 || *nd > 4) fuzz_fail("%s: %d dimensions accepted", what, *nd);
        size_t total = 1;
        for (int k = 0; k < *nd; k++) total *= (size_t)dims[k];
        touch(*out, total);
    } else if (*out) {
        fuzz_fail("%s: failed but left data", what);
    }
    return st;
}

int fuzz_idx(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *plain = scratch_path("fuzz.idx");
    char plain_path[512];
    snprintf(plain_path, sizeof plain_path, "%s", plain);
    write_file(plain_path, data, size);
    uint8_t *a = NULL, *b = NULL;
    int nda = 0, ndb = 0;
    int64_t da[4], db[4];
    herd_status sa = idx_read_checked(plain_path, &a, &nda, da, "idx");

    const char *gz_path = scratch_path("fuzz.idx.gz");
    gzFile g = gzopen(gz_path, "wb1");
    if (!g || (size && gzwrite(g, data, (unsigned)size) != (int)size) || gzclose(g) != Z_OK)
        fuzz_fail("cannot write %s", gz_path);
    herd_status sb = idx_read_checked(gz_path, &b, &ndb, db, "idx.gz");
    /* the same content plain or compressed must read the same (unless it was gzip already) */
    int was_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!was_gzip) {
        if ((sa == HERD_OK) != (sb == HERD_OK)) fuzz_fail("plain read status %d but gzip read status %d", sa, sb);
        if (sa == HERD_OK) {
            size_t total = 1;
            for (int k = 0; k < nda; k++) total *= (size_t)da[k];
            if (nda != ndb || memcmp(da, db, sizeof(int64_t) * (size_t)nda) != 0 || memcmp(a, b, total) != 0)
                fuzz_fail("plain and gzip reads of the same bytes differ");
        }
    }
    free(a);
    free(b);
    return 0;
}

/* ---- CIFAR-10 binary: one file, and the same file twice ---- */

int fuzz_cifar(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *path = scratch_path("fuzz_batch.bin");
    write_file(path, data, size);
    const char *paths[2] = {path, path};
    for (int npaths = 1; npaths <= 2; npaths++) {
        herd_dataset *ds = NULL;
        herd_error err = {0};
        herd_status st = herd_cifar10_open(&ds, paths, npaths, &err);
        check_error(st, &err, path, "cifar");
        if (st != HERD_OK) {
            if (ds) fuzz_fail("cifar: failed but returned a dataset");
            continue;
        }
        const int64_t cifar_dims[3] = {3, 32, 32};
        herd_tensor want = herd_tensor_make(HERD_U8, 3, cifar_dims, NULL);
        if (!herd_tensor_same(&ds->x, &want) || ds->n < 1) fuzz_fail("cifar: dataset of %lld", (long long)ds->n);
        static float x[3072];
        for (int64_t i = 0; i < ds->n; i++) {
            int32_t y = -1;
            st = herd_dataset_batch(ds, &i, 1, x, &y, &err);
            if (st != HERD_OK || y < 0 || y >= ds->num_classes) fuzz_fail("cifar: sample %lld label %d", (long long)i, y);
            for (int k = 0; k < 3072; k++)
                if (!(x[k] >= 0 && x[k] <= 1)) fuzz_fail("cifar: pixel %g outside [0, 1]", x[k]);
        }
        herd_dataset_close(ds);
    }
    return 0;
}

/* ---- the dataset readers: open, then read up to 64 samples the way training does ---- */

/* After an open that returned st: a failure is a well-formed error; an accepted dataset has
 * a sane shape and every sample read back is a sample or a well-formed error. */
static void check_dataset(herd_status st, herd_dataset *ds, herd_error *err, const char *prefix, const char *what) {
    check_error(st, err, prefix, what);
    if (st != HERD_OK) {
        if (ds) fuzz_fail("%s: failed but returned a dataset", what);
        return;
    }
    char xs[96];
    int dims_ok = ds && ds->x.ndim <= 3;
    for (int d = 0; dims_ok && d < ds->x.ndim; d++) dims_ok = ds->x.dims[d] >= 1;
    /* y: one class id of num_classes, class ids per position (any i32: the loss's ignore index
     * may be negative), or f32 targets (num_classes 0) */
    int f32_target = ds && ds->y.dtype == HERD_F32;
    int64_t yn = ds ? herd_tensor_numel(&ds->y) : 0;
    if (!ds || ds->n < 0 || !dims_ok || !herd_dataset_fields_ok(ds) ||
        (ds->y.dtype != HERD_I32 && !f32_target) || ds->y.ndim > 4 || yn < 1 || yn > (1 << 24) ||
        (f32_target ? ds->num_classes != 0 : ds->num_classes < 1))
        fuzz_fail("%s: accepted a dataset of %s samples %s, %lld samples", what, ds ? herd_dtype_name(ds->x.dtype) : "",
                  ds ? herd_tensor_shape_str(&ds->x, xs, sizeof xs) : "", ds ? (long long)ds->n : 0LL);
    size_t sample = (size_t)herd_dataset_sample_slots(ds); /* every field, as a batch holds it */
    if (sample > ((size_t)1 << 26)) fuzz_fail("%s: a sample of %zu values from a small file", what, sample);
    float *x = malloc(sample * sizeof *x);
    int32_t *y = malloc((size_t)yn * sizeof *y); /* i32 and f32 targets are 4 bytes each */
    if (!x || !y) fuzz_fail("%s: no memory for one sample", what);
    for (int64_t i = 0; i < ds->n && i < 64; i++) {
        herd_error e2 = {0};
        herd_status g = herd_dataset_batch(ds, &i, 1, x, y, &e2); /* as training reads it */
        check_error(g, &e2, prefix, what);
        for (int64_t k = 0; g == HERD_OK && k < yn; k++) {
            float t;
            memcpy(&t, &y[k], sizeof t);
            if (f32_target && !isfinite(t)) fuzz_fail("%s: sample %lld has target %g", what, (long long)i, t);
            if (!f32_target && ds->y.ndim == 0 && (y[k] < 0 || y[k] >= ds->num_classes))
                fuzz_fail("%s: sample %lld has label %d of %d classes", what, (long long)i, y[k], ds->num_classes);
        }
    }
    free(x);
    free(y);
    herd_dataset_close(ds);
}

int fuzz_csv(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *path = scratch_path("fuzz.csv");
    write_file(path, data, size);
    herd_dataset *ds = NULL;
    herd_error err = {0};
    herd_status st = herd_csv_open(&ds, path, NULL, &err);
    check_dataset(st, ds, &err, path, "csv");
    /* the same file with categorical columns a and b (b a bag of up to 3 values): vocabulary ids, then hashed ones */
    for (int hash = 0; hash < 2; hash++) {
        herd_table_options opt = {.cat = hash ? "a,b:3" : "a,b", .hash_rows = hash ? 64 : 0, .hash_seed = 7};
        ds = NULL;
        st = herd_csv_open_with(&ds, path, &opt, &err);
        check_dataset(st, ds, &err, path, "csv cat=a,b");
    }
    return 0;
}

/* Labelled text: byte 0 picks the tokenizer (and whether '%' lines separate documents), byte 1
 * the length, the rest is two class files cut at the middle. */
int fuzz_text(const uint8_t *data, size_t size) {
    if (size < 2 || size > (1 << 20)) return 0;
    const char *p1 = scratch_path("fuzz_a.txt");
    char a[512];
    snprintf(a, sizeof a, "%s", p1);
    const char *b = scratch_path("fuzz_b.txt");
    size_t rest = size - 2, half = rest / 2;
    write_file(a, data + 2, half);
    write_file(b, data + 2 + half, rest - half);
    const char *paths[2] = {a, b};
    herd_text_options o = {(herd_text_tokenizer)(data[0] % 3), 1 + data[1] % 64, data[0] & 8 ? 300 : 0,
                           data[0] & 4 ? "%" : NULL};
    herd_dataset *ds = NULL;
    herd_error err = {0};
    herd_status st = herd_text_open(&ds, paths, 2, &o, &err);
    if (!st && (ds->x.dtype != HERD_I32 || herd_tensor_numel(&ds->x) != o.len))
        fuzz_fail("text: samples of %s, %lld ids", herd_dtype_name(ds->x.dtype), (long long)herd_tensor_numel(&ds->x));
    check_dataset(st, ds, &err, NULL, "text");
    return 0;
}

/* A token file (.tok): open checks the header and vocabulary; then every id is read (or a
 * well-formed error), each vocabulary entry decodes to text that encodes back to its id, and lm:
 * windows over it read as samples. */
int fuzz_tokens(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    char path[512];
    snprintf(path, sizeof path, "%s", scratch_path("fuzz.tok"));
    write_file(path, data, size);
    herd_tokens *t = NULL;
    herd_error err = {0};
    herd_status st = herd_tokens_open(&t, path, &err);
    check_error(st, &err, path, "tokens");
    if (st) {
        if (t) fuzz_fail("tokens: failed but returned a file");
        return 0;
    }
    int64_t n = herd_tokens_count(t);
    int V = herd_tokens_vocab(t);
    if (n < 1 || n > (int64_t)size || V < 2) fuzz_fail("tokens: %lld ids, vocabulary %d from %zu bytes", (long long)n, V, size);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) fuzz_fail("tokens: no memory");
    st = herd_tokens_read(t, 0, n, ids, &err);
    check_error(st, &err, path, "tokens read");
    for (int64_t i = 0; !st && i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) fuzz_fail("tokens: id %d of %d read", ids[i], V);
    free(ids);
    char buf[256];
    for (int id = 0; id < V && id < 4096; id++) {
        size_t len = herd_tokens_decode(t, id, buf, sizeof buf);
        int32_t back[4];
        int64_t k = 0;
        herd_status e = herd_tokens_encode(t, buf, len, back, 4, &k, &err);
        check_error(e, &err, path, "tokens encode");
        if (!e && (k != 1 || back[0] != id) && !(id == V - 1 && k == 1 && back[0] == id))
            fuzz_fail("tokens: id %d decodes to '%s', which encodes to %lld ids (first %d)", id, buf, (long long)k,
                      k ? back[0] : -1);
    }
    herd_tokens_close(t);
    herd_dataset *tr = NULL, *va = NULL;
    herd_lm_options o = {1 + (int)(size % 7), 1 + (int)(size % 3), 0.2};
    st = herd_lm_open(&tr, &va, path, &o, &err);
    check_error(st, &err, path, "lm");
    if (!st) {
        check_dataset(HERD_OK, tr, &err, NULL, "lm train");
        if (va) check_dataset(HERD_OK, va, &err, NULL, "lm validation");
    }
    return 0;
}

/* Tokenizing a text into a token file (herd convert --tokenizer): byte 0 picks the tokenizer,
 * whether byte 1 caps the vocabulary (2..9 ids, the rest one unknown id) and 1 or 2 threads; the
 * rest is the text. A failure is one line naming the text file and leaves no token file (nor its
 * temp file); an accepted text gives a file that opens with info's counts and ids below its
 * vocabulary, written the same by 1 and 2 threads; without a cap its ids decode back to the
 * text (byte, char) or to its non-blank bytes (word). */
static int is_blank(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

static void tokenize_check_decoded(const herd_tokens *t, const int32_t *ids, int64_t n, int word, const uint8_t *text,
                                   size_t len) {
    size_t at = 0;
    char buf[256];
    for (int64_t i = 0; i < n; i++) {
        size_t k = herd_tokens_decode(t, ids[i], buf, sizeof buf);
        if (word && k && buf[k - 1] == ' ') k--; /* a word decodes followed by a space */
        while (word && at < len && is_blank(text[at])) at++;
        if (k == 0 || at + k > len || memcmp(text + at, buf, k) != 0)
            fuzz_fail("tokenize: id %lld (%d) decodes to '%.*s', not the text at byte %zu", (long long)i, ids[i], (int)k,
                      buf, at);
        at += k;
    }
    while (word && at < len && is_blank(text[at])) at++;
    if (at != len) fuzz_fail("tokenize: the ids decode to %zu of the text's %zu bytes", at, len);
}

int fuzz_tokenize(const uint8_t *data, size_t size) {
    if (size < 2 || size > (1 << 16)) return 0;
    char txt[512], tok[512], tok2[512];
    snprintf(txt, sizeof txt, "%s", scratch_path("fuzz_a.txt"));
    snprintf(tok, sizeof tok, "%s", scratch_path("fuzz.tok"));
    snprintf(tok2, sizeof tok2, "%s", scratch_path("fuzz_b.tok"));
    const uint8_t *text = data + 2;
    size_t len = size - 2;
    write_file(txt, text, len);
    remove(tok);
    herd_tokens_options o = {(herd_text_tokenizer)(data[0] % 3), data[0] & 4 ? 2 + data[1] % 8 : 0, data[0] & 8 ? 2 : 1};
    if (o.tokenizer == HERD_TOKENIZE_BYTE && o.vocab) o.vocab = data[1] & 1 ? 256 : 3; /* 3: refused */
    const char *paths[1] = {txt};
    herd_tokens_info info = {0};
    herd_error err = {0};
    herd_status st = herd_tokens_write(tok, paths, 1, &o, &info, &err);
    check_error(st, &err, txt, "tokenize");
    if (st) {
        struct stat sb;
        if (stat(tok, &sb) == 0) fuzz_fail("tokenize: failed (%s) but wrote %s", err.msg, tok);
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", tok, (int)getpid());
        if (stat(tmp, &sb) == 0) fuzz_fail("tokenize: failed (%s) and left %s", err.msg, tmp);
        return 0;
    }
    herd_tokens *t = NULL;
    st = herd_tokens_open(&t, tok, &err);
    if (st) fuzz_fail("tokenize: the file written does not open: %s", err.msg);
    int64_t n = herd_tokens_count(t);
    int V = herd_tokens_vocab(t);
    if (n != info.tokens || V != info.vocab || n < 1 || n > (int64_t)len || (o.vocab && V > o.vocab) ||
        info.unknown < 0 || info.unknown > n || (!o.vocab && info.unknown))
        fuzz_fail("tokenize: %lld ids of %d (info: %lld of %d, %lld unknown) from %zu bytes", (long long)n, V,
                  (long long)info.tokens, info.vocab, (long long)info.unknown, len);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) fuzz_fail("tokenize: no memory");
    if (herd_tokens_read(t, 0, n, ids, &err)) fuzz_fail("tokenize: reading the ids written: %s", err.msg);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) fuzz_fail("tokenize: id %d of %d written", ids[i], V);
    if (!o.vocab || o.tokenizer == HERD_TOKENIZE_BYTE)
        tokenize_check_decoded(t, ids, n, o.tokenizer == HERD_TOKENIZE_WORD, text, len);
    free(ids);
    herd_tokens_close(t);
    /* the file does not depend on the threads */
    o.threads = 3 - o.threads;
    st = herd_tokens_write(tok2, paths, 1, &o, NULL, &err);
    if (st) fuzz_fail("tokenize: %d threads refuse what %d accepted: %s", o.threads, 3 - o.threads, err.msg);
    FILE *a = fopen(tok, "rb"), *b = fopen(tok2, "rb");
    int same = a && b;
    for (int ca = 0, cb = 0; same && (ca != EOF || cb != EOF);) same = (ca = fgetc(a)) == (cb = fgetc(b));
    if (a) fclose(a);
    if (b) fclose(b);
    if (!same) fuzz_fail("tokenize: 1 and 2 threads write different files");
    return 0;
}

/* Criteo TSV: byte 0 picks the hash rows (0 among them: refused), the rest is the file. Every
 * accepted sample's ids lie in their feature's range [k R, (k + 1) R). */
int fuzz_criteo(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1 << 20)) return 0;
    const char *path = scratch_path("fuzz.tsv");
    write_file(path, data + 1, size - 1);
    herd_criteo_options o = {data[0] % 17, data[0] >> 5};
    herd_dataset *ds = NULL;
    herd_error err = {0};
    herd_status st = herd_criteo_open(&ds, &path, 1, &o, &err);
    if (!st && (ds->x.dtype != HERD_F32 || herd_tensor_numel(&ds->x) != HERD_CRITEO_DENSE || ds->n_more != 1 ||
                herd_tensor_numel(&ds->more[0]) != HERD_CRITEO_SPARSE))
        fuzz_fail("criteo: fields of %lld and %lld values", (long long)herd_tensor_numel(&ds->x),
                  ds->n_more ? (long long)herd_tensor_numel(&ds->more[0]) : 0LL);
    for (int64_t i = 0; !st && i < ds->n && i < 64; i++) {
        float x[HERD_CRITEO_DENSE + HERD_CRITEO_SPARSE], y;
        herd_error e2 = {0};
        if (herd_dataset_get(ds, i, x, &y, &e2) != HERD_OK) fuzz_fail("criteo: line %lld: %s", (long long)i + 1, e2.msg);
        int32_t ids[HERD_CRITEO_SPARSE];
        memcpy(ids, x + HERD_CRITEO_DENSE, sizeof ids);
        for (int k = 0; k < HERD_CRITEO_SPARSE; k++)
            if (ids[k] < k * o.hash_rows || ids[k] >= (k + 1) * o.hash_rows)
                fuzz_fail("criteo: line %lld: C%d id %d outside [%lld, %lld)", (long long)i + 1, k + 1, ids[k],
                          (long long)(k * o.hash_rows), (long long)((k + 1) * o.hash_rows));
        for (int k = 0; k < HERD_CRITEO_DENSE; k++)
            if (!isfinite(x[k]) || x[k] < 0) fuzz_fail("criteo: line %lld: I%d is %g", (long long)i + 1, k + 1, x[k]);
        if (y != 0.0f && y != 1.0f) fuzz_fail("criteo: line %lld: label %g", (long long)i + 1, y);
    }
    check_dataset(st, ds, &err, path, "criteo");
    return 0;
}

/* The input is a features file and a labels file: 2 bytes (little-endian) give the length of
 * the features part, the rest is the labels. */
int fuzz_npy(const uint8_t *data, size_t size) {
    if (size < 2 || size > (1 << 20)) return 0;
    size_t nx = (size_t)data[0] | (size_t)data[1] << 8;
    if (nx > size - 2) nx = size - 2;
    char xp[600], yp[600];
    snprintf(xp, sizeof xp, "%s", scratch_path("fuzz_x.npy"));
    snprintf(yp, sizeof yp, "%s", scratch_path("fuzz_y.npy"));
    write_file(xp, data + 2, nx);
    write_file(yp, data + 2 + nx, size - 2 - nx);
    herd_dataset *ds = NULL;
    herd_error err = {0};
    herd_status st = herd_npy_open(&ds, xp, yp, &err);
    /* a message names whichever of the two files is wrong */
    if (st != HERD_OK && strncmp(err.msg, xp, strlen(xp)) && strncmp(err.msg, yp, strlen(yp)))
        fuzz_fail("npy: message names neither file: %s", err.msg);
    check_dataset(st, ds, &err, NULL, "npy");
    /* the same pair as bags: the features the flat ids, the labels file also the offsets */
    ds = NULL;
    st = herd_npy_open_bags(&ds, xp, yp, yp, 1, 0, &err);
    if (st != HERD_OK && strncmp(err.msg, xp, strlen(xp)) && strncmp(err.msg, yp, strlen(yp)))
        fuzz_fail("npy bags: message names neither file: %s", err.msg);
    check_dataset(st, ds, &err, NULL, "npy bags");
    return 0;
}

/* TFRecord of tf.train.Example, opened with a model's input shape (images converted to 1x4x4)
 * and without one (the shape of the first sample). */
int fuzz_tfrecord(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *path = scratch_path("fuzz.tfrecord");
    write_file(path, data, size);
    const char *paths[1] = {path};
    const herd_image_options shape = {.c = 1, .h = 4, .w = 4};
    for (int with_shape = 0; with_shape < 2; with_shape++) {
        herd_dataset *ds = NULL;
        herd_error err = {0};
        herd_status st = herd_tfrecord_open(&ds, paths, 1, with_shape ? &shape : NULL, &err);
        check_dataset(st, ds, &err, path, "tfrecord");
    }
    return 0;
}

/* Parquet: the footer, the schema, pages, codecs, levels and encodings, through the dataset
 * as training reads it: every numeric column, then list and byte columns as a 3x2x2 image and
 * text labels, with a cache smaller than one row group (every read decodes again). */
int fuzz_parquet(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *path = scratch_path("fuzz.parquet");
    write_file(path, data, size);
    const herd_parquet_options opts[] = {
        {0},
        {.label = "name", .image = "px", .c = 3, .h = 2, .w = 2, .cache_bytes = 1},
        {.image = "raw", .c = 3, .h = 2, .w = 2},
        {.features = "vec,f32,i64,flag", .target = "f32", .cache_bytes = 1},
        {.bags = "tags:4"},
        {.features = "f32", .bags = "tags:2,t32:4", .cache_bytes = 1},
    };
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        herd_dataset *ds = NULL;
        herd_error err = {0};
        herd_status st = herd_parquet_open(&ds, path, &opts[k], &err);
        check_dataset(st, ds, &err, path, "parquet");
    }
    return 0;
}

/* A window of the 3x8x8 sample decoded alone (random_resized_crop's partial decode) fails
 * exactly when the whole sample does, and otherwise has the whole sample's pixels. */
static void fuzz_image_window(const uint8_t *data, size_t size) {
    uint8_t whole[192], part[192];
    const int win[4] = {size % 5, size % 3, 3, 4}; /* top, left, height, width */
    herd_error err = {0}, err2 = {0};
    herd_status a = herd_image_decode_to_u8(data, size, "fuzz.img", 3, 8, 8, whole, &err);
    herd_status b = herd_image_decode_window_to_u8(data, size, "fuzz.img", 3, 8, 8, win, NULL, part, &err2);
    check_error(b, &err2, "fuzz.img", "image window");
    if ((a == HERD_OK) != (b == HERD_OK)) fuzz_fail("image window: status %d, whole %d (%s)", b, a, err2.msg);
    /* again with the bytes vouched for (a file's later epochs): the rows below are not decoded,
     * so a corrupt tail may pass, but a sound image must come out the same */
    uint8_t later[192];
    herd_error err3 = {0};
    int sound = 1;
    herd_status c = herd_image_decode_window_to_u8(data, size, "fuzz.img", 3, 8, 8, win, &sound, later, &err3);
    check_error(c, &err3, "fuzz.img", "image window, sound");
    if (a == HERD_OK && c != HERD_OK) fuzz_fail("image window: a sound image failed with its tail skipped (%s)", err3.msg);
    for (int k = 0; a == HERD_OK && b == HERD_OK && k < 3; k++)
        for (int y = win[0]; y < win[0] + win[2]; y++)
            for (int x = win[1]; x < win[1] + win[3]; x++)
                if (part[(k * 8 + y) * 8 + x] != whole[(k * 8 + y) * 8 + x] ||
                    later[(k * 8 + y) * 8 + x] != whole[(k * 8 + y) * 8 + x])
                    fuzz_fail("image window: pixel %d,%d,%d differs from the whole decode", k, y, x);
}

/* The image decoding path of image folders and TFRecord: PNG or JPEG bytes decoded, then
 * converted to 1x5x3 and 3x8x8 inputs, and a window of the latter alone. */
int fuzz_image(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    fuzz_image_window(data, size);
    herd_image img = {0};
    herd_error err = {0};
    herd_status st = herd_image_decode(data, size, "fuzz.img", &img, &err);
    check_error(st, &err, "fuzz.img", "image");
    if (st != HERD_OK) {
        if (img.pix) fuzz_fail("image: failed but returned pixels");
        return 0;
    }
    if (!img.pix || img.w < 1 || img.h < 1 || (img.c != 1 && img.c != 3))
        fuzz_fail("image: decoded %dx%dx%d", img.w, img.h, img.c);
    touch(img.pix, (size_t)img.w * img.h * img.c);
    /* resampling and luma are weighted means: every level lies within the image's range (a
     * white pixel once came out a hair above white) */
    uint8_t small[15], big[192], lo = 255, hi = 0;
    for (size_t i = 0; i < (size_t)img.w * img.h * img.c; i++) {
        if (img.pix[i] < lo) lo = img.pix[i];
        if (img.pix[i] > hi) hi = img.pix[i];
    }
    if (herd_image_to_u8(&img, 1, 5, 3, small, &err) || herd_image_to_u8(&img, 3, 8, 8, big, &err))
        fuzz_fail("image: conversion failed: %s", err.msg);
    for (int i = 0; i < 15; i++)
        if (small[i] < lo || small[i] > hi) fuzz_fail("image: gray level %d outside [%d, %d]", small[i], lo, hi);
    for (int i = 0; i < 192; i++)
        if (big[i] < lo || big[i] > hi) fuzz_fail("image: level %d outside [%d, %d]", big[i], lo, hi);
    herd_image_free(&img);
    return 0;
}

/* herd's own shard format, one file and the same file twice (concatenated shards). */
int fuzz_shard(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *path = scratch_path("fuzz.herd");
    write_file(path, data, size);
    const char *paths[2] = {path, path};
    for (int n = 1; n <= 2; n++) {
        herd_dataset *ds = NULL;
        herd_error err = {0};
        herd_status st = herd_shards_open(&ds, paths, n, &err);
        check_dataset(st, ds, &err, path, "shard");
    }
    return 0;
}

/* ---- JSON: parse, walk the whole tree checking links, re-encode strings ---- */

int fuzz_json(const uint8_t *data, size_t size) {
    herd_json *doc = NULL;
    herd_error err = {0};
    herd_status st = herd_json_parse(&doc, (const char *)data, size, 32, 1 << 16, &err);
    check_error(st, &err, "JSON byte ", "json");
    if (st != HERD_OK) {
        if (doc) fuzz_fail("json: failed but returned a document");
        return 0;
    }
    const herd_json_node *root = herd_json_root(doc);
    if (!root || root->parent != -1) fuzz_fail("json: bad root");
    /* iterative pre-order walk over first/next/parent */
    int32_t idx = 0, visited = 0;
    while (idx >= 0) {
        const herd_json_node *n = herd_json_at(doc, idx);
        if (!n) fuzz_fail("json: dangling index %d", idx);
        if (++visited > (1 << 16)) fuzz_fail("json: walk does not end");
        if (n->offset > size) fuzz_fail("json: offset %zu past the input", n->offset);
        const herd_json_node *parent = herd_json_at(doc, n->parent);
        if (parent && parent->type == HERD_JSON_OBJECT) {
            if (!n->key || strlen(n->key) > n->key_len || n->key[n->key_len] != 0)
                fuzz_fail("json: member without a proper key");
            /* get() takes a C string, so a key with \u0000 inside is visible only through key_len
             * (consumers such as the safetensors reader reject it) */
            if (strlen(n->key) == n->key_len) {
                const herd_json_node *found = herd_json_get(doc, parent, n->key);
                if (!found || !found->key || strcmp(found->key, n->key) != 0)
                    fuzz_fail("json: get('%s') misses", n->key);
            }
        }
        if (n->type == HERD_JSON_STRING) {
            if (!n->str || !herd_json_utf8_valid(n->str, n->str_len) || n->str[n->str_len] != 0)
                fuzz_fail("json: string node not valid NUL-terminated UTF-8");
            if (strlen(n->str) == n->str_len) { /* round trip through the writer */
                herd_json_writer w = {0};
                herd_json_put_string(&w, n->str);
                herd_json *back = NULL;
                herd_error e2 = {0};
                if (w.failed || herd_json_parse(&back, w.buf, w.len, 4, 4, &e2) != HERD_OK)
                    fuzz_fail("json: re-encoded string does not parse: %s", e2.msg);
                const herd_json_node *r = herd_json_root(back);
                if (r->type != HERD_JSON_STRING || r->str_len != n->str_len || memcmp(r->str, n->str, n->str_len))
                    fuzz_fail("json: string changed in a round trip");
                herd_json_free(back);
                herd_json_writer_free(&w);
            }
        }
        if (n->type == HERD_JSON_ARRAY || n->type == HERD_JSON_OBJECT) {
            int32_t count = 0;
            for (int32_t c = n->first; c >= 0; c = herd_json_at(doc, c)->next) {
                const herd_json_node *child = herd_json_at(doc, c);
                if (!child || child->parent != idx) fuzz_fail("json: child %d of %d has parent %d", c, idx,
                                                              child ? child->parent : -2);
                if (++count > n->count) break;
            }
            if (count != n->count) fuzz_fail("json: node %d says %d children, has %d", idx, n->count, count);
        }
        /* next in pre-order */
        if ((n->type == HERD_JSON_ARRAY || n->type == HERD_JSON_OBJECT) && n->first >= 0) {
            idx = n->first;
            continue;
        }
        while (idx >= 0 && herd_json_at(doc, idx)->next < 0) idx = herd_json_at(doc, idx)->parent;
        if (idx >= 0) idx = herd_json_at(doc, idx)->next;
    }
    herd_json_free(doc);
    return 0;
}

/* ---- safetensors ---- */

static size_t dtype_size(herd_dtype t) {
    size_t s = herd_dtype_size(t);
    if (!s || t == HERD_BF16) fuzz_fail("safetensors: dtype %d", (int)t);
    return s;
}

static void walk_safetensors(const herd_safetensors *st) {
    for (int k = 0; k < herd_safetensors_count(st); k++) {
        const herd_tensor_ref *t = herd_safetensors_get(st, k);
        if (herd_safetensors_find(st, t->name) != t) fuzz_fail("safetensors: find('%s') is another tensor", t->name);
        if (t->ndim < 0 || t->ndim > 8) fuzz_fail("safetensors: %d dimensions", t->ndim);
        size_t bytes = dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) fuzz_fail("safetensors: negative dimension");
            bytes *= (size_t)t->shape[d];
        }
        if (bytes && ((uintptr_t)t->data % dtype_size(t->dtype)) != 0) fuzz_fail("safetensors: misaligned '%s'", t->name);
        touch(t->data, bytes);
    }
    const char *v = herd_safetensors_meta(st, "format");
    if (v) touch(v, strlen(v));
}

static const char ST_SPEC[] = "input 2x2x2\nflatten\ndense 3\n"; /* fc1-like names: dense1.weight [3, 8] */
static herd_model *st_model;
static void st_teardown(void) { herd_model_destroy(st_model); }

int fuzz_safetensors(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    const char *path = scratch_path("fuzz.safetensors");
    write_file(path, data, size);
    herd_safetensors *st = NULL;
    herd_error err = {0};
    herd_status s = herd_safetensors_open(&st, path, &err);
    check_error(s, &err, path, "safetensors");
    if (s == HERD_OK) walk_safetensors(st);
    else if (st) fuzz_fail("safetensors: failed but returned a handle");
    herd_safetensors_close(st);
    if (s == HERD_OK) { /* as the weights of a small model: tensors, and metadata such as input_mean/input_std */
        if (!st_model && (herd_model_parse(&st_model, ST_SPEC, "fuzz_st.spec", &err) == HERD_OK))
            atexit(st_teardown);
        if (!st_model) fuzz_fail("safetensors: cannot set up the model: %s", err.msg);
        herd_status l = herd_model_load(st_model, path, &err);
        check_error(l, &err, path, "safetensors load");
        const double *norm = herd_model_input_norm(st_model);
        for (int c = 0; l == HERD_OK && norm && c < 4; c++)
            if (!isfinite(norm[c]) || (c >= 2 && norm[c] < 0)) fuzz_fail("safetensors: loaded a bad normalisation");
    }
    return 0;
}

/* ---- onnx: the bytes decoded alone (onnx_decode.h), then as an ONNX model file, imported as
 * `herd eval x.onnx` would ---- */

static void onnx_str_inside(const onnx_graph *g, onnx_str s, const char *what) {
    if (s.n && ((const uint8_t *)s.p < g->file || (const uint8_t *)s.p + s.n > g->file + g->file_len))
        fuzz_fail("onnx decode: a %s points outside the file", what);
    if (s.n > ONNX_MAX_STR) fuzz_fail("onnx decode: a %s of %zu bytes", what, s.n);
}

static void fuzz_onnx_decode(const uint8_t *data, size_t size) {
    onnx_graph g;
    herd_error err = {0};
    herd_status s = herdi_onnx_decode_bytes(&g, "fuzz.onnx", data, size, &err);
    check_error(s, &err, "fuzz.onnx", "onnx decode");
    if (s != HERD_OK) {
        if (g.nodes || g.tensors || g.file) fuzz_fail("onnx decode: failed but kept its tables");
        return;
    }
    if (g.n_nodes > ONNX_MAX_NODES || g.n_tensors > g.cap_tensors || g.n_initializers > g.n_tensors ||
        g.n_inputs > ONNX_MAX_GRAPH_IO || g.n_outputs > ONNX_MAX_GRAPH_IO)
        fuzz_fail("onnx decode: counts beyond the bounds");
    for (int i = 0; i < g.n_nodes; i++) {
        const onnx_node *n = &g.nodes[i];
        if (n->op.n == 0) fuzz_fail("onnx decode: a node without op_type");
        onnx_str_inside(&g, n->op, "op_type");
        onnx_str_inside(&g, n->name, "node name");
        for (int k = 0; k < n->n_in; k++) onnx_str_inside(&g, n->in[k], "node input");
        for (int k = 0; k < n->n_out; k++) onnx_str_inside(&g, n->out[k], "node output");
        for (int a = 0; a < n->n_attr; a++) {
            onnx_str_inside(&g, n->attr[a].name, "attribute name");
            if (n->attr[a].n_ints > ONNX_MAX_ATTR_INTS) fuzz_fail("onnx decode: too many attribute ints");
            if (n->attr[a].tensor >= g.n_tensors) fuzz_fail("onnx decode: an attribute tensor out of the table");
        }
    }
    static double values[1 << 16];
    for (int t = 0; t < g.n_tensors; t++) {
        const onnx_tensor *x = &g.tensors[t];
        onnx_str_inside(&g, x->name, "tensor name");
        if (x->numel < 0 || x->ndim > ONNX_MAX_DIMS) fuzz_fail("onnx decode: a tensor of %lld values", (long long)x->numel);
        if (x->msg < g.file || x->msg + x->msg_len > g.file + g.file_len) fuzz_fail("onnx decode: tensor bytes outside");
        if (x->numel > (int64_t)(sizeof values / sizeof values[0])) continue;
        herd_status v = herdi_onnx_tensor_values(&g, x, NULL, values, &err);
        check_error(v, &err, "fuzz.onnx", "onnx tensor values");
        for (int64_t i = 0; v == HERD_OK && i < x->numel; i++) touch(&values[i], sizeof values[i]);
    }
    herdi_onnx_graph_free(&g);
}

int fuzz_onnx(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    fuzz_onnx_decode(data, size);
    const char *path = scratch_path("fuzz.onnx");
    write_file(path, data, size);
    herd_model *m = NULL;
    herd_error err = {0};
    herd_status s = herd_model_import_onnx(&m, path, &err);
    check_error(s, &err, path, "onnx");
    if (s != HERD_OK) {
        if (m) fuzz_fail("onnx: failed but returned a model");
        return 0;
    }
    if (!m) fuzz_fail("onnx: succeeded without a model");
    int64_t n;
    const float *p = herd_model_params(m, &n);
    touch(p, (size_t)n * sizeof(float)); /* every weight it claims is there */
    const double *norm = herd_model_input_norm(m);
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    for (int i = 0; norm && i < 2 * c; i++)
        if (!isfinite(norm[i]) || (i >= c && norm[i] <= 0)) fuzz_fail("onnx: imported a bad input normalisation");
    herd_model_destroy(m);
    return 0;
}

/* ---- checkpoint: the bytes as the newest checkpoint of a tiny model trained with Adam ---- */

static const char CKPT_SPEC[] = "input 2x4x4\nconv 2 3 pad=1\nbatchnorm relu\nflatten\ndense 3\n";
static herd_model *ckpt_model;
static herd_trainer *ckpt_trainer;

static void ckpt_teardown(void) {
    herd_trainer_destroy(ckpt_trainer);
    herd_model_destroy(ckpt_model);
}

int fuzz_checkpoint(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    herd_error err = {0};
    if (!ckpt_model) {
        herd_train_config cfg = herd_train_defaults();
        cfg.optimizer = "adam";
        cfg.batch = 4;
        if (herd_model_parse(&ckpt_model, CKPT_SPEC, "fuzz_ckpt.spec", &err) ||
            herd_model_prepare(ckpt_model, "ref", 4, 1, &err) ||
            herd_trainer_create(&ckpt_trainer, ckpt_model, &cfg, 10, &err))
            fuzz_fail("checkpoint: cannot set up the model: %s", err.msg);
        atexit(ckpt_teardown);
    }
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s", scratch_path("ckpt"));
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/ckpt-0000000001.safetensors", dir);
    write_file(path, data, size);

    /* as weights (herd eval --weights, herd train --weights) */
    herd_status st = herd_model_load(ckpt_model, path, &err);
    check_error(st, &err, path, "model load");
    /* as the checkpoint to resume from (herd train --resume) */
    train_position pos = {-1, -1};
    char loaded[700], note[2048];
    st = herdi_checkpoint_load_latest(dir, ckpt_trainer, &pos, loaded, sizeof loaded, note, sizeof note, &err);
    check_error(st, &err, dir, "checkpoint load");
    if (st == HERD_OK && (pos.epoch < 0 || pos.step_in_epoch < 0 || ckpt_trainer->step < 0 || ckpt_trainer->opt.t < 0))
        fuzz_fail("checkpoint: negative position accepted");
    /* herd train counts epochs in an int (at most 2^20 of them) and adds steps to the rest */
    const int64_t big = (int64_t)1 << 50;
    if (st == HERD_OK && (pos.epoch > (1 << 20) || pos.step_in_epoch > big || ckpt_trainer->step > big ||
                          ckpt_trainer->opt.t > big))
        fuzz_fail("checkpoint: position epoch %lld, step %lld accepted", (long long)pos.epoch,
                  (long long)ckpt_trainer->step);
    return 0;
}

/* ---- command line: NUL-separated arguments after `herd train`, against train's table ---- */

int fuzz_cli(const uint8_t *data, size_t size) {
    enum { MAX_ARGS = 64 };
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS + 3] = {"herd", "train"};
    int argc = 2;
    for (char *p = buf; p <= buf + size && argc < MAX_ARGS + 2; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;

    const char *str = NULL, *str2 = NULL;
    int epochs = 5, batch = 32, flag = 0, workers = 1;
    float lr = 1e-3f, split = 0;
    uint64_t seed = 0;
    cli_option opts[] = {
        {"--data", OPT_STR, &str, 0, 0, "SRC", "data", 0},
        {"--epochs", OPT_INT, &epochs, 1, 1e6, "N", "epochs", 0},
        {"--batch", OPT_INT, &batch, 1, 65536, "N", "batch", 0},
        {"--lr", OPT_FLOAT, &lr, 1e-12, 1e3, "X", "learning rate", 0},
        {"--val-split", OPT_FLOAT, &split, 0, 0.9, "F", "validation split", 0},
        {"--seed", OPT_U64, &seed, 0, 0, "N", "seed", 0},
        {"--save", OPT_STR, &str2, 0, 0, "FILE", "save", 0},
        {"--quiet", OPT_FLAG, &flag, 0, 0, NULL, "quiet", 0},
        {"--workers", OPT_INT, &workers, 1, 4096, "N", "workers", 0},
        {0},
    };
    const cli_command cmd = {"train", "herd train MODEL.spec [options]", "fuzz", 1, NULL};
    const char *positional[1] = {NULL};
    int r = cli_parse(argc, argv, 2, opts, &cmd, positional);
    if (r != 0 && r != 1 && r != 2) fuzz_fail("cli_parse returned %d", r);
    if (r == 0) {
        if (!positional[0] || positional[0] < buf || positional[0] > buf + size) fuzz_fail("cli: positional not from argv");
        if (epochs < 1 || epochs > 1000000 || batch < 1 || batch > 65536 || workers < 1 || workers > 4096)
            fuzz_fail("cli: integer out of its range: epochs %d batch %d workers %d", epochs, batch, workers);
        if (!(lr >= 1e-12f && lr <= 1e3f) || !(split >= 0 && split <= 0.9f)) fuzz_fail("cli: float out of its range");
        if ((str && (str < buf || str > buf + size || !*str)) || (str2 && (str2 < buf || str2 > buf + size || !*str2)))
            fuzz_fail("cli: string value not from argv or empty");
        /* an accepted --seed was written as digits only (no sign, no blanks) */
        for (int i = 2; i < argc; i++) { /* the parser's walk: a value-taking option consumes the next word */
            const char *a = argv[i], *v = NULL;
            if (strncmp(a, "--seed=", 7) == 0) {
                v = a + 7;
            } else if (strcmp(a, "-n") == 0 || strcmp(a, "--model") == 0 || /* --model: the parser's own, takes a word */
                       (a[0] == '-' && a[1] == '-' && !strchr(a, '=') && cli_find(opts, a) &&
                        cli_find(opts, a)->type != OPT_FLAG)) {
                if (i + 1 < argc && strcmp(a, "--seed") == 0) v = argv[i + 1];
                i++;
            }
            for (const char *p = v; p && *p; p++)
                if (*p < '0' || *p > '9') fuzz_fail("cli: --seed '%s' accepted", v);
        }
    }
    free(buf);
    return 0;
}

/* ---- inter-rank messages: what a parameter server received (herdi_ps_decode) ---- */

/* Byte 0 picks the tag (101..108: pull, params, push, done, state, state reply, restore, and
 * an unknown one), byte 1 the window of accepted steps (0 = asynchronous), bytes 2-3 the
 * server's version, byte 4 the dense floats of the shard, bytes 5-6 two table pieces after
 * them (rows, row floats), byte 7 the floats of a restored state; the rest is the message, in a
 * buffer of exactly its size. */
int fuzz_psmsg(const uint8_t *data, size_t size) {
    if (size < 8 || size > (1 << 16)) return 0;
    int tag = 101 + data[0] % 8;
    ps_piece pc[2];
    int64_t at = data[4] % 32;
    for (int q = 0; q < 2; q++) {
        int64_t dim = 1 + data[5 + q] / 8 % 4, rows = data[5 + q] % 8;
        pc[q] = (ps_piece){at, at + rows * dim, dim};
        at = pc[q].hi;
    }
    ps_expect e = {at, (int64_t)(data[2] | data[3] << 8), data[1] % 8, data[4] % 32, 2, pc, data[7] % 64};
    size_t bytes = size - 8;
    unsigned char *buf = malloc(bytes ? bytes : 1);
    if (!buf) return 0;
    memcpy(buf, data + 8, bytes);
    ps_message m;
    herd_error err = {0};
    herd_status st = herdi_ps_decode(tag, buf, (int64_t)bytes, &e, &m, &err);
    check_error(st, &err, NULL, "psmsg");
    if (st && st != HERD_EFORMAT) fuzz_fail("psmsg: status %d, expected HERD_EFORMAT: %s", st, err.msg);
    if (st == HERD_OK) {
        int want = tag == 101 ? PS_PULL : tag == 103 ? PS_PUSH : tag == 104 ? PS_DONE : tag == 105 ? PS_STATE
                   : tag == 107 ? PS_RESTORE : -1;
        if ((int)m.kind != want) fuzz_fail("psmsg: tag %d accepted as kind %d", tag, (int)m.kind);
        if (m.kind == PS_PULL && (m.step < 0 || (m.exact != 0 && m.exact != 1) || (m.full && m.keys)))
            fuzz_fail("psmsg: pull for step %lld exact %d full %d accepted", (long long)m.step, m.exact, m.full);
        int64_t floats = 0;
        for (int64_t i = 0; (m.kind == PS_PULL || m.kind == PS_PUSH) && i < m.keys; i++) {
            int q = m.key[i] >= pc[0].lo && m.key[i] < pc[0].hi ? 0 : m.key[i] >= pc[1].lo && m.key[i] < pc[1].hi ? 1 : -1;
            if (q < 0 || (m.key[i] - pc[q].lo) % pc[q].dim || (i && m.key[i] <= m.key[i - 1]))
                fuzz_fail("psmsg: key %lld (%lld) accepted", (long long)i, (long long)m.key[i]);
            floats += pc[q].dim;
        }
        if (m.kind == PS_PUSH) {
            if (m.samples < 0 || m.samples > INT32_MAX) fuzz_fail("psmsg: %lld samples accepted", (long long)m.samples);
            if (e.slots > 0 && (m.step < e.version || m.step >= e.version + e.slots))
                fuzz_fail("psmsg: push for step %lld outside [%lld, %lld) accepted", (long long)m.step,
                          (long long)e.version, (long long)(e.version + e.slots));
            if ((const unsigned char *)m.dense < buf || (const unsigned char *)(m.rows + floats) > buf + bytes)
                fuzz_fail("psmsg: gradients outside the message");
            touch(m.dense, (size_t)(e.dense_n + floats) * sizeof(float)); /* ASan: all inside the buffer */
        }
        if (m.kind == PS_RESTORE) {
            if (m.opt_t < 0 || m.opt_t > m.step) fuzz_fail("psmsg: restore with %lld steps of %lld", (long long)m.opt_t,
                                                           (long long)m.step);
            touch(m.dense, (size_t)e.state_floats * sizeof(float));
        }
    }
    free(buf);
    return 0;
}

const fuzz_target fuzz_targets[] = {
    {"spec", fuzz_spec},           {"idx", fuzz_idx},
    {"cifar", fuzz_cifar},         {"json", fuzz_json},
    {"safetensors", fuzz_safetensors}, {"checkpoint", fuzz_checkpoint}, {"onnx", fuzz_onnx},
    {"csv", fuzz_csv},             {"npy", fuzz_npy},
    {"tfrecord", fuzz_tfrecord},   {"image", fuzz_image},
    {"parquet", fuzz_parquet},
    {"shard", fuzz_shard},
    {"cli", fuzz_cli},             {"psmsg", fuzz_psmsg},
    {"text", fuzz_text},           {"tokens", fuzz_tokens},
    {"criteo", fuzz_criteo},       {"tokenize", fuzz_tokenize},
    {NULL, NULL},
};
