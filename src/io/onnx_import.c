/* ONNX import: a ModelProto decoded with the bounded wire reader, its graph translated into
 * herd spec text (one line per layer, `add NAME` for residual edges) and parsed by the spec
 * parser, then the initializers copied into the registry with their shapes checked. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "herd/onnx.h"
#include "io/onnx_proto.h"
#include "io/pb_wire.h"
#include "model/model_internal.h"

/* Bounds on what a file may declare; beyond them the file is refused, not trusted. */
#define MAX_FILE_BYTES ((size_t)2 << 30) /* protobuf's own 2 GiB message limit */
#define MAX_NODES 8192
#define MAX_TENSORS 8192
#define MAX_NODE_IO 16
#define MAX_ATTRS 32
#define MAX_ATTR_INTS 8
#define MAX_DIMS 8
#define MAX_STR 1024
#define MAX_SPEC_BYTES (1 << 20)

typedef struct str {
    const char *p;
    size_t n;
} str;

typedef struct onnx_tensor {
    str name;
    int ndim;
    int64_t dims[MAX_DIMS];
    int64_t numel;
    int dtype;
    int external;
    const uint8_t *msg; /* the TensorProto bytes, read again for the data */
    size_t msg_len;
} onnx_tensor;

typedef struct onnx_attr {
    str name;
    int has_f, has_i, has_s, n_ints, has_t;
    str s;
    float f;
    int64_t i;
    int64_t ints[MAX_ATTR_INTS];
    const uint8_t *t; /* TensorProto bytes */
    size_t t_len;
} onnx_attr;

typedef struct onnx_node {
    str op, name, domain;
    str in[MAX_NODE_IO], out[MAX_NODE_IO];
    int n_in, n_out;
    onnx_attr attr[MAX_ATTRS];
    int n_attr;
} onnx_node;

typedef struct graph_io {
    str name;
    int elem_type;
    int ndim;
    int64_t dims[MAX_DIMS]; /* -1: symbolic or unknown */
} graph_io;

/* What an ONNX tensor name stands for during translation. */
typedef enum value_kind { V_LAYER, V_CONST, V_GELU, V_CENTERED } value_kind;
enum { G_DIV = 1, G_ERF = 2, G_ERF1 = 4, G_X = 8, G_HALF = 16 };

typedef struct value {
    str name;
    value_kind kind;
    int layer;        /* V_LAYER / V_GELU base: the producing layer, -1 = the model input */
    int tensor;       /* V_CONST: index into tensors; V_CENTERED: the mean subtracted from the input */
    int flags;        /* V_GELU: which parts of x * 0.5 * (1 + erf(x / sqrt 2)) are present */
    int pad_h, pad_w; /* V_LAYER: zero padding from a Pad node, for the next Conv/AveragePool */
} value;

typedef struct layer {
    char kw[16];    /* spec keyword */
    char args[192]; /* the rest of the line, without name= */
    char cand[HERD_NAME_MAX];
    char name[HERD_NAME_MAX];
    int c, h, w, flat; /* output shape; flat: an (N, C) tensor in ONNX */
    int t[4];          /* weight, bias, running mean, running var: tensor indices or -1 */
    int transpose_w;   /* weight stored [in, out] (MatMul, Gemm transB=0) */
    int add_target;
} layer;

typedef struct importer {
    const char *path;
    herd_error *err;
    uint8_t *file;
    size_t file_len;
    onnx_node *nodes;
    int n_nodes;
    onnx_tensor *tensors;
    int n_tensors, n_initializers, cap_tensors, cap_values;
    graph_io inputs[64], outputs[64];
    int n_inputs, n_outputs;
    value *values;
    int n_values;
    layer *layers;
    int n_layers;
    int in_c, in_h, in_w;
    int drop_softmax;
    double *norm; /* input normalisation (in_c means, in_c stds) when the graph starts with one */
} importer;

static herd_status fail(importer *im, herd_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static herd_status fail(importer *im, herd_status st, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return herd_fail(im->err, st, "%s: %s", im->path, msg);
}

/* memcmp of 0 bytes still needs valid pointers, and an absent string has p = NULL */
static int str_eq(str s, const char *c) { return s.n == strlen(c) && (s.n == 0 || memcmp(s.p, c, s.n) == 0); }
static int str_same(str a, str b) { return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0); }
/* For messages: at most 80 bytes, printable. */
static const char *show(str s, char *buf, size_t size) {
    size_t n = s.n < size - 1 ? s.n : size - 1;
    if (n > 80) n = 80;
    for (size_t i = 0; i < n; i++) buf[i] = (s.p[i] >= 0x20 && s.p[i] < 0x7f) ? s.p[i] : '?';
    buf[n] = 0;
    return buf;
}
#define SHOW(s) show((s), (char[96]){0}, 96)

/* ------------------------------------------------------------------ decoding */

static herd_status malformed(importer *im, const char *what, const char *why) {
    return fail(im, HERD_EFORMAT, "not a valid ONNX file: %s: %s", what, why);
}

static herd_status get_str(importer *im, const pb_field *f, const char *what, str *out) {
    if (f->wire != PB_LEN) return malformed(im, what, "expected a string");
    if (f->len > MAX_STR) return fail(im, HERD_EFORMAT, "%s is %zu bytes long (at most %d)", what, f->len, MAX_STR);
    *out = (str){(const char *)f->data, f->len};
    return HERD_OK;
}

/* Repeated int64 in either encoding: one packed field or one varint per field. */
static herd_status add_ints(importer *im, const pb_field *f, int64_t *v, int *n, int cap, const char *what) {
    if (f->wire == PB_VARINT) {
        if (*n >= cap) return fail(im, HERD_EUNSUPPORTED, "%s has more than %d values", what, cap);
        v[(*n)++] = (int64_t)f->u;
        return HERD_OK;
    }
    if (f->wire != PB_LEN) return malformed(im, what, "expected integers");
    pb_reader r = pb_reader_of(f->data, f->len);
    while (r.p < r.end) {
        uint64_t u;
        if (!pb_read_varint(&r, &u)) return malformed(im, what, "truncated packed varint");
        if (*n >= cap) return fail(im, HERD_EUNSUPPORTED, "%s has more than %d values", what, cap);
        v[(*n)++] = (int64_t)u;
    }
    return HERD_OK;
}

static herd_status parse_tensor(importer *im, const uint8_t *data, size_t len, onnx_tensor *t) {
    memset(t, 0, sizeof *t);
    t->msg = data, t->msg_len = len;
    pb_reader r = pb_reader_of(data, len);
    pb_field f;
    const char *why = NULL;
    int k;
    herd_status st;
    while ((k = pb_next(&r, &f, &why)) == 1) {
        if (f.number == TENSOR_DIMS) {
            if ((st = add_ints(im, &f, t->dims, &t->ndim, MAX_DIMS, "tensor dims"))) return st;
        } else if (f.number == TENSOR_DATA_TYPE && f.wire == PB_VARINT) {
            t->dtype = (int)f.u;
        } else if (f.number == TENSOR_NAME) {
            if ((st = get_str(im, &f, "tensor name", &t->name))) return st;
        } else if (f.number == TENSOR_DATA_LOCATION && f.wire == PB_VARINT) {
            t->external = f.u == 1;
        }
    }
    if (k < 0) return malformed(im, "tensor", why);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->dims[d] < 0 || t->dims[d] > ((int64_t)1 << 40))
            return fail(im, HERD_EFORMAT, "tensor '%s': dimension %d is %lld", SHOW(t->name), d, (long long)t->dims[d]);
        if (t->dims[d] && t->numel > ((int64_t)1 << 40) / t->dims[d])
            return fail(im, HERD_EFORMAT, "tensor '%s': size overflows", SHOW(t->name));
        t->numel *= t->dims[d];
    }
    return HERD_OK;
}

static size_t dtype_size(int dtype) {
    switch (dtype) {
    case ONNX_FLOAT:
    case ONNX_INT32: return 4;
    case ONNX_INT64:
    case ONNX_DOUBLE: return 8;
    default: return 0;
    }
}

/* Copies a tensor's numel values as doubles (constants) or floats (weights): from raw_data
 * (little-endian) or the typed repeated field, whose count must match the shape. */
