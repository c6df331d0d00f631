/* The loader: prepares this caller's rows of each batch of an epoch's order, in background
 * threads a bounded number of batches ahead (or in the caller's thread), through an optional
 * cache of decoded samples in their stored dtype (u8 images: a quarter of f32), converted to
 * the model's f32 input when the batch is formed, with seeded augmentation that depends only
 * on (seed, epoch, sample index), so the batches are the same whatever the number of threads. */
#include "herd/data.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "data/augment.h"


typedef struct loader_slot {
    float *x;   /* the model's input, or without augmentation the stored samples (see load_step) */
    uint8_t *y; /* targets, ybytes each */
    int64_t ready_step; /* the step whose rows are in x/y, -1 for none */
    int parts_left;     /* parts of the step being loaded still to finish */
    herd_status status; /* the first failed part's */
    herd_error err;
} loader_slot;

/* Samples cached in the order they are first loaded until the budget is spent, never
 * evicted: an epoch visits every sample once, so LRU would hit nothing once the data is larger
 * than the cache, while a fixed set hits its share every epoch. */
typedef struct sample_cache {
    atomic_int *slot_of; /* n: -1 absent, -2 being filled, else the entry */
    atomic_int used;
    int capacity;
    uint8_t *x;          /* capacity samples as get() wrote them, xbytes each */
    uint8_t *y;          /* capacity targets, ybytes each */
    size_t bytes;        /* what the cache allocated */
} sample_cache;

/* One epoch's batches: its order and this caller's rows of a full and of the last batch. */
typedef struct epoch_plan {
    int64_t epoch, n, steps;
    int batch;
    int64_t *order;
    int full_lo, full_hi, last_lo, last_hi;
} epoch_plan;

struct herd_loader {
    const herd_dataset *ds;
    herd_loader_config cfg;
    herd_rows_fn rows;
    void *rows_ctx;
    size_t sample;       /* 4-byte values per sample (the model's inputs, every field) */
    size_t xbytes;       /* bytes of a stored sample (every field) */
    size_t ybytes;       /* bytes of a target (ds->y) */
    int ac, ah, aw;      /* the sample as augmentation sees it */
    int max_rows;
    epoch_plan ep;       /* the epoch */
    /* the next epoch, when planned (herd_loader_plan_epoch): once every step of this one is
     * claimed, its first step is loaded as step ep.steps would be, into slot
     * (ep.steps + slot_base) % nslots, in parts ahead_part of parts (ahead_left still running) */
    epoch_plan ahead;
    int ahead_set, ahead_part, ahead_left;
    herd_status ahead_status;
    /* the queue: steps [cur, cur + prefetch] may be loaded, step k into slot (k + slot_base) % nslots */
    loader_slot *slots;
    int nslots, slot_base;
    int64_t cur, next_claim;
    int next_part;       /* of step next_claim: a step's rows are loaded in `parts` parts, by any threads */
    int parts;
    int active, stop, busy, started;
    pthread_mutex_t mu;
    pthread_cond_t work, ready;
    pthread_t *threads;
    int nthreads;
    float *scratch;      /* one sample per thread + one for the caller's thread: a stored sample
                            read there, then augmentation's copy */
    sample_cache cache;
};

size_t herd_loader_cache_bytes(const herd_loader *l) { return l->cache.bytes; }

int64_t herd_loader_cached_samples(const herd_loader *l) {
    int used = atomic_load(&l->cache.used);
    return used < l->cache.capacity ? used : l->cache.capacity;
}

/* The stored sample i and its target, when cached. */
static int cache_get(const sample_cache *c, int64_t i, const uint8_t **x, const uint8_t **y, size_t xbytes,
                     size_t ybytes) {
    if (!c->slot_of) return 0;
    int s = atomic_load_explicit(&c->slot_of[i], memory_order_acquire);
    if (s < 0) return 0;
    *x = c->x + (size_t)s * xbytes;
    *y = c->y + (size_t)s * ybytes;
    return 1;
}

