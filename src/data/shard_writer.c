/* Writing herd shards (docs/DATA.md): records are read (decoded) by a pool of threads a bounded
 * window at a time and streamed into the file in record order; the index and header, whose
 * room is reserved at the start, are written last, then the file is renamed into place. So a
 * shard is complete or absent after a crash, and herd_shards_write can resume. */
#include "herd/data.h"

#include <errno.h>
#include <glob.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shard_format.h"
#include "io/atomic_file.h"
#include "io/crc32c.h"

#define WINDOW_BYTES ((size_t)64 << 20) /* decoded samples held at once, at most */
#define SMALL_WINDOW_BYTES ((size_t)1 << 20) /* and at least, for samples this small */

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

typedef struct rec_slot {
    uint8_t *stored; /* the sample as get() writes it (its fields' dtypes); SHARD_FIELDS: then its target */
    float *x;        /* the model's f32 input */
    uint8_t *q;      /* its u8 record */
    const void *rec; /* what is written: q, x, or stored (u8 samples kept as they are) */
    int32_t y;
    uint32_t crc;
    int inexact; /* auto on a non-pixel source: a value that is not k/255 */
    herd_status st;
    herd_error err;
    atomic_int ready; /* read, so the writer may take it */
} rec_slot;

/* One pass writing records into a shard file; the window's threads write in record order, one
 * at a time (the one holding the window's writer token), as records become ready. */
typedef struct write_state {
    io_atomic *f;
    const herd_shard_write_options *opt;
    uint8_t *index;
    size_t rec_bytes;
    uint64_t off;     /* where the next record goes */
    int64_t n;        /* records written */
    int64_t *reported;
    int restart;      /* auto found a value that needs f32 */
    herd_status st;
    herd_error err;
} write_state;

typedef struct window {
    const herd_dataset *ds;
    size_t sample, xbytes;
    int raw_u8;          /* u8 samples no view changes: their stored bytes are the u8 record */
    int dtype, quantise; /* quantise: u8 from any value (explicit u8) */
    shard_fields fields; /* SHARD_FIELDS (version 2): records are the stored fields and the target */
    float level[256];    /* k / 255 */
    int64_t first;       /* sample index of slot 0 */
    int count, cap;
    rec_slot *slots;
    atomic_int next;
    atomic_int written; /* slots [0, written) are written (or left out) */
    atomic_int token;   /* 1 while a thread writes */
    write_state *out;
} window;

static void read_slot(window *w, int k) {
    rec_slot *s = &w->slots[k];
    s->inexact = 0;
    if (w->dtype == SHARD_FIELDS) {
        uint8_t *target = s->stored + w->fields.sample_bytes;
        if ((s->st = w->ds->ops->get(w->ds, w->first + k, s->stored, target, &s->err)) != HERD_OK) return;
        s->y = 0;
        s->rec = s->stored;
        s->crc = herd_crc32c(0, s->stored, w->fields.sample_bytes + w->fields.target_bytes);
        return;
    }
    if ((s->st = w->ds->ops->get(w->ds, w->first + k, s->stored, &s->y, &s->err)) != HERD_OK) return;
    if (w->dtype == HERD_SHARD_U8 && w->raw_u8) { /* the bytes k that mean k/255 */
        s->rec = s->stored;
        s->crc = herd_crc32c(0, s->stored, w->sample);
        return;
    }
    herd_dataset_to_f32(w->ds, s->stored, 1, s->x);
    if (w->dtype == HERD_SHARD_F32) {
        s->rec = s->x;
        s->crc = herd_crc32c(0, s->x, w->sample * sizeof(float)); /* records are native float32 */
        return;
    }
    s->rec = s->q;
    /* nearbyint(x * 255) clamped to [0, 255] (NaN to 0), in a loop the compiler vectorises:
     * adding and subtracting 1.5 * 2^23 rounds to the nearest integer, ties to even */
    const float *restrict x = s->x;
    uint8_t *restrict q = s->q;
    size_t n = w->sample; /* a local: the byte stores below may alias anything */
    for (size_t i = 0; i < n; i++) {
        float v = x[i] * 255.0f;
        v = v > 0.0f ? v : 0.0f;
        v = v < 255.0f ? v : 255.0f;
        q[i] = (uint8_t)(int)((v + 12582912.0f) - 12582912.0f);
    }
    if (!w->quantise) { /* auto on a non-pixel source: u8 only if every value is exactly k/255 */
        for (size_t i = 0; i < n; i++)
            if (w->level[q[i]] != x[i]) {
                s->inexact = 1;
                return;
            }
    }
    s->crc = herd_crc32c(0, s->q, w->sample);
}