static herd_status tensor_values(importer *im, const onnx_tensor *t, float *fout, double *dout) {
    size_t es = dtype_size(t->dtype);
    if (t->external)
        return fail(im, HERD_EUNSUPPORTED, "tensor '%s' keeps its data in an external file", SHOW(t->name));
    if (!es || (fout && t->dtype != ONNX_FLOAT))
        return fail(im, HERD_EUNSUPPORTED, "tensor '%s' has data type %d (herd reads float32 weights)", SHOW(t->name),
                    t->dtype);
    int typed_field = t->dtype == ONNX_FLOAT   ? TENSOR_FLOAT_DATA
                      : t->dtype == ONNX_INT32 ? TENSOR_INT32_DATA
                      : t->dtype == ONNX_INT64 ? TENSOR_INT64_DATA
                                               : TENSOR_DOUBLE_DATA;
    pb_reader r = pb_reader_of(t->msg, t->msg_len);
    pb_field f;
    const char *why = NULL;
    int64_t got = 0;
    int raw = 0;
    while (pb_next(&r, &f, &why) == 1) {
        if (f.number == TENSOR_RAW_DATA && f.wire == PB_LEN) {
            if (f.len / es != (size_t)t->numel || f.len % es)
                return fail(im, HERD_EFORMAT, "tensor '%s': raw_data holds %zu bytes but its shape needs %lld",
                            SHOW(t->name), f.len, (long long)t->numel * (long long)es);
            for (int64_t i = 0; i < t->numel; i++) {
                const uint8_t *b = f.data + (size_t)i * es;
                uint64_t u = 0;
                for (size_t k = 0; k < es; k++) u |= (uint64_t)b[k] << (8 * k);
                double v;
                if (t->dtype == ONNX_FLOAT) {
                    uint32_t u32 = (uint32_t)u;
                    float x;
                    memcpy(&x, &u32, 4);
                    v = x;
                } else if (t->dtype == ONNX_DOUBLE) {
                    memcpy(&v, &u, 8);
                } else if (t->dtype == ONNX_INT32) {
                    v = (double)(int32_t)(uint32_t)u;
                } else {
                    v = (double)(int64_t)u;
                }
                if (fout) fout[i] = (float)v;
                if (dout) dout[i] = v;
            }
            raw = 1;
            got = t->numel;
        } else if ((int)f.number == typed_field && !raw) {
            /* packed (PB_LEN) or one value per field */
            pb_reader v = f.wire == PB_LEN ? pb_reader_of(f.data, f.len) : (pb_reader){0};
            int one = f.wire != PB_LEN;
            while (one || v.p < v.end) {
                double x;
                pb_field e = f;
                if (!one) {
                    if (t->dtype == ONNX_FLOAT || t->dtype == ONNX_DOUBLE) {
                        size_t n = t->dtype == ONNX_FLOAT ? 4 : 8;
                        if ((size_t)(v.end - v.p) < n) return malformed(im, "tensor data", "truncated packed value");
                        e.u = 0;
                        for (size_t k = 0; k < n; k++) e.u |= (uint64_t)v.p[k] << (8 * k);
                        v.p += n;
                    } else if (!pb_read_varint(&v, &e.u)) {
                        return malformed(im, "tensor data", "truncated packed varint");
                    }
                }
                x = t->dtype == ONNX_FLOAT    ? pb_as_float(&e)
                    : t->dtype == ONNX_DOUBLE ? pb_as_double(&e)
                    : t->dtype == ONNX_INT32  ? (double)(int32_t)(uint32_t)e.u
                                              : (double)(int64_t)e.u;
                if (got >= t->numel)
                    return fail(im, HERD_EFORMAT, "tensor '%s' holds more values than its shape", SHOW(t->name));
                if (fout) fout[got] = (float)x;
                if (dout) dout[got] = x;
                got++;
                if (one) break;
            }
        }
    }
    if (got != t->numel)
        return fail(im, HERD_EFORMAT, "tensor '%s' holds %lld values but its shape needs %lld", SHOW(t->name),
                    (long long)got, (long long)t->numel);
    return HERD_OK;
}

static herd_status add_tensor(importer *im, const uint8_t *data, size_t len, int *idx) {
    if (im->n_tensors >= im->cap_tensors) return fail(im, HERD_EUNSUPPORTED, "more than %d tensors", MAX_TENSORS);
    herd_status st = parse_tensor(im, data, len, &im->tensors[im->n_tensors]);
    if (st == HERD_OK) *idx = im->n_tensors++;
    return st;
}

static herd_status parse_attr(importer *im, const pb_field *fa, onnx_attr *a) {
    memset(a, 0, sizeof *a);
    pb_reader r = pb_reader_of(fa->data, fa->len);
    pb_field f;
    const char *why = NULL;
    int k;
    herd_status st;
    while ((k = pb_next(&r, &f, &why)) == 1) {
        if (f.number == ATTR_NAME) {
            if ((st = get_str(im, &f, "attribute name", &a->name))) return st;
        } else if (f.number == ATTR_F && f.wire == PB_FIXED32) {
            a->f = pb_as_float(&f), a->has_f = 1;
        } else if (f.number == ATTR_I && f.wire == PB_VARINT) {
            a->i = (int64_t)f.u, a->has_i = 1;
        } else if (f.number == ATTR_S) {
            if ((st = get_str(im, &f, "attribute string", &a->s))) return st;
            a->has_s = 1;
        } else if (f.number == ATTR_INTS) {
            if ((st = add_ints(im, &f, a->ints, &a->n_ints, MAX_ATTR_INTS, "attribute ints"))) return st;
        } else if (f.number == ATTR_T && f.wire == PB_LEN) {
            a->t = f.data, a->t_len = f.len, a->has_t = 1;
        }
    }
    if (k < 0) return malformed(im, "attribute", why);
    return HERD_OK;
}

static herd_status parse_node(importer *im, const pb_field *fn, onnx_node *n) {
    memset(n, 0, sizeof *n);
    pb_reader r = pb_reader_of(fn->data, fn->len);
    pb_field f;
    const char *why = NULL;
    int k;
    herd_status st = HERD_OK;
    while ((k = pb_next(&r, &f, &why)) == 1 && st == HERD_OK) {
        switch (f.number) {
        case NODE_INPUT:
        case NODE_OUTPUT: {
            int *cnt = f.number == NODE_INPUT ? &n->n_in : &n->n_out;
            if (*cnt >= MAX_NODE_IO)
                return fail(im, HERD_EUNSUPPORTED, "a node has more than %d inputs or outputs", MAX_NODE_IO);
            st = get_str(im, &f, "node input/output", f.number == NODE_INPUT ? &n->in[n->n_in] : &n->out[n->n_out]);
            (*cnt)++;
            break;
        }
        case NODE_NAME: st = get_str(im, &f, "node name", &n->name); break;
        case NODE_OP_TYPE: st = get_str(im, &f, "op_type", &n->op); break;
        case NODE_DOMAIN: st = get_str(im, &f, "node domain", &n->domain); break;
        case NODE_ATTRIBUTE:
            if (f.wire != PB_LEN) return malformed(im, "node attribute", "expected a message");
            if (n->n_attr >= MAX_ATTRS)
                return fail(im, HERD_EUNSUPPORTED, "a node has more than %d attributes", MAX_ATTRS);
            st = parse_attr(im, &f, &n->attr[n->n_attr++]);
            break;
        default: break;
        }
    }
    if (st) return st;
    if (k < 0) return malformed(im, "node", why);
    if (n->op.n == 0) return malformed(im, "node", "no op_type");
    return HERD_OK;
}

/* ValueInfoProto → name, element type and dims (-1 where symbolic). */
static herd_status parse_io(importer *im, const pb_field *fv, graph_io *io) {
    memset(io, 0, sizeof *io);
    pb_reader r = pb_reader_of(fv->data, fv->len);
    pb_field f;
    const char *why = NULL;
    int k;
    herd_status st;
    while ((k = pb_next(&r, &f, &why)) == 1) {
        if (f.number == VI_NAME) {
            if ((st = get_str(im, &f, "graph input name", &io->name))) return st;
        } else if (f.number == VI_TYPE && f.wire == PB_LEN) {
            pb_reader tr = pb_reader_of(f.data, f.len);
            pb_field tf;
            while ((k = pb_next(&tr, &tf, &why)) == 1) {
                if (tf.number != TYPE_TENSOR || tf.wire != PB_LEN) continue;
                pb_reader ttr = pb_reader_of(tf.data, tf.len);
                pb_field ttf;
                while ((k = pb_next(&ttr, &ttf, &why)) == 1) {
                    if (ttf.number == TTENSOR_ELEM_TYPE && ttf.wire == PB_VARINT) io->elem_type = (int)ttf.u;
                    if (ttf.number != TTENSOR_SHAPE || ttf.wire != PB_LEN) continue;
                    pb_reader sr = pb_reader_of(ttf.data, ttf.len);
                    pb_field sf;
                    while ((k = pb_next(&sr, &sf, &why)) == 1) {
                        if (sf.number != SHAPE_DIM || sf.wire != PB_LEN) continue;
                        if (io->ndim >= MAX_DIMS)
                            return fail(im, HERD_EUNSUPPORTED, "a graph input has more than %d dimensions", MAX_DIMS);
                        int64_t d = -1;
                        pb_reader dr = pb_reader_of(sf.data, sf.len);
                        pb_field df;
                        while ((k = pb_next(&dr, &df, &why)) == 1)
                            if (df.number == DIM_VALUE && df.wire == PB_VARINT) d = (int64_t)df.u;
                        if (k < 0) return malformed(im, "tensor shape", why);
                        io->dims[io->ndim++] = d;
                    }
                    if (k < 0) return malformed(im, "tensor shape", why);
                }
                if (k < 0) return malformed(im, "tensor type", why);
            }
            if (k < 0) return malformed(im, "type", why);
        }
    }
    if (k < 0) return malformed(im, "graph input", why);
    return HERD_OK;
}

