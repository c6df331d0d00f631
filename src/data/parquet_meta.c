/* Parquet footer reader (parquet_meta.h): FileMetaData's schema flattened into leaf columns
 * with their levels, and each row group's column chunks bounded by the file. Fields herd does
 * not use are skipped by the Thrift reader. */
#include "data/parquet_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/thrift_compact.h"

#define MAX_NESTING 32

typedef struct schema_el {
    const uint8_t *name;
    size_t name_len;
    int type, type_length, repetition, num_children, converted;
    int logical;  /* LogicalType union field id, 0 when absent */
    int int_bits, int_signed, scale;
} schema_el;

static const char *const physical_names[] = {"BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY",
                                             "FIXED_LEN_BYTE_ARRAY"};
static const char *const codec_names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD", "LZ4_RAW"};
static const char *const encoding_names[] = {"PLAIN", "GROUP_VAR_INT", "PLAIN_DICTIONARY", "RLE", "BIT_PACKED",
                                             "DELTA_BINARY_PACKED", "DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY",
                                             "RLE_DICTIONARY", "BYTE_STREAM_SPLIT"};

const char *herdi_pq_physical_name(int t) { return t >= 0 && t < 8 ? physical_names[t] : "unknown type"; }
const char *herdi_pq_codec_name(int c) { return c >= 0 && c < 8 ? codec_names[c] : "unknown codec"; }
const char *herdi_pq_encoding_name(int e) { return e >= 0 && e < 10 ? encoding_names[e] : "unknown encoding"; }

