/* The fields block of version 2 herd shards (shard_format.h, docs/DATA.md): the dtype and dims
 * of each input field and of the target, so a shard stores samples of several typed fields
 * (dense features beside categorical ids) and f32 targets. */
#include <stdio.h>
#include <string.h>

#include "data/shard_format.h"
#include "io/crc32c.h"

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t herdi_shard_fields_block_bytes(int n) { return 4 + (size_t)(n + 1) * SHARD_FIELD_BYTES + 4; }

void herdi_shard_fields_of(shard_fields *sf, const herd_dataset *ds) {
    memset(sf, 0, sizeof *sf);
    sf->n = herd_dataset_field_count(ds);
    for (int k = 0; k < sf->n; k++) sf->field[k] = *herd_dataset_field(ds, k);
    sf->y = ds->y;
    sf->sample_bytes = herd_dataset_sample_bytes(ds);
    sf->target_bytes = herd_tensor_bytes(&ds->y);
}

static void put_desc(uint8_t *p, const herd_tensor *t) {
    put_u32(p, (uint32_t)t->dtype);
    put_u32(p + 4, (uint32_t)t->ndim);
    for (int d = 0; d < 3; d++) put_u32(p + 8 + 4 * d, d < t->ndim ? (uint32_t)t->dims[d] : 1u);
}

void herdi_shard_fields_encode(uint8_t *out, const shard_fields *sf) {
    put_u32(out, (uint32_t)sf->n);
    for (int k = 0; k <= sf->n; k++) put_desc(out + 4 + (size_t)k * SHARD_FIELD_BYTES, k < sf->n ? &sf->field[k] : &sf->y);
    size_t body = herdi_shard_fields_block_bytes(sf->n) - 4;
    put_u32(out + body, herd_crc32c(0, out, body));
}

/* One descriptor; 0 with why filled when it is not a field herd stores. bytes: the field's size. */
static int get_desc(const uint8_t *p, herd_tensor *t, int target, size_t *bytes, char *why, size_t why_size) {
    uint32_t dtype = get_u32(p), ndim = get_u32(p + 4);
    int ok_dtype = dtype == HERD_F32 || dtype == HERD_I32 || (!target && dtype == HERD_U8);
    if (!ok_dtype || ndim > 3) {
        snprintf(why, why_size, "%s of dtype %u and %u dims (expected u8, f32 or i32 with up to 3 dims)",
                 target ? "target" : "field", (unsigned)dtype, (unsigned)ndim);
        return 0;
    }
    int64_t dims[3];
    size_t n = 1;
    for (uint32_t d = 0; d < ndim; d++) {
        dims[d] = get_u32(p + 8 + 4 * d);
        if (dims[d] < 1 || (size_t)dims[d] > ((size_t)1 << 30) / n) {
            snprintf(why, why_size, "%s dim %u is %lld (expected 1..2^30 values in all)", target ? "target" : "field",
                     (unsigned)d, (long long)dims[d]);
            return 0;
        }
        n *= (size_t)dims[d];
    }
    *t = herd_tensor_make((herd_dtype)dtype, (int)ndim, dims, NULL);
    *bytes = herd_tensor_bytes(t);
    return 1;
}

herd_status herdi_shard_fields_decode(const uint8_t *p, size_t avail, shard_fields *sf, char *why, size_t why_size) {
    memset(sf, 0, sizeof *sf);
    uint32_t n = avail >= 4 ? get_u32(p) : 0;
    if (n < 1 || n > HERD_MAX_FIELDS) {
        snprintf(why, why_size, "%u fields (expected 1..%d)", (unsigned)n, HERD_MAX_FIELDS);
        return HERD_EFORMAT;
    }
    size_t bytes = herdi_shard_fields_block_bytes((int)n), body = bytes - 4;
    if (avail < bytes) {
        snprintf(why, why_size, "truncated fields block: %zu bytes, the file has %zu", bytes, avail);
        return HERD_EFORMAT;
    }
    uint32_t crc = herd_crc32c(0, p, body);
    if (crc != get_u32(p + body)) {
        snprintf(why, why_size, "fields block CRC mismatch (stored %08x, computed %08x)", (unsigned)get_u32(p + body),
                 (unsigned)crc);
        return HERD_EFORMAT;
    }
    sf->n = (int)n;
    for (uint32_t k = 0; k <= n; k++) {
        size_t b;
        if (!get_desc(p + 4 + (size_t)k * SHARD_FIELD_BYTES, k < n ? &sf->field[k] : &sf->y, k == n, &b, why, why_size))
            return HERD_EFORMAT;
        if (k < n) sf->sample_bytes += b;
        else sf->target_bytes = b;
    }
    return HERD_OK;
}

static int same_tensor(const herd_tensor *a, const herd_tensor *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d]) return 0;
    return 1;
}

int herdi_shard_fields_same(const shard_fields *a, const shard_fields *b) {
    if (a->n != b->n || !same_tensor(&a->y, &b->y)) return 0;
    for (int k = 0; k < a->n; k++)
        if (!same_tensor(&a->field[k], &b->field[k])) return 0;
    return 1;
}
