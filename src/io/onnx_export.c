/* ONNX export: the node list walked once into a ModelProto (opset 13) with every registry
 * tensor as a raw little-endian float initializer under its registry name. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/onnx.h"
#include "io/atomic_file.h"
#include "io/onnx_proto.h"
#include "io/pb_wire.h"
#include "model/model_internal.h"

typedef struct onnx_exporter {
    pb_writer graph;
    const herd_model *m;
    const char *path;
    herd_error *err;
    /* shared initializers already written (herdi_onnx_shared): a node adds at most 4 (attention) */
    char scalars[4 * HERD_MAX_NODES + 16][HERD_NAME_MAX];
    int n_scalars;
    int opset;         /* 13, or what a layer needs (LayerNormalization: 17) */
    const char *input; /* what the first layers read: "input", or "input_normalized" */
    char out[HERD_MAX_NODES][HERD_NAME_MAX + 8]; /* each node's output tensor: its name, unless that is taken */
    const char *tname[HERD_MAX_NODES];           /* what readers of each node read (a dropout passes its input on) */
    int rank4[HERD_MAX_NODES];                   /* whether that is (N,C,H,W) */
} exporter;

/* ---- small builders over the ONNX field numbers (io/onnx_proto.h) ---- */

static void attr_int(pb_writer *node, const char *name, int64_t v) {
    pb_writer a = {0};
    herdi_pb_put_string(&a, ATTR_NAME, name);
    herdi_pb_put_varint(&a, ATTR_I, (uint64_t)v);
    herdi_pb_put_varint(&a, ATTR_TYPE, ATTR_TYPE_INT);
    herdi_pb_put_message(node, NODE_ATTRIBUTE, &a);
}

static void attr_float(pb_writer *node, const char *name, float v) {
    pb_writer a = {0};
    herdi_pb_put_string(&a, ATTR_NAME, name);
    herdi_pb_put_float(&a, ATTR_F, v);
    herdi_pb_put_varint(&a, ATTR_TYPE, ATTR_TYPE_FLOAT);
    herdi_pb_put_message(node, NODE_ATTRIBUTE, &a);
}

static void attr_ints(pb_writer *node, const char *name, const int64_t *v, int n) {
    pb_writer a = {0};
    herdi_pb_put_string(&a, ATTR_NAME, name);
    herdi_pb_put_packed_i64(&a, ATTR_INTS, v, n);
    herdi_pb_put_varint(&a, ATTR_TYPE, ATTR_TYPE_INTS);
    herdi_pb_put_message(node, NODE_ATTRIBUTE, &a);
}

/* A tensor of 4-byte values (ONNX_FLOAT or ONNX_INT32) */
static void initializer_typed(exporter *x, const char *name, int ndim, const int64_t *dims, const void *values,
                              int64_t numel, int elem_type) {
    const float *data = values;
    pb_writer t = {0};
    for (int d = 0; d < ndim; d++) herdi_pb_put_varint(&t, TENSOR_DIMS, (uint64_t)dims[d]);
    herdi_pb_put_varint(&t, TENSOR_DATA_TYPE, (uint64_t)elem_type);
    herdi_pb_put_string(&t, TENSOR_NAME, name);
    /* raw_data is little-endian; encode per value so a big-endian host writes the same bytes */
    pb_writer raw = {0};
    for (int64_t i = 0; i < numel && !raw.failed; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        herdi_pb_put_raw(&raw, b, 4);
    }
    herdi_pb_put_message(&t, TENSOR_RAW_DATA, &raw);
    herdi_pb_put_message(&x->graph, GRAPH_INITIALIZER, &t);
}

/* A 1-D int64 initializer (shapes, slice bounds) named `name`; written once per name. */
const char *herdi_onnx_ints(exporter *x, const char *name, const int64_t *v, int n) {
    pb_writer t = {0};
    herdi_pb_put_varint(&t, TENSOR_DIMS, (uint64_t)n);
    herdi_pb_put_varint(&t, TENSOR_DATA_TYPE, ONNX_INT64);
    herdi_pb_put_string(&t, TENSOR_NAME, name);
    pb_writer raw = {0};
    for (int i = 0; i < n && !raw.failed; i++) {
        uint64_t u = (uint64_t)v[i];
        uint8_t b[8];
        for (int k = 0; k < 8; k++) b[k] = (uint8_t)(u >> (8 * k));
        herdi_pb_put_raw(&raw, b, 8);
    }
    herdi_pb_put_message(&t, TENSOR_RAW_DATA, &raw);
    herdi_pb_put_message(&x->graph, GRAPH_INITIALIZER, &t);
    return name;
}

