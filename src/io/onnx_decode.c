/* ONNX decoding (see onnx_decode.h): the bounded wire reader (pb_wire.h) walked over the
 * parts of onnx.proto herd reads (io/onnx_proto.h), into onnx_graph. */
#include "io/onnx_decode.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/onnx_proto.h"
#include "io/pb_wire.h"
#include "io/input_file.h"

typedef struct decoder {
    onnx_graph *g;
    herd_error *err;
} decoder;

static herd_status fail(decoder *d, herd_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static herd_status fail(decoder *d, herd_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    herd_failv(d->err, st, fmt, ap);
    va_end(ap);
    if (d->err) herd_fail_prefix(d->err, "%s", d->g->path);
    return st;
}

static herd_status malformed(decoder *d, const char *what, const char *why) {
    return fail(d, HERD_EFORMAT, "not a valid ONNX file: %s: %s", what, why);
}

/* memcmp of 0 bytes still needs valid pointers, and an absent string has p = NULL */
int herdi_onnx_str_eq(onnx_str s, const char *c) { return s.n == strlen(c) && (s.n == 0 || memcmp(s.p, c, s.n) == 0); }
int herdi_onnx_str_same(onnx_str a, onnx_str b) { return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0); }

const char *herdi_onnx_show(onnx_str s, char *buf, size_t size) {
    size_t n = s.n < size - 1 ? s.n : size - 1;
    if (n > 80) n = 80;
    for (size_t i = 0; i < n; i++) buf[i] = (s.p[i] >= 0x20 && s.p[i] < 0x7f) ? s.p[i] : '?';
    buf[n] = 0;
    return buf;
}

const onnx_attr *herdi_onnx_node_attr(const onnx_node *n, const char *name) {
    for (int i = 0; i < n->n_attr; i++)
        if (herdi_onnx_str_eq(n->attr[i].name, name)) return &n->attr[i];
    return NULL;
}

const char *herdi_onnx_dims_str(int ndim, const int64_t *dims, char *buf, size_t size) {
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", d ? ", " : "", (long long)dims[d]);
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

static herd_status get_str(decoder *d, const pb_field *f, const char *what, onnx_str *out) {
    if (f->wire != PB_LEN) return malformed(d, what, "expected a string");
    if (f->len > ONNX_MAX_STR)
        return fail(d, HERD_EFORMAT, "%s is %zu bytes long (at most %d)", what, f->len, ONNX_MAX_STR);
    *out = (onnx_str){(const char *)f->data, f->len};
    return HERD_OK;
}

/* Repeated int64 in either encoding: one packed field or one varint per field. */
static herd_status add_ints(decoder *d, const pb_field *f, int64_t *v, int *n, int cap, const char *what) {
    if (f->wire == PB_VARINT) {
        if (*n >= cap) return fail(d, HERD_EUNSUPPORTED, "%s has more than %d values", what, cap);
        v[(*n)++] = (int64_t)f->u;
        return HERD_OK;
    }
    if (f->wire != PB_LEN) return malformed(d, what, "expected integers");
    pb_reader r = pb_reader_of(f->data, f->len);
    while (r.p < r.end) {
        uint64_t u;
        if (!herdi_pb_read_varint(&r, &u)) return malformed(d, what, "truncated packed varint");
        if (*n >= cap) return fail(d, HERD_EUNSUPPORTED, "%s has more than %d values", what, cap);
        v[(*n)++] = (int64_t)u;
    }
    return HERD_OK;
}

static herd_status parse_tensor(decoder *d, const uint8_t *data, size_t len, onnx_tensor *t) {
    memset(t, 0, sizeof *t);
    t->msg = data, t->msg_len = len;
    pb_reader r = pb_reader_of(data, len);
    pb_field f;
    const char *why = NULL;
    int k;
    herd_status st;
    while ((k = herdi_pb_next(&r, &f, &why)) == 1) {
        if (f.number == TENSOR_DIMS) {
            if ((st = add_ints(d, &f, t->dims, &t->ndim, ONNX_MAX_DIMS, "tensor dims"))) return st;
        } else if (f.number == TENSOR_DATA_TYPE && f.wire == PB_VARINT) {
            t->dtype = (int)f.u;
        } else if (f.number == TENSOR_NAME) {
            if ((st = get_str(d, &f, "tensor name", &t->name))) return st;
        } else if (f.number == TENSOR_DATA_LOCATION && f.wire == PB_VARINT) {
            t->external = f.u == 1;
        }
    }
    if (k < 0) return malformed(d, "tensor", why);
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0 || t->dims[i] > ((int64_t)1 << 40))
            return fail(d, HERD_EFORMAT, "tensor '%s': dimension %d is %lld", ONNX_SHOW(t->name), i,
                        (long long)t->dims[i]);
        if (t->dims[i] && t->numel > ((int64_t)1 << 40) / t->dims[i])
            return fail(d, HERD_EFORMAT, "tensor '%s': size overflows", ONNX_SHOW(t->name));
        t->numel *= t->dims[i];
    }
    return HERD_OK;
}

