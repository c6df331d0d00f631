/* The model spec parser: the example specs build the documented shapes and parameter
 * names, and each kind of mistake gives HERD_ESPEC/HERD_ESHAPE with file:line:col. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "scratch_files.h"
#include "herd/model.h"

static const char *src_dir(void) {
    const char *s = getenv("HERD_SOURCE_DIR");
    return s ? s : "..";
}

static void check_param(herd_model *m, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d) {
    for (int i = 0; i < herd_model_param_count(m); i++) {
        const herd_param_info *p = herd_model_param(m, i);
        if (strcmp(p->name, name) != 0) continue;
        int64_t want[4] = {a, b, c, d};
        int ok = p->ndim == ndim;
        for (int k = 0; ok && k < ndim; k++) ok = p->shape[k] == want[k];
        CHECK(ok, "%s: ndim %d shape [%lld %lld %lld %lld]", name, p->ndim, (long long)p->shape[0],
              (long long)p->shape[1], (long long)p->shape[2], (long long)p->shape[3]);
        return;
    }
    CHECK(0, "parameter %s not found", name);
}

static void test_fashion_spec(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/examples/fashion_cnn.spec", src_dir());
    herd_model *m = NULL;
    herd_error err = {0};
    CHECK(herd_model_load_spec(&m, path, &err) == HERD_OK, "%s", err.msg);
    if (!m) return;
    /* conv relu pool x3 = 9 nodes, flatten, dense, relu, dropout, dense */
    CHECK(herd_model_layer_count(m) == 14, "layers %d", herd_model_layer_count(m));
    herd_layer_info li;
    herd_model_layer(m, 8, &li);
    CHECK(strcmp(li.name, "maxpool3") == 0 && li.c == 128 && li.h == 3 && li.w == 3, "%s %dx%dx%d", li.name, li.c,
          li.h, li.w);
    herd_model_layer(m, 9, &li);
    CHECK(strcmp(li.kind, "flatten") == 0 && li.c == 1152, "flatten %d", li.c);
    check_param(m, "conv1.weight", 4, 32, 1, 3, 3);
    check_param(m, "conv1.bias", 1, 32, 0, 0, 0);
    check_param(m, "conv2.weight", 4, 64, 32, 3, 3);
    check_param(m, "conv3.weight", 4, 128, 64, 3, 3);
    check_param(m, "dense1.weight", 2, 128, 1152, 0, 0);
    check_param(m, "dense2.weight", 2, 10, 128, 0, 0);
    check_param(m, "dense2.bias", 1, 10, 0, 0, 0);
    int64_t n;
    herd_model_params(m, &n);
    CHECK(n == 320 + 18496 + 73856 + 147584 + 1290, "params %lld", (long long)n);
    int64_t flops = 0;
    for (int i = 0; i < herd_model_layer_count(m); i++) {
        herd_model_layer(m, i, &li);
        flops += li.flops;
    }
    CHECK(flops > 15000000 && flops < 15500000, "forward flops %lld (about 15.2 M expected)", (long long)flops);
    const herd_spec_train *t = herd_model_spec_train(m);
    CHECK(strcmp(t->optimizer, "adam") == 0 && t->batch == 32 && t->epochs == 5 && t->lr > 0.00099f, "train line");
    herd_model_destroy(m);

    snprintf(path, sizeof path, "%s/examples/cifar_cnn.spec", src_dir());
    CHECK(herd_model_load_spec(&m, path, &err) == HERD_OK, "%s", err.msg);
    if (m) {
        check_param(m, "dense1.weight", 2, 128, 512, 0, 0);
        herd_model_destroy(m);
    }
}

static void test_residual_and_names(void) {
    const char *spec = "input 4x8x8\n"
                       "conv 4 3 pad=1 relu name=stem\n"
                       "conv 4 3 pad=1 name=body\n"
                       "add stem relu\n"
                       "gap\n"
                       "dense 3\n";
    herd_model *m = NULL;
    herd_error err = {0};
    CHECK(herd_model_parse(&m, spec, "res.spec", &err) == HERD_OK, "%s", err.msg);
    if (!m) return;
    check_param(m, "conv1.weight", 4, 4, 4, 3, 3);
    check_param(m, "body.weight", 4, 4, 4, 3, 3);
    herd_layer_info li;
    herd_model_layer(m, 1, &li);
    CHECK(strcmp(li.name, "stem") == 0, "inline activation carries the line's name: %s", li.name);
    herd_model_layer(m, 3, &li);
    CHECK(strcmp(li.kind, "add") == 0 && strcmp(li.detail, "+ stem") == 0, "%s %s", li.kind, li.detail);
    herd_model_destroy(m);
}