static void initializer(exporter *x, const char *name, int ndim, const int64_t *dims, const float *data,
                        int64_t numel) {
    initializer_typed(x, name, ndim, dims, data, numel, ONNX_FLOAT);
}

void herdi_onnx_constant(exporter *x, const char *name, int ndim, const int64_t *dims, const float *data, int64_t numel) {
    initializer(x, name, ndim, dims, data, numel);
}

void herdi_onnx_constant_i32(exporter *x, const char *name, int ndim, const int64_t *dims, const int32_t *data,
                       int64_t numel) {
    initializer_typed(x, name, ndim, dims, data, numel, ONNX_INT32);
}

/* ValueInfoProto: float tensor named `name` with a symbolic batch "N" and fixed dims. */
static void value_info(pb_writer *g, int field, const char *name, const int64_t *dims, int ndim, int elem_type) {
    pb_writer shape = {0};
    pb_writer d = {0};
    herdi_pb_put_string(&d, DIM_PARAM, "N");
    herdi_pb_put_message(&shape, SHAPE_DIM, &d);
    for (int i = 0; i < ndim; i++) {
        pb_writer e = {0};
        herdi_pb_put_varint(&e, DIM_VALUE, (uint64_t)dims[i]);
        herdi_pb_put_message(&shape, SHAPE_DIM, &e);
    }
    pb_writer tt = {0};
    herdi_pb_put_varint(&tt, TTENSOR_ELEM_TYPE, (uint64_t)elem_type);
    herdi_pb_put_message(&tt, TTENSOR_SHAPE, &shape);
    pb_writer type = {0};
    herdi_pb_put_message(&type, TYPE_TENSOR, &tt);
    pb_writer vi = {0};
    herdi_pb_put_string(&vi, VI_NAME, name);
    herdi_pb_put_message(&vi, VI_TYPE, &type);
    herdi_pb_put_message(g, field, &vi);
}

static void param_initializer(exporter *x, int idx) {
    const param_entry *p = &x->m->params_reg[idx];
    herdi_model_tables_ready((herd_model *)x->m); /* the tables' values, not pages still to be written */
    const float *data = (p->info.trainable ? x->m->params : x->m->buffers) + p->info.offset;
    initializer(x, p->info.name, p->info.ndim, p->info.shape, data, p->info.numel);
}

/* ---- what a kind's onnx_export calls (model/model_internal.h) ---- */

/* a layer's output, the first model input (or its normalisation), or another input by its name */
const char *herdi_onnx_in(exporter *x, const node *n, int k) {
    return n->in[k] >= 0 ? x->tname[n->in[k]] : n->in[k] == -1 ? x->input : x->m->inputs[-1 - n->in[k]].name;
}

int herdi_onnx_in_rank4(exporter *x, const node *n, int k) {
    return n->in[k] >= 0 ? x->rank4[n->in[k]] : x->m->inputs[-1 - n->in[k]].ndim == 3;
}

const char *herdi_onnx_out(exporter *x, const node *n) { return x->out[n - x->m->nodes]; }

int herdi_onnx_read_as_image(exporter *x, const node *n) {
    int self = (int)(n - x->m->nodes);
    for (int i = self + 1; i < x->m->n_nodes; i++)
        if (x->m->nodes[i].kind->flags & LAYER_IMAGE_INPUT)
            for (int k = 0; k < x->m->nodes[i].n_in; k++)
                if (x->m->nodes[i].in[k] == self) return 1;
    return 0;
}

void herdi_onnx_set_out(exporter *x, const node *n, const char *tensor, int rank4) {
    x->tname[n - x->m->nodes] = tensor;
    x->rank4[n - x->m->nodes] = rank4;
}