/* 1 while the cache may still take samples (a sample loaded now should be whole). */
static int cache_room(const sample_cache *c) {
    return c->slot_of && atomic_load_explicit(&c->used, memory_order_relaxed) < c->capacity;
}

static void cache_put(sample_cache *c, int64_t i, const void *x, const void *y, size_t xbytes, size_t ybytes) {
    if (!c->slot_of || atomic_load_explicit(&c->used, memory_order_relaxed) >= c->capacity) return;
    int expected = -1;
    if (!atomic_compare_exchange_strong(&c->slot_of[i], &expected, -2)) return; /* another thread has it */
    int s = atomic_fetch_add(&c->used, 1);
    if (s >= c->capacity) {
        atomic_store(&c->slot_of[i], -1);
        return;
    }
    memcpy(c->x + (size_t)s * xbytes, x, xbytes);
    memcpy(c->y + (size_t)s * ybytes, y, ybytes);
    atomic_store_explicit(&c->slot_of[i], s, memory_order_release);
}

/* This caller's rows of batch `step` into slot (a pure function of the epoch and step). With
 * augmentation (or normalisation) the slot holds the model's f32 input; without, the stored
 * samples (u8 images: a quarter of the bytes), read straight into it and converted as they are
 * handed out (herd_loader_rows), so a loader thread only reads and checks. */
static herd_status load_step(herd_loader *l, const epoch_plan *ep, int64_t step, int part, int parts,
                             loader_slot *slot, float *tmp, herd_error *err) {
    int64_t off = step * ep->batch;
    int B = (int)(ep->n - off < ep->batch ? ep->n - off : ep->batch);
    int last = step == ep->steps - 1, aug = herd_augment_active(&l->cfg);
    int lo = last ? ep->last_lo : ep->full_lo, hi = last ? ep->last_hi : ep->full_hi;
    int span = (hi < B ? hi : B) - lo; /* this caller's rows, split evenly into parts */
    int r0 = span > 0 ? lo + (int)((int64_t)span * part / parts) : lo;
    int r1 = span > 0 ? lo + (int)((int64_t)span * (part + 1) / parts) : lo;
    for (int r = r0; r < r1; r++) {
        int64_t i = ep->order[off + r];
        float *x = slot->x + (size_t)(r - lo) * l->sample;
        void *stored = aug ? (void *)tmp : (uint8_t *)slot->x + (size_t)(r - lo) * l->xbytes;
        uint8_t *y = slot->y + (size_t)(r - lo) * l->ybytes;
        const uint8_t *cx, *cy;
        int win[4];
        if (cache_get(&l->cache, i, &cx, &cy, l->xbytes, l->ybytes)) {
            if (aug) herd_dataset_to_f32(l->ds, cx, 1, x);
            else memcpy(stored, cx, l->xbytes);
            memcpy(y, cy, l->ybytes);
        } else if (aug && l->ds->ops->get_window && !cache_room(&l->cache) &&
                   herd_augment_window(&l->cfg, l->ah, l->aw, ep->epoch, i, win)) {
            /* random_resized_crop reads only win: made alone (a JPEG decoded in part) */
            herd_status st = l->ds->ops->get_window(l->ds, i, win, stored, y, err);
            if (st != HERD_OK) return st;
            herd_dataset_to_f32(l->ds, tmp, 1, x);
        } else {
            herd_status st = l->ds->ops->get(l->ds, i, stored, y, err);
            if (st != HERD_OK) return st;
            cache_put(&l->cache, i, stored, y, l->xbytes, l->ybytes);
            if (aug) herd_dataset_to_f32(l->ds, tmp, 1, x);
        }
        if (aug) {
            herd_status st = herd_augment_sample(&l->cfg, l->ac, l->ah, l->aw, ep->epoch, i, x, tmp, err);
            if (st != HERD_OK) return st;
        }
    }
    return HERD_OK;
}