/* Slot k into the file and its index entry (the writer token held). */
static void write_slot(window *w, int k) {
    write_state *o = w->out;
    rec_slot *s = &w->slots[k];
    if (o->st || o->restart) return;
    if (s->st != HERD_OK) {
        if (!o->opt->skip_bad) {
            o->err = s->err;
            o->st = s->st;
            return;
        }
        int64_t i = w->first + k;
        if (o->opt->on_skip && i >= *o->reported) o->opt->on_skip(o->opt->ctx, &s->err); /* once, if restarted */
        if (i >= *o->reported) *o->reported = i + 1;
        return;
    }
    if (s->inexact) {
        o->restart = 1;
        return;
    }
    if ((o->st = herdi_io_atomic_pwrite(o->f, s->rec, o->rec_bytes, o->off, &o->err))) return;
    uint8_t *e = o->index + (size_t)o->n * ENTRY_BYTES;
    put_le(e, o->off, 8);
    put_le(e + 8, o->rec_bytes, 4);
    put_le(e + 12, (uint32_t)s->y, 4);
    put_le(e + 16, s->crc, 4);
    put_le(e + 20, 0, 4);
    o->off += o->rec_bytes;
    o->n++;
}

/* Writes the ready slots that come next, if no other thread is writing. A slot made ready
 * while another thread held the token is seen by that thread's check after it lets go. */
static void write_ready(window *w) {
    while (!atomic_exchange(&w->token, 1)) {
        int k = atomic_load(&w->written);
        for (; k < w->count && atomic_load_explicit(&w->slots[k].ready, memory_order_acquire); k++) write_slot(w, k);
        atomic_store(&w->written, k);
        atomic_store(&w->token, 0);
        if (k >= w->count || !atomic_load_explicit(&w->slots[k].ready, memory_order_acquire)) break;
    }
}

/* Each pool thread takes the next unread slot until none is left (images differ in cost), and
 * writes what is ready in order, so writing overlaps the other threads' decoding. */
static void read_window(void *ctx, int64_t begin, int64_t end, int thread) {
    (void)begin, (void)end, (void)thread;
    window *w = ctx;
    for (int k; (k = atomic_fetch_add(&w->next, 1)) < w->count;) {
        read_slot(w, k);
        atomic_store_explicit(&w->slots[k].ready, 1, memory_order_release);
        write_ready(w);
    }
}

static void window_free(window *w) {
    for (int i = 0; w->slots && i < w->cap; i++) free(w->slots[i].stored), free(w->slots[i].x), free(w->slots[i].q);
    free(w->slots);
}

static herd_status window_init(window *w, const herd_dataset *ds, int fields, int threads, int64_t count,
                               herd_error *err) {
    memset(w, 0, sizeof *w);
    w->ds = ds;
    w->sample = (size_t)herd_tensor_numel(&ds->x);
    w->xbytes = herd_tensor_bytes(&ds->x);
    herdi_shard_fields_of(&w->fields, ds);
    if (fields) w->xbytes = w->fields.sample_bytes + w->fields.target_bytes, w->sample = 0;
    w->raw_u8 = ds->x.dtype == HERD_U8 && !ds->ops->to_f32;
    for (int k = 0; k < 256; k++) w->level[k] = k / 255.0f;
    size_t per = w->sample * (sizeof(float) + 1) + w->xbytes, cap = (size_t)16 * (threads > 1 ? threads : 1);
    if (cap * per > WINDOW_BYTES) cap = WINDOW_BYTES / per > (size_t)threads ? WINDOW_BYTES / per : (size_t)threads;
    /* small samples (feature rows, click logs): a window of SMALL_WINDOW_BYTES, so the threads meet once
     * for thousands of samples, not for every 16 a thread */
    if (cap * per < SMALL_WINDOW_BYTES) cap = SMALL_WINDOW_BYTES / per;
    if (cap > (size_t)count) cap = count > 0 ? (size_t)count : 1;
    if (cap < 1) cap = 1;
    w->cap = (int)cap;
    if (!(w->slots = calloc(cap, sizeof *w->slots))) goto oom;
    for (size_t i = 0; i < cap; i++)
        if (!(w->slots[i].x = herd_malloc_array(w->sample + 1, sizeof(float))) || !(w->slots[i].q = malloc(w->sample + 1)) ||
            !(w->slots[i].stored = malloc(w->xbytes)))
            goto oom;
    return HERD_OK;
oom:
    window_free(w);
    return herd_fail(err, HERD_ENOMEM, "%s: out of memory for %zu samples of %zu values", ds->source, cap, w->sample);
}

