/* herd core: status codes and error messages, arena, counter-based RNG, thread pool.
 * Every library function that can fail because of a user or the world returns a
 * herd_status and fills a herd_error; bugs in herd itself trip HERD_ASSERT. */
#ifndef HERD_CORE_H
#define HERD_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum herd_status {
    HERD_OK = 0,
    HERD_EIO = -1,          /* file missing, unreadable, short read, write failed */
    HERD_EFORMAT = -2,      /* a data or weights file is malformed */
    HERD_ESPEC = -3,        /* model spec syntax or semantics */
    HERD_ESHAPE = -4,       /* tensor shapes do not fit together */
    HERD_ENOMEM = -5,       /* allocation failed or a planned arena is exhausted */
    HERD_EARG = -6,         /* bad argument or option value */
    HERD_EUNSUPPORTED = -7, /* valid request that this build cannot do */
    HERD_ENUMERIC = -8,     /* NaN/Inf where a finite number is required */
    HERD_EINTERNAL = -9,    /* an invariant broke; report as a bug */
    HERD_ESTOPPED = -10     /* stopped on request (herd_train_config.stop) at a step boundary */
} herd_status;

/* Filled by any failing call; msg is one line without a trailing newline. */
typedef struct herd_error {
    herd_status status;
    char msg[1024];
} herd_error;

/* Short fixed name of a status ("I/O error", "bad format", ...). */
const char *herd_status_str(herd_status st);

/* Formats msg into err (err may be NULL) and returns st, so callers write
 * `return herd_fail(err, HERD_EIO, "%s: cannot open", path);`. */
