/* ONNX export: the node list walked once into a ModelProto (opset 13) with every registry
 * tensor as a raw little-endian float initializer under its registry name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/onnx.h"
#include "io/atomic_file.h"
#include "io/onnx_proto.h"
#include "io/pb_wire.h"
#include "model/model_internal.h"

typedef struct exporter {
    pb_writer graph;
    const herd_model *m;
    const char *path;
    herd_error *err;
    int gelu_consts; /* the three GELU scalars were added */
    const char *input; /* what the first layers read: "input", or "input_normalized" */
    char out[HERD_MAX_NODES][HERD_NAME_MAX + 8]; /* each node's output tensor: its name, unless that is taken */
} exporter;

/* ---- small builders over the ONNX field numbers (io/onnx_proto.h) ---- */

static void attr_int(pb_writer *node, const char *name, int64_t v) {
    pb_writer a = {0};
    pb_put_string(&a, ATTR_NAME, name);
    pb_put_varint(&a, ATTR_I, (uint64_t)v);
    pb_put_varint(&a, ATTR_TYPE, ATTR_TYPE_INT);
    pb_put_message(node, NODE_ATTRIBUTE, &a);
}

static void attr_float(pb_writer *node, const char *name, float v) {
    pb_writer a = {0};
    pb_put_string(&a, ATTR_NAME, name);
    pb_put_float(&a, ATTR_F, v);
    pb_put_varint(&a, ATTR_TYPE, ATTR_TYPE_FLOAT);
    pb_put_message(node, NODE_ATTRIBUTE, &a);
}

static void attr_ints(pb_writer *node, const char *name, const int64_t *v, int n) {
    pb_writer a = {0};
    pb_put_string(&a, ATTR_NAME, name);
    pb_put_packed_i64(&a, ATTR_INTS, v, n);
    pb_put_varint(&a, ATTR_TYPE, ATTR_TYPE_INTS);
    pb_put_message(node, NODE_ATTRIBUTE, &a);
}

/* Starts a node: inputs (NULL entries end the list), one output, a name and an op type. */
static pb_writer node_begin(const char *op, const char *name, const char *out, const char *in0, const char *in1,
                            const char *in2, const char *in3, const char *in4) {
    pb_writer n = {0};
    const char *ins[5] = {in0, in1, in2, in3, in4};
    for (int i = 0; i < 5 && ins[i]; i++) pb_put_string(&n, NODE_INPUT, ins[i]);
    pb_put_string(&n, NODE_OUTPUT, out);
    pb_put_string(&n, NODE_NAME, name);
    pb_put_string(&n, NODE_OP_TYPE, op);
    return n;
}

static void node_end(exporter *x, pb_writer *n) { pb_put_message(&x->graph, GRAPH_NODE, n); }

static void simple_node(exporter *x, const char *op, const char *name, const char *out, const char *a, const char *b) {
    pb_writer n = node_begin(op, name, out, a, b, NULL, NULL, NULL);
    node_end(x, &n);
}

static void initializer(exporter *x, const char *name, int ndim, const int64_t *dims, const float *data,
                        int64_t numel) {
    pb_writer t = {0};
    for (int d = 0; d < ndim; d++) pb_put_varint(&t, TENSOR_DIMS, (uint64_t)dims[d]);
    pb_put_varint(&t, TENSOR_DATA_TYPE, ONNX_FLOAT);
    pb_put_string(&t, TENSOR_NAME, name);
    /* raw_data is little-endian; encode per value so a big-endian host writes the same bytes */
    pb_writer raw = {0};
    for (int64_t i = 0; i < numel && !raw.failed; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        pb_put_raw(&raw, b, 4);
    }
    pb_put_message(&t, TENSOR_RAW_DATA, &raw);
    pb_put_message(&x->graph, GRAPH_INITIALIZER, &t);
}