/* One pass over [begin, end) into f as dtype. *restart = 1 when auto found a value that needs f32. */
static herd_status write_pass(io_atomic *f, const herd_dataset *ds, int64_t begin, int64_t end,
                              int dtype, int quantise, const herd_shard_write_options *opt, herd_pool *pool,
                              window *w, uint8_t *index, int64_t *written, int *restart, int64_t *reported,
                              herd_error *err) {
    size_t count = (size_t)(end - begin);
    /* version 2: the fields block between the header and the index */
    uint64_t index_at = HEADER_BYTES + (dtype == SHARD_FIELDS ? herdi_shard_fields_block_bytes(w->fields.n) : 0);
    uint64_t data_at = index_at + (uint64_t)ENTRY_BYTES * count;
    write_state o = {.f = f, .opt = opt, .index = index, .off = data_at, .reported = reported,
                     .rec_bytes = dtype == SHARD_FIELDS ? w->xbytes
                                                        : w->sample * (dtype == HERD_SHARD_U8 ? 1 : sizeof(float))};
    w->dtype = dtype, w->quantise = quantise, w->out = &o;
    for (int64_t first = begin; first < end && !o.st && !o.restart; first += w->cap) {
        uint64_t window_at = o.off;
        w->first = first;
        w->count = end - first < w->cap ? (int)(end - first) : w->cap;
        for (int k = 0; k < w->count; k++) atomic_store(&w->slots[k].ready, 0);
        atomic_store(&w->next, 0);
        atomic_store(&w->written, 0);
        herd_pool_for(pool, pool ? herd_pool_threads(pool) : 1, read_window, w);
        write_ready(w); /* every slot is ready now: what no thread got to */
        /* the window's records go to storage while the next window decodes (a 375 MB shard
         * left to commit's fsync took ~0.5 s with nothing else running) */
        herdi_io_atomic_writeback(f, window_at, o.off - window_at);
    }
    w->out = NULL;
    *restart = o.restart;
    if (o.restart) return HERD_OK;
    if (o.st) {
        *err = o.err;
        return o.st;
    }
    int64_t n = o.n;
    herd_status st;
    /* records left out leave their index room unused: the data still starts at data_at */
    uint8_t head[HEADER_BYTES];
    memcpy(head, SHARD_MAGIC, 8);
    put_le(head + 8, dtype == SHARD_FIELDS ? SHARD_VERSION_FIELDS : SHARD_VERSION, 4);
    put_le(head + 12, (uint32_t)dtype, 4);
    put_le(head + 16, (uint64_t)n, 8);
    int64_t shape[3] = {1, 1, 1}; /* x's dims padded with 1s: (F) is stored F x 1 x 1 */
    for (int d = 0; d < ds->x.ndim; d++) shape[d] = ds->x.dims[d];
    if (dtype == SHARD_FIELDS) shape[0] = shape[1] = shape[2] = 0; /* the fields block describes them */
    put_le(head + 24, (uint32_t)shape[0], 4);
    put_le(head + 28, (uint32_t)shape[1], 4);
    put_le(head + 32, (uint32_t)shape[2], 4);
    put_le(head + 36, (uint32_t)ds->num_classes, 4);
    put_le(head + 40, index_at, 8);
    put_le(head + 48, n ? data_at : index_at, 8); /* no record: nothing follows the header (and fields block) */
    put_le(head + 56, herd_crc32c(0, index, (size_t)n * ENTRY_BYTES), 4);
    put_le(head + 60, herd_crc32c(0, head, 60), 4);
    uint8_t block[4 + (HERD_MAX_FIELDS + 1) * SHARD_FIELD_BYTES + 4];
    if (dtype == SHARD_FIELDS) herdi_shard_fields_encode(block, &w->fields);
    if ((dtype == SHARD_FIELDS &&
         (st = herdi_io_atomic_pwrite(f, block, herdi_shard_fields_block_bytes(w->fields.n), HEADER_BYTES, err))) ||
        (st = herdi_io_atomic_pwrite(f, index, (size_t)n * ENTRY_BYTES, index_at, err)) ||
        (st = herdi_io_atomic_pwrite(f, head, HEADER_BYTES, 0, err)))
        return st;
    *written = n;
    return HERD_OK;
}