/* Counts nodes and initializers first so the tables are sized to the file, within bounds. */
static herd_status alloc_tables(importer *im, const uint8_t *data, size_t len) {
    pb_reader r = pb_reader_of(data, len);
    pb_field f;
    const char *why = NULL;
    int k;
    int64_t nodes = 0, inits = 0;
    while ((k = pb_next(&r, &f, &why)) == 1) {
        nodes += f.number == GRAPH_NODE;
        inits += f.number == GRAPH_INITIALIZER;
    }
    if (k < 0) return malformed(im, "graph", why);
    if (nodes > MAX_NODES)
        return fail(im, HERD_EUNSUPPORTED, "%lld nodes (herd reads at most %d)", (long long)nodes, MAX_NODES);
    if (inits + nodes > MAX_TENSORS)
        return fail(im, HERD_EUNSUPPORTED, "%lld initializers (herd reads at most %d)", (long long)inits, MAX_TENSORS);
    im->cap_tensors = (int)(inits + nodes); /* every Constant node adds one */
    im->cap_values = (int)(inits + nodes * MAX_NODE_IO + 1);
    im->nodes = herd_calloc_array((size_t)nodes + 1, sizeof *im->nodes);
    im->tensors = herd_calloc_array((size_t)im->cap_tensors + 1, sizeof *im->tensors);
    im->values = herd_calloc_array((size_t)im->cap_values, sizeof *im->values);
    im->layers = herd_calloc_array((size_t)nodes + 1, sizeof *im->layers);
    if (!im->nodes || !im->tensors || !im->values || !im->layers) return fail(im, HERD_ENOMEM, "out of memory");
    return HERD_OK;
}

static herd_status parse_graph(importer *im, const uint8_t *data, size_t len) {
    pb_reader r = pb_reader_of(data, len);
    pb_field f;
    const char *why = NULL;
    int k;
    herd_status st = alloc_tables(im, data, len);
    if (st) return st;
    while ((k = pb_next(&r, &f, &why)) == 1 && st == HERD_OK) {
        if (f.wire != PB_LEN) continue;
        if (f.number == GRAPH_NODE) {
            st = parse_node(im, &f, &im->nodes[im->n_nodes++]);
        } else if (f.number == GRAPH_INITIALIZER) {
            int idx;
            st = add_tensor(im, f.data, f.len, &idx);
        } else if (f.number == GRAPH_INPUT || f.number == GRAPH_OUTPUT) {
            int *cnt = f.number == GRAPH_INPUT ? &im->n_inputs : &im->n_outputs;
            if (*cnt >= 64) return fail(im, HERD_EUNSUPPORTED, "more than 64 graph inputs or outputs");
            st = parse_io(im, &f, f.number == GRAPH_INPUT ? &im->inputs[(*cnt)++] : &im->outputs[(*cnt)++]);
        }
    }
    if (st) return st;
    if (k < 0) return malformed(im, "graph", why);
    im->n_initializers = im->n_tensors;
    return HERD_OK;
}

static herd_status parse_model(importer *im) {
    pb_reader r = pb_reader_of(im->file, im->file_len);
    pb_field f;
    const char *why = NULL;
    int k, have_graph = 0;
    const uint8_t *graph = NULL;
    size_t graph_len = 0;
    while ((k = pb_next(&r, &f, &why)) == 1) {
        if (f.number == MODEL_GRAPH && f.wire == PB_LEN) graph = f.data, graph_len = f.len, have_graph = 1;
        if (f.number == MODEL_OPSET_IMPORT && f.wire == PB_LEN) {
            pb_reader o = pb_reader_of(f.data, f.len);
            pb_field of;
            str domain = {"", 0};
            uint64_t version = 0;
            while ((k = pb_next(&o, &of, &why)) == 1) {
                if (of.number == OPSET_DOMAIN && of.wire == PB_LEN) domain = (str){(const char *)of.data, of.len};
                if (of.number == OPSET_VERSION && of.wire == PB_VARINT) version = of.u;
            }
            if (k < 0) return malformed(im, "opset_import", why);
            if ((domain.n == 0 || str_eq(domain, "ai.onnx")) && (version < 7 || version > 21))
                return fail(im, HERD_EUNSUPPORTED, "opset %llu (herd reads opsets 7 to 21)",
                            (unsigned long long)version);
        }
    }
    if (k < 0) return malformed(im, "model", why);
    if (!have_graph) return fail(im, HERD_EFORMAT, "not an ONNX model (no graph)");
    return parse_graph(im, graph, graph_len);
}

/* ------------------------------------------------------------------ translation */

static const onnx_attr *attr(const onnx_node *n, const char *name) {
    for (int i = 0; i < n->n_attr; i++)
        if (str_eq(n->attr[i].name, name)) return &n->attr[i];
    return NULL;
}

static int64_t attr_i(const onnx_node *n, const char *name, int64_t dflt) {
    const onnx_attr *a = attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

static float attr_f(const onnx_node *n, const char *name, float dflt) {
    const onnx_attr *a = attr(n, name);
    return a && a->has_f ? a->f : dflt;
}

static value *find_value(importer *im, str name) {
    for (int i = im->n_values - 1; i >= 0; i--)
        if (str_same(im->values[i].name, name)) return &im->values[i];
    return NULL;
}

static herd_status set_value(importer *im, str name, value v) {
    if (im->n_values >= im->cap_values)
        return fail(im, HERD_EINTERNAL, "more than %d tensors in the graph", im->cap_values);
    v.name = name;
    im->values[im->n_values++] = v;
    return HERD_OK;
}

static const char *const supported_ops[] = {
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Gemm",
    "MatMul",
    "Add",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Div",
    "Erf",
    "Mul",
    "Sub",
    "BatchNormalization",
    "Dropout",
    "Identity",
    "Softmax",
    "Constant",
    "Pad",
};

static herd_status check_ops(importer *im) {
    char list[512] = "";
    size_t len = 0;
    int n_bad = 0;
    for (int i = 0; i < im->n_nodes; i++) {
        const onnx_node *n = &im->nodes[i];
        int ok = n->domain.n == 0 || str_eq(n->domain, "ai.onnx");
        int known = 0;
        for (size_t k = 0; ok && k < sizeof supported_ops / sizeof supported_ops[0] && !known; k++)
            known = str_eq(n->op, supported_ops[k]);
        if (known) continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = str_same(im->nodes[j].op, n->op) && str_same(im->nodes[j].domain, n->domain);
        if (seen) continue;
        if (len < sizeof list - 1)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", n_bad ? ", " : "", SHOW(n->op));
        n_bad++;
    }
    if (n_bad) return fail(im, HERD_EUNSUPPORTED, "unsupported operator%s: %s", n_bad > 1 ? "s" : "", list);
    return HERD_OK;
}

/* Shape of the current tip: the last layer's output, or the model input. */
static void tip_shape(const importer *im, int *c, int *h, int *w, int *flat) {
    if (im->n_layers > 0) {
        const layer *L = &im->layers[im->n_layers - 1];
        *c = L->c, *h = L->h, *w = L->w, *flat = L->flat;
    } else {
        *c = im->in_c, *h = im->in_h, *w = im->in_w, *flat = im->in_h == 1 && im->in_w == 1;
    }
}

/* Appends a layer reading the tip, with the tip's shape until the caller sets its own. */
static layer *new_layer(importer *im, const char *kw) {
    layer *L = &im->layers[im->n_layers]; /* n_layers <= n_nodes: layers was sized for it */
    memset(L, 0, sizeof *L);
    tip_shape(im, &L->c, &L->h, &L->w, &L->flat);
    im->n_layers++;
    snprintf(L->kw, sizeof L->kw, "%s", kw);
    L->t[0] = L->t[1] = L->t[2] = L->t[3] = -1;
    return L;
}

/* The layer output a node's data input refers to: it must be the current tip, since a
 * herd spec is a chain (residual edges only through add). Takes a preceding Pad's zero
 * padding into pad_h, pad_w (NULL: none allowed). */
static herd_status tip_input_padded(importer *im, const onnx_node *n, int i, int *pad_h, int *pad_w) {
    if (i >= n->n_in || n->in[i].n == 0)
        return fail(im, HERD_EFORMAT, "node '%s' (%s) lacks input %d", SHOW(n->name), SHOW(n->op), i);
    value *v = find_value(im, n->in[i]);
    if (!v)
        return fail(im, HERD_EFORMAT, "node '%s' (%s) reads '%s', which nothing produces", SHOW(n->name), SHOW(n->op),
                    SHOW(n->in[i]));
    if (v->kind != V_LAYER)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): input '%s' is not a layer output", SHOW(n->name),
                    SHOW(n->op), SHOW(n->in[i]));
    if (v->layer != im->n_layers - 1)
        return fail(im, HERD_EUNSUPPORTED,
                    "node '%s' (%s) reads '%s', which is not the previous layer's output "
                    "(herd models are chains with residual adds)",
                    SHOW(n->name), SHOW(n->op), SHOW(n->in[i]));
    if ((v->pad_h || v->pad_w) && !pad_h)
        return fail(im, HERD_EUNSUPPORTED,
                    "node '%s' (%s) reads a padded tensor; Pad is supported before Conv and "
                    "AveragePool only",
                    SHOW(n->name), SHOW(n->op));
    if (pad_h) *pad_h = v->pad_h, *pad_w = v->pad_w;
    return HERD_OK;
}

