/* ONNX decoding: a ModelProto's bytes into plain structs (the graph's nodes with their inputs,
 * outputs and attributes, initializers and Constant tensors, graph inputs and outputs, the
 * opset), with every length checked against the bytes that remain and every count bounded.
 * Nothing here knows what an operator means: src/io/onnx_import.c translates. Strings and
 * tensor data point into the file's bytes, which the graph owns. */
#ifndef HERD_IO_ONNX_DECODE_H
#define HERD_IO_ONNX_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "herd/core.h"

/* Bounds on what a file may declare; beyond them the file is refused, not trusted. */
#define ONNX_MAX_FILE_BYTES ((size_t)2 << 30) /* protobuf's own 2 GiB message limit */
#define ONNX_MAX_NODES 16384
#define ONNX_MAX_TENSORS 16384
#define ONNX_MAX_NODE_IO 4096 /* inputs or outputs of one node */
#define ONNX_MAX_ATTRS 64
#define ONNX_MAX_ATTR_INTS 16
#define ONNX_MAX_DIMS 8
#define ONNX_MAX_STR 1024
#define ONNX_MAX_GRAPH_IO 64

typedef struct onnx_str {
    const char *p;
    size_t n;
} onnx_str;

enum { ONNX_T_FLOAT = 1, ONNX_T_INT32 = 6, ONNX_T_INT64 = 7, ONNX_T_DOUBLE = 11 };

typedef struct onnx_tensor {
    onnx_str name;
    int ndim;
    int64_t dims[ONNX_MAX_DIMS];
    int64_t numel;
    int dtype;
    int external;
    const uint8_t *msg; /* the TensorProto bytes, read again for the data */
    size_t msg_len;
} onnx_tensor;

typedef struct onnx_attr {
    onnx_str name;
    int has_f, has_i, has_s, has_ints, n_ints;
    int tensor; /* a tensor value: index into the graph's tensors, else -1 */
    onnx_str s;
    float f;
    int64_t i;
    int64_t ints[ONNX_MAX_ATTR_INTS];
} onnx_attr;

typedef struct onnx_node {
    onnx_str op, name, domain;
    onnx_str *in, *out; /* n_in, n_out of them; an empty name is an omitted optional input */
    int n_in, n_out;
    onnx_attr *attr;
    int n_attr;
} onnx_node;

typedef struct onnx_io {
    onnx_str name;
    int elem_type;
    int ndim;
    int64_t dims[ONNX_MAX_DIMS]; /* -1: symbolic or unknown */
} onnx_io;

typedef struct onnx_graph {
    const char *path; /* for messages */
    uint8_t *file;    /* owned: malloc'd, or a read-only private mapping of the file (mapped) */
    size_t file_len;
    int mapped;
    int64_t opset;    /* of the default domain (0: none declared) */
    onnx_node *nodes;
    int n_nodes;
    onnx_tensor *tensors; /* initializers first, then the tensors of Constant-node attributes */
    int n_tensors, n_initializers, cap_tensors;
    onnx_io inputs[ONNX_MAX_GRAPH_IO], outputs[ONNX_MAX_GRAPH_IO];
    int n_inputs, n_outputs;
} onnx_graph;

/* Maps (read-only) and decodes the file at path: tensor data stays in the page cache until read.
 * On failure *g is freed (herdi_onnx_graph_free is still safe). */
herd_status herdi_onnx_decode_file(onnx_graph *g, const char *path, herd_error *err);
/* Tensor t's bytes are read and not needed soon: a mapped file gives its pages back (they are
 * read again from the file if touched later), so an import holds about one copy of the weights. */
void herdi_onnx_tensor_done(const onnx_graph *g, const onnx_tensor *t);
/* Decodes data[0..n) (copied); path names it in messages. */
herd_status herdi_onnx_decode_bytes(onnx_graph *g, const char *path, const uint8_t *data, size_t n, herd_error *err);
void herdi_onnx_graph_free(onnx_graph *g);

/* A tensor's numel values as floats (weights: float32 only) or doubles (constants: float,
 * double, int32, int64), from raw_data or the typed repeated field, whose count must match. */
herd_status herdi_onnx_tensor_values(const onnx_graph *g, const onnx_tensor *t, float *fout, double *dout,
                               herd_error *err);

/* ---- reading decoded things ---- */
int herdi_onnx_str_eq(onnx_str s, const char *c);
int herdi_onnx_str_same(onnx_str a, onnx_str b);
/* For messages: at most 80 bytes, unprintable ones as '?'. */
const char *herdi_onnx_show(onnx_str s, char *buf, size_t size);
#define ONNX_SHOW(s) herdi_onnx_show((s), (char[96]){0}, 96)
const onnx_attr *herdi_onnx_node_attr(const onnx_node *n, const char *name);
/* "[2, 3, 3, 3]" */
const char *herdi_onnx_dims_str(int ndim, const int64_t *dims, char *buf, size_t size);

#endif