static uint32_t le32(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static herd_status thrift_bad(const tc_reader *r, const char *what, const char *path, herd_error *err) {
    return herd_fail(err, HERD_EFORMAT, "%s: bad footer: %s at byte %zu of %s", path, r->why ? r->why : "malformed",
                     r->at, what);
}

/* LogicalType: a union; the field set says which. DECIMAL's scale (5.1), INTEGER's bit width
 * and signedness (10.1, 10.2) are kept. */
static void on_logical_field(void *ctx, int16_t sub, int64_t v) {
    schema_el *e = ctx;
    if (e->logical == 5 && sub == 1) e->scale = (int)(v < 0 || v > 76 ? -1 : v);
    if (e->logical == 10 && sub == 1) e->int_bits = (int)(v < 0 || v > 64 ? -1 : v);
    if (e->logical == 10 && sub == 2) e->int_signed = (int)v;
}

static void read_logical(tc_reader *r, schema_el *e) {
    int16_t id;
    int t;
    if (!herdi_tc_struct_begin(r)) return;
    while (herdi_tc_field(r, &id, &t)) {
        if (t != TC_STRUCT) {
            herdi_tc_skip(r, t);
            continue;
        }
        e->logical = id;
        herdi_tc_struct_ints(r, on_logical_field, e);
    }
    herdi_tc_struct_end(r);
}

static void read_schema_el(tc_reader *r, schema_el *e) {
    int16_t id;
    int t;
    memset(e, 0, sizeof *e);
    e->type = e->repetition = e->converted = -1;
    if (!herdi_tc_struct_begin(r)) return;
    while (herdi_tc_field(r, &id, &t)) {
        int64_t v;
        int ok = 0;
        if (id == 4 && t == TC_BINARY) {
            herdi_tc_binary(r, &e->name, &e->name_len);
            continue;
        }
        if (id == 10 && t == TC_STRUCT) {
            read_logical(r, e);
            continue;
        }
        if (!herdi_tc_int_field(r, t, &v, &ok)) break;
        if (!ok) continue;
        int iv = v < INT32_MIN || v > INT32_MAX ? -2 : (int)v;
        switch (id) {
        case 1: e->type = iv; break;
        case 2: e->type_length = iv; break;
        case 3: e->repetition = iv; break;
        case 5: e->num_children = iv; break;
        case 6: e->converted = iv; break;
        case 7: if (!e->logical) e->scale = iv; break;
        default: break;
        }
    }
    herdi_tc_struct_end(r);
}

typedef struct leaf_build {
    const schema_el *els;
    int nels, next;
    pq_leaf *leaves;
    int nleaves, cap;
    const char *path;
    herd_error *err;
} leaf_build;

/* How a leaf's values read as numbers, from its logical (else converted) type. */
static int leaf_as(const schema_el *e, int *bits) {
    *bits = 0;
    if (e->logical == 10) {
        *bits = e->int_bits;
        return e->int_signed ? PQ_AS_PLAIN : PQ_AS_UNSIGNED;
    }
    if (e->logical == 5) return PQ_AS_DECIMAL;
    if (e->logical == 15) return PQ_AS_FLOAT16;
    if (e->logical == 1 || e->logical == 4 || e->logical == 12) return PQ_AS_STRING;
    switch (e->converted) {
    case 0: case 4: case 19: return PQ_AS_STRING;          /* UTF8, ENUM, JSON */
    case 5: return PQ_AS_DECIMAL;
    case 11: *bits = 8; return PQ_AS_UNSIGNED;             /* UINT_8 */
    case 12: *bits = 16; return PQ_AS_UNSIGNED;
    case 13: *bits = 32; return PQ_AS_UNSIGNED;
    case 14: *bits = 64; return PQ_AS_UNSIGNED;
    case 15: *bits = 8; return PQ_AS_PLAIN;                /* INT_8 */
    case 16: *bits = 16; return PQ_AS_PLAIN;
    default: break;
    }
    return e->type == PQ_BYTE_ARRAY || e->type == PQ_FIXED_LEN_BYTE_ARRAY ? PQ_AS_BYTES : PQ_AS_PLAIN;
}

static char *join_path(const char *prefix, const uint8_t *name, size_t len) {
    size_t n = prefix ? strlen(prefix) + 1 : 0;
    char *s = malloc(n + len + 1);
    if (!s) return NULL;
    if (prefix) memcpy(s, prefix, n - 1), s[n - 1] = '.';
    memcpy(s + n, name, len);
    s[n + len] = 0;
    return s;
}

/* Element b->next and its subtree, under a parent at levels (def, rep, rep_def). */
static herd_status build_leaves(leaf_build *b, const char *prefix, int depth, int def, int rep, int rep_def,
                                int top_first) {
    if (b->next >= b->nels)
        return herd_fail(b->err, HERD_EFORMAT, "%s: bad footer: the schema's children outnumber its %d elements",
                         b->path, b->nels);
    if (depth > MAX_NESTING)
        return herd_fail(b->err, HERD_EFORMAT, "%s: bad footer: schema nested deeper than %d", b->path, MAX_NESTING);
    const schema_el *e = &b->els[b->next++];
    if (!e->name)
        return herd_fail(b->err, HERD_EFORMAT, "%s: bad footer: schema element %d has no name", b->path, b->next - 1);
    if (e->repetition == PQ_OPTIONAL) def++;
    if (e->repetition == PQ_REPEATED) def++, rep++, rep_def = def;
    char *path = join_path(prefix, e->name, e->name_len);
    if (!path) return herd_fail(b->err, HERD_ENOMEM, "%s: out of memory", b->path);
    if (depth == 1) top_first = b->nleaves;
    herd_status st = HERD_OK;
    if (e->num_children > 0) {
        if (e->num_children > b->nels - b->next) {
            free(path);
            return herd_fail(b->err, HERD_EFORMAT, "%s: bad footer: '%.*s' claims %d children, %d elements are left",
                             b->path, (int)e->name_len, (const char *)e->name, e->num_children, b->nels - b->next);
        }
        for (int c = 0; c < e->num_children && st == HERD_OK; c++)
            st = build_leaves(b, path, depth + 1, def, rep, rep_def, top_first);
        free(path);
        return st;
    }
    if (e->type < PQ_BOOLEAN || e->type > PQ_FIXED_LEN_BYTE_ARRAY ||
        (e->type == PQ_FIXED_LEN_BYTE_ARRAY && (e->type_length <= 0 || e->type_length > (1 << 24)))) {
        st = herd_fail(b->err, HERD_EFORMAT, "%s: bad footer: column '%s' has physical type %d (length %d)", b->path,
                       path, e->type, e->type_length);
        free(path);
        return st;
    }
    if (b->nleaves == b->cap) {
        int cap = b->cap ? 2 * b->cap : 16;
        pq_leaf *g = realloc(b->leaves, (size_t)cap * sizeof *g);
        if (!g) {
            free(path);
            return herd_fail(b->err, HERD_ENOMEM, "%s: out of memory", b->path);
        }
        b->leaves = g, b->cap = cap;
    }
    pq_leaf *l = &b->leaves[b->nleaves++];
    memset(l, 0, sizeof *l);
    l->path = path;
    size_t top_len = depth == 1 ? strlen(path) : strcspn(path, ".");
    l->top = join_path(NULL, (const uint8_t *)path, top_len);
    if (!l->top) return herd_fail(b->err, HERD_ENOMEM, "%s: out of memory", b->path);
    l->physical = e->type;
    l->type_length = e->type_length;
    l->as = leaf_as(e, &l->int_bits);
    /* a logical type that does not fit the physical one is ignored: numbers stay numbers and
     * byte arrays bytes (writers do not produce these; damaged files might) */
    int bytes = e->type == PQ_BYTE_ARRAY || e->type == PQ_FIXED_LEN_BYTE_ARRAY;
    int fits = l->as == PQ_AS_PLAIN || (l->as == PQ_AS_STRING && bytes) || (l->as == PQ_AS_BYTES && bytes) ||
               (l->as == PQ_AS_UNSIGNED && (e->type == PQ_INT32 || e->type == PQ_INT64)) ||
               (l->as == PQ_AS_DECIMAL && (bytes || e->type == PQ_INT32 || e->type == PQ_INT64)) ||
               (l->as == PQ_AS_FLOAT16 && e->type == PQ_FIXED_LEN_BYTE_ARRAY && e->type_length == 2);
    if (!fits) l->as = bytes ? PQ_AS_BYTES : PQ_AS_PLAIN, l->int_bits = 0;
    if (l->as == PQ_AS_PLAIN && bytes) l->as = PQ_AS_BYTES;
    l->scale = e->scale < 0 ? 0 : e->scale;
    l->max_def = def, l->max_rep = rep, l->rep_def = rep_def;
    for (int i = top_first; i < b->nleaves; i++) b->leaves[i].top_leaves = b->nleaves - top_first;
    if (l->as == PQ_AS_DECIMAL && (e->scale < 0 || e->scale > 38))
        return herd_fail(b->err, HERD_EFORMAT, "%s: bad footer: column '%s' has DECIMAL scale %d", b->path, path,
                         e->scale);
    return HERD_OK;
}

/* ColumnMetaData: type (1), codec (4), num_values (5), total_compressed_size (7),
 * data_page_offset (9), dictionary_page_offset (11). */
typedef struct column_meta {
    pq_chunk *c;
    int type;
    int64_t data_off, dict_off, compressed;
} column_meta;

static void on_column_meta(void *ctx, int16_t id, int64_t v) {
    column_meta *m = ctx;
    switch (id) {
    case 1: m->type = v < 0 || v > 7 ? -1 : (int)v; break;
    case 4: m->c->codec = v < 0 || v > 1000 ? 1000 : (int)v; break;
    case 5: m->c->num_values = v; break;
    case 7: m->compressed = v; break;
    case 9: m->data_off = v; break;
    case 11: m->dict_off = v; break;
    default: break;
    }
}

/* One RowGroup: its column chunks checked against the schema and the file. */
static herd_status read_rowgroup(tc_reader *r, pq_meta *m, pq_rowgroup *g, int gi, uint64_t data_end,
                                 const char *path, herd_error *err) {
    int16_t id;
    int t, seen_columns = 0;
    g->num_rows = -1;
    if (!herdi_tc_struct_begin(r)) return thrift_bad(r, "a row group", path, err);
    while (herdi_tc_field(r, &id, &t)) {
        if (id == 3 && (t == TC_I64 || t == TC_I32)) {
            herdi_tc_i64(r, &g->num_rows);
            continue;
        }
        if (id != 1 || t != TC_LIST) {
            herdi_tc_skip(r, t);
            continue;
        }
        int et;
        int64_t n;
        if (!herdi_tc_list(r, &et, &n)) break;
        if (et != TC_STRUCT || n != m->nleaves || seen_columns++)
            return herd_fail(err, HERD_EFORMAT, "%s: bad footer: row group %d has %lld column chunks, the schema %d "
                             "leaf columns", path, gi, (long long)n, m->nleaves);
        g->chunks = calloc((size_t)m->nleaves, sizeof *g->chunks);
        if (!g->chunks) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
        for (int c = 0; c < m->nleaves; c++) {
            pq_chunk *ch = &g->chunks[c];
            int has_meta = 0, other_file = 0;
            column_meta cm = {ch, -1, -1, -1, -1};
            int16_t cid;
            int ct;
            ch->num_values = -1;
            if (!herdi_tc_struct_begin(r)) break;
            while (herdi_tc_field(r, &cid, &ct)) {
                if (cid == 1 && ct == TC_BINARY) other_file = 1;
                if (cid == 3 && ct == TC_STRUCT) {
                    has_meta = 1;
                    herdi_tc_struct_ints(r, on_column_meta, &cm);
                } else {
                    herdi_tc_skip(r, ct);
                }
            }
            herdi_tc_struct_end(r);
            if (r->why) return thrift_bad(r, "a column chunk", path, err);
            const char *name = m->leaves[c].path;
            if (other_file)
                return herd_fail(err, HERD_EUNSUPPORTED, "%s: row group %d, column '%s': the chunk is in another "
                                 "file (ColumnChunk.file_path), which herd does not read", path, gi, name);
            if (!has_meta)
                return herd_fail(err, HERD_EUNSUPPORTED, "%s: row group %d, column '%s': no column metadata "
                                 "(encrypted columns are not supported)", path, gi, name);
            int type = cm.type;
            int64_t data_off = cm.data_off, dict_off = cm.dict_off, compressed = cm.compressed;
            if (type != m->leaves[c].physical)
                return herd_fail(err, HERD_EFORMAT, "%s: row group %d, column '%s': chunk type %s, schema type %s",
                                 path, gi, name, herdi_pq_physical_name(type), herdi_pq_physical_name(m->leaves[c].physical));
            /* dictionary_page_offset 0 is "absent" from some writers; the pages start at the
             * dictionary page when there is one */
            int64_t start = dict_off > 0 && dict_off < data_off ? dict_off : data_off;
            if (start < 4 || compressed <= 0 || (uint64_t)start > data_end || (uint64_t)compressed > data_end - (uint64_t)start)
                return herd_fail(err, HERD_EFORMAT, "%s: row group %d, column '%s': pages at byte %lld, %lld bytes, "
                                 "outside the file's %llu data bytes", path, gi, name, (long long)start,
                                 (long long)compressed, (unsigned long long)data_end);
            if (ch->num_values < 0)
                return herd_fail(err, HERD_EFORMAT, "%s: row group %d, column '%s': %lld values", path, gi, name,
                                 (long long)ch->num_values);
            ch->start = (uint64_t)start, ch->len = (uint64_t)compressed;
        }
        if (r->why) break;
    }
    herdi_tc_struct_end(r);
    if (r->why) return thrift_bad(r, "a row group", path, err);
    if (!g->chunks && m->nleaves > 0)
        return herd_fail(err, HERD_EFORMAT, "%s: bad footer: row group %d has no column chunks", path, gi);
    if (g->num_rows < 0)
        return herd_fail(err, HERD_EFORMAT, "%s: bad footer: row group %d has %lld rows", path, gi,
                         (long long)g->num_rows);
    return HERD_OK;
}

void herdi_pq_meta_free(pq_meta *m) {
    if (!m) return;
    for (int i = 0; i < m->nleaves; i++) free(m->leaves[i].path), free(m->leaves[i].top);
    free(m->leaves);
    for (int i = 0; i < m->nrg; i++) free(m->rgs[i].chunks);
    free(m->rgs);
    memset(m, 0, sizeof *m);
}

herd_status herdi_pq_meta_read(pq_meta *m, const uint8_t *file, size_t size, const char *path, herd_error *err) {
    memset(m, 0, sizeof *m);
    if (size < 12)
        return herd_fail(err, HERD_EFORMAT, "%s: %zu bytes is too short for a Parquet file (magic, footer, magic)",
                         path, size);
    if (memcmp(file, "PAR1", 4) != 0)
        return herd_fail(err, HERD_EFORMAT, "%s: bad magic '%.4s' at the start (expected PAR1: not a Parquet file)",
                         path, (const char *)file);
    if (memcmp(file + size - 4, "PARE", 4) == 0)
        return herd_fail(err, HERD_EUNSUPPORTED, "%s: encrypted footer (PARE): encrypted Parquet is not supported",
                         path);
    if (memcmp(file + size - 4, "PAR1", 4) != 0)
        return herd_fail(err, HERD_EFORMAT, "%s: bad magic '%.4s' at the end (expected PAR1: truncated or not Parquet)",
                         path, (const char *)file + size - 4);
    uint32_t flen = le32(file + size - 8);
    if (flen == 0 || flen > size - 12)
        return herd_fail(err, HERD_EFORMAT, "%s: truncated footer: its length field says %u bytes, the file has %zu "
                         "before it", path, flen, size - 12);
    uint64_t data_end = size - 8 - flen;
    tc_reader r;
    herdi_tc_init(&r, file + data_end, flen);
    schema_el *els = NULL;
    int nels = 0, have_schema = 0;
    herd_status st = HERD_OK;
    int16_t id;
    int t;
    leaf_build b = {0};
    if (!herdi_tc_struct_begin(&r)) goto bad;
    while (herdi_tc_field(&r, &id, &t)) {
        int et;
        int64_t n;
        if (id == 2 && t == TC_LIST && !have_schema) {
            if (!herdi_tc_list(&r, &et, &n)) break;
            if (et != TC_STRUCT || n < 1 || n > INT32_MAX) {
                st = herd_fail(err, HERD_EFORMAT, "%s: bad footer: a schema of %lld elements", path, (long long)n);
                goto out;
            }
            els = calloc((size_t)n, sizeof *els);
            if (!els) {
                st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            for (nels = 0; nels < n && !r.why; nels++) read_schema_el(&r, &els[nels]);
            if (r.why) break;
            have_schema = 1;
            /* element 0 is the root; its children are the top-level fields */
            b = (leaf_build){els, nels, 1, NULL, 0, 0, path, err};
            for (int c = 0; c < els[0].num_children && st == HERD_OK && !r.why; c++)
                st = build_leaves(&b, NULL, 1, 0, 0, 0, 0);
            m->leaves = b.leaves, m->nleaves = b.nleaves;
            if (st != HERD_OK) goto out;
            if (b.next != nels) {
                st = herd_fail(err, HERD_EFORMAT, "%s: bad footer: the schema's root has %d children but %d elements "
                               "follow it", path, els[0].num_children, nels - 1);
                goto out;
            }
        } else if (id == 3 && (t == TC_I64 || t == TC_I32)) {
            herdi_tc_i64(&r, &m->num_rows);
        } else if (id == 4 && t == TC_LIST && have_schema && !m->rgs) {
            if (!herdi_tc_list(&r, &et, &n)) break;
            if (et != TC_STRUCT || n > INT32_MAX) {
                st = herd_fail(err, HERD_EFORMAT, "%s: bad footer: row groups list of %lld", path, (long long)n);
                goto out;
            }
            m->rgs = calloc((size_t)n + 1, sizeof *m->rgs);
            if (!m->rgs) {
                st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            for (int g = 0; g < n; g++, m->nrg++)
                if ((st = read_rowgroup(&r, m, &m->rgs[g], g, data_end, path, err)) != HERD_OK) {
                    m->nrg++;
                    goto out;
                }
        } else {
            herdi_tc_skip(&r, t);
        }
    }
    herdi_tc_struct_end(&r);
bad:
    if (r.why) {
        st = thrift_bad(&r, "FileMetaData", path, err);
        goto out;
    }
    if (!have_schema) {
        st = herd_fail(err, HERD_EFORMAT, "%s: bad footer: no schema", path);
        goto out;
    }
    int64_t rows = 0;
    for (int g = 0; g < m->nrg; g++) {
        if (m->rgs[g].num_rows > INT64_MAX - rows) {
            st = herd_fail(err, HERD_EFORMAT, "%s: bad footer: row counts overflow", path);
            goto out;
        }
        rows += m->rgs[g].num_rows;
    }
    if (rows != m->num_rows) {
        st = herd_fail(err, HERD_EFORMAT, "%s: bad footer: the row groups hold %lld rows, the file says %lld", path,
                       (long long)rows, (long long)m->num_rows);
        goto out;
    }
out:
    free(els);
    if (st != HERD_OK) herdi_pq_meta_free(m);
    return st;
}
