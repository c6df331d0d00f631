/* ONNX import on bad files: missing, empty, truncated, lengths past the end or absurdly
 * large, overflowing tensor sizes, wrong initializer shapes, unsupported operators: each
 * gives one error naming the file; then a mutation fuzz of a valid export (OK or an error
 * naming the file, never a crash; run under HERD_SANITIZE=ON for full value). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mutate.h"
#include "herd/model.h"
#include "herd/onnx.h"
#include "io/onnx_proto.h"
#include "io/pb_wire.h"

static int ITERS = 400; /* HERD_FUZZ_ITERS raises it for a soak */
static char dir[256], path[512];

static void write_raw(const uint8_t *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(buf, 1, n, f) != n)) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

static uint8_t *slurp(const char *p, size_t *n) {
    FILE *f = fopen(p, "rb");
    if (!f) {
        perror(p);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 64);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Imports path; expects failure with `status` and a message starting with the path and holding `needle`. */
static void expect_fail(const char *what, herd_status status, const char *needle) {
    herd_error err = {0};
    herd_model *m = NULL;
    herd_status st = herd_model_import_onnx(&m, path, &err);
    CHECK(st == status, "%s: status %d, expected %d (%s)", what, st, status, err.msg);
    CHECK(strncmp(err.msg, path, strlen(path)) == 0, "%s: message does not start with the file: %s", what, err.msg);
    CHECK(strstr(err.msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, err.msg);
    CHECK(strchr(err.msg, '\n') == NULL, "%s: message is more than one line", what);
    CHECK(m == NULL, "%s: a model came back", what);
    herd_model_destroy(m);
}

/* ---- a hand-built graph: input [N,1,4,4] → Conv(weight dims given) → GAP → Flatten → Gemm ---- */
static void tensor(pb_writer *g, const char *name, const int64_t *dims, int nd, int64_t values) {
    pb_writer t = {0};
    for (int d = 0; d < nd; d++) herdi_pb_put_varint(&t, TENSOR_DIMS, (uint64_t)dims[d]);
    herdi_pb_put_varint(&t, TENSOR_DATA_TYPE, ONNX_FLOAT);
    herdi_pb_put_string(&t, TENSOR_NAME, name);
    pb_writer raw = {0};
    for (int64_t i = 0; i < values; i++) herdi_pb_put_raw(&raw, "\0\0\x80\x3f", 4); /* 1.0f */
    herdi_pb_put_message(&t, TENSOR_RAW_DATA, &raw);
    herdi_pb_put_message(g, GRAPH_INITIALIZER, &t);
}

static void node(pb_writer *g, const char *op, const char *in0, const char *in1, const char *in2, const char *out) {
    pb_writer n = {0};
    const char *ins[3] = {in0, in1, in2};
    for (int i = 0; i < 3 && ins[i]; i++) herdi_pb_put_string(&n, NODE_INPUT, ins[i]);
    herdi_pb_put_string(&n, NODE_OUTPUT, out);
    herdi_pb_put_string(&n, NODE_NAME, out);
    herdi_pb_put_string(&n, NODE_OP_TYPE, op);
    herdi_pb_put_message(g, GRAPH_NODE, &n);
}

static void io(pb_writer *g, int field, const char *name, const int64_t *dims, int nd) {
    pb_writer shape = {0};
    for (int i = 0; i < nd; i++) {
        pb_writer d = {0};
        if (i == 0)
            herdi_pb_put_string(&d, DIM_PARAM, "N");
        else
            herdi_pb_put_varint(&d, DIM_VALUE, (uint64_t)dims[i]);
        herdi_pb_put_message(&shape, SHAPE_DIM, &d);
    }
    pb_writer tt = {0}, type = {0}, vi = {0};
    herdi_pb_put_varint(&tt, TTENSOR_ELEM_TYPE, ONNX_FLOAT);
    herdi_pb_put_message(&tt, TTENSOR_SHAPE, &shape);
    herdi_pb_put_message(&type, TYPE_TENSOR, &tt);
    herdi_pb_put_string(&vi, VI_NAME, name);
    herdi_pb_put_message(&vi, VI_TYPE, &type);
    herdi_pb_put_message(g, field, &vi);
}

/* conv weight [wo, wc, 3, 3] with wvals values; dense weight [dc, 3]; extra_op adds an unknown node */
static void build(int64_t wo, int64_t wc, int64_t wvals, int64_t dc, const char *extra_op) {
    pb_writer g = {0};
    int64_t in[4] = {0, 1, 4, 4}, out[2] = {0, 3};
    int64_t wd[4] = {wo, wc, 3, 3}, dd[2] = {dc, 3}; /* Gemm without transB: [in, out] */
    io(&g, GRAPH_INPUT, "x", in, 4);
    tensor(&g, "c.weight", wd, 4, wvals);
    tensor(&g, "d.weight", dd, 2, 3 * dc);
    node(&g, "Conv", "x", "c.weight", NULL, "h");
    if (extra_op) node(&g, extra_op, "h", NULL, NULL, "h2");
    node(&g, "GlobalAveragePool", extra_op ? "h2" : "h", NULL, NULL, "p");
    node(&g, "Flatten", "p", NULL, NULL, "f");
    node(&g, "Gemm", "f", "d.weight", NULL, "y");
    io(&g, GRAPH_OUTPUT, "y", out, 2);
    pb_writer m = {0}, op = {0};
    herdi_pb_put_varint(&m, MODEL_IR_VERSION, 8);
    herdi_pb_put_varint(&op, OPSET_VERSION, 13);
    herdi_pb_put_message(&m, MODEL_OPSET_IMPORT, &op);
    herdi_pb_put_message(&m, MODEL_GRAPH, &g);
    write_raw(m.buf, m.len);
    herdi_pb_writer_free(&m);
}

static void hand_built(void) {
    herd_error err = {0};
    herd_model *m = NULL;
    build(2, 1, 18, 2, NULL);
    CHECK(herd_model_import_onnx(&m, path, &err) == HERD_OK, "hand-built graph: %s", err.msg);
    CHECK(m && herd_model_output_size(m) == 3, "hand-built graph: 3 outputs");
    herd_model_destroy(m);
    build(2, 3, 54, 2, NULL);
    expect_fail("conv weight with 3 input channels", HERD_ESHAPE,
                "node 'h' (Conv): initializer 'c.weight' has shape [2, 3, 3, 3] but the layer needs [2, 1, 3, 3]");
    build(2, 1, 18, 5, NULL);
    expect_fail("dense weight for 5 features", HERD_ESHAPE, "node 'y' (Gemm): initializer 'd.weight' has shape [5, 3]");
    build(2, 1, 17, 2, NULL);
    expect_fail("raw_data one value short", HERD_EFORMAT, "raw_data holds 68 bytes");
    build((int64_t)1 << 39, (int64_t)1 << 39, 0, 2, NULL);
    expect_fail("dims whose product overflows", HERD_EFORMAT, "size overflows");
    build(2, 1, 18, 2, "Resize");
    expect_fail("unsupported op", HERD_EUNSUPPORTED, "unsupported operator: Resize (node 'h2')");
    build(2, 1, 18, 2, "Softmax"); /* over the channels of an image: refused, naming the node */
    expect_fail("softmax of an image", HERD_EUNSUPPORTED, "node 'h2' (Softmax): only over the features");
    build(2, 1, 18, 2, "Erf"); /* outside a GELU */
    expect_fail("a lone Erf", HERD_EUNSUPPORTED, "node 'h2' (Erf): only supported as part of GELU");
}

static void bad_files(const uint8_t *good, size_t n) {
    snprintf(path, sizeof path, "%s/missing.onnx", dir);
    expect_fail("missing file", HERD_EIO, "cannot open");
    snprintf(path, sizeof path, "%s/bad.onnx", dir);
    write_raw(good, 0);
    expect_fail("empty file", HERD_EFORMAT, "empty file");
    write_raw(good, n / 2);
    expect_fail("truncated in the middle", HERD_EFORMAT, "not a valid ONNX file");
    write_raw(good, n - 1);
    expect_fail("one byte short", HERD_EFORMAT, "not a valid ONNX file");
    /* graph field whose length runs past the end */
    const uint8_t past[] = {0x08, 0x08, 0x3a, 0xe8, 0x07, 0x0a, 0x00};
    write_raw(past, sizeof past);
    expect_fail("length past the end", HERD_EFORMAT, "runs past the end");
    /* a declared length near 2^63 */
    const uint8_t huge[] = {0x3a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00};
    write_raw(huge, sizeof huge);
    expect_fail("huge declared length", HERD_EFORMAT, "runs past the end");
    /* a varint of more than 10 bytes */
    const uint8_t longv[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    write_raw(longv, sizeof longv);
    expect_fail("overlong varint", HERD_EFORMAT, "truncated varint");
    /* a group wire type */
    const uint8_t group[] = {0x0b, 0x0c};
    write_raw(group, sizeof group);
    expect_fail("group wire type", HERD_EFORMAT, "wire type");
    /* valid protobuf, but no graph */
    const uint8_t nograph[] = {0x08, 0x08};
    write_raw(nograph, sizeof nograph);
    expect_fail("no graph", HERD_EFORMAT, "no graph");
    /* a text file */
    write_raw((const uint8_t *)"input 1x28x28\nconv 8 3\n", 23);
    expect_fail("a spec file named .onnx", HERD_EFORMAT, "not a valid ONNX file");
}


static void fuzz(const uint8_t *seed, size_t n) {
    size_t cap = n + 64;
    uint8_t *buf = malloc(cap);
    herd_rng r;
    herd_rng_init(&r, 4242, 1);
    snprintf(path, sizeof path, "%s/fuzz.onnx", dir);
    int ok = 0;
    for (int i = 0; i < ITERS; i++) {
        size_t m = fuzz_mutate(&r, seed, n, buf, cap);
        write_raw(buf, m);
        herd_error err = {0};
        herd_model *model = NULL;
        herd_status st = herd_model_import_onnx(&model, path, &err);
        CHECK(st == HERD_OK || st == HERD_EFORMAT || st == HERD_EUNSUPPORTED || st == HERD_ESHAPE || st == HERD_ESPEC,
              "fuzz iteration %d: unexpected status %d: %s", i, st, err.msg);
        if (st != HERD_OK)
            CHECK(strncmp(err.msg, path, strlen(path)) == 0, "fuzz iteration %d: message without the file: %s", i,
                  err.msg);
        else
            ok++;
        herd_model_destroy(model);
    }
    printf("onnx: %d mutations, %d still imported\n", ITERS, ok);
    free(buf);
}

int main(void) {
    const char *iters = getenv("HERD_FUZZ_ITERS");
    if (iters && atoi(iters) > 0) ITERS = atoi(iters);
    snprintf(dir, sizeof dir, "/tmp/herd_onnx_bad_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    /* a small model using every exported operator, as the seed */
    static const char spec[] = "input 2x6x5\nconv 3 3 pad=1 name=a\nbatchnorm relu\nconv 3 3 pad=1\nadd a gelu\n"
                               "maxpool 2\nconv 4 1 leaky_relu\navgpool 2 stride=1\nconv 4 1 sigmoid\ngap\n"
                               "dense 4 tanh\ndropout 0.2\ndense 3\n";
    herd_error err = {0};
    herd_model *m = NULL;
    snprintf(path, sizeof path, "%s/good.onnx", dir);
    if (herd_model_parse(&m, spec, "seed.spec", &err) != HERD_OK) {
        fprintf(stderr, "seed spec: %s\n", err.msg);
        return 1;
    }
    herd_model_init_params(m, 1);
    CHECK(herd_model_export_onnx(m, path, &err) == HERD_OK, "export: %s", err.msg);
    herd_model_destroy(m);
    m = NULL;
    CHECK(herd_model_import_onnx(&m, path, &err) == HERD_OK, "re-import: %s", err.msg);
    herd_model_destroy(m);
    size_t n;
    uint8_t *good = slurp(path, &n);
    bad_files(good, n);
    snprintf(path, sizeof path, "%s/hand.onnx", dir);
    hand_built();
    fuzz(good, n);
    free(good);
    /* PyTorch exports as further seeds (tests/data/README.md): torch_small.onnx (Identity-shared
     * weights, Constant, Pad, the GELU formula, BatchNormalization on (N, C); opset 13) and
     * torch_convnext.onnx (a ConvNeXt stage: Transposes to channels-last, the layer norm's formula,
     * MatMul per position, a layer scale; opset 14) */
    const char *src = getenv("HERD_SOURCE_DIR");
    static const char *const seeds[] = {"torch_small.onnx", "torch_convnext.onnx"};
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
        char torch_path[512];
        snprintf(torch_path, sizeof torch_path, "%s/tests/data/%s", src ? src : ".", seeds[k]);
        if (access(torch_path, R_OK) != 0) {
            printf("note: %s not found (HERD_SOURCE_DIR unset?): PyTorch seed not fuzzed\n", torch_path);
            continue;
        }
        uint8_t *t = slurp(torch_path, &n);
        snprintf(path, sizeof path, "%s", torch_path);
        CHECK(herd_model_import_onnx(&m, torch_path, &err) == HERD_OK, "PyTorch seed %s: %s", seeds[k], err.msg);
        herd_model_destroy(m);
        fuzz(t, n);
        free(t);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