static herd_status add_tensor(decoder *d, const uint8_t *data, size_t len, int *idx) {
    onnx_graph *g = d->g;
    if (g->n_tensors >= g->cap_tensors) return fail(d, HERD_EUNSUPPORTED, "more than %d tensors", g->cap_tensors);
    herd_status st = parse_tensor(d, data, len, &g->tensors[g->n_tensors]);
    if (st == HERD_OK) *idx = g->n_tensors++;
    return st;
}

static size_t dtype_size(int dtype) {
    switch (dtype) {
    case ONNX_T_FLOAT:
    case ONNX_T_INT32: return 4;
    case ONNX_T_INT64:
    case ONNX_T_DOUBLE: return 8;
    default: return 0;
    }
}

herd_status herdi_onnx_tensor_values(const onnx_graph *g, const onnx_tensor *t, float *fout, double *dout,
                               herd_error *err) {
    decoder dd = {(onnx_graph *)g, err}, *d = &dd;
    size_t es = dtype_size(t->dtype);
    if (t->external)
        return fail(d, HERD_EUNSUPPORTED, "tensor '%s' keeps its data in an external file", ONNX_SHOW(t->name));
    if (!es || (fout && t->dtype != ONNX_T_FLOAT))
        return fail(d, HERD_EUNSUPPORTED, "tensor '%s' has data type %d (herd reads float32 weights)",
                    ONNX_SHOW(t->name), t->dtype);
    int typed_field = t->dtype == ONNX_T_FLOAT   ? TENSOR_FLOAT_DATA
                      : t->dtype == ONNX_T_INT32 ? TENSOR_INT32_DATA
                      : t->dtype == ONNX_T_INT64 ? TENSOR_INT64_DATA
                                                 : TENSOR_DOUBLE_DATA;
    pb_reader r = pb_reader_of(t->msg, t->msg_len);
    pb_field f;
    const char *why = NULL;
    int64_t got = 0;
    int raw = 0;
    while (herdi_pb_next(&r, &f, &why) == 1) {
        if (f.number == TENSOR_RAW_DATA && f.wire == PB_LEN) {
            if (f.len / es != (size_t)t->numel || f.len % es)
                return fail(d, HERD_EFORMAT, "tensor '%s': raw_data holds %zu bytes but its shape needs %lld",
                            ONNX_SHOW(t->name), f.len, (long long)t->numel * (long long)es);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            if (t->dtype == ONNX_T_FLOAT && fout && !dout) { /* the bytes are the floats already */
                memcpy(fout, f.data, (size_t)t->numel * 4);
                raw = 1;
                got = t->numel;
                continue;
            }
#endif
            for (int64_t i = 0; i < t->numel; i++) {
                const uint8_t *b = f.data + (size_t)i * es;
                uint64_t u = 0;
                for (size_t k = 0; k < es; k++) u |= (uint64_t)b[k] << (8 * k);
                double v;
                if (t->dtype == ONNX_T_FLOAT) {
                    uint32_t u32 = (uint32_t)u;
                    float x;
                    memcpy(&x, &u32, 4);
                    if (fout) fout[i] = x;
                    v = x;
                } else if (t->dtype == ONNX_T_DOUBLE) {
                    memcpy(&v, &u, 8);
                } else if (t->dtype == ONNX_T_INT32) {
                    v = (double)(int32_t)(uint32_t)u;
                } else {
                    v = (double)(int64_t)u;
                }
                if (dout) dout[i] = v;
            }
            raw = 1;
            got = t->numel;
        } else if ((int)f.number == typed_field && !raw) {
            /* packed (PB_LEN) or one value per field */
            pb_reader v = f.wire == PB_LEN ? pb_reader_of(f.data, f.len) : (pb_reader){0};
            int one = f.wire != PB_LEN;
            while (one || v.p < v.end) {
                pb_field e = f;
                if (!one) {
                    if (t->dtype == ONNX_T_FLOAT || t->dtype == ONNX_T_DOUBLE) {
                        size_t n = t->dtype == ONNX_T_FLOAT ? 4 : 8;
                        if ((size_t)(v.end - v.p) < n) return malformed(d, "tensor data", "truncated packed value");
                        e.u = 0;
                        for (size_t k = 0; k < n; k++) e.u |= (uint64_t)v.p[k] << (8 * k);
                        v.p += n;
                    } else if (!herdi_pb_read_varint(&v, &e.u)) {
                        return malformed(d, "tensor data", "truncated packed varint");
                    }
                }
                double x = t->dtype == ONNX_T_FLOAT    ? herdi_pb_as_float(&e)
                           : t->dtype == ONNX_T_DOUBLE ? herdi_pb_as_double(&e)
                           : t->dtype == ONNX_T_INT32  ? (double)(int32_t)(uint32_t)e.u
                                                       : (double)(int64_t)e.u;
                if (got >= t->numel)
                    return fail(d, HERD_EFORMAT, "tensor '%s' holds more values than its shape", ONNX_SHOW(t->name));
                if (fout) fout[got] = (float)x;
                if (dout) dout[got] = x;
                got++;
                if (one) break;
            }
        }
    }
    if (got != t->numel)
        return fail(d, HERD_EFORMAT, "tensor '%s' holds %lld values but its shape needs %lld", ONNX_SHOW(t->name),
                    (long long)got, (long long)t->numel);
    return HERD_OK;
}

