/* A small fixed thread pool running a blocking parallel-for over static ranges:
 * thread t always handles the same slice, which keeps per-thread results deterministic.
 * Waking a sleeping thread through a condition variable costs ~60 us on these VMs, more
 * than many ops take, so both sides first spin briefly on atomics and only then sleep.
 * Each poll of the spin pauses the core (cpu_relax) and does not call sched_yield: a yield at
 * every poll handed the core to any other runnable process (a build, a niced job) for a whole
 * scheduler slice (~3-4 ms, measured under the older CFS scheduler), and a job posted meanwhile
 * waited that long, which made a step of many short ops 5-10x slower beside background work.
 * The spin is bounded (SPIN_NS) and then the thread sleeps, so a waiting thread gives the core
 * away after at most that long.
 * That bound is 5 ms, not the few op lengths (0.1 ms) it was: a worker that sleeps in a short
 * serial gap of a training step (a residual add, the loss, the optimizer's bookkeeping) loses
 * its core to whatever else is runnable, and with other processes on the machine the next job
 * then waits for the kernel to hand the core back (a scheduler slice, ~1-3 ms on EEVDF) at every
 * such gap: ResNet-18 at 64x64, batch 32, 2 threads, beside a dozen nice-19 processes, trained
 * at 59-104 images/s with 0.1 ms, 142-158 with 3 ms, 127-133 with 10 ms (under a heavier load),
 * against ~170-185 on the quiet machine. A spin costs only a thread's time while the pool has
 * no job, at most 5 ms each time it runs dry. But that time is taken from this process's own
 * data loader when its threads are decoding ahead on the same cores: training the 224 CNN from
 * JPEGs (2 compute + 2 loader threads on 2 cores) used ~10% more CPU an epoch with the long spin,
 * a program that calls the pool now and then between serial work burns a core for nothing, and
 * where processes of the same priority share the cores (`ctest -j2`, two ranks on two cores)
 * a spinning thread takes half of a core another process needed (`ctest -LE slow -j2` took
 * 1.5-1.8x as long). So the long spin holds only inside a model's forward and backward
 * (herdi_pool_hot), while no loader thread is at work (herdi_pool_others_busy), and while the
 * thread keeps its core: every 0.1 ms it yields, which under the kernel's EEVDF scheduler hands
 * the core to a waiting thread of its own priority but not to a niced one (whose virtual
 * deadline lies far later), and then compares its CPU clock with the wall clock: once it ran
 * less than 3/4 of that time it sleeps. Without the yield a spinner found out only when the
 * kernel preempted it at the end of its slice: two trainings of 2 threads each on the 2 cores
 * ran at 35-40 images/s each (ResNet-18 64x64 b32) against 85-96 with the 0.1 ms spin; with it,
 * 86-94.
 * Elsewhere the spin stays at 0.1 ms. */
#include "herd/core.h"

#include "core/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SPIN_NS 5000000       /* how long a thread polls before sleeping inside a forward/backward */
#define SPIN_NS_SHARED 100000 /* elsewhere, or while the loader's threads want the cores: a few op lengths */
#define OWN_CHECK_NS 100000   /* how often a long spin checks that it still has its core to itself */

struct herd_pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv;
    atomic_uint_fast64_t generation; /* bumped per job */
    atomic_int pending;              /* workers still running the current job */
    atomic_int sleepers;             /* workers waiting on start_cv */
    atomic_int quit;
    atomic_int hot;                  /* open herdi_pool_hot brackets */
    /* the current job (published before generation is bumped) */
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

/* one poll of a spin: tell the core we are waiting (cheaper for the sibling hyperthread) */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#else
    sched_yield();
#endif
}

static atomic_int others_busy;

void herdi_pool_others_busy(int delta) { atomic_fetch_add_explicit(&others_busy, delta, memory_order_relaxed); }

void herdi_pool_hot(herd_pool *p, int delta) {
    if (p) atomic_fetch_add_explicit(&p->hot, delta, memory_order_relaxed);
}

typedef struct {
    double start;     /* when the spin began */
    double wall, cpu; /* the wall clock and the thread's CPU clock at its last check that it owns its core */
} spin_state;

static double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* whether the spin s of a thread of p has lasted long enough to sleep */
static int spin_over(herd_pool *p, spin_state *s) {
    double now = herd_now();
    if (now - s->start <= SPIN_NS_SHARED * 1e-9) return 0;
    if (atomic_load_explicit(&p->hot, memory_order_relaxed) <= 0 ||
        atomic_load_explicit(&others_busy, memory_order_relaxed) > 0 || now - s->start > SPIN_NS * 1e-9)
        return 1;
    if (now - s->wall < OWN_CHECK_NS * 1e-9) return 0;
    /* a runnable thread of this one's priority gets the core now (and the check below sees it);
     * a niced one does not (its virtual deadline is far later), nor does it when none waits */
    sched_yield();
    now = herd_now();
    double cpu = thread_cpu_seconds();
    int shared = s->cpu >= 0 && cpu - s->cpu < 0.75 * (now - s->wall); /* it ran less than 3/4 of the time */
    s->wall = now, s->cpu = cpu;
    return shared;
}

static void spin_begin(spin_state *s) {
    s->start = s->wall = herd_now();
    s->cpu = -1;
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    herd_pool *p = wa->p;
    int t = wa->index;
    free(wa);
    uint64_t seen = 0;
    for (;;) {
        /* spin for a new job, then sleep */
        spin_state spin;
        spin_begin(&spin);
        int polls = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen && !atomic_load(&p->quit)) {
            cpu_relax();
            if ((++polls & 15) == 0 && spin_over(p, &spin)) {
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleepers, 1);
                while (atomic_load(&p->generation) == seen && !atomic_load(&p->quit))
                    pthread_cond_wait(&p->start_cv, &p->mu);
                atomic_fetch_sub(&p->sleepers, 1);
                pthread_mutex_unlock(&p->mu);
            }
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        run_slice(p, t);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
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
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->quit, 0);
    atomic_init(&p->hot, 0);
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
    atomic_store(&p->quit, 1);
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
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu); /* orders the bump against a worker about to sleep */
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_acq_rel);
    if (atomic_load(&p->sleepers)) pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mu);
    run_slice(p, 0);
    spin_state spin;
    spin_begin(&spin);
    int polls = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        cpu_relax();
        if ((++polls & 15) == 0 && spin_over(p, &spin)) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done_cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int herd_cpu_count(void) {
    /* the cores this process may run on: srun, taskset and cgroup cpusets bind fewer than are online */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

double herd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