static void *worker_main(void *arg) {
    herd_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    int id = l->started++; /* its scratch sample */
    float *tmp = l->scratch + (size_t)(id + 1) * l->sample;
    while (!l->stop) {
        if (l->active && l->next_claim < l->ep.steps && l->next_claim <= l->cur + l->cfg.prefetch) {
            int64_t k = l->next_claim;
            int part = l->next_part++;
            loader_slot *slot = &l->slots[(k + l->slot_base) % l->nslots];
            if (part == 0) slot->ready_step = -1, slot->parts_left = l->parts, slot->status = HERD_OK;
            if (l->next_part == l->parts) l->next_claim++, l->next_part = 0;
            l->busy++;
            pthread_mutex_unlock(&l->mu);
            herdi_pool_others_busy(1);
            herd_error err = {0};
            herd_status st = load_step(l, &l->ep, k, part, l->parts, slot, tmp, &err);
            herdi_pool_others_busy(-1);
            pthread_mutex_lock(&l->mu);
            if (st && !slot->status) slot->status = st, slot->err = err;
            if (--slot->parts_left == 0) slot->ready_step = k;
            l->busy--;
            pthread_cond_broadcast(&l->ready);
            continue;
        }
        if (l->active && l->ahead_set && l->next_claim == l->ep.steps && l->ahead_part < l->parts &&
            l->ep.steps <= l->cur + l->cfg.prefetch) { /* the next epoch's first step, as step ep.steps */
            int part = l->ahead_part++;
            loader_slot *slot = &l->slots[(l->ep.steps + l->slot_base) % l->nslots];
            if (part == 0) slot->ready_step = -1, l->ahead_left = l->parts, l->ahead_status = HERD_OK;
            l->busy++;
            pthread_mutex_unlock(&l->mu);
            herdi_pool_others_busy(1);
            herd_error err = {0};
            herd_status st = load_step(l, &l->ahead, 0, part, l->parts, slot, tmp, &err);
            herdi_pool_others_busy(-1);
            pthread_mutex_lock(&l->mu);
            if (st) l->ahead_status = st; /* loaded again, and reported, when the epoch starts */
            l->ahead_left--;
            l->busy--;
            pthread_cond_broadcast(&l->ready); /* herd_loader_start_epoch may be waiting for it */
            continue;
        }
        pthread_cond_wait(&l->work, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static herd_status cache_init(herd_loader *l, herd_error *err) {
    sample_cache *c = &l->cache;
    size_t budget = l->cfg.cache_bytes, index = (size_t)l->ds->n * sizeof(atomic_int);
    size_t entry = l->xbytes + l->ybytes;
    if (budget == 0 || budget <= index) return HERD_OK; /* no room for any sample: no cache */
    size_t cap = (budget - index) / entry;
    if (cap > (size_t)l->ds->n) cap = (size_t)l->ds->n;
    if (cap > INT32_MAX / 2) cap = INT32_MAX / 2;
    if (cap == 0) return HERD_OK;
    c->slot_of = herd_malloc_array((size_t)l->ds->n, sizeof *c->slot_of);
    c->x = herd_malloc_array(cap, l->xbytes);
    c->y = herd_malloc_array(cap, l->ybytes);
    if (!c->slot_of || !c->x || !c->y)
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for a %zu-byte sample cache", l->ds->source, budget);
    for (int64_t i = 0; i < l->ds->n; i++) atomic_init(&c->slot_of[i], -1);
    atomic_init(&c->used, 0);
    c->capacity = (int)cap;
    c->bytes = index + cap * entry;
    return HERD_OK;
}

void herd_loader_destroy(herd_loader *l) {
    if (!l) return;
    if (l->threads) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nthreads; i++) pthread_join(l->threads[i], NULL);
        free(l->threads);
    }
    if (l->slots)
        for (int i = 0; i < l->nslots; i++) free(l->slots[i].x), free(l->slots[i].y);
    free(l->slots);
    free(l->ep.order);
    free(l->ahead.order);
    free(l->scratch);
    free(l->cache.slot_of);
    free(l->cache.x);
    free(l->cache.y);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    free(l);
}

herd_status herd_loader_create(herd_loader **out, const herd_dataset *ds, int batch, const herd_loader_config *cfg,
                               herd_rows_fn rows, void *rows_ctx, herd_error *err) {
    *out = NULL;
    if (batch < 1 || cfg->prefetch < 0 || cfg->prefetch > 1024 || cfg->threads < 0 || cfg->threads > 256)
        return herd_fail(err, HERD_EARG, "loader: batch %d, prefetch %d, threads %d out of range", batch,
                         cfg->prefetch, cfg->threads);
    int64_t channels, plane;
    herd_dataset_channels(ds, &channels, &plane);
    herd_status ok = herd_augment_check(cfg, (int)channels, err);
    if (ok != HERD_OK) return ok;
    char xs[96];
    if (!herd_dataset_fields_ok(ds) || !herd_tensor_bytes(&ds->y))
        return herd_fail(err, HERD_EARG, "%s: loader: %s samples of %s cannot become the model's input",
                         ds->source, herd_dtype_name(ds->x.dtype), herd_tensor_shape_str(&ds->x, xs, sizeof xs));
    if (herd_augment_active(cfg) && (ds->n_more || !herd_dtype_to_f32_ok(ds->x.dtype)))
        return herd_fail(err, HERD_EARG, "%s: augmentation and normalisation apply to one u8/f32 field; the samples "
                         "have %d field%s, the first %s", ds->source, 1 + ds->n_more, ds->n_more ? "s" : "",
                         herd_dtype_name(ds->x.dtype));
    if ((cfg->augment || cfg->brightness > 0 || cfg->contrast > 0 || cfg->saturation > 0) && ds->x.ndim != 3)
        return herd_fail(err, HERD_EARG, "%s: --augment crops and flips images (C,H,W); the samples are %s",
                         ds->source, herd_tensor_shape_str(&ds->x, xs, sizeof xs));
    herd_loader *l = calloc(1, sizeof *l);
    if (!l) return herd_fail(err, HERD_ENOMEM, "loader: out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->ready, NULL);
    herd_status st = HERD_OK;
    l->ds = ds;
    l->cfg = *cfg;
    /* what augmentation and normalisation see: (C,H,W) images, else channels x 1 x plane */
    l->ac = (int)channels, l->ah = ds->x.ndim == 3 ? (int)ds->x.dims[1] : 1;
    l->aw = ds->x.ndim == 3 ? (int)ds->x.dims[2] : (int)plane;
    l->rows = rows, l->rows_ctx = rows_ctx;
    l->sample = (size_t)herd_dataset_sample_slots(ds);
    l->xbytes = herd_dataset_sample_bytes(ds); /* <= sample floats: no field dtype is wider than 4 bytes */
    l->ybytes = herd_tensor_bytes(&ds->y);
    l->max_rows = batch;
    l->nslots = cfg->prefetch + 1;
    l->nthreads = cfg->prefetch > 0 ? (cfg->threads > 0 ? cfg->threads : 1) : 0;
    /* Several threads share each step (a few parts each, as images differ in cost), so the
     * first batch of an epoch, which nothing has prefetched, is ready as soon as they can make it. */
    l->parts = l->nthreads > 1 ? 4 * l->nthreads : 1;
    if (l->parts > batch) l->parts = batch;
    l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
    l->ep.order = herd_malloc_array(ds->n > 0 ? (size_t)ds->n : 1, sizeof *l->ep.order);
    l->ahead.order = herd_malloc_array(ds->n > 0 ? (size_t)ds->n : 1, sizeof *l->ahead.order);
    l->scratch = herd_malloc_array((size_t)(l->nthreads + 1), l->sample * sizeof(float));
    if (!l->slots || !l->ep.order || !l->ahead.order || !l->scratch) goto oom;
    for (int i = 0; i < l->nslots; i++) {
        l->slots[i].ready_step = -1;
        l->slots[i].x = herd_malloc_array((size_t)batch, l->sample * sizeof(float));
        l->slots[i].y = herd_malloc_array((size_t)batch, l->ybytes);
        if (!l->slots[i].x || !l->slots[i].y) goto oom;
    }
    if ((st = cache_init(l, err))) goto fail;
    if (l->nthreads) {
        if (!(l->threads = calloc((size_t)l->nthreads, sizeof *l->threads))) goto oom;
        for (int i = 0; i < l->nthreads; i++)
            if (pthread_create(&l->threads[i], NULL, worker_main, l) != 0) {
                l->nthreads = i;
                st = herd_fail(err, HERD_ENOMEM, "loader: cannot start thread %d", i);
                goto fail;
            }
    }
    *out = l;
    return HERD_OK;
oom:
    st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for the loader (batch %d, prefetch %d)", ds->source, batch,
                   cfg->prefetch);
fail:
    herd_loader_destroy(l);
    return st;
}

/* Waits until no thread is loading (the caller holds mu). */
static void quiesce(herd_loader *l) {
    l->active = 0;
    while (l->busy > 0) pthread_cond_wait(&l->ready, &l->mu);
}

/* ep's order, size and rows (the caller holds mu or no thread runs). */
static void plan_set(herd_loader *l, epoch_plan *ep, int64_t epoch, const int64_t *order, int64_t n, int batch) {
    memcpy(ep->order, order, (size_t)n * sizeof *order);
    ep->epoch = epoch, ep->n = n, ep->batch = batch;
    ep->steps = (n + batch - 1) / batch;
    int last_b = (int)(n - (ep->steps - 1) * batch);
    ep->full_lo = 0, ep->full_hi = batch, ep->last_lo = 0, ep->last_hi = last_b;
    if (l->rows) {
        l->rows(l->rows_ctx, batch, &ep->full_lo, &ep->full_hi);
        l->rows(l->rows_ctx, last_b, &ep->last_lo, &ep->last_hi);
    }
}

static herd_status epoch_args_ok(const herd_loader *l, int64_t n, int batch, herd_error *err) {
    if (n < 0 || n > l->ds->n || batch < 1 || batch > l->max_rows)
        return herd_fail(err, HERD_EARG, "loader: epoch of %lld samples in batches of %d (at most %lld, %d)",
                         (long long)n, batch, (long long)l->ds->n, l->max_rows);
    return HERD_OK;
}

herd_status herd_loader_plan_epoch(herd_loader *l, int64_t epoch, const int64_t *order, int64_t n, int batch,
                                   herd_error *err) {
    herd_status st = epoch_args_ok(l, n, batch, err);
    if (st != HERD_OK || !l->nthreads) return st;
    pthread_mutex_lock(&l->mu);
    if (l->ahead_part == 0) { /* not begun (else the plan stands: start_epoch checks it) */
        plan_set(l, &l->ahead, epoch, order, n, batch);
        l->ahead_set = n > 0;
        pthread_cond_broadcast(&l->work);
    }
    pthread_mutex_unlock(&l->mu);
    return HERD_OK;
}

herd_status herd_loader_start_epoch(herd_loader *l, int64_t epoch, const int64_t *order, int64_t n, int batch,
                                    int64_t first_step, herd_error *err) {
    herd_status st = epoch_args_ok(l, n, batch, err);
    if (st != HERD_OK) return st;
    if (first_step < 0) return herd_fail(err, HERD_EARG, "loader: first step %lld", (long long)first_step);
    pthread_mutex_lock(&l->mu);
    quiesce(l);
    /* the first step loaded ahead, if it is this epoch's (same epoch, order and batch) and whole */
    int reuse = l->ahead_set && l->ahead_part == l->parts && l->ahead_left == 0 && l->ahead_status == HERD_OK &&
                first_step == 0 && l->ahead.epoch == epoch && l->ahead.n == n && l->ahead.batch == batch &&
                memcmp(l->ahead.order, order, (size_t)n * sizeof *order) == 0;
    int base = (int)((l->ep.steps + l->slot_base) % l->nslots); /* where it lies */
    l->ahead_set = l->ahead_part = l->ahead_left = 0;
    plan_set(l, &l->ep, epoch, order, n, batch);
    for (int i = 0; i < l->nslots; i++) l->slots[i].ready_step = -1;
    l->cur = l->next_claim = first_step;
    l->next_part = 0;
    if (reuse) {
        l->slot_base = base;
        l->slots[base].ready_step = 0, l->slots[base].status = HERD_OK;
        l->next_claim = 1;
    }
    l->active = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return HERD_OK;
}

herd_status herd_loader_rows(herd_loader *l, int64_t step, int first, int count, float *x, void *y,
                             herd_error *err) {
    return herd_loader_rows_view(l, step, first, count, x, NULL, y, err);
}

herd_status herd_loader_rows_view(herd_loader *l, int64_t step, int first, int count, float *x, const float **view,
                                  void *y, herd_error *err) {
    if (view) *view = NULL;
    if (step < 0 || step >= l->ep.steps)
        return herd_fail(err, HERD_EARG, "loader: step %lld outside the epoch's %lld", (long long)step,
                         (long long)l->ep.steps);
    int last = step == l->ep.steps - 1;
    int lo = last ? l->ep.last_lo : l->ep.full_lo, hi = last ? l->ep.last_hi : l->ep.full_hi;
    if (first < lo || count < 0 || first + count > hi)
        return herd_fail(err, HERD_EINTERNAL, "loader: rows [%d, %d) outside this rank's [%d, %d) of step %lld", first,
                         first + count, lo, hi, (long long)step);
    loader_slot *slot = &l->slots[(step + l->slot_base) % l->nslots];
    if (!l->nthreads) { /* --prefetch 0: the same load, in this thread */
        if (slot->ready_step != step) {
            slot->ready_step = -1;
            if ((slot->status = load_step(l, &l->ep, step, 0, 1, slot, l->scratch, &slot->err)) == HERD_OK)
                slot->ready_step = step;
            else return *err = slot->err, slot->status;
        }
    } else {
        pthread_mutex_lock(&l->mu);
        if (step != l->cur) { /* the previous step's slot may now be refilled */
            if (step < l->cur || step > l->next_claim) {
                pthread_mutex_unlock(&l->mu);
                return herd_fail(err, HERD_EINTERNAL, "loader: step %lld asked after step %lld", (long long)step,
                                 (long long)l->cur);
            }
            l->cur = step;
            pthread_cond_broadcast(&l->work);
        }
        while (slot->ready_step != step) pthread_cond_wait(&l->ready, &l->mu);
        herd_status st = slot->status;
        if (st) *err = slot->err;
        pthread_mutex_unlock(&l->mu);
        if (st) return st;
    }
    if (herd_augment_active(&l->cfg) && view)
        *view = slot->x + (size_t)(first - lo) * l->sample;
    else if (herd_augment_active(&l->cfg))
        memcpy(x, slot->x + (size_t)(first - lo) * l->sample, (size_t)count * l->sample * sizeof *x);
    else /* the stored samples: converted here, once, into the caller's rows */
        herd_dataset_to_f32(l->ds, (const uint8_t *)slot->x + (size_t)(first - lo) * l->xbytes, count, x);
    memcpy(y, slot->y + (size_t)(first - lo) * l->ybytes, (size_t)count * l->ybytes);
    return HERD_OK;
}