static herd_status parse_attr(decoder *d, const pb_field *fa, onnx_attr *a) {
    memset(a, 0, sizeof *a);
    a->tensor = -1;
    pb_reader r = pb_reader_of(fa->data, fa->len);
    pb_field f;
    const char *why = NULL;
    int k;
    herd_status st;
    while ((k = herdi_pb_next(&r, &f, &why)) == 1) {
        if (f.number == ATTR_NAME) {
            if ((st = get_str(d, &f, "attribute name", &a->name))) return st;
        } else if (f.number == ATTR_F && f.wire == PB_FIXED32) {
            a->f = herdi_pb_as_float(&f), a->has_f = 1;
        } else if (f.number == ATTR_I && f.wire == PB_VARINT) {
            a->i = (int64_t)f.u, a->has_i = 1;
        } else if (f.number == ATTR_S) {
            if ((st = get_str(d, &f, "attribute string", &a->s))) return st;
            a->has_s = 1;
        } else if (f.number == ATTR_INTS) {
            if ((st = add_ints(d, &f, a->ints, &a->n_ints, ONNX_MAX_ATTR_INTS, "attribute ints"))) return st;
            a->has_ints = 1;
        } else if (f.number == ATTR_T && f.wire == PB_LEN) {
            if (a->tensor >= 0) return malformed(d, "attribute", "two tensor values");
            if ((st = add_tensor(d, f.data, f.len, &a->tensor))) return st;
        }
    }
    if (k < 0) return malformed(d, "attribute", why);
    return HERD_OK;
}