/* A sample a version 1 record cannot hold (several fields, i32 ids, a target other than an i32
 * class label) is written as a version 2 record: its stored fields and target. */
static int shard_needs_fields(const herd_dataset *ds) {
    return ds->n_more || ds->x.dtype == HERD_I32 || ds->y.dtype != HERD_I32 || ds->y.ndim != 0;
}

/* Fields of u8, f32 or i32 with up to 3 dims, a target of f32 or i32 with up to 3 dims. */
static herd_status shard_check_fields(const char *path, const herd_dataset *ds, herd_error *err) {
    char xs[96];
    for (int k = 0; k <= herd_dataset_field_count(ds); k++) {
        const herd_tensor *t = k < herd_dataset_field_count(ds) ? herd_dataset_field(ds, k) : &ds->y;
        int target = k == herd_dataset_field_count(ds);
        if (t->ndim > 3 || !(t->dtype == HERD_F32 || t->dtype == HERD_I32 || (!target && t->dtype == HERD_U8)))
            return herd_fail(err, HERD_EARG, "%s: %s %s of %s does not fit a shard (fields of u8, f32 or i32, targets "
                             "of f32 or i32, up to 3 dims each)", path, target ? "a target" : "a field",
                             herd_dtype_name(t->dtype), herd_tensor_shape_str(t, xs, sizeof xs));
    }
    return HERD_OK;
}

static herd_status shard_write_with(const char *path, const herd_dataset *ds, int64_t begin, int64_t end,
                                    const herd_shard_write_options *opt, herd_pool *pool, int64_t *written,
                                    herd_error *err) {
    if (begin < 0 || end < begin || end > ds->n)
        return herd_fail(err, HERD_EARG, "%s: records [%lld, %lld) outside [0, %lld)", path, (long long)begin,
                         (long long)end, (long long)ds->n);
    if (opt->dtype != 0 && opt->dtype != HERD_SHARD_U8 && opt->dtype != HERD_SHARD_F32)
        return herd_fail(err, HERD_EARG, "%s: dtype %d (expected 0 = auto, 1 = u8 or 2 = f32)", path, opt->dtype);
    herd_status st = shard_check_fields(path, ds, err);
    if (st) return st;
    int fields = shard_needs_fields(ds);
    window w;
    uint8_t *index = herd_malloc_array(end > begin ? (size_t)(end - begin) : 1, ENTRY_BYTES);
    if (!index) return herd_fail(err, HERD_ENOMEM, "%s: out of memory for the index", path);
    st = window_init(&w, ds, fields, pool ? herd_pool_threads(pool) : 1, end - begin, err);
    if (st) {
        free(index);
        return st;
    }
    /* auto: u8 for u8 samples, else u8 while every value is k/255, again as f32 from the start if not */
    int dtype = fields ? SHARD_FIELDS : opt->dtype ? opt->dtype : HERD_SHARD_U8;
    int quantise = opt->dtype == HERD_SHARD_U8;
    int64_t reported = begin; /* samples before this one have had their skip reported */
    for (;;) {
        io_atomic f;
        int restart = 0;
        int64_t n = 0;
        if ((st = herdi_io_atomic_create(&f, path, err))) break;
        st = write_pass(&f, ds, begin, end, dtype, quantise, opt, pool, &w, index, &n, &restart, &reported, err);
        if (st || restart) {
            herdi_io_atomic_abort(&f);
            if (st) break;
            dtype = HERD_SHARD_F32;
            continue;
        }
        if ((st = herdi_io_atomic_commit(&f, "shard.before_rename", err))) break;
        if (written) *written = n;
        break;
    }
    window_free(&w);
    free(index);
    return st;
}