/* ValueInfoProto: float tensor named `name` with a symbolic batch "N" and fixed dims. */
static void value_info(pb_writer *g, int field, const char *name, const int64_t *dims, int ndim) {
    pb_writer shape = {0};
    pb_writer d = {0};
    pb_put_string(&d, DIM_PARAM, "N");
    pb_put_message(&shape, SHAPE_DIM, &d);
    for (int i = 0; i < ndim; i++) {
        pb_writer e = {0};
        pb_put_varint(&e, DIM_VALUE, (uint64_t)dims[i]);
        pb_put_message(&shape, SHAPE_DIM, &e);
    }
    pb_writer tt = {0};
    pb_put_varint(&tt, TTENSOR_ELEM_TYPE, ONNX_FLOAT);
    pb_put_message(&tt, TTENSOR_SHAPE, &shape);
    pb_writer type = {0};
    pb_put_message(&type, TYPE_TENSOR, &tt);
    pb_writer vi = {0};
    pb_put_string(&vi, VI_NAME, name);
    pb_put_message(&vi, VI_TYPE, &type);
    pb_put_message(g, field, &vi);
}

static void param_initializer(exporter *x, int idx) {
    const param_entry *p = &x->m->params_reg[idx];
    const float *data = (p->info.trainable ? x->m->params : x->m->buffers) + p->info.offset;
    initializer(x, p->info.name, p->info.ndim, p->info.shape, data, p->info.numel);
}

/* ---- one emitter per node kind ---- */

static const char *gelu_const(exporter *x, int which) {
    static const char *const names[3] = {"herd_gelu_sqrt2", "herd_gelu_one", "herd_gelu_half"};
    if (!x->gelu_consts) {
        const float vals[3] = {1.41421356237309505f, 1.0f, 0.5f};
        for (int i = 0; i < 3; i++) initializer(x, names[i], 0, NULL, &vals[i], 1);
        x->gelu_consts = 1;
    }
    return names[which];
}

/* gelu(x) = x * (1 + erf(x / sqrt 2)) * 0.5, the graph PyTorch exports for F.gelu */
static void emit_gelu(exporter *x, const node *n, const char *in, const char *out) {
    char t_div[HERD_NAME_MAX + 8], t_erf[HERD_NAME_MAX + 8], t_add[HERD_NAME_MAX + 8], t_mul[HERD_NAME_MAX + 8];
    snprintf(t_div, sizeof t_div, "%s_div", n->name);
    snprintf(t_erf, sizeof t_erf, "%s_erf", n->name);
    snprintf(t_add, sizeof t_add, "%s_add", n->name);
    snprintf(t_mul, sizeof t_mul, "%s_mul", n->name);
    simple_node(x, "Div", t_div, t_div, in, gelu_const(x, 0));
    simple_node(x, "Erf", t_erf, t_erf, t_div, NULL);
    simple_node(x, "Add", t_add, t_add, t_erf, gelu_const(x, 1));
    simple_node(x, "Mul", t_mul, t_mul, in, t_add);
    simple_node(x, "Mul", n->name, out, t_mul, gelu_const(x, 2));
}

static void emit_pool(exporter *x, const node *n, const char *op, const char *in, const char *out) {
    const pool2d_dims *p = &n->pool;
    int64_t k[2] = {p->KH, p->KW}, s[2] = {p->SH, p->SW}, pads[4] = {p->PH, p->PW, p->PH, p->PW};
    pb_writer w = node_begin(op, n->name, out, in, NULL, NULL, NULL, NULL);
    attr_ints(&w, "kernel_shape", k, 2);
    attr_ints(&w, "strides", s, 2);
    attr_ints(&w, "pads", pads, 4);
    if (n->kind == NODE_AVGPOOL) attr_int(&w, "count_include_pad", 1);
    node_end(x, &w);
}