/* Counts a node's inputs, outputs and attributes so its arrays are sized to it, within bounds. */
static herd_status parse_node(decoder *d, const pb_field *fn, onnx_node *n) {
    memset(n, 0, sizeof *n);
    pb_reader r = pb_reader_of(fn->data, fn->len);
    pb_field f;
    const char *why = NULL;
    int k, n_io[2] = {0, 0}, n_attr = 0;
    while ((k = herdi_pb_next(&r, &f, &why)) == 1) {
        if (f.number == NODE_INPUT || f.number == NODE_OUTPUT) n_io[f.number == NODE_OUTPUT]++;
        if (f.number == NODE_ATTRIBUTE) n_attr++;
    }
    if (k < 0) return malformed(d, "node", why);
    if (n_io[0] > ONNX_MAX_NODE_IO || n_io[1] > ONNX_MAX_NODE_IO)
        return fail(d, HERD_EUNSUPPORTED, "a node has %d inputs and %d outputs (at most %d each)", n_io[0], n_io[1],
                    ONNX_MAX_NODE_IO);
    if (n_attr > ONNX_MAX_ATTRS)
        return fail(d, HERD_EUNSUPPORTED, "a node has %d attributes (at most %d)", n_attr, ONNX_MAX_ATTRS);
    n->in = calloc((size_t)(n_io[0] + n_io[1]) + 1, sizeof *n->in);
    n->attr = calloc((size_t)n_attr + 1, sizeof *n->attr);
    if (!n->in || !n->attr) return fail(d, HERD_ENOMEM, "out of memory");
    n->out = n->in + n_io[0];
    r = pb_reader_of(fn->data, fn->len);
    herd_status st = HERD_OK;
    while (st == HERD_OK && herdi_pb_next(&r, &f, &why) == 1) {
        switch (f.number) {
        case NODE_INPUT: st = get_str(d, &f, "node input", &n->in[n->n_in++]); break;
        case NODE_OUTPUT: st = get_str(d, &f, "node output", &n->out[n->n_out++]); break;
        case NODE_NAME: st = get_str(d, &f, "node name", &n->name); break;
        case NODE_OP_TYPE: st = get_str(d, &f, "op_type", &n->op); break;
        case NODE_DOMAIN: st = get_str(d, &f, "node domain", &n->domain); break;
        case NODE_ATTRIBUTE:
            if (f.wire != PB_LEN) return malformed(d, "node attribute", "expected a message");
            st = parse_attr(d, &f, &n->attr[n->n_attr++]);
            break;
        default: break;
        }
    }
    if (st) return st;
    if (n->op.n == 0) return malformed(d, "node", "no op_type");
    return HERD_OK;
}

/* ValueInfoProto -> name, element type and dims (-1 where symbolic). */
static herd_status parse_io(decoder *d, const pb_field *fv, onnx_io *io) {
    memset(io, 0, sizeof *io);
    pb_reader r = pb_reader_of(fv->data, fv->len);
    pb_field f;
    const char *why = NULL;
    int k;
    herd_status st;
    while ((k = herdi_pb_next(&r, &f, &why)) == 1) {
        if (f.number == VI_NAME) {
            if ((st = get_str(d, &f, "graph input name", &io->name))) return st;
        } else if (f.number == VI_TYPE && f.wire == PB_LEN) {
            pb_reader tr = pb_reader_of(f.data, f.len);
            pb_field tf;
            while ((k = herdi_pb_next(&tr, &tf, &why)) == 1) {
                if (tf.number != TYPE_TENSOR || tf.wire != PB_LEN) continue;
                pb_reader ttr = pb_reader_of(tf.data, tf.len);
                pb_field ttf;
                while ((k = herdi_pb_next(&ttr, &ttf, &why)) == 1) {
                    if (ttf.number == TTENSOR_ELEM_TYPE && ttf.wire == PB_VARINT) io->elem_type = (int)ttf.u;
                    if (ttf.number != TTENSOR_SHAPE || ttf.wire != PB_LEN) continue;
                    pb_reader sr = pb_reader_of(ttf.data, ttf.len);
                    pb_field sf;
                    while ((k = herdi_pb_next(&sr, &sf, &why)) == 1) {
                        if (sf.number != SHAPE_DIM || sf.wire != PB_LEN) continue;
                        if (io->ndim >= ONNX_MAX_DIMS)
                            return fail(d, HERD_EUNSUPPORTED, "a graph input has more than %d dimensions",
                                        ONNX_MAX_DIMS);
                        int64_t v = -1;
                        pb_reader dr = pb_reader_of(sf.data, sf.len);
                        pb_field df;
                        while ((k = herdi_pb_next(&dr, &df, &why)) == 1)
                            if (df.number == DIM_VALUE && df.wire == PB_VARINT) v = (int64_t)df.u;
                        if (k < 0) return malformed(d, "tensor shape", why);
                        io->dims[io->ndim++] = v;
                    }
                    if (k < 0) return malformed(d, "tensor shape", why);
                }
                if (k < 0) return malformed(d, "tensor type", why);
            }
            if (k < 0) return malformed(d, "type", why);
        }
    }
    if (k < 0) return malformed(d, "graph input", why);
    return HERD_OK;
}