static herd_status tip_input(importer *im, const onnx_node *n, int i) { return tip_input_padded(im, n, i, NULL, NULL); }

/* A constant input (initializer or Constant node): its tensor index. */
static int const_input(importer *im, const onnx_node *n, int i) {
    if (i >= n->n_in || n->in[i].n == 0) return -1;
    value *v = find_value(im, n->in[i]);
    return v && v->kind == V_CONST ? v->tensor : -1;
}

static herd_status need_const(importer *im, const onnx_node *n, int i, const char *what, int *t) {
    *t = const_input(im, n, i);
    if (*t < 0)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): the %s must be an initializer", SHOW(n->name), SHOW(n->op),
                    what);
    return HERD_OK;
}

static herd_status scalar_of(importer *im, int t, double *out) {
    if (im->tensors[t].numel != 1)
        return fail(im, HERD_EUNSUPPORTED, "tensor '%s' should be a scalar", SHOW(im->tensors[t].name));
    return tensor_values(im, &im->tensors[t], NULL, out);
}

static void shape_str(char *buf, size_t size, const onnx_tensor *t) {
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < t->ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
    if (len < size) snprintf(buf + len, size - len, "]");
}

static herd_status bad_shape(importer *im, const onnx_node *n, int t, const char *need) {
    char s[96];
    shape_str(s, sizeof s, &im->tensors[t]);
    return fail(im, HERD_ESHAPE, "node '%s' (%s): initializer '%s' has shape %s but %s", SHOW(n->name), SHOW(n->op),
                SHOW(im->tensors[t].name), s, need);
}

/* kernel_shape / strides / pads / dilations of Conv and the pools, checked against what herd has;
 * kh_w, kw_w: the conv weight's kernel size, or -1 for a pool; xh, xw: zero padding of a preceding Pad. */
static herd_status spatial(importer *im, const onnx_node *n, int kh_w, int kw_w, int xh, int xw, char *out, size_t size,
                           int *kh, int *kw, int *sh, int *sw, int *ph, int *pw) {
    const onnx_attr *k = attr(n, "kernel_shape"), *s = attr(n, "strides"), *p = attr(n, "pads"),
                    *d = attr(n, "dilations");
    *kh = kh_w, *kw = kw_w, *sh = *sw = 1, *ph = *pw = 0;
    if (k && k->n_ints == 2)
        *kh = (int)k->ints[0], *kw = (int)k->ints[1];
    else if (k || kh_w <= 0)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): needs a 2-D kernel_shape", SHOW(n->name), SHOW(n->op));
    if (s && s->n_ints == 2)
        *sh = (int)s->ints[0], *sw = (int)s->ints[1];
    else if (s)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): strides must have 2 values", SHOW(n->name), SHOW(n->op));
    if (p && p->n_ints == 4) {
        if (p->ints[0] != p->ints[2] || p->ints[1] != p->ints[3])
            return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): asymmetric pads are not supported", SHOW(n->name),
                        SHOW(n->op));
        *ph = (int)p->ints[0], *pw = (int)p->ints[1];
    } else if (p) {
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): pads must have 4 values", SHOW(n->name), SHOW(n->op));
    }
    *ph += xh, *pw += xw;
    if (d)
        for (int i = 0; i < d->n_ints; i++)
            if (d->ints[i] != 1)
                return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): dilations other than 1", SHOW(n->name),
                            SHOW(n->op));
    if (*kh < 1 || *kw < 1 || *kh > 4096 || *kw > 4096 || *sh < 1 || *sw < 1 || *sh > 4096 || *sw > 4096 || *ph < 0 ||
        *pw < 0 || *ph > 4096 || *pw > 4096)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): kernel, stride or padding out of range", SHOW(n->name),
                    SHOW(n->op));
    /* written as a person would: defaults left out (conv stride 1, pool stride = size, pad 0) */
    size_t len = (size_t)(*kh == *kw ? snprintf(out, size, "%d", *kh) : snprintf(out, size, "%dx%d", *kh, *kw));
    int dsh = kh_w < 0 ? *kh : 1, dsw = kh_w < 0 ? *kw : 1;
    if ((*sh != dsh || *sw != dsw) && len < size)
        len += (size_t)(*sh == *sw ? snprintf(out + len, size - len, " stride=%d", *sh)
                                   : snprintf(out + len, size - len, " stride=%dx%d", *sh, *sw));
    if ((*ph || *pw) && len < size)
        len += (size_t)(*ph == *pw ? snprintf(out + len, size - len, " pad=%d", *ph)
                                   : snprintf(out + len, size - len, " pad=%dx%d", *ph, *pw));
    return HERD_OK;
}

/* Only explicit pads (auto_pad absent or NOTSET) are read. */
static int auto_pad_set(const onnx_node *n) {
    const onnx_attr *a = attr(n, "auto_pad");
    return a && !(a->has_s && str_eq(a->s, "NOTSET"));
}

static herd_status out_layer(importer *im, const onnx_node *n) {
    if (n->n_out < 1) return fail(im, HERD_EFORMAT, "node '%s' (%s) has no output", SHOW(n->name), SHOW(n->op));
    return set_value(im, n->out[0], (value){.kind = V_LAYER, .layer = im->n_layers - 1});
}

static void set_cand(layer *L, str s) {
    if (s.n == 0 || s.n >= HERD_NAME_MAX) return;
    int ok = (s.p[0] >= 'a' && s.p[0] <= 'z') || (s.p[0] >= 'A' && s.p[0] <= 'Z') || s.p[0] == '_';
    for (size_t i = 0; ok && i < s.n; i++)
        ok = (s.p[i] >= 'a' && s.p[i] <= 'z') || (s.p[i] >= 'A' && s.p[i] <= 'Z') || (s.p[i] >= '0' && s.p[i] <= '9') ||
             s.p[i] == '_';
    if (ok) {
        memcpy(L->cand, s.p, s.n);
        L->cand[s.n] = 0;
    }
}

/* Layer names follow the weights' names ("conv1.weight" → conv1) so herd's own exports
 * come back under the same registry names. */
static void cand_from_weight(importer *im, layer *L) {
    str w = im->tensors[L->t[0]].name;
    if (w.n > 7 && memcmp(w.p + w.n - 7, ".weight", 7) == 0) set_cand(L, (str){w.p, w.n - 7});
}

static herd_status tr_conv(importer *im, const onnx_node *n) {
    herd_status st;
    int tw, tb = -1, xh, xw;
    if ((st = tip_input_padded(im, n, 0, &xh, &xw)) || (st = need_const(im, n, 1, "weight", &tw))) return st;
    if (n->n_in > 2 && n->in[2].n && (st = need_const(im, n, 2, "bias", &tb))) return st;
    layer *L = new_layer(im, "conv");
    const onnx_tensor *W = &im->tensors[tw];
    char need[128];
    snprintf(need, sizeof need, "the input has %d channels (expected [out, %d, kh, kw])", L->c, L->c);
    if (L->flat || W->ndim != 4 || W->dims[1] != L->c || W->dims[0] < 1 || W->dims[0] > 65536)
        return bad_shape(im, n, tw, need);
    if (attr_i(n, "group", 1) != 1)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Conv): grouped convolutions", SHOW(n->name));
    if (auto_pad_set(n))
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Conv): auto_pad (write explicit pads)", SHOW(n->name));
    int kh, kw, sh, sw, ph, pw;
    char sp[96];
    if ((st = spatial(im, n, (int)W->dims[2], (int)W->dims[3], xh, xw, sp, sizeof sp, &kh, &kw, &sh, &sw, &ph, &pw)))
        return st;
    if (kh != W->dims[2] || kw != W->dims[3]) return bad_shape(im, n, tw, "kernel_shape says otherwise");
    if (tb >= 0 && (im->tensors[tb].numel != W->dims[0]))
        return bad_shape(im, n, tb, "the bias needs one value per filter");
    snprintf(L->args, sizeof L->args, "%lld %s%s", (long long)W->dims[0], sp, tb >= 0 ? "" : " bias=0");
    L->t[0] = tw, L->t[1] = tb;
    L->c = (int)W->dims[0];
    int64_t oh = ((int64_t)L->h + 2 * ph - kh) / sh + 1, ow = ((int64_t)L->w + 2 * pw - kw) / sw + 1;
    if (L->h + 2 * ph < kh || L->w + 2 * pw < kw)
        return fail(im, HERD_ESHAPE, "node '%s' (Conv): the kernel does not fit the input", SHOW(n->name));
    L->h = (int)oh, L->w = (int)ow;
    cand_from_weight(im, L);
    return out_layer(im, n);
}