static herd_status emit_node(exporter *x, int i, const char **tname, int *rank4) {
    const herd_model *m = x->m;
    const node *n = &m->nodes[i];
    const char *in = n->in < 0 ? x->input : tname[n->in];
    int in4 = n->in < 0 ? (m->in_h != 1 || m->in_w != 1) : rank4[n->in];
    const char *pw = n->p_weight >= 0 ? m->params_reg[n->p_weight].info.name : NULL;
    const char *pb = n->p_bias >= 0 ? m->params_reg[n->p_bias].info.name : NULL;
    const char *out = x->out[i];
    tname[i] = out;
    rank4[i] = in4;
    if (!in4 && (n->kind == NODE_CONV || n->kind == NODE_MAXPOOL || n->kind == NODE_AVGPOOL || n->kind == NODE_GAP))
        return herd_fail(x->err, HERD_EUNSUPPORTED, "%s: layer '%s' reads a flat tensor; ONNX export needs NCHW there",
                         x->path, n->name);
    for (int k = 0; k < 4; k++) {
        int idx = k == 0 ? n->p_weight : k == 1 ? n->p_bias : k == 2 ? n->p_mean : n->p_var;
        if (idx >= 0) param_initializer(x, idx);
    }
    switch (n->kind) {
    case NODE_CONV: {
        const conv2d_dims *c = &n->conv;
        int64_t k[2] = {c->KH, c->KW}, s[2] = {c->SH, c->SW}, pads[4] = {c->PH, c->PW, c->PH, c->PW};
        int64_t one[2] = {1, 1};
        pb_writer w = node_begin("Conv", n->name, out, in, pw, pb, NULL, NULL);
        attr_ints(&w, "kernel_shape", k, 2);
        attr_ints(&w, "strides", s, 2);
        attr_ints(&w, "pads", pads, 4);
        attr_ints(&w, "dilations", one, 2);
        attr_int(&w, "group", 1);
        node_end(x, &w);
        break;
    }
    case NODE_MAXPOOL: emit_pool(x, n, "MaxPool", in, out); break;
    case NODE_AVGPOOL: emit_pool(x, n, "AveragePool", in, out); break;
    case NODE_GAP: {
        /* herd's gap yields (B, C); ONNX's keeps (N, C, 1, 1) */
        char pooled[HERD_NAME_MAX + 8];
        snprintf(pooled, sizeof pooled, "%s_pool", n->name);
        simple_node(x, "GlobalAveragePool", pooled, pooled, in, NULL);
        pb_writer w = node_begin("Flatten", n->name, out, pooled, NULL, NULL, NULL, NULL);
        attr_int(&w, "axis", 1);
        node_end(x, &w);
        rank4[i] = 0;
        break;
    }
    case NODE_FLATTEN: {
        pb_writer w = node_begin("Flatten", n->name, out, in, NULL, NULL, NULL, NULL);
        attr_int(&w, "axis", 1);
        node_end(x, &w);
        rank4[i] = 0;
        break;
    }
    case NODE_DENSE: {
        char flat[HERD_NAME_MAX + 8];
        if (in4) { /* a dense layer straight after a 1x1 feature map */
            snprintf(flat, sizeof flat, "%s_flat", n->name);
            pb_writer f = node_begin("Flatten", flat, flat, in, NULL, NULL, NULL, NULL);
            attr_int(&f, "axis", 1);
            node_end(x, &f);
            in = flat;
        }
        pb_writer w = node_begin("Gemm", n->name, out, in, pw, pb, NULL, NULL);
        attr_float(&w, "alpha", 1.0f);
        attr_float(&w, "beta", 1.0f);
        attr_int(&w, "transB", 1);
        node_end(x, &w);
        rank4[i] = 0;
        break;
    }
    case NODE_DROPOUT: tname[i] = in; break; /* identity at inference */
    case NODE_BATCHNORM: {
        pb_writer w = node_begin("BatchNormalization", n->name, out, in, pw, pb, m->params_reg[n->p_mean].info.name,
                                 m->params_reg[n->p_var].info.name);
        attr_float(&w, "epsilon", n->eps);
        attr_float(&w, "momentum", 1.0f - n->momentum); /* ONNX weighs the running value, PyTorch the new one */
        node_end(x, &w);
        break;
    }
    case NODE_ACT:
        switch (n->act) {
        case HERD_ACT_RELU: simple_node(x, "Relu", n->name, out, in, NULL); break;
        case HERD_ACT_SIGMOID: simple_node(x, "Sigmoid", n->name, out, in, NULL); break;
        case HERD_ACT_TANH: simple_node(x, "Tanh", n->name, out, in, NULL); break;
        case HERD_ACT_GELU: emit_gelu(x, n, in, out); break;
        case HERD_ACT_LEAKY_RELU: {
            pb_writer w = node_begin("LeakyRelu", n->name, out, in, NULL, NULL, NULL, NULL);
            attr_float(&w, "alpha", n->alpha);
            node_end(x, &w);
            break;
        }
        case HERD_ACT_NONE: tname[i] = in; break;
        }
        break;
    case NODE_SOFTMAX: {
        pb_writer w = node_begin("Softmax", n->name, out, in, NULL, NULL, NULL, NULL);
        attr_int(&w, "axis", 1);
        node_end(x, &w);
        break;
    }
    case NODE_ADD: {
        if (rank4[n->in2] != in4)
            return herd_fail(x->err, HERD_EUNSUPPORTED, "%s: add '%s' sums a flat and an NCHW tensor", x->path,
                             n->name);
        simple_node(x, "Add", n->name, out, in, tname[n->in2]);
        break;
    }
    }
    return HERD_OK;
}

