/* A small fixed thread pool running a blocking parallel-for over static ranges:
 * thread t always handles the same slice, which keeps per-thread results deterministic. */
#include "herd/core.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct herd_pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv;
    uint64_t generation; /* bumped per job */
    int pending;         /* workers still running the current job */
    int quit;
    /* the current job */
    herd_range_fn fn;
    void *ctx;
    int64_t n;
};

typedef struct {
    herd_pool *p;
    int index;
} worker_arg;

static void run_slice(herd_pool *p, int t) {
    int64_t T = p->n_threads, n = p->n;
    int64_t begin = n * t / T, end = n * (t + 1) / T;
    if (begin < end) p->fn(p->ctx, begin, end, t);
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    herd_pool *p = wa->p;
    int t = wa->index;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->start_cv, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_slice(p, t);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

herd_status herd_pool_create(herd_pool **out, int n_threads, herd_error *err) {
    if (n_threads < 1 || n_threads > 1024)
        return herd_fail(err, HERD_EARG, "thread pool: %d threads is out of range 1..1024", n_threads);
    herd_pool *p = calloc(1, sizeof *p);
    if (!p) return herd_fail(err, HERD_ENOMEM, "thread pool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->workers = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!p->workers) goto fail;
    for (int t = 1; t < n_threads; t++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) goto fail_threads;
        wa->p = p;
        wa->index = t;
        if (pthread_create(&p->workers[t], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n_threads = t; /* only these exist */
            goto fail_threads;
        }
    }
    *out = p;
    return HERD_OK;
fail_threads:
    herd_pool_destroy(p);
    return herd_fail(err, HERD_ENOMEM, "thread pool: cannot start %d threads", n_threads);
fail:
    free(p);
    return herd_fail(err, HERD_ENOMEM, "thread pool: out of memory");
}

void herd_pool_destroy(herd_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->n_threads; t++) pthread_join(p->workers[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->workers);
    free(p);
}

int herd_pool_threads(const herd_pool *p) { return p ? p->n_threads : 1; }

void herd_pool_for(herd_pool *p, int64_t n, herd_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (!p || p->n_threads == 1 || n == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->pending = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mu);
    run_slice(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int herd_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

double herd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
