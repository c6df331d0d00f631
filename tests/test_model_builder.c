/* The C builder (herd_model_begin / add_input / add_layer / finish) makes the same model as the
 * spec parser: the same registry (names, shapes, order) and bit-identical outputs from the same
 * seed; its errors name the layer and leave the model unchanged. */
#include <string.h>

#include "check.h"
#include "herd/model.h"

static const char *spec = "input 3x8x8\n"
                          "conv 8 3 pad=1 bias=0\n"
                          "batchnorm relu name=stem\n"
                          "conv 8 3 pad=1\n"
                          "batchnorm name=main\n"
                          "conv 8 1 from=stem name=proj\n"
                          "add main,proj relu name=sum\n"
                          "concat sum,stem\n"
                          "gap\n"
                          "dense 4\n";

#define ARGS(...) ((const herd_layer_arg[]){__VA_ARGS__}), (int)(sizeof((const herd_layer_arg[]){__VA_ARGS__}) / sizeof(herd_layer_arg))

static herd_model *build(herd_error *err) {
    herd_model *m = NULL;
    int64_t dims[3] = {3, 8, 8};
    const char *mp[2] = {"main", "proj"}, *ss[2] = {"sum", "stem"}, *stem[1] = {"stem"};
    if (herd_model_begin(&m, "built", err) || herd_model_add_input(m, NULL, HERD_F32, 3, dims, err) ||
        herd_model_add_layer(m, "conv", NULL, NULL, 0, ARGS({"filters", "8"}, {"kernel", "3"}, {"pad", "1"}, {"bias", "0"}), err) ||
        herd_model_add_layer(m, "batchnorm", NULL, NULL, 0, NULL, 0, err) ||
        herd_model_add_layer(m, "relu", "stem", NULL, 0, NULL, 0, err) ||
        herd_model_add_layer(m, "conv", NULL, NULL, 0, ARGS({"filters", "8"}, {"kernel", "3"}, {"pad", "1"}), err) ||
        herd_model_add_layer(m, "batchnorm", "main", NULL, 0, NULL, 0, err) ||
        herd_model_add_layer(m, "conv", "proj", stem, 1, ARGS({"filters", "8"}, {"kernel", "1"}), err) ||
        herd_model_add_layer(m, "add", NULL, mp, 2, NULL, 0, err) ||
        herd_model_add_layer(m, "relu", "sum", NULL, 0, NULL, 0, err) ||
        herd_model_add_layer(m, "concat", NULL, ss, 2, NULL, 0, err) ||
        herd_model_add_layer(m, "gap", NULL, NULL, 0, NULL, 0, err) ||
        herd_model_add_layer(m, "dense", NULL, NULL, 0, ARGS({"units", "4"}), err) || herd_model_finish(m, err)) {
        herd_model_destroy(m);
        return NULL;
    }
    return m;
}

static void run(herd_model *m, float *out) {
    herd_error err = {0};
    herd_model_init_params(m, 3);
    CHECK(herd_model_prepare(m, "cpu", 2, 1, &err) == HERD_OK, "%s", err.msg);
    float *x = herd_model_input(m);
    for (int i = 0; i < 2 * 3 * 8 * 8; i++) x[i] = (float)((i * 37) % 17) / 17.0f;
    CHECK(herd_model_forward(m, 2, 0, &err) == HERD_OK, "%s", err.msg);
    memcpy(out, herd_model_output(m), 8 * sizeof(float));
}

int main(void) {
    herd_error err = {0};
    herd_model *a = NULL, *b = build(&err);
    CHECK(b != NULL, "builder: %s", err.msg);
    CHECK(herd_model_parse(&a, spec, "spec", &err) == HERD_OK, "%s", err.msg);
    if (!a || !b) return check_summary();
    CHECK(herd_model_param_count(a) == herd_model_param_count(b), "registry sizes %d vs %d", herd_model_param_count(a),
          herd_model_param_count(b));
    for (int i = 0; i < herd_model_param_count(a) && i < herd_model_param_count(b); i++) {
        const herd_param_info *p = herd_model_param(a, i), *q = herd_model_param(b, i);
        CHECK(!strcmp(p->name, q->name) && p->numel == q->numel && p->offset == q->offset, "entry %d: %s vs %s", i,
              p->name, q->name);
    }
    float ya[8], yb[8];
    run(a, ya);
    run(b, yb);
    CHECK(!memcmp(ya, yb, sizeof ya), "outputs of the built and the parsed model differ");

    /* errors name the layer and leave the model as it was */
    herd_model *m = NULL;
    int64_t dims[3] = {3, 8, 8};
    herd_model_begin(&m, "bad", &err);
    herd_model_add_input(m, NULL, HERD_F32, 3, dims, &err);
    herd_model_add_layer(m, "conv", "c1", NULL, 0, ARGS({"filters", "4"}, {"kernel", "3"}), &err);
    int count = herd_model_layer_count(m);
    const char *nope[1] = {"nope"}, *two[2] = {"c1", "input"};
    CHECK(herd_model_add_layer(m, "relu", NULL, nope, 1, NULL, 0, &err) == HERD_ESPEC && strstr(err.msg, "'nope'"),
          "unknown input: %s", err.msg);
    CHECK(herd_model_add_layer(m, "conv", "c2", NULL, 0, ARGS({"filters", "x"}, {"kernel", "3"}), &err) == HERD_ESPEC &&
              strstr(err.msg, "layer 'c2'") && strstr(err.msg, "number of filters"), "bad argument: %s", err.msg);
    CHECK(herd_model_add_layer(m, "add", "s", two, 2, NULL, 0, &err) == HERD_ESHAPE && strstr(err.msg, "add"),
          "shape mismatch: %s", err.msg);
    CHECK(herd_model_add_layer(m, "conv", "c3", NULL, 0, ARGS({"filters", "4"}, {"kernel", "3"}, {"strides", "2"}), &err) ==
              HERD_ESPEC && strstr(err.msg, "unknown option 'strides'"), "unknown option: %s", err.msg);
    CHECK(herd_model_add_layer(m, "convv", NULL, NULL, 0, NULL, 0, &err) == HERD_ESPEC, "unknown kind: %s", err.msg);
    CHECK(herd_model_layer_count(m) == count && herd_model_param_count(m) == 2, "failed calls changed the model");
    CHECK(herd_model_finish(m, &err) == HERD_ESHAPE, "an image output is refused: %s", err.msg);
    herd_model_destroy(m);
    herd_model_destroy(a);
    herd_model_destroy(b);
    return check_summary();
}