static herd_status tr_pool(importer *im, const onnx_node *n) {
    herd_status st;
    int is_max = str_eq(n->op, "MaxPool"), xh = 0, xw = 0;
    if ((st = is_max ? tip_input(im, n, 0) : tip_input_padded(im, n, 0, &xh, &xw))) return st;
    layer *L = new_layer(im, is_max ? "maxpool" : "avgpool");
    if (L->flat) return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s) on a flat tensor", SHOW(n->name), SHOW(n->op));
    if (auto_pad_set(n) || attr_i(n, "ceil_mode", 0) != 0 || attr_i(n, "storage_order", 0) != 0 || n->n_out > 1)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): auto_pad, ceil_mode, storage_order or an indices output",
                    SHOW(n->name), SHOW(n->op));
    int kh, kw, sh, sw, ph, pw;
    char sp[96];
    if ((st = spatial(im, n, -1, -1, xh, xw, sp, sizeof sp, &kh, &kw, &sh, &sw, &ph, &pw))) return st;
    if (!is_max && (ph > xh || pw > xw) && attr_i(n, "count_include_pad", 0) != 1)
        return fail(im, HERD_EUNSUPPORTED,
                    "node '%s' (AveragePool): padding with count_include_pad=0 (herd counts the padding)",
                    SHOW(n->name));
    if (ph * 2 > kh || pw * 2 > kw || L->h + 2 * ph < kh || L->w + 2 * pw < kw)
        return fail(im, HERD_ESHAPE, "node '%s' (%s): the pool does not fit the input", SHOW(n->name), SHOW(n->op));
    snprintf(L->args, sizeof L->args, "%s", sp);
    L->h = (L->h + 2 * ph - kh) / sh + 1, L->w = (L->w + 2 * pw - kw) / sw + 1;
    set_cand(L, n->out[0]);
    return out_layer(im, n);
}

static herd_status tr_gap(importer *im, const onnx_node *n) {
    herd_status st;
    if ((st = tip_input(im, n, 0))) return st;
    layer *L = new_layer(im, "gap");
    if (L->flat) return fail(im, HERD_EUNSUPPORTED, "node '%s' (GlobalAveragePool) on a flat tensor", SHOW(n->name));
    L->h = L->w = 1;
    /* flat stays 0: ONNX keeps (N, C, 1, 1) until a Flatten/Reshape, which is then an alias */
    set_cand(L, n->out[0]);
    return out_layer(im, n);
}

/* An alias: the output names the same layer output as the input (Identity, Dropout, and
 * Flatten/Reshape of an (N, C, 1, 1) tensor, which herd already treats as flat). */
static herd_status alias(importer *im, const onnx_node *n, int flatten) {
    herd_status st;
    value *c = n->n_in >= 1 && n->n_out >= 1 && !flatten ? find_value(im, n->in[0]) : NULL;
    if (c && c->kind == V_CONST)
        return set_value(im, n->out[0], *c); /* Identity of a weight (PyTorch shares them so) */
    if ((st = tip_input(im, n, 0))) return st;
    if (n->n_out < 1) return fail(im, HERD_EFORMAT, "node '%s' (%s) has no output", SHOW(n->name), SHOW(n->op));
    if (im->n_layers > 0) {
        layer *L = &im->layers[im->n_layers - 1];
        if (flatten) L->flat = 1;
        int is_output = 0;
        for (int i = 0; i < im->n_outputs; i++) is_output |= str_same(im->outputs[i].name, n->out[0]);
        /* herd's gap is ONNX's GlobalAveragePool + Flatten: the pair's output names the layer */
        if (flatten && !strcmp(L->kw, "gap") && !is_output) set_cand(L, n->out[0]);
    }
    return set_value(im, n->out[0], (value){.kind = V_LAYER, .layer = im->n_layers - 1});
}

static herd_status tr_flatten(importer *im, const onnx_node *n) {
    herd_status st;
    if ((st = tip_input(im, n, 0))) return st;
    if (attr_i(n, "axis", 1) != 1)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Flatten): axis other than 1", SHOW(n->name));
    int c, h, w, flat;
    tip_shape(im, &c, &h, &w, &flat);
    if (flat || (h == 1 && w == 1)) return alias(im, n, 1); /* herd treats C x 1 x 1 as flat already */
    layer *L = new_layer(im, "flatten");
    L->c = L->c * L->h * L->w, L->h = L->w = 1, L->flat = 1;
    set_cand(L, n->out[0]);
    return out_layer(im, n);
}

/* Reshape to (N, C*H*W): a flatten; other shapes are not supported. */
static herd_status tr_reshape(importer *im, const onnx_node *n) {
    herd_status st;
    int ts;
    if ((st = tip_input(im, n, 0)) || (st = need_const(im, n, 1, "shape", &ts))) return st;
    const onnx_tensor *S = &im->tensors[ts];
    double v[2];
    if (S->numel != 2 || (S->dtype != ONNX_INT64 && S->dtype != ONNX_INT32))
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Reshape): only reshapes to (N, features) are supported",
                    SHOW(n->name));
    if ((st = tensor_values(im, S, NULL, v))) return st;
    int c, h, w, flat;
    tip_shape(im, &c, &h, &w, &flat);
    int64_t feat = (int64_t)c * h * w;
    if (!((v[0] == 0 || v[0] == -1 || v[0] >= 1) && (v[1] == -1 || v[1] == (double)feat)) || (v[0] == -1 && v[1] == -1))
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Reshape): only reshapes to (N, %lld) are supported",
                    SHOW(n->name), (long long)feat);
    onnx_node f = *n;
    f.n_attr = 0;
    f.n_in = 1;
    return tr_flatten(im, &f);
}

static herd_status dense_from(importer *im, const onnx_node *n, int tw, int tb, int transposed) {
    layer *L = new_layer(im, "dense");
    const onnx_tensor *W = &im->tensors[tw];
    int in_dim = transposed ? 0 : 1, out_dim = transposed ? 1 : 0;
    char need[128];
    snprintf(need, sizeof need, "the input has %d features", L->c * L->h * L->w);
    if (!L->flat && (L->h != 1 || L->w != 1))
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s) on an NCHW tensor; flatten first", SHOW(n->name),
                    SHOW(n->op));
    if (W->ndim != 2 || W->dims[in_dim] != L->c || W->dims[out_dim] < 1 || W->dims[out_dim] > (1 << 24))
        return bad_shape(im, n, tw, need);
    if (tb >= 0 && im->tensors[tb].numel != W->dims[out_dim])
        return bad_shape(im, n, tb, "the bias needs one value per unit");
    L->t[0] = tw, L->t[1] = tb, L->transpose_w = transposed;
    L->c = (int)W->dims[out_dim], L->h = L->w = 1, L->flat = 1;
    cand_from_weight(im, L);
    return out_layer(im, n);
}

static herd_status tr_gemm(importer *im, const onnx_node *n) {
    herd_status st;
    int tw, tb = -1;
    if ((st = tip_input(im, n, 0)) || (st = need_const(im, n, 1, "weight", &tw))) return st;
    if (n->n_in > 2 && n->in[2].n && (st = need_const(im, n, 2, "bias", &tb))) return st;
    if (attr_i(n, "transA", 0) != 0 || attr_f(n, "alpha", 1) != 1 || (tb >= 0 && attr_f(n, "beta", 1) != 1))
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Gemm): transA, alpha or beta other than the defaults",
                    SHOW(n->name));
    return dense_from(im, n, tw, tb, attr_i(n, "transB", 0) == 0);
}

static herd_status tr_matmul(importer *im, const onnx_node *n) {
    herd_status st;
    int tw;
    if ((st = tip_input(im, n, 0)) || (st = need_const(im, n, 1, "weight", &tw))) return st;
    return dense_from(im, n, tw, -1, 1);
}