typedef struct bad_case {
    const char *spec;
    herd_status status;
    const char *message; /* expected substring */
} bad_case;

static void test_bad_specs(void) {
    static const bad_case cases[] = {
        {"", HERD_ESPEC, "f.spec: empty model spec"},
        {"# only a comment\n", HERD_ESPEC, "empty model spec"},
        {"conv 3 3\n", HERD_ESPEC, "f.spec:1:1: the first layer must be `input CxHxW`"},
        {"input 1x28\n", HERD_ESPEC, "f.spec:1:7: input: expected a shape"},
        {"input 3x8x8\npermute 1,1,0\n", HERD_ESPEC, "f.spec:2:9: permute: bad axes '1,1,0'"},
        {"input 3x8x8\npermute 1,0\n", HERD_ESHAPE, "f.spec:2:9: permute: 2 axes for a 3x8x8 input"},
        {"input 3x8x8\nscale\nreshape 24x8\nscale\n", HERD_ESHAPE, "f.spec:4:1: scale reads an image"},
        {"input 1x28x28\nflatten\ndense 10\nconvv 3 3\n", HERD_ESPEC, "f.spec:4:1: unknown layer 'convv'"},
        {"input 1x28x28\n   conv 32 3 strde=2\n", HERD_ESPEC, "f.spec:2:14: unknown option 'strde' for conv"},
        {"input 1x28x28\nconv x 3\n", HERD_ESPEC, "f.spec:2:6: expected number of filters as an integer"},
        {"input 1x28x28\nconv 32\n", HERD_ESPEC, "f.spec:2:8: conv: missing kernel size"},
        {"input 1x28x28\nconv 8 3 relu\ndense 10\n", HERD_ESHAPE, "f.spec:3:1: dense expects a flat input"},
        {"input 1x4x4\nconv 8 7\n", HERD_ESHAPE, "f.spec:2:1: conv1: a 7x7 kernel"},
        {"input 1x4x4\nmaxpool 8\n", HERD_ESHAPE, "does not fit the input"},
        {"input 1x8x8\nconv 4 3 name=a\nconv 5 3 pad=1\nadd a\n", HERD_ESHAPE, "f.spec:4:5: add: the input is 5x6x6 but 'a' is 4x6x6"},
        {"input 1x8x8\nadd nothing\n", HERD_ESPEC, "no earlier layer is named 'nothing'"},
        {"input 1x8x8\ndropout 1.5\n", HERD_ESPEC, "drop probability"},
        {"input 1x8x8\nflatten\ndense 10 relu relu\n", HERD_ESPEC, "unexpected argument 'relu'"},
        {"input 1x8x8\nmaxpool 2 relu\n", HERD_ESPEC, "maxpool takes no activation"},
        {"input 1x8x8\nconv 4 3 name=x\nconv 4 3 name=x\n", HERD_ESPEC, "name 'x' is already used"},
        {"input 1x8x8\nconv 4 3\n", HERD_ESHAPE, "must be a vector"},
        {"input 1x8x8\nflatten\ndense 4\nsoftmax\n", HERD_ESPEC, "the last layer is softmax"},
        {"input 1x8x8\nflatten\ndense 4\ntrain optimizer=adam lr=-1\n", HERD_ESPEC, "f.spec:4:22: expected lr"},
        {"input 1x8x8\nflatten\ndense 4\ntrain speed=3\n", HERD_ESPEC, "unknown key 'speed'"},
        {"input 1x8x8\nflatten\ndense 4\nloss hinge\n", HERD_ESPEC, "unknown loss 'hinge'"},
        {"input 1x8x8\nconv 4 3 pad=same4\n", HERD_ESPEC, "expected padding"},
        {"input 1x8x8\nconv 99999999999 3\n", HERD_ESPEC, "number of filters"},
        {"input 1x8x8\nflatten\ndense 4\n=3\n", HERD_ESPEC, "f.spec:4:1: expected key=value"},
        {"input 1x8x8\nflatten\ndense 4\nlr=3\n", HERD_ESPEC, "f.spec:4:1: expected a layer name"},
        {"input 1x8x8\nflatten \x01\n", HERD_ESPEC, "unexpected byte 0x01"},
        /* graphs */
        {"input 1x8x8\nconv 4 3 from=later\nconv 4 1 name=later\n", HERD_ESPEC,
         "f.spec:2:10: conv: no earlier layer is named 'later'"},
        {"input 1x8x8\nconv 4 3 pad=1 name=a\nconv 4 3 name=b\nconcat a,b\n", HERD_ESHAPE,
         "f.spec:4:8: concat: 'b' is 4x6x6 but the first input is 4x8x8"},
        {"input 1x8x8\nconv 4 3 pad=1 name=a\nconv 4 3 from=a name=b\nadd a,b\n", HERD_ESHAPE,
         "f.spec:4:5: add: the input is 4x8x8 but 'b' is 4x6x6"},
        {"input 1x8x8\nconv 4 3 name=a\nadd a\n", HERD_ESPEC, "f.spec:3:5: add: 'a' is the input itself"},
        {"input 1x8x8\nconv 4 3 name=a\nconcat from=a\n", HERD_ESPEC, "f.spec:3:1: concat takes 2 to 64 inputs, not 1"},
        {"input 1x8x8\nconv 4 3 name=a\nrelu from=a,input\n", HERD_ESPEC, "relu takes 1 input(s), not 2"},
        {"input 1x8x8\nconv 4 3 name=a.b\nconv 4 3 name=1x\n", HERD_ESPEC, "f.spec:3:10: bad name '1x'"},
        {"input 1x8x8\nconv 4 3\ninput 3\n", HERD_ESPEC, "f.spec:3:1: input lines come before the layers"},
    };
    {   /* a message longer than the error buffer loses the middle of its long word, not its end */
        char spec[4200] = "input 1x8x8\nadd ";
        size_t at = strlen(spec);
        for (int k = 0; k < 3000; k++) spec[at + k] = 'q';
        snprintf(spec + at + 3000, sizeof spec - at - 3000, "\n");
        herd_model *lm = NULL;
        herd_error le = {0};
        CHECK(herd_model_parse(&lm, spec, "f.spec", &le) == HERD_ESPEC, "long name: %s", le.msg);
        size_t n = strlen(le.msg);
        CHECK(strncmp(le.msg, "f.spec:2:5: add: no earlier layer is named 'qqq", 47) == 0 && n > 0 &&
                  le.msg[n - 1] == '\'' && strstr(le.msg, "..."), "long name: '%.80s...%s'", le.msg,
              n > 20 ? le.msg + n - 20 : le.msg);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        herd_model *m = NULL;
        herd_error err = {0};
        herd_status st = herd_model_parse(&m, cases[i].spec, "f.spec", &err);
        CHECK(st == cases[i].status, "case %zu: status %d (%s) expected %d", i, st, err.msg, cases[i].status);
        CHECK(strstr(err.msg, cases[i].message) != NULL, "case %zu: message '%s' lacks '%s'", i, err.msg,
              cases[i].message);
        CHECK(strchr(err.msg, '\n') == NULL, "case %zu: one line", i);
        CHECK(m == NULL, "case %zu: no model on error", i);
        herd_model_destroy(m);
    }
    herd_model *m = NULL;
    herd_error err = {0};
    CHECK(herd_model_load_spec(&m, "/nonexistent/x.spec", &err) == HERD_EIO && strstr(err.msg, "/nonexistent/x.spec"),
          "%s", err.msg);
}

/* A spec saved by a Windows editor: a UTF-8 byte order mark first, CRLF line ends. */
static void test_bom_spec(void) {
    char path[128];
    if (!scratch_init("herd_spec")) {
        CHECK(0, "no scratch directory");
        return;
    }
    scratch_write("bom.spec", "\xEF\xBB\xBFinput 4\r\ndense 3\r\n", path);
    herd_model *m = NULL;
    herd_error err = {0};
    CHECK(herd_model_load_spec(&m, path, &err) == HERD_OK && herd_model_layer_count(m) == 1, "BOM spec: %s", err.msg);
    herd_model_destroy(m);
    m = NULL;
    scratch_write("bom_bad.spec", "\xEF\xBB\xBFinput 4\ndense x\n", path);
    CHECK(herd_model_load_spec(&m, path, &err) == HERD_ESPEC && strstr(err.msg, "bom_bad.spec:2:7:"), "%s", err.msg);
    scratch_remove();
}

int main(void) {
    test_fashion_spec();
    test_residual_and_names();
    test_bad_specs();
    test_bom_spec();
    return check_summary();
}