/* Counts nodes and initializers first so the tables are sized to the file, within bounds. */
static herd_status alloc_tables(decoder *d, const uint8_t *data, size_t len) {
    onnx_graph *g = d->g;
    pb_reader r = pb_reader_of(data, len);
    pb_field f;
    const char *why = NULL;
    int k;
    int64_t nodes = 0, inits = 0;
    while ((k = herdi_pb_next(&r, &f, &why)) == 1) {
        nodes += f.number == GRAPH_NODE;
        inits += f.number == GRAPH_INITIALIZER;
    }
    if (k < 0) return malformed(d, "graph", why);
    if (nodes > ONNX_MAX_NODES)
        return fail(d, HERD_EUNSUPPORTED, "%lld nodes (herd reads at most %d)", (long long)nodes, ONNX_MAX_NODES);
    if (inits + nodes > ONNX_MAX_TENSORS)
        return fail(d, HERD_EUNSUPPORTED, "%lld initializers (herd reads at most %d)", (long long)inits,
                    ONNX_MAX_TENSORS);
    g->cap_tensors = (int)(inits + nodes); /* a Constant node adds one */
    g->nodes = herd_calloc_array((size_t)nodes + 1, sizeof *g->nodes);
    g->tensors = herd_calloc_array((size_t)g->cap_tensors + 1, sizeof *g->tensors);
    if (!g->nodes || !g->tensors) return fail(d, HERD_ENOMEM, "out of memory");
    return HERD_OK;
}

static herd_status parse_graph(decoder *d, const uint8_t *data, size_t len) {
    onnx_graph *g = d->g;
    pb_reader r = pb_reader_of(data, len);
    pb_field f;
    const char *why = NULL;
    herd_status st = alloc_tables(d, data, len);
    if (st) return st;
    /* initializers first, so they come before the tensors of Constant nodes */
    while (st == HERD_OK && herdi_pb_next(&r, &f, &why) == 1) {
        if (f.wire != PB_LEN) continue;
        if (f.number == GRAPH_INITIALIZER) {
            int idx;
            st = add_tensor(d, f.data, f.len, &idx);
        } else if (f.number == GRAPH_INPUT || f.number == GRAPH_OUTPUT) {
            int *cnt = f.number == GRAPH_INPUT ? &g->n_inputs : &g->n_outputs;
            if (*cnt >= ONNX_MAX_GRAPH_IO)
                return fail(d, HERD_EUNSUPPORTED, "more than %d graph inputs or outputs", ONNX_MAX_GRAPH_IO);
            st = parse_io(d, &f, f.number == GRAPH_INPUT ? &g->inputs[(*cnt)++] : &g->outputs[(*cnt)++]);
        }
    }
    g->n_initializers = g->n_tensors;
    r = pb_reader_of(data, len);
    while (st == HERD_OK && herdi_pb_next(&r, &f, &why) == 1)
        if (f.wire == PB_LEN && f.number == GRAPH_NODE) st = parse_node(d, &f, &g->nodes[g->n_nodes++]);
    return st;
}