static const herd_shard_write_options defaults = {0};

herd_status herd_shard_write(const char *path, const herd_dataset *ds, int64_t begin, int64_t end,
                             const herd_shard_write_options *opt, int64_t *written, herd_error *err) {
    if (!opt) opt = &defaults;
    herd_pool *pool = NULL;
    herd_status st = opt->threads > 1 ? herd_pool_create(&pool, opt->threads, err) : HERD_OK;
    if (st) return st;
    st = shard_write_with(path, ds, begin, end, opt, pool, written, err);
    herd_pool_destroy(pool);
    return st;
}

/* resume: the shard at path is one a run of this conversion completed (the rename is atomic,
 * so a file there is whole; its header and index CRCs are checked by opening it). */
static int shard_complete(const char *path, const herd_dataset *ds, int64_t records, int skip_bad, int64_t *n) {
    struct stat sb;
    herd_dataset *d = NULL;
    herd_error e = {0};
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || herd_shards_open(&d, &path, 1, &e) != HERD_OK) return 0;
    int64_t shape[3] = {1, 1, 1};
    for (int k = 0; k < ds->x.ndim && k < 3; k++) shape[k] = ds->x.dims[k];
    shard_fields want, got;
    herdi_shard_fields_of(&want, ds);
    herdi_shard_fields_of(&got, d);
    int same = shard_needs_fields(ds) ? herdi_shard_fields_same(&want, &got)
                                      : d->x.ndim == 3 && d->x.dims[0] == shape[0] && d->x.dims[1] == shape[1] &&
                                            d->x.dims[2] == shape[2] && d->y.dtype == HERD_I32 && !d->n_more;
    int ok = same && d->num_classes == ds->num_classes &&
             (skip_bad ? d->n <= records : d->n == records);
    *n = d->n;
    herd_dataset_close(d);
    return ok;
}

/* Temp files a killed run left beside path (path.tmp.<pid>). */
static void remove_stale_temps(const char *path) {
    char pattern[4200];
    glob_t g;
    if (snprintf(pattern, sizeof pattern, "%s.tmp.*", path) >= (int)sizeof pattern) return;
    if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
}

herd_status herd_shards_write(const herd_dataset *ds, const char *dir, const char *split, int nshards,
                              const herd_shard_write_options *opt, herd_error *err) {
    if (!opt) opt = &defaults;
    if (nshards < 1 || nshards > 99999)
        return herd_fail(err, HERD_EARG, "%s: %d shards (expected 1..99999)", dir, nshards);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return herd_fail(err, HERD_EIO, "%s: cannot create the directory: %s", dir, strerror(errno));
    herd_pool *pool = NULL;
    herd_status st = opt->threads > 1 ? herd_pool_create(&pool, opt->threads, err) : HERD_OK;
    if (st) return st;
    for (int k = 0; k < nshards && !st; k++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s-%05d-of-%05d.herd", dir, split, k, nshards) >= (int)sizeof path) {
            st = herd_fail(err, HERD_EARG, "%s: path too long", dir);
            break;
        }
        /* contiguous ranges: shards concatenated in name order are the source, in its order */
        int64_t begin = ds->n * k / nshards, end = ds->n * (k + 1) / nshards, n = 0;
        int kept = opt->resume && shard_complete(path, ds, end - begin, opt->skip_bad, &n);
        if (opt->resume) remove_stale_temps(path);
        if (!kept) st = shard_write_with(path, ds, begin, end, opt, pool, &n, err);
        if (!st && opt->on_shard) opt->on_shard(opt->ctx, path, n, kept);
    }
    herd_pool_destroy(pool);
    return st;
}