static herd_status tr_batchnorm(importer *im, const onnx_node *n) {
    herd_status st;
    int t[4];
    if ((st = tip_input(im, n, 0))) return st;
    for (int i = 0; i < 4; i++)
        if ((st = need_const(im, n, i + 1, "scale, bias, mean and var", &t[i]))) return st;
    if (attr_i(n, "training_mode", 0) != 0 || n->n_out > 1)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (BatchNormalization) in training mode", SHOW(n->name));
    layer *L = new_layer(im, "batchnorm");
    for (int i = 0; i < 4; i++)
        if (im->tensors[t[i]].numel != L->c) return bad_shape(im, n, t[i], "batch norm needs one value per channel");
    float eps = attr_f(n, "epsilon", 1e-5f), mom = attr_f(n, "momentum", 0.9f);
    if (!(eps >= 1e-12f && eps <= 1) || !(mom >= 0 && mom <= 1))
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (BatchNormalization): epsilon or momentum out of range",
                    SHOW(n->name));
    snprintf(L->args, sizeof L->args, "eps=%g momentum=%g", eps, 1.0 - mom);
    memcpy(L->t, t, sizeof t);
    cand_from_weight(im, L);
    return out_layer(im, n);
}

static herd_status tr_act(importer *im, const onnx_node *n, const char *kw) {
    herd_status st;
    if ((st = tip_input(im, n, 0))) return st;
    layer *L = new_layer(im, kw);
    if (str_eq(n->op, "LeakyRelu")) {
        /* the shortest decimal that reads back as the same float */
        float alpha = attr_f(n, "alpha", 0.01f);
        for (int prec = 6; prec <= 9; prec++) {
            snprintf(L->args, sizeof L->args, "%.*g", prec, alpha);
            if (strtof(L->args, NULL) == alpha) break;
        }
    }
    if (str_eq(n->op, "Softmax")) {
        int64_t axis = attr_i(n, "axis", -1);
        if (!L->flat || (axis != 1 && axis != -1))
            return fail(im, HERD_EUNSUPPORTED, "node '%s' (Softmax): only over the features of an (N, K) tensor",
                        SHOW(n->name));
    }
    set_cand(L, n->out[0]);
    return out_layer(im, n);
}

/* Add: a residual edge (tip + an earlier layer), a MatMul's bias, or part of the GELU formula. */
static herd_status tr_add(importer *im, const onnx_node *n) {
    if (n->n_in != 2) return fail(im, HERD_EFORMAT, "node '%s' (Add) needs 2 inputs", SHOW(n->name));
    value *a = find_value(im, n->in[0]), *b = find_value(im, n->in[1]);
    if (!a || !b) return fail(im, HERD_EFORMAT, "node '%s' (Add) reads a tensor nothing produces", SHOW(n->name));
    if (a->kind == V_CONST) {
        value *t = a;
        a = b;
        b = t;
    }
    if (a->kind == V_GELU && b->kind == V_CONST && a->flags == G_ERF) {
        double one;
        herd_status st = scalar_of(im, b->tensor, &one);
        if (st) return st;
        if (fabs(one - 1) > 1e-6)
            return fail(im, HERD_EUNSUPPORTED, "node '%s' (Add): not part of a GELU", SHOW(n->name));
        value v = *a;
        v.flags = G_ERF1;
        return set_value(im, n->out[0], v);
    }
    if (a->kind == V_LAYER && b->kind == V_CONST) {
        layer *L = a->layer >= 0 ? &im->layers[a->layer] : NULL;
        if (!L || a->layer != im->n_layers - 1 || strcmp(L->kw, "dense") || L->t[1] >= 0)
            return fail(im, HERD_EUNSUPPORTED,
                        "node '%s' (Add): adding a constant is only supported as a MatMul's bias", SHOW(n->name));
        if (im->tensors[b->tensor].numel != L->c)
            return bad_shape(im, n, b->tensor, "the bias needs one value per unit");
        L->t[1] = b->tensor;
        return set_value(im, n->out[0], *a);
    }
    if (a->kind != V_LAYER || b->kind != V_LAYER)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Add): unsupported inputs", SHOW(n->name));
    if (b->layer == im->n_layers - 1) {
        value *t = a;
        a = b;
        b = t;
    }
    if (a->layer != im->n_layers - 1 || b->layer == a->layer)
        return fail(im, HERD_EUNSUPPORTED,
                    "node '%s' (Add): one input must be the previous layer's output and the other "
                    "an earlier layer's",
                    SHOW(n->name));
    if (b->layer < 0)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Add): adding the model input is not supported", SHOW(n->name));
    layer *src = &im->layers[b->layer];
    const layer *tip = &im->layers[a->layer];
    if (src->c != tip->c || src->h != tip->h || src->w != tip->w)
        return fail(im, HERD_ESHAPE, "node '%s' (Add): the inputs have different shapes", SHOW(n->name));
    src->add_target = 1;
    int src_idx = b->layer;
    layer *L = new_layer(im, "add");
    snprintf(L->args, sizeof L->args, "@%d", src_idx); /* resolved to the name when rendering */
    set_cand(L, n->out[0]);
    return out_layer(im, n);
}

/* Mul and Div only appear inside x * 0.5 * (1 + erf(x / sqrt 2)). */
/* ---- input normalisation: Sub(input, mean) then Div(., std) or Mul(., 1 / std), each constant
 * with one value per input channel (shape [C], [C,1,1] or [1,C,1,1]), before any layer: it
 * becomes the model's input normalisation (herd_model_input_norm), as herd exports it. ---- */

/* Tensor t as one value per input channel into out (out NULL: only checked). */
static herd_status per_channel(importer *im, const onnx_node *n, int t, double *out) {
    const onnx_tensor *x = &im->tensors[t];
    int64_t ones = 1;
    for (int d = 0; d < x->ndim; d++)
        if (x->dims[d] != im->in_c) ones *= x->dims[d];
    if (x->numel != im->in_c || ones != 1)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): input normalisation needs %d values (one per input channel)",
                    SHOW(n->name), SHOW(n->op), im->in_c);
    return tensor_values(im, x, NULL, out);
}

static herd_status tr_sub(importer *im, const onnx_node *n) {
    value *a = n->n_in == 2 ? find_value(im, n->in[0]) : NULL;
    int t = n->n_in == 2 ? const_input(im, n, 1) : -1;
    if (!a || a->kind != V_LAYER || a->layer != -1 || im->n_layers || im->norm || t < 0 || n->n_out < 1)
        return fail(im, HERD_EUNSUPPORTED,
                    "node '%s' (Sub): Sub is only supported as the input normalisation (graph input minus a "
                    "per-channel constant, first)", SHOW(n->name));
    herd_status st = per_channel(im, n, t, NULL); /* checked here, read when the scale comes */
    return st ? st : set_value(im, n->out[0], (value){.kind = V_CENTERED, .tensor = t});
}

/* Div(centered, std) or Mul(centered, inv_std): the model input, normalised. */
static herd_status tr_input_scale(importer *im, const onnx_node *n, const value *centered, int t, int is_div) {
    if (im->norm || im->n_layers)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): the input is normalised once, before any layer",
                    SHOW(n->name), SHOW(n->op));
    im->norm = malloc(2 * sizeof(double) * (size_t)im->in_c);
    if (!im->norm) return fail(im, HERD_ENOMEM, "out of memory");
    double *mean = im->norm, *std = im->norm + im->in_c;
    herd_status st = per_channel(im, n, centered->tensor, mean);
    if (!st) st = per_channel(im, n, t, std);
    for (int c = 0; c < im->in_c && !st; c++) {
        double s = is_div ? std[c] : 1.0 / std[c];
        if (!isfinite(mean[c]) || !isfinite(s) || s <= 0)
            return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): input normalisation of channel %d is not finite and "
                        "positive", SHOW(n->name), SHOW(n->op), c);
        std[c] = s;
    }
    return st ? st : set_value(im, n->out[0], (value){.kind = V_LAYER, .layer = -1});
}