static herd_status parse_model(decoder *d) {
    onnx_graph *g = d->g;
    pb_reader r = pb_reader_of(g->file, g->file_len);
    pb_field f;
    const char *why = NULL;
    int k, have_graph = 0;
    const uint8_t *graph = NULL;
    size_t graph_len = 0;
    while ((k = herdi_pb_next(&r, &f, &why)) == 1) {
        if (f.number == MODEL_GRAPH && f.wire == PB_LEN) graph = f.data, graph_len = f.len, have_graph = 1;
        if (f.number == MODEL_OPSET_IMPORT && f.wire == PB_LEN) {
            pb_reader o = pb_reader_of(f.data, f.len);
            pb_field of;
            onnx_str domain = {"", 0};
            uint64_t version = 0;
            while ((k = herdi_pb_next(&o, &of, &why)) == 1) {
                if (of.number == OPSET_DOMAIN && of.wire == PB_LEN) domain = (onnx_str){(const char *)of.data, of.len};
                if (of.number == OPSET_VERSION && of.wire == PB_VARINT) version = of.u;
            }
            if (k < 0) return malformed(d, "opset_import", why);
            if (domain.n == 0 || herdi_onnx_str_eq(domain, "ai.onnx")) g->opset = version > 1000 ? 1000 : (int64_t)version;
        }
    }
    if (k < 0) return malformed(d, "model", why);
    if (!have_graph) return fail(d, HERD_EFORMAT, "not an ONNX model (no graph)");
    return parse_graph(d, graph, graph_len);
}

void herdi_onnx_graph_free(onnx_graph *g) {
    if (!g) return;
    for (int i = 0; g->nodes && i < g->n_nodes; i++) {
        free(g->nodes[i].in);
        free(g->nodes[i].attr);
    }
    free(g->nodes);
    free(g->tensors);
    if (g->mapped) munmap(g->file, g->file_len);
    else free(g->file);
    const char *path = g->path;
    memset(g, 0, sizeof *g);
    g->path = path;
}

static herd_status decode_owned(onnx_graph *g, herd_error *err) {
    decoder d = {g, err};
    herd_status st = g->file_len ? parse_model(&d) : fail(&d, HERD_EFORMAT, "empty file");
    if (st) herdi_onnx_graph_free(g);
    return st;
}

herd_status herdi_onnx_decode_bytes(onnx_graph *g, const char *path, const uint8_t *data, size_t n, herd_error *err) {
    memset(g, 0, sizeof *g);
    g->path = path;
    g->file = malloc(n ? n : 1);
    if (!g->file) return herd_fail(err, HERD_ENOMEM, "%s: out of memory for %zu bytes", path, n);
    if (n) memcpy(g->file, data, n);
    g->file_len = n;
    return decode_owned(g, err);
}

void herdi_onnx_tensor_done(const onnx_graph *g, const onnx_tensor *t) {
    if (!g->mapped || !t->msg || t->msg_len == 0) return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)t->msg, e = a + t->msg_len, ps = pg > 0 ? (uintptr_t)pg : 4096;
    a = (a + ps - 1) / ps * ps, e = e / ps * ps; /* whole pages inside the tensor only */
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

herd_status herdi_onnx_decode_file(onnx_graph *g, const char *path, herd_error *err) {
    memset(g, 0, sizeof *g);
    g->path = path;
    decoder d = {g, err};
    int fd;
    struct stat sb;
    herd_status st = herdi_input_open(path, &fd, &sb, err);
    if (st) return st;
    if ((uint64_t)sb.st_size > ONNX_MAX_FILE_BYTES) {
        close(fd);
        return fail(&d, HERD_EUNSUPPORTED, "%lld bytes: larger than protobuf's 2 GiB limit", (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    if (n == 0) {
        close(fd);
        return fail(&d, HERD_EFORMAT, "empty file");
    }
    void *map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return fail(&d, HERD_EIO, "cannot map %zu bytes: %s", n, strerror(errno));
    g->file = map;
    g->mapped = 1;
    g->file_len = n;
    return decode_owned(g, err);
}