herd_status herd_fail(herd_error *err, herd_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* herd_fail over a va_list, for functions that wrap it with a prefix of their own: format the
 * message here, then herd_fail_prefix, so a long message is shortened once, as a whole. */
herd_status herd_failv(herd_error *err, herd_status st, const char *fmt, va_list ap);

/* Prefixes an existing message: "<prefix>: <old message>". */
herd_status herd_fail_prefix(herd_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* For bugs in herd only (never for bad input): prints file:line and aborts. */
void herd_assert_fail(const char *expr, const char *file, int line);
#define HERD_ASSERT(c) ((c) ? (void)0 : herd_assert_fail(#c, __FILE__, __LINE__))

/* Checked allocation helpers: NULL on failure or on size overflow. */
void *herd_malloc_array(size_t count, size_t size);
void *herd_calloc_array(size_t count, size_t size);
/* 64-byte aligned, free with herd_aligned_free (or free); _calloc: zeroed (a large block's pages
 * are not touched until used). */
void *herd_aligned_alloc(size_t bytes);
void *herd_aligned_calloc(size_t bytes);
void herd_aligned_free(void *p);
/* A hint for large blocks read at random rows (embedding tables and their optimizer state): asks
 * for 2 MiB pages over the block's 2 MiB-aligned part (MADV_HUGEPAGE, which transparent huge pages
 * honour in their default madvise mode), so that a row costs a cache miss but no page-table walk.
 * Call it before the pages are first touched; nothing happens where the kernel refuses. */
void herd_advise_huge_pages(void *p, size_t bytes);
/* Gives the whole pages inside [p, p + bytes) back to the system (they read as zeros when touched
 * again): memory a process no longer holds, e.g. a table sharded to other ranks. */
void herd_release_pages(void *p, size_t bytes);
/* a*b into *out; returns 0 on overflow. */
int herd_mul_size(size_t a, size_t b, size_t *out);

/* ---- typed tensors ----
 * A small non-owning descriptor: element type, up to HERD_MAX_DIMS dimensions (outermost
 * first, row-major), and a data pointer (NULL when it only describes a shape, as a dataset's
 * per-sample x and y do). f32 and i32 are computed on; u8 is a storage type (8-bit images,
 * scaled to [0,1] when converted to f32); i64 and f64 appear in files (safetensors, NPY);
 * bf16 is reserved. */
typedef enum herd_dtype { HERD_F32 = 0, HERD_I32, HERD_I64, HERD_U8, HERD_F64, HERD_BF16, HERD_DTYPE_COUNT } herd_dtype;
#define HERD_MAX_DIMS 6

typedef struct herd_tensor {
    herd_dtype dtype;
    int ndim;                     /* 0 = a scalar (one element) */
    int64_t dims[HERD_MAX_DIMS];
    void *data;
} herd_tensor;

/* Bytes per element (f32 4, i32 4, i64 8, u8 1, f64 8, bf16 2; 0 for an unknown value). */
size_t herd_dtype_size(herd_dtype t);
/* "f32", "i32", "i64", "u8", "f64", "bf16" ("?" for anything else). */
const char *herd_dtype_name(herd_dtype t);
/* A descriptor of the given dtype and dims (copied); data may be NULL. ndim <= HERD_MAX_DIMS. */
herd_tensor herd_tensor_make(herd_dtype dtype, int ndim, const int64_t *dims, void *data);
/* Elements: the product of dims (1 for a scalar), or -1 when a dim is negative or the product
 * overflows int64. */
int64_t herd_tensor_numel(const herd_tensor *t);
/* numel * dtype size, or 0 when numel is -1 or the product overflows size_t. */
size_t herd_tensor_bytes(const herd_tensor *t);
/* 1 when a and b have the same dtype and dims. */
int herd_tensor_same(const herd_tensor *a, const herd_tensor *b);
/* Writes the dims as "3x32x32" ("scalar" for ndim 0) into buf; returns buf. */
char *herd_tensor_shape_str(const herd_tensor *t, char *buf, size_t size);

/* ---- arena: one block planned once, bump-allocated, reset per use ----
 * An arena created with capacity 0 and plan=1 only measures: alloc returns a
 * non-NULL dummy pointer and adds to `used`, so the same code path that will
 * allocate can first compute the size to plan. */
typedef struct herd_arena herd_arena;
herd_status herd_arena_create(herd_arena **out, size_t capacity, herd_error *err);
herd_arena *herd_arena_create_planner(void);
/* 64-byte aligned; NULL when the arena is exhausted (never mallocs). */
void *herd_arena_alloc(herd_arena *a, size_t bytes);
/* Same, as a float array of n elements. */
float *herd_arena_floats(herd_arena *a, size_t n);
void herd_arena_reset(herd_arena *a);
size_t herd_arena_used(const herd_arena *a);
size_t herd_arena_capacity(const herd_arena *a);
void herd_arena_destroy(herd_arena *a);

/* ---- counter-based RNG (Philox4x32-10) ----
 * The state is just (key, counter): streams for different purposes are
 * independent keys derived from one seed, and a state is trivially saved. */
typedef struct herd_rng {
    uint64_t key;
    uint64_t counter;
} herd_rng;

/* key = hash(seed, stream); counter = 0. */
void herd_rng_init(herd_rng *r, uint64_t seed, uint64_t stream);
uint32_t herd_rng_u32(herd_rng *r);
/* Uniform in [0, 1). */
float herd_rng_uniform(herd_rng *r);
/* Standard normal (Box-Muller). */
float herd_rng_normal(herd_rng *r);
/* out[i] = scale * the i-th of n herd_rng_normal draws (the same values, scaled in float), the
 * Philox blocks shared by two values and the range split over pool's threads (NULL: inline). */
typedef struct herd_pool herd_pool;
void herd_rng_normals(herd_rng *r, float *out, int64_t n, float scale, herd_pool *pool);
/* Uniform integer in [0, n), n > 0, unbiased. */
uint32_t herd_rng_below(herd_rng *r, uint32_t n);
/* Philox4x32-10 block function: 4 words for (key, counter). */
void herd_philox(uint64_t key, uint64_t counter, uint32_t out[4]);

/* ---- thread pool: a blocking parallel-for with static, deterministic partition ---- */
/* n_threads >= 1 counts the calling thread; n_threads - 1 workers are started. */
herd_status herd_pool_create(herd_pool **out, int n_threads, herd_error *err);
void herd_pool_destroy(herd_pool *p);
int herd_pool_threads(const herd_pool *p);
/* fn(ctx, begin, end, thread) is called on contiguous ranges covering [0, n);
 * thread t always gets the same range for the same (n, threads). Blocks until
 * all are done. p may be NULL (runs inline). Not reentrant. */
typedef void (*herd_range_fn)(void *ctx, int64_t begin, int64_t end, int thread);
void herd_pool_for(herd_pool *p, int64_t n, herd_range_fn fn, void *ctx);

/* Test-only fault injection: with HERD_TEST_FAULT="crash:NAME:K" the K-th call with this
 * NAME kills the process (SIGKILL); sigint:NAME:K / sigint2:NAME:K raise SIGINT once / twice
 * there. A no-op otherwise. */
void herd_fault_point(const char *name);
/* Test-only: the step faults of HERD_TEST_FAULT (kill, hang, stop) and HERD_TEST_DELAY for the
 * process of world rank `rank` after its step-th step (src/core/fault.c has the grammar). */
void herd_fault_step(int rank, int64_t step);

/* CPUs this process may run on (its affinity mask: srun, taskset and cpusets may bind fewer than
 * are online), >= 1. */
int herd_cpu_count(void);
/* Monotonic seconds. */
double herd_now(void);

#ifdef __cplusplus
}
#endif
#endif