const char *herdi_onnx_param(exporter *x, const node *n, int slot) {
    return n->param[slot] >= 0 ? x->m->params_reg[n->param[slot]].info.name : NULL;
}

void herdi_onnx_emit(exporter *x, const char *op, const char *name, const char *out, const char *const *inputs,
               int n_inputs, const onnx_xattr *attrs, int n_attrs) {
    herdi_onnx_emit_outs(x, op, name, &out, 1, inputs, n_inputs, attrs, n_attrs);
}

void herdi_onnx_emit_outs(exporter *x, const char *op, const char *name, const char *const *outs, int n_outs,
                    const char *const *inputs, int n_inputs, const onnx_xattr *attrs, int n_attrs) {
    pb_writer w = {0};
    for (int i = 0; i < n_inputs; i++) herdi_pb_put_string(&w, NODE_INPUT, inputs[i]);
    for (int i = 0; i < n_outs; i++) herdi_pb_put_string(&w, NODE_OUTPUT, outs[i]);
    herdi_pb_put_string(&w, NODE_NAME, name);
    herdi_pb_put_string(&w, NODE_OP_TYPE, op);
    for (int i = 0; i < n_attrs; i++) {
        const onnx_xattr *a = &attrs[i];
        if (a->type == 'i') attr_int(&w, a->name, a->i);
        else if (a->type == 'f') attr_float(&w, a->name, a->f);
        else attr_ints(&w, a->name, a->ints, a->n_ints);
    }
    herdi_pb_put_message(&x->graph, GRAPH_NODE, &w);
}

void herdi_onnx_require_opset(exporter *x, int opset) {
    if (opset > x->opset) x->opset = opset;
}

const char *herdi_onnx_shared(exporter *x, const char *name, int *fresh) {
    *fresh = 0;
    for (int i = 0; i < x->n_scalars; i++)
        if (!strcmp(x->scalars[i], name)) return x->scalars[i];
    HERD_ASSERT(x->n_scalars < 4 * HERD_MAX_NODES + 16);
    char *slot = x->scalars[x->n_scalars++];
    snprintf(slot, HERD_NAME_MAX, "%s", name);
    *fresh = 1;
    return slot;
}

const char *herdi_onnx_scalar(exporter *x, const char *name, float value) {
    int fresh;
    const char *slot = herdi_onnx_shared(x, name, &fresh);
    if (fresh) initializer(x, slot, 0, NULL, &value, 1);
    return slot;
}

herd_status herdi_onnx_fail(exporter *x, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    herd_failv(x->err, HERD_EUNSUPPORTED, fmt, ap);
    va_end(ap);
    if (x->err) herd_fail_prefix(x->err, "%s", x->path);
    return HERD_EUNSUPPORTED;
}

static herd_status emit_node(exporter *x, int i) {
    const herd_model *m = x->m;
    const node *n = &m->nodes[i];
    x->tname[i] = x->out[i];
    x->rank4[i] = n->ndim == 3;
    if ((n->kind->flags & LAYER_IMAGE_INPUT) && !herdi_onnx_in_rank4(x, n, 0))
        return herdi_onnx_fail(x, "layer '%s' reads a flat tensor; ONNX export needs NCHW there", n->name);
    for (int s = 0; s < LAYER_MAX_SLOTS; s++) /* a tied table (dense tie=) is its embedding's initializer */
        if (n->param[s] >= 0 && m->params_reg[n->param[s]].node == i) param_initializer(x, n->param[s]);
    if (!n->kind->onnx_export) return herdi_onnx_fail(x, "layer '%s' (%s) has no ONNX form", n->name, n->kind->name);
    return n->kind->onnx_export(x, n);
}

/* Node outputs are named after the layers, except a layer called "input" (the graph's input),
 * "logits" before the last layer (the graph's output) or one of the input normalisation's
 * names, which gets "_out" appended. */