static herd_status tr_gelu_part(importer *im, const onnx_node *n) {
    herd_status st;
    if (n->n_in == 2 && n->n_out >= 1) {
        value *a = find_value(im, n->in[0]), *b = find_value(im, n->in[1]);
        int is_div = str_eq(n->op, "Div");
        if (a && b && !is_div && b->kind == V_CENTERED) {
            value *t = a;
            a = b;
            b = t;
        }
        if (a && b && a->kind == V_CENTERED && b->kind == V_CONST) return tr_input_scale(im, n, a, b->tensor, is_div);
        if (a && b && (a->kind == V_CENTERED || b->kind == V_CENTERED))
            return fail(im, HERD_EUNSUPPORTED, "node '%s' (%s): the centred input must be scaled by a constant",
                        SHOW(n->name), SHOW(n->op));
    }
    if (n->n_in != 2 || n->n_out < 1)
        return fail(im, HERD_EFORMAT, "node '%s' (%s) needs 2 inputs", SHOW(n->name), SHOW(n->op));
    value *a = find_value(im, n->in[0]), *b = find_value(im, n->in[1]);
    if (!a || !b)
        return fail(im, HERD_EFORMAT, "node '%s' (%s) reads a tensor nothing produces", SHOW(n->name), SHOW(n->op));
    int is_div = str_eq(n->op, "Div");
    if (!is_div && a->kind == V_CONST) {
        value *t = a;
        a = b;
        b = t;
    }
    value v = {.kind = V_GELU};
    double c = 0;
    if (b->kind == V_CONST && (st = scalar_of(im, b->tensor, &c))) return st;
    if (is_div && a->kind == V_LAYER && b->kind == V_CONST && fabs(c - sqrt(2.0)) < 1e-5 &&
        a->layer == im->n_layers - 1) {
        v.layer = a->layer, v.flags = G_DIV;
    } else if (!is_div && b->kind == V_CONST && fabs(c - 0.5) < 1e-7 && a->kind == V_LAYER &&
               a->layer == im->n_layers - 1) {
        v.layer = a->layer, v.flags = G_X | G_HALF;
    } else if (!is_div && b->kind == V_CONST && fabs(c - 0.5) < 1e-7 && a->kind == V_GELU &&
               !(a->flags & (G_HALF | G_DIV | G_ERF))) {
        v = *a, v.flags |= G_HALF;
    } else if (!is_div && a->kind != V_CONST && b->kind != V_CONST) {
        if (a->kind == V_LAYER) {
            value *t = a;
            a = b;
            b = t;
        }
        if (a->kind != V_GELU || (a->flags & (G_DIV | G_ERF))) goto unsupported;
        if (b->kind == V_LAYER && b->layer == a->layer && !(a->flags & G_X)) {
            v = *a, v.flags |= G_X;
        } else if (b->kind == V_GELU && b->layer == a->layer && !(a->flags & b->flags) &&
                   !(b->flags & (G_DIV | G_ERF))) {
            v = *a, v.flags |= b->flags;
        } else {
            goto unsupported;
        }
    } else {
        goto unsupported;
    }
    if (v.flags == (G_ERF1 | G_X | G_HALF)) {
        if (v.layer != im->n_layers - 1) goto unsupported;
        layer *L = new_layer(im, "gelu");
        set_cand(L, n->out[0]);
        return out_layer(im, n);
    }
    return set_value(im, n->out[0], v);
unsupported:
    return fail(im, HERD_EUNSUPPORTED,
                "node '%s' (%s): Mul and Div are only supported as parts of GELU or of the input normalisation",
                SHOW(n->name), SHOW(n->op));
}

static herd_status tr_erf(importer *im, const onnx_node *n) {
    value *a = n->n_in == 1 ? find_value(im, n->in[0]) : NULL;
    if (!a || a->kind != V_GELU || a->flags != G_DIV || n->n_out < 1)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Erf): only supported as part of GELU", SHOW(n->name));
    value v = *a;
    v.flags = G_ERF;
    return set_value(im, n->out[0], v);
}

static herd_status tr_constant(importer *im, const onnx_node *n) {
    const onnx_attr *a = attr(n, "value");
    if (!a || !a->has_t || n->n_out < 1)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Constant): only a tensor 'value' is supported", SHOW(n->name));
    int idx = -1;
    herd_status st = add_tensor(im, a->t, a->t_len, &idx);
    if (st) return st;
    im->tensors[idx].name = n->out[0];
    return set_value(im, n->out[0], (value){.kind = V_CONST, .tensor = idx});
}

/* Pad with zeros, symmetric over H and W only: folded into the next Conv or AveragePool
 * (PyTorch writes AvgPool2d as Pad + AveragePool); all-zero pads are an identity. */
static herd_status tr_pad(importer *im, const onnx_node *n) {
    herd_status st;
    int tp, tv = -1;
    if ((st = tip_input(im, n, 0)) || (st = need_const(im, n, 1, "pads", &tp))) return st;
    if (n->n_in > 2 && n->in[2].n && (st = need_const(im, n, 2, "constant value", &tv))) return st;
    const onnx_attr *mode = attr(n, "mode");
    double pads[8] = {0}, cv = 0;
    if (mode && !(mode->has_s && str_eq(mode->s, "constant")))
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Pad): only constant padding", SHOW(n->name));
    if (im->tensors[tp].numel != 8)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Pad): only 4-D padding", SHOW(n->name));
    if ((st = tensor_values(im, &im->tensors[tp], NULL, pads))) return st;
    if (tv >= 0 && (st = scalar_of(im, tv, &cv))) return st;
    if (cv != 0 || pads[0] || pads[1] || pads[4] || pads[5] || pads[2] != pads[6] || pads[3] != pads[7] ||
        pads[2] < 0 || pads[3] < 0 || pads[2] > 4096 || pads[3] > 4096)
        return fail(im, HERD_EUNSUPPORTED, "node '%s' (Pad): only symmetric zero padding of H and W", SHOW(n->name));
    if (n->n_out < 1) return fail(im, HERD_EFORMAT, "node '%s' (Pad) has no output", SHOW(n->name));
    return set_value(im, n->out[0],
                     (value){.kind = V_LAYER, .layer = im->n_layers - 1, .pad_h = (int)pads[2], .pad_w = (int)pads[3]});
}

typedef herd_status (*op_fn)(importer *im, const onnx_node *n);
static herd_status tr_relu(importer *im, const onnx_node *n) { return tr_act(im, n, "relu"); }
static herd_status tr_leaky(importer *im, const onnx_node *n) { return tr_act(im, n, "leaky_relu"); }
static herd_status tr_sigmoid(importer *im, const onnx_node *n) { return tr_act(im, n, "sigmoid"); }
static herd_status tr_tanh(importer *im, const onnx_node *n) { return tr_act(im, n, "tanh"); }
static herd_status tr_softmax(importer *im, const onnx_node *n) { return tr_act(im, n, "softmax"); }
static herd_status tr_identity(importer *im, const onnx_node *n) { return alias(im, n, 0); }

static const struct {
    const char *op;
    op_fn fn;
} op_table[] = {
    {"Conv", tr_conv},
    {"MaxPool", tr_pool},
    {"AveragePool", tr_pool},
    {"GlobalAveragePool", tr_gap},
    {"Flatten", tr_flatten},
    {"Reshape", tr_reshape},
    {"Gemm", tr_gemm},
    {"MatMul", tr_matmul},
    {"Add", tr_add},
    {"Relu", tr_relu},
    {"LeakyRelu", tr_leaky},
    {"Sigmoid", tr_sigmoid},
    {"Tanh", tr_tanh},
    {"Div", tr_gelu_part},
    {"Mul", tr_gelu_part},
    {"Sub", tr_sub},
    {"Erf", tr_erf},
    {"BatchNormalization", tr_batchnorm},
    {"Dropout", tr_identity},
    {"Identity", tr_identity},
    {"Softmax", tr_softmax},
    {"Constant", tr_constant},
    {"Pad", tr_pad},
};

static herd_status find_input(importer *im) {
    const graph_io *in = NULL;
    for (int i = 0; i < im->n_inputs; i++) {
        int is_init = 0;
        for (int t = 0; t < im->n_initializers && !is_init; t++)
            is_init = str_same(im->tensors[t].name, im->inputs[i].name);
        if (is_init) continue;
        if (in) return fail(im, HERD_EUNSUPPORTED, "the graph has several inputs; herd models have one");
        in = &im->inputs[i];
    }
    if (!in) return fail(im, HERD_EFORMAT, "the graph has no input");
    if (in->elem_type != ONNX_FLOAT)
        return fail(im, HERD_EUNSUPPORTED, "input '%s' has element type %d (herd takes float32)", SHOW(in->name),
                    in->elem_type);
    const int64_t *d = in->dims + 1;
    if (in->ndim == 4 && d[0] > 0 && d[1] > 0 && d[2] > 0 && d[0] <= (1 << 20) && d[1] <= (1 << 20) &&
        d[2] <= (1 << 20) && d[0] * d[1] * d[2] <= (1 << 26)) {
        im->in_c = (int)d[0], im->in_h = (int)d[1], im->in_w = (int)d[2];
    } else if (in->ndim == 2 && d[0] > 0 && d[0] <= (1 << 26)) {
        im->in_c = (int)d[0], im->in_h = im->in_w = 1;
    } else {
        return fail(im, HERD_EUNSUPPORTED, "input '%s' must be [N, C, H, W] or [N, features] with fixed C, H, W",
                    SHOW(in->name));
    }
    return set_value(im, in->name, (value){.kind = V_LAYER, .layer = -1});
}

