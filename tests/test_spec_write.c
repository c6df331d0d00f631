/* The spec writer (herd_model_write_spec): every example and test spec, a model made with
 * unusual arguments (non-default eps, momentum, alpha, asymmetric kernels, ceil pooling, mse),
 * and models imported from ONNX files are written as spec text that parses back into the same
 * model: the same nodes (kind, name, inputs, shape, configuration), the same registry (names
 * and shapes), the same loss; writing the re-parsed model gives the same text again. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/model.h"
#include "herd/onnx.h"
#include "model/model_internal.h"

static void same_model(const char *what, const herd_model *a, const herd_model *b) {
    CHECK(a->n_inputs == b->n_inputs && a->n_nodes == b->n_nodes && a->n_reg == b->n_reg && a->loss.kind == b->loss.kind &&
              a->loss.ignore == b->loss.ignore && a->loss.ignore_index == b->loss.ignore_index,
          "%s: %d/%d inputs, %d/%d nodes, %d/%d registry tensors", what, a->n_inputs, b->n_inputs, a->n_nodes,
          b->n_nodes, a->n_reg, b->n_reg);
    if (a->n_nodes != b->n_nodes || a->n_reg != b->n_reg || a->n_inputs != b->n_inputs) return;
    for (int k = 0; k < a->n_inputs; k++)
        CHECK(!strcmp(a->inputs[k].name, b->inputs[k].name) && a->inputs[k].ndim == b->inputs[k].ndim &&
                  !memcmp(a->inputs[k].dims, b->inputs[k].dims, sizeof a->inputs[k].dims),
              "%s: input %d", what, k);
    for (int i = 0; i < a->n_nodes; i++) {
        const node *x = &a->nodes[i], *y = &b->nodes[i];
        CHECK(x->kind == y->kind && !strcmp(x->name, y->name) && x->n_in == y->n_in &&
                  !memcmp(x->in, y->in, (size_t)x->n_in * sizeof x->in[0]) && x->ndim == y->ndim &&
                  !memcmp(x->dims, y->dims, sizeof x->dims) && !memcmp(x->cfg, y->cfg, sizeof x->cfg),
              "%s: node %d (%s / %s) differs", what, i, x->name, y->name);
    }
    for (int r = 0; r < a->n_reg; r++)
        CHECK(!strcmp(a->params_reg[r].name, b->params_reg[r].name) &&
                  !memcmp(a->params_reg[r].info.shape, b->params_reg[r].info.shape, sizeof a->params_reg[r].info.shape),
              "%s: registry tensor %d (%s / %s)", what, r, a->params_reg[r].name, b->params_reg[r].name);
}

/* writes m, parses the text, compares, writes again */
static void round_trip(const char *what, const herd_model *m) {
    herd_error err = {0};
    char *text = NULL, *again = NULL;
    herd_model *b = NULL;
    CHECK(herd_model_write_spec(m, &text, &err) == HERD_OK, "%s: write: %s", what, err.msg);
    if (!text) return;
    CHECK(herd_model_parse(&b, text, "written.spec", &err) == HERD_OK, "%s: re-parse: %s\n%s", what, err.msg, text);
    if (b) {
        same_model(what, m, b);
        CHECK(herd_model_write_spec(b, &again, &err) == HERD_OK, "%s: write again: %s", what, err.msg);
        /* the first line names the source */
        const char *t1 = strchr(text, '\n'), *t2 = again ? strchr(again, '\n') : NULL;
        CHECK(t1 && t2 && !strcmp(t1, t2), "%s: the re-parsed model writes other text:\n%s\n---\n%s", what, text,
              again ? again : "");
    }
    free(text);
    free(again);
    herd_model_destroy(b);
}

int main(void) {
    const char *src = getenv("HERD_SOURCE_DIR");
    static const char *const files[] = {"examples/fashion_cnn.spec", "examples/cifar_cnn.spec",
                                        "examples/resnet20_cifar.spec", "examples/resnet18.spec", "tests/data/residual_bn.spec",
                                        "tests/data/concat_graph.spec", "tests/data/layernorm.spec",
                                        "tests/data/small_cnn_nodrop.spec", "tests/data/ceil_pool.spec",
                                        "tests/data/mobile.spec", "tests/data/embedding_seq.spec",
                                        "tests/data/embedding_bag.spec", "tests/data/mf_dot.spec"};
    herd_error err = {0};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", src ? src : ".", files[i]);
        herd_model *m = NULL;
        CHECK(herd_model_load_spec(&m, path, &err) == HERD_OK, "%s: %s", files[i], err.msg);
        if (m) round_trip(files[i], m);
        herd_model_destroy(m);
    }
    /* arguments away from their defaults, names the parser would not give, several inputs' worth of from= */
    static const char spec[] = "input 3x9x7 name=img\n"
                               "conv 5 3x1 stride=2x1 pad=1x0 bias=0 leaky_relu alpha=0.25 name=a\n"
                               "batchnorm eps=0.001 momentum=0.3\n"
                               "maxpool 3x2 stride=2 pad=1x0 ceil=1 name=p\n"
                               "avgpool 2 stride=1 from=a\n"
                               "conv 4 1 from=a name=b\n"
                               "maxpool 3 stride=2 pad=1 ceil=1\n"
                               "concat p,maxpool1\n"
                               "relu name=relu7\n"
                               "gap\n"
                               "dense 6 bias=0 gelu\n"
                               "dropout 0.125\n"
                               "layernorm eps=0.0001\n"
                               "dense 3 sigmoid\n"
                               "softmax\n"
                               "loss mse\n";
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, spec, "args.spec", &err) == HERD_OK, "args.spec: %s", err.msg);
    if (m) round_trip("args.spec", m);
    /* an imported model: an export of the graph above and of ResNet-20 */
    char path[] = "/tmp/herd_spec_write_XXXXXX.onnx";
    int fd = mkstemps(path, 5);
    CHECK(fd >= 0, "mkstemps");
    if (fd >= 0 && m) {
        herd_model *g = NULL;
        char rp[1024];
        snprintf(rp, sizeof rp, "%s/examples/resnet20_cifar.spec", src ? src : ".");
        herd_model_destroy(m);
        m = NULL;
        CHECK(herd_model_parse(&m, "input 3x9x7\nconv 5 3 pad=1 relu name=a\nmaxpool 3 stride=2 ceil=1\n"
                                   "conv 4 1 from=a\nmaxpool 3 stride=2 ceil=1\nconcat maxpool1,maxpool2\ngap\ndense 3\n",
                               "g.spec", &err) == HERD_OK, "g.spec: %s", err.msg);
        for (int k = 0; k < 2 && m; k++) {
            herd_model *src_m = k ? NULL : m;
            if (k && herd_model_load_spec(&src_m, rp, &err) != HERD_OK) break;
            herd_model_init_params(src_m, 1);
            CHECK(herd_model_export_onnx(src_m, path, &err) == HERD_OK, "export: %s", err.msg);
            CHECK(herd_model_import_onnx(&g, path, &err) == HERD_OK, "import: %s", err.msg);
            if (g) round_trip(k ? "resnet20 via ONNX" : "graph via ONNX", g);
            herd_model_destroy(g);
            g = NULL;
            if (k) herd_model_destroy(src_m);
        }
        remove(path);
    }
    herd_model_destroy(m);
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}