static herd_status export_graph(exporter *x, const herd_model *m, const char *path, herd_error *err) {
    x->m = m, x->path = path, x->err = err, x->opset = 13;
    herd_status st = HERD_OK;
    for (int i = 0; i < m->n_nodes; i++) {
        const char *name = m->nodes[i].name;
        int taken = !strcmp(name, "input") || (!strcmp(name, "logits") && i != m->n_nodes - 1) ||
                    (m->input_norm && (!strcmp(name, "input_mean") || !strcmp(name, "input_inv_std") ||
                                       !strcmp(name, "input_centered") || !strcmp(name, "input_normalized")));
        snprintf(x->out[i], sizeof x->out[i], "%s%s", name, taken ? "_out" : "");
    }
    herdi_pb_put_string(&x->graph, GRAPH_NAME, "herd");
    x->input = "input";
    if (m->input_norm && m->inputs[0].dtype == HERD_F32) { /* the weights' input normalisation, as herd applies it: (x - mean) * (1 / std) */
        float *v = malloc(2 * (size_t)m->in_c * sizeof *v);
        if (!v) {
            herdi_pb_writer_free(&x->graph);
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
        const char *sub[2] = {"input", "input_mean"}, *mul[2] = {"input_centered", "input_inv_std"};
        herdi_onnx_emit(x, "Sub", "input_centered", "input_centered", sub, 2, NULL, 0);
        herdi_onnx_emit(x, "Mul", "input_normalized", "input_normalized", mul, 2, NULL, 0);
        x->input = "input_normalized";
    }
    for (int i = 0; i < m->n_nodes && st == HERD_OK; i++) st = emit_node(x, i);
    if (st != HERD_OK) {
        herdi_pb_writer_free(&x->graph);
        return st;
    }
    const node *last = &m->nodes[m->n_nodes - 1];
    if (strcmp(x->tname[m->n_nodes - 1], "logits") != 0) /* a last layer named logits is the output itself */
        herdi_onnx_emit(x, "Identity", "output", "logits", &x->tname[m->n_nodes - 1], 1, NULL, 0);
    int64_t in_dims[3] = {m->in_c, m->in_h, m->in_w}, out_dims[2] = {last->numel};
    int out_rank = 1;
    if (last->ndim == 2) out_dims[0] = last->dims[0], out_dims[1] = last->dims[1], out_rank = 2; /* (N,T,V) */
    value_info(&x->graph, GRAPH_INPUT, "input", in_dims, m->in_h == 1 && m->in_w == 1 ? 1 : 3,
               m->inputs[0].dtype == HERD_I32 ? ONNX_INT32 : ONNX_FLOAT); /* ids: int32, as Gather takes them */
    for (int k = 1; k < m->n_inputs; k++) /* further inputs under their names, their own shapes */
        value_info(&x->graph, GRAPH_INPUT, m->inputs[k].name, m->inputs[k].dims, m->inputs[k].ndim,
                   m->inputs[k].dtype == HERD_I32 ? ONNX_INT32 : ONNX_FLOAT);
    value_info(&x->graph, GRAPH_OUTPUT, "logits", out_dims, out_rank, ONNX_FLOAT);

    pb_writer model = {0};
    herdi_pb_put_varint(&model, MODEL_IR_VERSION, 8);
    herdi_pb_put_string(&model, MODEL_PRODUCER_NAME, "herd");
    herdi_pb_put_string(&model, MODEL_PRODUCER_VERSION, "0.1.0");
    pb_writer opset = {0};
    herdi_pb_put_string(&opset, OPSET_DOMAIN, "");
    herdi_pb_put_varint(&opset, OPSET_VERSION, (uint64_t)x->opset);
    herdi_pb_put_message(&model, MODEL_OPSET_IMPORT, &opset);
    herdi_pb_put_message(&model, MODEL_GRAPH, &x->graph);
    if (model.failed) {
        herdi_pb_writer_free(&model);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory building the ONNX model", path);
    }
    const void *chunk = model.buf;
    st = herdi_io_write_file_atomic(path, &chunk, &model.len, 1, "onnx.before_rename", err);
    herdi_pb_writer_free(&model);
    return st;
}

herd_status herd_model_export_onnx(const herd_model *m, const char *path, herd_error *err) {
    exporter *xp = calloc(1, sizeof *xp);
    if (!xp) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
    herd_status st = export_graph(xp, m, path, err);
    free(xp);
    return st;
}