/* Node outputs are named after the layers, except a layer called "input" (the graph's input),
 * "logits" before the last layer (the graph's output) or one of the input normalisation's
 * names, which gets "_out" appended. */
static herd_status export_graph(exporter *x, const herd_model *m, const char *path, herd_error *err) {
    x->m = m, x->path = path, x->err = err;
    const char *tname[HERD_MAX_NODES];
    int rank4[HERD_MAX_NODES];
    herd_status st = HERD_OK;
    for (int i = 0; i < m->n_nodes; i++) {
        const char *name = m->nodes[i].name;
        int taken = !strcmp(name, "input") || (!strcmp(name, "logits") && i != m->n_nodes - 1) ||
                    (m->input_norm && (!strcmp(name, "input_mean") || !strcmp(name, "input_inv_std") ||
                                       !strcmp(name, "input_centered") || !strcmp(name, "input_normalized")));
        snprintf(x->out[i], sizeof x->out[i], "%s%s", name, taken ? "_out" : "");
    }
    pb_put_string(&x->graph, GRAPH_NAME, "herd");
    x->input = "input";
    if (m->input_norm) { /* the weights' input normalisation, as herd applies it: (x - mean) * (1 / std) */
        float *v = malloc(2 * (size_t)m->in_c * sizeof *v);
        if (!v) {
            pb_writer_free(&x->graph);
            return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
        }
        for (int c = 0; c < m->in_c; c++) {
            double sd = m->input_norm[m->in_c + c];
            v[c] = (float)m->input_norm[c];
            v[m->in_c + c] = sd > 0 ? (float)(1.0 / sd) : 1.0f;
        }
        int flat = m->in_h == 1 && m->in_w == 1;
        int64_t dims[3] = {m->in_c, 1, 1};
        initializer(x, "input_mean", flat ? 1 : 3, dims, v, m->in_c);
        initializer(x, "input_inv_std", flat ? 1 : 3, dims, v + m->in_c, m->in_c);
        free(v);
        simple_node(x, "Sub", "input_centered", "input_centered", "input", "input_mean");
        simple_node(x, "Mul", "input_normalized", "input_normalized", "input_centered", "input_inv_std");
        x->input = "input_normalized";
    }
    for (int i = 0; i < m->n_nodes && st == HERD_OK; i++) st = emit_node(x, i, tname, rank4);
    if (st != HERD_OK) {
        pb_writer_free(&x->graph);
        return st;
    }
    const node *last = &m->nodes[m->n_nodes - 1];
    if (strcmp(tname[m->n_nodes - 1], "logits") != 0) /* a last layer named logits is the output itself */
        simple_node(x, "Identity", "output", "logits", tname[m->n_nodes - 1], NULL);
    int64_t in_dims[3] = {m->in_c, m->in_h, m->in_w}, out_dims[1] = {last->c};
    value_info(&x->graph, GRAPH_INPUT, "input", in_dims, m->in_h == 1 && m->in_w == 1 ? 1 : 3);
    value_info(&x->graph, GRAPH_OUTPUT, "logits", out_dims, 1);

    pb_writer model = {0};
    pb_put_varint(&model, MODEL_IR_VERSION, 8);
    pb_put_string(&model, MODEL_PRODUCER_NAME, "herd");
    pb_put_string(&model, MODEL_PRODUCER_VERSION, "0.1.0");
    pb_writer opset = {0};
    pb_put_string(&opset, OPSET_DOMAIN, "");
    pb_put_varint(&opset, OPSET_VERSION, 13);
    pb_put_message(&model, MODEL_OPSET_IMPORT, &opset);
    pb_put_message(&model, MODEL_GRAPH, &x->graph);
    if (model.failed) {
        pb_writer_free(&model);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory building the ONNX model", path);
    }
    const void *chunk = model.buf;
    st = io_write_file_atomic(path, &chunk, &model.len, 1, "onnx.before_rename", err);
    pb_writer_free(&model);
    return st;
}

herd_status herd_model_export_onnx(const herd_model *m, const char *path, herd_error *err) {
    exporter *xp = calloc(1, sizeof *xp);
    if (!xp) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    herd_status st = export_graph(xp, m, path, err);
    free(xp);
    return st;
}