static herd_status translate(importer *im) {
    herd_status st = check_ops(im);
    if (st) return st;
    for (int t = 0; t < im->n_initializers; t++)
        if ((st = set_value(im, im->tensors[t].name, (value){.kind = V_CONST, .tensor = t}))) return st;
    if ((st = find_input(im))) return st;
    for (int i = 0; i < im->n_nodes; i++) {
        const onnx_node *n = &im->nodes[i];
        op_fn fn = NULL;
        for (size_t k = 0; k < sizeof op_table / sizeof op_table[0] && !fn; k++)
            if (str_eq(n->op, op_table[k].op)) fn = op_table[k].fn;
        if ((st = fn(im, n))) return st;
    }
    if (im->n_outputs != 1)
        return fail(im, HERD_EUNSUPPORTED, "the graph has %d outputs; herd models have one", im->n_outputs);
    value *out = find_value(im, im->outputs[0].name);
    if (!out || out->kind != V_LAYER || out->layer != im->n_layers - 1 || im->n_layers == 0)
        return fail(im, HERD_EUNSUPPORTED, "the graph output '%s' is not the last layer's output",
                    SHOW(im->outputs[0].name));
    /* herd's cross-entropy applies softmax to the logits itself: a final Softmax is dropped */
    if (!strcmp(im->layers[im->n_layers - 1].kw, "softmax") && im->n_layers > 1) im->n_layers--, im->drop_softmax = 1;
    const layer *last = &im->layers[im->n_layers - 1];
    if (last->h != 1 || last->w != 1) return fail(im, HERD_EUNSUPPORTED, "the graph output is not a vector per sample");
    return HERD_OK;
}

static const char *prefix_of(const char *kw) { return strcmp(kw, "batchnorm") == 0 ? "bn" : kw; }

static int name_used(const importer *im, int upto, const char *name) {
    for (int i = 0; i < upto; i++)
        if (strcmp(im->layers[i].name, name) == 0) return 1;
    return 0;
}

/* Spec text: names follow herd's default numbering unless the file's names say otherwise. */
static herd_status render(importer *im, char **out) {
    size_t cap = 512 + (size_t)im->n_layers * 400;
    char *s = malloc(cap);
    if (!s) return fail(im, HERD_ENOMEM, "out of memory");
    size_t len = 0;
    len += (size_t)snprintf(s + len, cap - len, "# translated by herd from %s\n",
                            SHOW(((str){im->path, strlen(im->path)})));
    if (im->drop_softmax)
        len += (size_t)snprintf(s + len, cap - len,
                                "# the graph's final Softmax is left out: herd's loss applies it to the logits\n");
    if (im->in_h == 1 && im->in_w == 1)
        len += (size_t)snprintf(s + len, cap - len, "input %d\n", im->in_c);
    else
        len += (size_t)snprintf(s + len, cap - len, "input %dx%dx%d\n", im->in_c, im->in_h, im->in_w);
    for (int i = 0; i < im->n_layers; i++) {
        layer *L = &im->layers[i];
        char dflt[HERD_NAME_MAX];
        for (int k = 1;; k++) {
            snprintf(dflt, sizeof dflt, "%s%d", prefix_of(L->kw), k);
            if (!name_used(im, i, dflt)) break;
        }
        int explicit_name = L->cand[0] && !name_used(im, i, L->cand) && strcmp(L->cand, dflt) != 0;
        snprintf(L->name, sizeof L->name, "%s", explicit_name ? L->cand : dflt);
        char args[HERD_NAME_MAX + 192];
        if (L->args[0] == '@')
            snprintf(args, sizeof args, "%s", im->layers[atoi(L->args + 1)].name);
        else
            snprintf(args, sizeof args, "%s", L->args);
        if (!strcmp(L->kw, "dense")) snprintf(args, sizeof args, "%d%s", L->c, L->t[1] >= 0 ? "" : " bias=0");
        len += (size_t)snprintf(s + len, cap - len, "%s%s%s%s%s\n", L->kw, args[0] ? " " : "", args,
                                explicit_name ? " name=" : "", explicit_name ? L->name : "");
        if (len >= cap) {
            free(s);
            return fail(im, HERD_EINTERNAL, "spec text overflow");
        }
    }
    *out = s;
    return HERD_OK;
}

/* ------------------------------------------------------------------ driver */

static void importer_free(importer *im) {
    free(im->file);
    free(im->nodes);
    free(im->tensors);
    free(im->values);
    free(im->layers);
    free(im->norm);
}

static herd_status read_file(importer *im) {
    FILE *f = fopen(im->path, "rb");
    if (!f) return fail(im, HERD_EIO, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return fail(im, HERD_EIO, "not a regular file");
    }
    if ((uint64_t)sb.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return fail(im, HERD_EUNSUPPORTED, "%lld bytes: larger than protobuf's 2 GiB limit", (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    im->file = malloc(n ? n : 1);
    if (!im->file) {
        fclose(f);
        return fail(im, HERD_ENOMEM, "out of memory for %zu bytes", n);
    }
    size_t got = fread(im->file, 1, n, f);
    fclose(f);
    if (got != n) return fail(im, HERD_EIO, "short read (%zu of %zu bytes)", got, n);
    if (n == 0) return fail(im, HERD_EFORMAT, "empty file");
    im->file_len = n;
    return HERD_OK;
}

static herd_status import_spec(importer *im, const char *path, herd_error *err, char **text) {
    memset(im, 0, sizeof *im);
    im->path = path, im->err = err;
    herd_status st = read_file(im);
    if (st) return st;
    if ((st = parse_model(im)) || (st = translate(im))) return st;
    return render(im, text);
}

herd_status herd_onnx_to_spec(const char *path, char **spec_text, herd_error *err) {
    importer im;
    herd_status st = import_spec(&im, path, err, spec_text);
    importer_free(&im);
    return st;
}

/* Copies layer L's initializers into the registry entries of the parsed model. */
static herd_status load_layer(importer *im, herd_model *m, const layer *L) {
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++) {
        if (L->t[k] < 0) continue;
        char name[HERD_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s.%s", L->name, suffix[k]);
        int idx = -1;
        for (int i = 0; i < m->n_reg && idx < 0; i++)
            if (!strcmp(m->params_reg[i].info.name, name)) idx = i;
        const onnx_tensor *t = &im->tensors[L->t[k]];
        if (idx < 0) return fail(im, HERD_EINTERNAL, "no registry entry %s for '%s'", name, SHOW(t->name));
        const herd_param_info *p = &m->params_reg[idx].info;
        if (p->numel != t->numel) {
            char s[96];
            shape_str(s, sizeof s, t);
            return fail(im, HERD_ESHAPE, "initializer '%s' has shape %s, %lld values, but %s needs %lld", SHOW(t->name),
                        s, (long long)t->numel, name, (long long)p->numel);
        }
        float *dst = model_param_data(m, idx);
        herd_status st;
        if (!(k == 0 && L->transpose_w)) {
            if ((st = tensor_values(im, t, dst, NULL))) return st;
            continue;
        }
        float *tmp = herd_malloc_array((size_t)t->numel, sizeof *tmp);
        if (!tmp) return fail(im, HERD_ENOMEM, "out of memory");
        if ((st = tensor_values(im, t, tmp, NULL))) {
            free(tmp);
            return st;
        }
        int64_t in = t->dims[0], out = t->dims[1]; /* [in, out] → herd's [out, in] */
        for (int64_t i = 0; i < in; i++)
            for (int64_t o = 0; o < out; o++) dst[o * in + i] = tmp[i * out + o];
        free(tmp);
    }
    return HERD_OK;
}

herd_status herd_model_import_onnx(herd_model **out, const char *path, herd_error *err) {
    importer im;
    char *text = NULL;
    herd_model *m = NULL;
    herd_status st = import_spec(&im, path, err, &text);
    if (st == HERD_OK) {
        char where[600];
        snprintf(where, sizeof where, "%s (as a spec)", path);
        st = herd_model_parse(&m, text, where, err);
    }
    if (st == HERD_OK) {
        herd_model_init_params(m, 0); /* every tensor is overwritten; this sets the rest (dropout seed) */
        for (int i = 0; i < im.n_layers && st == HERD_OK; i++) st = load_layer(&im, m, &im.layers[i]);
    }
    if (st == HERD_OK && im.norm) st = herd_model_set_input_norm(m, im.norm, im.norm + im.in_c, err);
    if (st == HERD_OK) snprintf(m->source, sizeof m->source, "%s", path);
    free(text);
    importer_free(&im);
    if (st != HERD_OK) {
        herd_model_destroy(m);
        return st;
    }
    *out = m;
    return HERD_OK;
}
