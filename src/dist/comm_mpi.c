/* The MPI communicator (OpenMPI from Debian). Collectives are non-blocking underneath so
 * every wait can poll with a deadline instead of hanging on a dead or stuck rank. */
#include <mpi.h>
#if defined(OMPI_MPI_H) && __has_include(<mpi-ext.h>)
#include <mpi-ext.h> /* OpenMPI's persistent collectives (MPIX_Reduce_init) */
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/bf16.h"
#include "dist/comm_ops.h"

#define MAX_REQUESTS 256

/* Liveness: every process of the world runs a responder thread that answers pings on its own
 * communicator (it polls every 50 ms: a blocking MPI_Recv would spin a core). A wait that has
 * gone on for PING_AFTER_S pings every other process and gives them PING_WINDOW_S to answer:
 * one that cannot answer at all (stopped, swapped out for good, its whole process stuck) is
 * named within about 5 s, whatever --timeout says; one that answers is only slow, and the
 * wait goes on to the deadline (a rank whose main thread alone is stuck is named there). */
#define PING_AFTER_S 3.0
#define PING_WINDOW_S 2.0
#define PEER_GRACE_S 3.0
enum { TAG_PING = 91, TAG_PONG = 92 };

typedef struct watch {
    MPI_Comm comm; /* a dup of the world, for pings and pongs only */
    pthread_t thread;
    int started, rank, size, round;
} watch;
static watch g_watch; /* one per process: the world's */
/* What this process's main thread waits for, in world ranks: a rank, WAIT_ANY (a collective),
 * or WAIT_NONE (not waiting: computing, or stuck outside herd's waits). Pongs carry it, so a
 * rank that timed out can follow who waits on whom to the one that stopped making progress. */
enum { WAIT_NONE = -1, WAIT_ANY = -2 };
static atomic_int g_blocked_on = WAIT_NONE;

static void *watch_main(void *arg) {
    watch *w = arg;
    for (;;) {
        int token = 0, done = 0;
        MPI_Request r;
        MPI_Status s;
        MPI_Irecv(&token, 1, MPI_INT, MPI_ANY_SOURCE, TAG_PING, w->comm, &r);
        while (!done) {
            if (MPI_Test(&r, &done, &s) != MPI_SUCCESS) return NULL;
            if (!done) {
                struct timespec ts = {0, 50000000};
                nanosleep(&ts, NULL);
            }
        }
        if (s.MPI_SOURCE == w->rank && token < 0) return NULL; /* herd_comm_close says quit */
        int pong[2] = {token, atomic_load(&g_blocked_on)};
        MPI_Send(pong, 2, MPI_INT, s.MPI_SOURCE, TAG_PONG, w->comm); /* 8 bytes: sent eagerly */
    }
}

static void watch_start(MPI_Comm world, int rank, int size) {
    if (size < 2 || MPI_Comm_dup(world, &g_watch.comm) != MPI_SUCCESS) return;
    MPI_Comm_set_errhandler(g_watch.comm, MPI_ERRORS_RETURN);
    g_watch.rank = rank, g_watch.size = size;
    if (pthread_create(&g_watch.thread, NULL, watch_main, &g_watch) == 0) g_watch.started = 1;
    else MPI_Comm_free(&g_watch.comm);
}

static void watch_stop(void) {
    if (!g_watch.started) return;
    int quit = -1;
    MPI_Send(&quit, 1, MPI_INT, g_watch.rank, TAG_PING, g_watch.comm);
    pthread_join(g_watch.thread, NULL);
    MPI_Comm_free(&g_watch.comm);
    g_watch.started = 0;
}

/* A liveness check in flight: pings sent to every other process, pongs awaited. */
typedef struct ping_round {
    int active, round, *answered;
    int (*tokens)[2]; /* per process: the round it answered, and what it waits for */
    MPI_Request *recvs;
    double until;
} ping_round;

static void ping_start(ping_round *p) {
    int n = g_watch.size;
    memset(p, 0, sizeof *p);
    p->tokens = calloc((size_t)n, sizeof *p->tokens);
    p->answered = calloc((size_t)n, sizeof *p->answered);
    p->recvs = calloc((size_t)n, sizeof *p->recvs);
    if (!p->tokens || !p->answered || !p->recvs) { /* no check this time; the deadline still holds */
        free(p->tokens), free(p->answered), free(p->recvs);
        memset(p, 0, sizeof *p);
        return;
    }
    p->round = ++g_watch.round;
    for (int q = 0; q < n; q++) {
        p->recvs[q] = MPI_REQUEST_NULL;
        if (q == g_watch.rank) continue;
        MPI_Request s;
        MPI_Isend(&g_watch.round, 1, MPI_INT, q, TAG_PING, g_watch.comm, &s); /* a buffer that outlives this wait */
        MPI_Request_free(&s);
        MPI_Irecv(p->tokens[q], 2, MPI_INT, q, TAG_PONG, g_watch.comm, &p->recvs[q]);
    }
    p->until = herd_now() + PING_WINDOW_S;
    p->active = 1;
}

/* Collects pongs (an earlier round's late answer is read and waited past). Returns 1 once
 * every process answered, -1 when the window closed with some silent (listed in out), else 0. */
static int ping_poll(ping_round *p, char *out, size_t size) {
    int pending = 0;
    for (int q = 0; q < g_watch.size; q++) {
        if (q == g_watch.rank || p->answered[q]) continue;
        int done = 0;
        MPI_Test(&p->recvs[q], &done, MPI_STATUS_IGNORE);
        if (done && p->tokens[q][0] == p->round) p->answered[q] = 1;
        else if (done) MPI_Irecv(p->tokens[q], 2, MPI_INT, q, TAG_PONG, g_watch.comm, &p->recvs[q]);
        else pending++;
    }
    if (!pending) return 1;
    if (herd_now() < p->until) return 0;
    size_t len = 0;
    out[0] = 0;
    for (int q = 0; q < g_watch.size && len < size; q++)
        if (q != g_watch.rank && !p->answered[q]) len += (size_t)snprintf(out + len, size - len, "%s%d", len ? ", " : "", q);
    return -1;
}

static void ping_end(ping_round *p) { /* receives still open are cancelled (and completed) before their buffers go */
    for (int q = 0; p->recvs && q < g_watch.size; q++)
        if (p->recvs[q] != MPI_REQUEST_NULL) {
            MPI_Cancel(&p->recvs[q]);
            MPI_Wait(&p->recvs[q], MPI_STATUS_IGNORE);
        }
    free(p->tokens), free(p->answered), free(p->recvs);
    memset(p, 0, sizeof *p);
}

struct herd_comm_request {
    MPI_Request r;
    float *buf;
    int64_t n;
    uint16_t *scratch;
    int in_use;
    const char *what;
    int peer; /* point to point: the other rank; -1 for collectives */
    int *displs; /* allgatherv: MPI reads them until the request completes */
    MPI_Request *parts; /* reduce-scatter: one reduce per rank's part (n_parts of them), r unused */
    int n_parts;
    int planned; /* parts belong to a reduce-scatter plan (persistent requests), not to this request */
};

/* A reduce-scatter made persistent: the same buffer and parts at every step (a ZeRO-1 gradient
 * bucket), so libnbc builds its schedule and allocates its temporaries once (OpenMPI's pcollreq
 * extension); one reduce per part, as mpi_ireduce_scatter starts them. */
#define MAX_PLANS 64
typedef struct rs_plan {
    float *buf;
    int *counts; /* per rank, as given */
    MPI_Request *parts;
    int n_parts;
} rs_plan;

typedef struct mpi_comm {
    herd_comm base; /* rank, size, timeout as every communicator has them; first, so the two convert */
    int mpi; /* 0: not launched by MPI, a one-rank communicator; 1: the world; 2: a split of it */
    MPI_Comm comm;
    MPI_Comm alive; /* a separate channel for naming silent ranks after a timeout */
    /* progress thread (world communicator only, with MPI_THREAD_MULTIPLE) */
    int threads_ok;
    MPI_Comm progress_comm;
    pthread_t progress_thread;
    pthread_mutex_t progress_mu;
    pthread_cond_t progress_cv;
    atomic_int progress_on, progress_quit;
    int progress_started;
    long progress_ns; /* polling interval */
    int one_host;     /* every rank of the world shares this node's memory */
    int rank, size; /* copied into base by publish() */
    int *world_of; /* this communicator's rank -> world rank */
    ping_round ping; /* herd_comm_check_alive's check in flight */
    double next_ping;
    double timeout;
    MPI_Op bf16_sum;
    herd_comm_request reqs[MAX_REQUESTS];
    int local_size; /* ranks of the job on this host (MPI_COMM_TYPE_SHARED) */
    rs_plan plans[MAX_PLANS];
    int n_plans;
} mpi_comm;



static void bf16_sum_fn(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = herd_f32_to_bf16(herd_bf16_to_f32(a[i]) + herd_bf16_to_f32(b[i]));
}

static herd_status mpi_fail(herd_error *err, int code, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return herd_fail(err, HERD_EIO, "MPI %s failed: %.*s", what, len, msg);
}

/* c->world_of from c->comm's group (NULL on failure: ranks are then reported as c's own). */
static void map_world_ranks(mpi_comm *c) {
    MPI_Group mine, world;
    c->world_of = malloc((size_t)c->size * sizeof *c->world_of);
    int *local = malloc((size_t)c->size * sizeof *local);
    if (!c->world_of || !local || MPI_Comm_group(c->comm, &mine) != MPI_SUCCESS) {
        free(c->world_of), free(local);
        c->world_of = NULL;
        return;
    }
    MPI_Comm_group(MPI_COMM_WORLD, &world);
    for (int i = 0; i < c->size; i++) local[i] = i;
    MPI_Group_translate_ranks(mine, c->size, local, world, c->world_of);
    MPI_Group_free(&mine);
    MPI_Group_free(&world);
    free(local);
}

static int world_rank(const mpi_comm *c, int r) { return c->world_of && r >= 0 && r < c->size ? c->world_of[r] : r; }

static const comm_ops mpi_ops;
static void mpi_close(herd_comm *hc);

/* The fields every communicator has, from the MPI ones. */
static void publish(mpi_comm *c) {
    c->base.ops = &mpi_ops;
    c->base.rank = c->rank, c->base.size = c->size, c->base.timeout = c->timeout;
}

/* The algorithms OpenMPI 4.1's libnbc (every non-blocking collective here) runs, set before
 * MPI_Init unless the user set them in the environment (OMPI_MCA_*; mpirun --mca puts them
 * there; an mca-params.conf file is outranked by this):
 *  - allreduce: the ring (reduce-scatter then allgather, each rank sending 2 (p-1)/p of the
 *    buffer and summing 1/p of it). Left alone, libnbc takes a binomial tree up and down for
 *    every in-place allreduce (and under 4 ranks for any): the whole buffer crosses log2(p)
 *    links twice, one after the other, and rank 0 does every sum. Its in-place ring is right
 *    from 4.1.2 on (open-mpi/ompi#9385); Debian's is 4.1.4.
 *  - reduce: binomial. For 2 to 4 ranks and 64 KiB or more libnbc pipelines a chain of 8 KiB
 *    fragments, one schedule round each, and a round only moves when this process polls: a
 *    ZeRO-1 reduce-scatter of a 17 MB bucket (one reduce per part) took 1.7 s a step. */
static void choose_collectives(void) {
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "ring", 0);
    setenv("OMPI_MCA_coll_libnbc_ireduce_algorithm", "binomial", 0);
}

herd_status herdi_comm_mpi_open(herd_comm **out, double timeout_s, herd_error *err) {
    mpi_comm *c = calloc(1, sizeof *c);
    if (!c) return herd_fail(err, HERD_ENOMEM, "out of memory");
    c->timeout = timeout_s > 0 ? timeout_s : 60;
    c->size = 1;
    /* srun with Slurm's default --mpi=none starts N tasks that each see only themselves */
    const char *step_tasks = getenv("SLURM_STEP_NUM_TASKS");
    int srun_tasks = step_tasks && getenv("SLURM_PROCID") ? atoi(step_tasks) : 0;
    if (srun_tasks > 1 && !herd_comm_launched()) {
        free(c);
        return herd_fail(err, HERD_EUNSUPPORTED, "srun started %d tasks, but they cannot reach each other through MPI "
                         "(no PMI in their environment: Slurm's --mpi=none); run srun --mpi=pmix, or mpirun", srun_tasks);
    }
    if (herd_comm_launched()) {
        int provided, rc;
        choose_collectives();
        if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided)) != MPI_SUCCESS) {
            free(c);
            return mpi_fail(err, rc, "init");
        }
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
        MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
        MPI_Comm_dup(MPI_COMM_WORLD, &c->alive);
        MPI_Comm_set_errhandler(c->alive, MPI_ERRORS_RETURN);
        MPI_Comm_rank(c->comm, &c->rank);
        MPI_Comm_size(c->comm, &c->size);
        map_world_ranks(c);
        MPI_Op_create(bf16_sum_fn, 1, &c->bf16_sum);
        c->mpi = 1;
        c->threads_ok = provided >= MPI_THREAD_MULTIPLE;
        MPI_Comm node;
        if (MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
            int node_size;
            MPI_Comm_size(node, &node_size);
            c->one_host = node_size == c->size;
            c->local_size = node_size;
            MPI_Comm_free(&node);
        }
        if (c->threads_ok) watch_start(c->comm, c->rank, c->size);
    }
    if (srun_tasks > 1 && c->size != srun_tasks) {
        herd_status st = herd_fail(err, HERD_EUNSUPPORTED, "srun started %d tasks but MPI joined %d of them; check "
                                   "srun's --mpi= plugin", srun_tasks, c->size);
        mpi_close(&c->base);
        return st;
    }
    publish(c);
    *out = &c->base;
    return HERD_OK;
}

static int mpi_local_size(const herd_comm *hc) {
    const mpi_comm *c = (const mpi_comm *)hc;
    return c->local_size > 0 ? c->local_size : 1;
}

static void *progress_main(void *arg) {
    mpi_comm *c = arg;
    pthread_mutex_lock(&c->progress_mu);
    while (!atomic_load(&c->progress_quit)) {
        if (!atomic_load(&c->progress_on)) {
            pthread_cond_wait(&c->progress_cv, &c->progress_mu);
            continue;
        }
        pthread_mutex_unlock(&c->progress_mu);
        while (atomic_load(&c->progress_on) && !atomic_load(&c->progress_quit)) {
            int flag;
            MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->progress_comm, &flag, MPI_STATUS_IGNORE);
            struct timespec ts = {0, c->progress_ns};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&c->progress_mu);
    }
    pthread_mutex_unlock(&c->progress_mu);
    return NULL;
}

static void mpi_progress(herd_comm *hc, int on) {
    mpi_comm *c = (mpi_comm *)hc;
    if (c->mpi != 1 || !c->threads_ok || c->size == 1) return;
    if (!c->progress_started) {
        if (!on) return;
        /* The thread moves network messages while backward runs. When every rank is on this
         * host the exchange is a shared-memory copy done at the wait, and the thread's wake-ups
         * only take the cores from compute (2 ranks x 1 thread on 2 cores: 0.86 scaling
         * efficiency with it, 0.95 without), so by default it runs only across hosts. */
        const char *us = getenv("HERD_PROGRESS_US"); /* tuning knob; 0 turns the thread off */
        c->progress_ns = us ? atol(us) * 1000L : c->one_host ? 0 : 500000L; /* 0.5 ms: measured, see README */
        if (c->progress_ns <= 0 || c->progress_ns >= 1000000000L) {
            c->threads_ok = 0;
            return;
        }
        MPI_Comm_dup(c->comm, &c->progress_comm);
        pthread_mutex_init(&c->progress_mu, NULL);
        pthread_cond_init(&c->progress_cv, NULL);
        atomic_init(&c->progress_on, 0);
        atomic_init(&c->progress_quit, 0);
        if (pthread_create(&c->progress_thread, NULL, progress_main, c) != 0) {
            c->threads_ok = 0; /* fall back to polling between layers */
            return;
        }
        c->progress_started = 1;
    }
    pthread_mutex_lock(&c->progress_mu);
    atomic_store(&c->progress_on, on);
    pthread_cond_signal(&c->progress_cv);
    pthread_mutex_unlock(&c->progress_mu);
}

static void mpi_close(herd_comm *hc) {
    mpi_comm *c = (mpi_comm *)hc;
    if (!c) return;
    if (c->progress_started) {
        pthread_mutex_lock(&c->progress_mu);
        atomic_store(&c->progress_quit, 1);
        pthread_cond_signal(&c->progress_cv);
        pthread_mutex_unlock(&c->progress_mu);
        pthread_join(c->progress_thread, NULL);
        MPI_Comm_free(&c->progress_comm);
    }
    if (c->ping.active) ping_end(&c->ping);
    free(c->world_of);
    if (c->mpi == 1) watch_stop();
    for (int i = 0; i < c->n_plans; i++) {
        for (int k = 0; k < c->plans[i].n_parts; k++) MPI_Request_free(&c->plans[i].parts[k]);
        free(c->plans[i].parts), free(c->plans[i].counts);
    }
    if (c->mpi) {
        MPI_Op_free(&c->bf16_sum);
        MPI_Comm_free(&c->alive);
        MPI_Comm_free(&c->comm);
        if (c->mpi == 1) MPI_Finalize();
    }
    free(c);
}


static herd_comm_request *take_request(mpi_comm *c, const char *what) {
    for (int i = 0; i < MAX_REQUESTS; i++)
        if (!c->reqs[i].in_use) {
            herd_comm_request *r = &c->reqs[i];
            memset(r, 0, sizeof *r);
            r->in_use = 1;
            r->what = what;
            r->peer = -1;
            return r;
        }
    return NULL;
}

/* After a timeout: every live rank is stuck in the same collective and times out at about
 * the same moment, so each sends "alive" to every peer and listens for a few seconds; the
 * peers not heard from are the dead or hung ones. Writes their list into out. */
static void name_silent_ranks(mpi_comm *c, char *out, size_t size) {
    int n = c->size, me = c->rank, token = me;
    MPI_Request *sends = calloc((size_t)n, sizeof *sends), *recvs = calloc((size_t)n, sizeof *recvs);
    int *got = calloc((size_t)n, sizeof *got), *heard = calloc((size_t)n, sizeof *heard);
    snprintf(out, size, "unknown");
    if (!sends || !recvs || !got || !heard) goto done;
    for (int p = 0; p < n; p++) {
        sends[p] = recvs[p] = MPI_REQUEST_NULL;
        if (p == me) continue;
        MPI_Isend(&token, 1, MPI_INT, p, 77, c->alive, &sends[p]);
        MPI_Irecv(&got[p], 1, MPI_INT, p, 77, c->alive, &recvs[p]);
    }
    double until = herd_now() + (c->timeout < 4 ? c->timeout / 2 : 2);
    int pending = n - 1;
    while (pending > 0 && herd_now() < until) {
        for (int p = 0; p < n; p++) {
            int done = 0;
            if (p == me || heard[p]) continue;
            MPI_Test(&recvs[p], &done, MPI_STATUS_IGNORE);
            if (done) heard[p] = 1, pending--;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    size_t len = 0;
    out[0] = 0;
    for (int p = 0; p < n && len < size; p++)
        if (p != me && !heard[p]) len += (size_t)snprintf(out + len, size - len, "%s%d", len ? ", " : "", p);
    if (!out[0]) snprintf(out, size, "none found (all answered the check)");
done:
    free(sends), free(recvs), free(got), free(heard); /* the job is aborted next; requests are abandoned */
}

/* After a wait on world rank `peer` ran out: asks every process what it waits for (their
 * watch threads answer even when the main thread is stuck) and follows the chain from peer to
 * the process that waits for nobody: the one that stopped making progress. Writes a clause
 * naming it (or the silent ones, or a cycle) into out; "" when the check cannot run. */
static void blame(int peer, char *out, size_t size) {
    out[0] = 0;
    if (!g_watch.started || peer < 0 || peer >= g_watch.size) return;
    ping_round p;
    ping_start(&p);
    if (!p.active) return;
    char silent[256];
    int r;
    while ((r = ping_poll(&p, silent, sizeof silent)) == 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    int n = g_watch.size, *seen = calloc((size_t)n, sizeof *seen), q = peer, len = 0;
    char chain[256] = "";
    if (!seen) goto done;
    for (int hops = 0; hops < n; hops++) {
        len += snprintf(chain + len, sizeof chain - (size_t)(len < (int)sizeof chain ? len : (int)sizeof chain - 1),
                        "%s%d", hops ? " -> " : "", q);
        if (len >= (int)sizeof chain) len = (int)sizeof chain - 1;
        if (q == g_watch.rank) { /* back to us: a cycle of waits */
            snprintf(out, size, "; the waits form a cycle (%d -> %s): a deadlock", g_watch.rank, chain);
            goto done;
        }
        if (!p.answered[q]) {
            snprintf(out, size, "; rank %d stopped responding (no answer to a liveness check; waits: %d -> %s)", q,
                     g_watch.rank, chain);
            goto done;
        }
        int next = p.tokens[q][1];
        if (next == WAIT_NONE) {
            snprintf(out, size, "; rank %d stopped making progress (it waits for no one, its main thread is busy or "
                     "stuck; waits: %d -> %s)", q, g_watch.rank, chain);
            goto done;
        }
        if (next == WAIT_ANY) { /* q is in a collective: the member that never joined waits for no one */
            char idle[128] = "";
            int k = 0;
            for (int o = 0; o < n; o++)
                if (o != g_watch.rank && p.answered[o] && p.tokens[o][1] == WAIT_NONE && k < (int)sizeof idle - 12)
                    k += snprintf(idle + k, sizeof idle - (size_t)k, "%s%d", k ? ", " : "", o);
            if (k)
                snprintf(out, size, "; rank(s) %s stopped making progress (waiting for no one while the others wait; "
                         "waits: %d -> %s, in a collective)", idle, g_watch.rank, chain);
            else
                snprintf(out, size, "; waits: %d -> %s (in a collective)", g_watch.rank, chain);
            goto done;
        }
        if (next < 0 || next >= n || seen[q]++) {
            snprintf(out, size, "; waits: %d -> %s", g_watch.rank, chain);
            goto done;
        }
        q = next;
    }
done:
    free(seen);
    ping_end(&p);
}

static void mpi_blame(herd_comm *hc, int peer, char *out, size_t size) {
    mpi_comm *c = (mpi_comm *)hc;
    if (c->ping.active) ping_end(&c->ping);
    if (c->mpi) blame(world_rank(c, peer), out, size);
    else if (size) out[0] = 0;
}

static int mpi_world_rank(const herd_comm *hc, int rank) { return world_rank((const mpi_comm *)hc, rank); }

static void mpi_set_waiting(herd_comm *hc, int peer) {
    mpi_comm *c = (mpi_comm *)hc;
    atomic_store(&g_blocked_on, peer < 0 ? WAIT_NONE : world_rank(c, peer));
}

static herd_status mpi_check_alive(herd_comm *hc, double quiet_since, const char *what, herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    if (!c->mpi || !g_watch.started) return HERD_OK;
    double now = herd_now();
    if (!c->ping.active && now - quiet_since > PING_AFTER_S && now > c->next_ping) ping_start(&c->ping);
    if (!c->ping.active) return HERD_OK;
    char silent[256];
    int r = ping_poll(&c->ping, silent, sizeof silent);
    if (r < 0) {
        ping_end(&c->ping);
        return herd_fail(err, HERD_EIO, "rank(s) %s stopped responding: no answer to a liveness check within %.0f s, "
                         "while %s for %.0f s (process stopped, killed or stuck)", silent, PING_WINDOW_S, what,
                         now - quiet_since);
    }
    if (r > 0) {
        ping_end(&c->ping);
        c->next_ping = now + PING_AFTER_S;
    }
    return HERD_OK;
}

static herd_status mpi_wait(herd_comm *hc, herd_comm_request *req, herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    herd_status st = HERD_OK;
    if (c->mpi) {
        /* waiting on a peer: a little longer than the --timeout, so that the peer, when it is itself
         * waiting on a rank that stopped (a parameter server on a worker), names that rank first */
        double deadline = herd_now() + c->timeout + (req->peer >= 0 ? PEER_GRACE_S : 0);
        double next_ping = herd_now() + PING_AFTER_S;
        int done = 0, polls = 0, was = atomic_exchange(&g_blocked_on, req->peer >= 0 ? world_rank(c, req->peer)
                                                                                        : WAIT_ANY);
        ping_round ping = {0};
        while (!done) {
            int rc = req->parts ? MPI_Testall(req->n_parts, req->parts, &done, MPI_STATUSES_IGNORE)
                                : MPI_Test(&req->r, &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) {
                st = mpi_fail(err, rc, req->what);
                break;
            }
            if (done) break;
            if (g_watch.started && !ping.active && herd_now() > next_ping) ping_start(&ping);
            if (ping.active) {
                char silent[256];
                int r = ping_poll(&ping, silent, sizeof silent);
                if (r < 0) {
                    st = herd_fail(err, HERD_EIO, "rank(s) %s stopped responding: no answer to a liveness check "
                                   "within %.0f s, while waiting %.0f s for %s (process stopped, killed or stuck)",
                                   silent, PING_WINDOW_S, herd_now() - (deadline - c->timeout), req->what);
                    break;
                }
                if (r > 0) {
                    ping_end(&ping);
                    next_ping = herd_now() + PING_AFTER_S;
                }
            }
            if (herd_now() > deadline && req->peer >= 0) {
                char why[400];
                if (ping.active) ping_end(&ping); /* one liveness round at a time */
                if (c->ping.active) ping_end(&c->ping);
                blame(world_rank(c, req->peer), why, sizeof why);
                st = herd_fail(err, HERD_EIO, "rank %d gave no answer within %.0f s to a %s of %lld bytes%s",
                               world_rank(c, req->peer), c->timeout, req->what, (long long)req->n,
                               why[0] ? why : " (died or hangs)");
                break;
            }
            if (herd_now() > deadline) {
                char silent[256];
                name_silent_ranks(c, silent, sizeof silent);
                st = herd_fail(err, HERD_EIO, "no answer within %.0f s to %s of %lld values; silent rank(s): %s "
                               "(died or hangs)", c->timeout, req->what, (long long)req->n, silent);
                break;
            }
            if (++polls > 1000) { /* spin briefly, then stop burning the core */
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
        }
        if (ping.active) ping_end(&ping);
        atomic_store(&g_blocked_on, was);
    }
    if (st == HERD_OK && req->scratch)
        for (int64_t i = 0; i < req->n; i++) req->buf[i] = herd_bf16_to_f32(req->scratch[i]);
    free(req->displs);
    if (!req->planned) free(req->parts);
    req->displs = NULL, req->parts = NULL;
    req->in_use = 0;
    return st;
}

static herd_status mpi_iallreduce(herd_comm *hc, float *buf, int64_t n, uint16_t *bf16_scratch,
                                 herd_comm_request **req, herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    if (n > 0x7fffffff) return herd_fail(err, HERD_EARG, "allreduce of %lld values is too large", (long long)n);
    herd_comm_request *r = take_request(c, "allreduce");
    if (!r) return herd_fail(err, HERD_EINTERNAL, "more than %d allreduces in flight", MAX_REQUESTS);
    r->buf = buf, r->n = n, r->scratch = bf16_scratch;
    if (bf16_scratch)
        for (int64_t i = 0; i < n; i++) bf16_scratch[i] = herd_f32_to_bf16(buf[i]);
    if (c->mpi) {
        int rc = bf16_scratch
                     ? MPI_Iallreduce(MPI_IN_PLACE, bf16_scratch, (int)n, MPI_UINT16_T, c->bf16_sum, c->comm, &r->r)
                     : MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, c->comm, &r->r);
        if (rc != MPI_SUCCESS) {
            r->in_use = 0;
            return mpi_fail(err, rc, "allreduce");
        }
    }
    *req = r;
    return HERD_OK;
}

/* Starts the reduces of one rank's part each, to that rank, in place there (into parts[], *n of
 * them), persistent (MPIX_Reduce_init, not started) when `persistent`; on failure the job ends on
 * it and the reduces already made are abandoned. */
static int start_part_reduces(mpi_comm *c, float *buf, const int *counts, int persistent, MPI_Request *parts, int *n) {
    int64_t at = 0;
    *n = 0;
    for (int q = 0; q < c->size; at += counts[q], q++) {
        if (counts[q] == 0) continue; /* the same parts skipped on every rank: counts are */
        const void *send = q == c->rank ? MPI_IN_PLACE : (const void *)(buf + at);
        void *recv = q == c->rank ? (void *)(buf + at) : NULL;
        int rc;
#ifdef OMPI_HAVE_MPI_EXT_PCOLLREQ
        if (persistent)
            rc = MPIX_Reduce_init(send, recv, counts[q], MPI_FLOAT, MPI_SUM, q, c->comm, MPI_INFO_NULL, &parts[*n]);
        else
#endif
            rc = MPI_Ireduce(send, recv, counts[q], MPI_FLOAT, MPI_SUM, q, c->comm, &parts[*n]);
        (void)persistent;
        if (rc != MPI_SUCCESS) return rc;
        (*n)++;
    }
    return MPI_SUCCESS;
}

/* The plan for this buffer and these parts: found, or made (NULL when plans are not offered or
 * all are taken: the reduces are then made at each call). Every rank makes its plans in the same
 * order, as their reduce-scatters are called: making one is a collective call. */
static rs_plan *find_plan(mpi_comm *c, float *buf, const int *counts, int *rc) {
    *rc = MPI_SUCCESS;
#ifdef OMPI_HAVE_MPI_EXT_PCOLLREQ
    for (int i = 0; i < c->n_plans; i++)
        if (c->plans[i].buf == buf && memcmp(c->plans[i].counts, counts, (size_t)c->size * sizeof *counts) == 0)
            return &c->plans[i];
    if (c->n_plans == MAX_PLANS) return NULL;
    rs_plan *p = &c->plans[c->n_plans];
    p->buf = buf;
    p->counts = malloc((size_t)c->size * sizeof *p->counts);
    p->parts = malloc((size_t)c->size * sizeof *p->parts);
    if (!p->counts || !p->parts) {
        free(p->counts), free(p->parts);
        return NULL;
    }
    memcpy(p->counts, counts, (size_t)c->size * sizeof *counts);
    if ((*rc = start_part_reduces(c, buf, counts, 1, p->parts, &p->n_parts)) != MPI_SUCCESS) {
        free(p->counts), free(p->parts);
        return NULL;
    }
    c->n_plans++;
    return p;
#else
    (void)c, (void)buf, (void)counts;
    return NULL;
#endif
}

/* One reduce per rank's part, to that rank, in place there: libnbc's own reduce-scatter (OpenMPI
 * 4.1) reduces the whole buffer onto rank 0 along a binomial tree and then scatters it, rank 0
 * doing every sum, with a temporary of twice the buffer per call (past glibc's 32 MiB mmap
 * ceiling for a large bucket: fresh pages to fault in at every step); here each rank sums its
 * own part, into the gradient where it lies (no copy out of a separate buffer), and libnbc's
 * reduce needs a temporary of one part at most. The reduces are persistent where OpenMPI offers
 * it (a plan per buffer and parts): a non-blocking reduce allocates its temporary at every call,
 * and glibc handed the freed pages back, so each step faulted them in again. */
static herd_status mpi_ireduce_scatter(herd_comm *hc, float *buf, const int *counts, herd_comm_request **req,
                                       herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    herd_comm_request *r = take_request(c, "reduce-scatter");
    if (!r) return herd_fail(err, HERD_EINTERNAL, "more than %d requests in flight", MAX_REQUESTS);
    r->n = counts[c->rank];
    if (c->mpi) {
        int rc;
        rs_plan *plan = find_plan(c, buf, counts, &rc);
        if (plan) {
            r->parts = plan->parts, r->n_parts = plan->n_parts, r->planned = 1;
            rc = plan->n_parts ? MPI_Startall(plan->n_parts, plan->parts) : MPI_SUCCESS;
        } else if (rc == MPI_SUCCESS) {
            if (!(r->parts = malloc((size_t)c->size * sizeof *r->parts))) {
                r->in_use = 0;
                return herd_fail(err, HERD_ENOMEM, "out of memory for a reduce-scatter");
            }
            rc = start_part_reduces(c, buf, counts, 0, r->parts, &r->n_parts);
        }
        if (rc != MPI_SUCCESS) { /* the job ends on it: the reduces already started are abandoned */
            if (!r->planned) free(r->parts);
            r->parts = NULL, r->in_use = 0;
            return mpi_fail(err, rc, "reduce-scatter");
        }
    }
    *req = r;
    return HERD_OK;
}

static herd_status mpi_iallgatherv(herd_comm *hc, float *buf, const int *counts, herd_comm_request **req,
                                   herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    *req = NULL;
    if (!c->mpi) return HERD_OK;
    int *displs = malloc((size_t)c->size * sizeof *displs);
    herd_comm_request *r = displs ? take_request(c, "allgatherv") : NULL;
    if (!r) {
        free(displs);
        return herd_fail(err, HERD_ENOMEM, "out of memory for an allgather");
    }
    int64_t at = 0;
    for (int q = 0; q < c->size; q++) displs[q] = (int)at, at += counts[q];
    r->n = at, r->displs = displs; /* freed when the request completes */
    int rc = at > 0x7fffffff ? MPI_ERR_COUNT
                             : MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT,
                                               c->comm, &r->r);
    if (rc != MPI_SUCCESS) {
        free(displs);
        r->displs = NULL, r->in_use = 0;
        return mpi_fail(err, rc, "allgatherv");
    }
    *req = r;
    return HERD_OK;
}

static herd_status mpi_alltoallv(herd_comm *hc, const void *send, const int64_t *send_bytes, void *recv,
                                 const int64_t *recv_bytes, herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    if (!c->mpi) {
        memmove(recv, send, (size_t)send_bytes[0]);
        return HERD_OK;
    }
    int *v = malloc(4 * (size_t)c->size * sizeof *v); /* send counts, displacements, receive counts, displacements */
    herd_comm_request *r = v ? take_request(c, "alltoallv") : NULL;
    if (!r) {
        free(v);
        return herd_fail(err, HERD_ENOMEM, "out of memory for an alltoallv");
    }
    int64_t sat = 0, rat = 0;
    for (int q = 0; q < c->size; q++) {
        v[q] = (int)send_bytes[q], v[c->size + q] = (int)sat, sat += send_bytes[q];
        v[2 * c->size + q] = (int)recv_bytes[q], v[3 * c->size + q] = (int)rat, rat += recv_bytes[q];
    }
    r->n = rat;
    herd_status st = HERD_OK;
    int rc = sat > 0x7fffffff || rat > 0x7fffffff
                 ? MPI_ERR_COUNT
                 : MPI_Ialltoallv(send, v, v + c->size, MPI_BYTE, recv, v + 2 * c->size, v + 3 * c->size, MPI_BYTE,
                                  c->comm, &r->r);
    if (rc != MPI_SUCCESS) {
        r->in_use = 0;
        st = mpi_fail(err, rc, "alltoallv");
    } else {
        st = mpi_wait(&c->base, r, err);
    }
    free(v); /* read by MPI until the request completes */
    return st;
}

static void mpi_poll(herd_comm *hc) {
    mpi_comm *c = (mpi_comm *)hc;
    if (!c->mpi) return;
    int flag;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->comm, &flag, MPI_STATUS_IGNORE); /* drives OpenMPI's progress engine */
}

static herd_status mpi_broadcast(herd_comm *hc, float *buf, int64_t n, int root, herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    if (!c->mpi) return HERD_OK;
    if (n > 0x7fffffff) return herd_fail(err, HERD_EARG, "broadcast of %lld values is too large", (long long)n);
    herd_comm_request *r = take_request(c, "broadcast");
    if (!r) return herd_fail(err, HERD_EINTERNAL, "too many requests in flight");
    r->n = n;
    int rc = MPI_Ibcast(buf, (int)n, MPI_FLOAT, root, c->comm, &r->r);
    if (rc != MPI_SUCCESS) {
        r->in_use = 0;
        return mpi_fail(err, rc, "broadcast");
    }
    return mpi_wait(&c->base, r, err);
}

static herd_status mpi_allreduce_f64(herd_comm *hc, double *buf, int n, herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    if (!c->mpi) return HERD_OK;
    herd_comm_request *r = take_request(c, "metrics allreduce");
    if (!r) return herd_fail(err, HERD_EINTERNAL, "too many requests in flight");
    r->n = n;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, c->comm, &r->r);
    if (rc != MPI_SUCCESS) {
        r->in_use = 0;
        return mpi_fail(err, rc, "allreduce");
    }
    return mpi_wait(&c->base, r, err);
}

static herd_status mpi_allgather(herd_comm *hc, const float *in, float *out, int64_t n, herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    if (!c->mpi) {
        memmove(out, in, (size_t)n * sizeof(float));
        return HERD_OK;
    }
    if (n > 0x7fffffff) return herd_fail(err, HERD_EARG, "allgather of %lld values is too large", (long long)n);
    herd_comm_request *r = take_request(c, "allgather");
    if (!r) return herd_fail(err, HERD_EINTERNAL, "too many requests in flight");
    r->n = n;
    int rc = MPI_Iallgather(in == out + (int64_t)c->rank * n ? MPI_IN_PLACE : in, (int)n, MPI_FLOAT, out, (int)n,
                            MPI_FLOAT, c->comm, &r->r);
    if (rc != MPI_SUCCESS) {
        r->in_use = 0;
        return mpi_fail(err, rc, "allgather");
    }
    return mpi_wait(&c->base, r, err);
}

static herd_status mpi_split(herd_comm *hc, int color, herd_comm **out, herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    mpi_comm *s = calloc(1, sizeof *s);
    if (!s) return herd_fail(err, HERD_ENOMEM, "out of memory");
    s->timeout = c->timeout;
    s->size = 1;
    if (c->mpi) {
        int rc = MPI_Comm_split(c->comm, color, c->rank, &s->comm);
        if (rc != MPI_SUCCESS) {
            free(s);
            return mpi_fail(err, rc, "communicator split");
        }
        MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
        MPI_Comm_dup(s->comm, &s->alive);
        MPI_Comm_rank(s->comm, &s->rank);
        MPI_Comm_size(s->comm, &s->size);
        map_world_ranks(s);
        MPI_Op_create(bf16_sum_fn, 1, &s->bf16_sum);
        s->mpi = 2; /* a sub-communicator: freed, but MPI is finalized by its parent */
    }
    publish(s);
    *out = &s->base;
    return HERD_OK;
}

static herd_status p2p_start(mpi_comm *c, void *buf, int64_t bytes, int peer, int tag, int send,
                             herd_comm_request **req, herd_error *err) {
    if (bytes > 0x7fffffff) return herd_fail(err, HERD_EARG, "message of %lld bytes is too large", (long long)bytes);
    herd_comm_request *r = take_request(c, send ? "send" : "receive");
    if (!r) return herd_fail(err, HERD_EINTERNAL, "more than %d requests in flight", MAX_REQUESTS);
    r->n = bytes;
    r->peer = peer;
    int rc = send ? MPI_Isend(buf, (int)bytes, MPI_BYTE, peer, tag, c->comm, &r->r)
                  : MPI_Irecv(buf, (int)bytes, MPI_BYTE, peer, tag, c->comm, &r->r);
    if (rc != MPI_SUCCESS) {
        r->in_use = 0;
        return mpi_fail(err, rc, send ? "send" : "receive");
    }
    *req = r;
    return HERD_OK;
}

static herd_status mpi_isend(herd_comm *hc, const void *buf, int64_t bytes, int dest, int tag, herd_comm_request **req,
                            herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    return p2p_start(c, (void *)buf, bytes, dest, tag, 1, req, err);
}

static herd_status mpi_irecv(herd_comm *hc, void *buf, int64_t bytes, int src, int tag, herd_comm_request **req,
                            herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    return p2p_start(c, buf, bytes, src, tag, 0, req, err);
}

static herd_status mpi_probe(herd_comm *hc, int *found, int *src, int *tag, int64_t *bytes, herd_error *err) {
    mpi_comm *c = (mpi_comm *)hc;
    MPI_Status status;
    int rc = MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->comm, found, &status);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "probe");
    if (*found) {
        int count;
        MPI_Get_count(&status, MPI_BYTE, &count);
        *src = status.MPI_SOURCE, *tag = status.MPI_TAG, *bytes = count;
    }
    return HERD_OK;
}

static void mpi_abort(herd_comm *hc, int code) {
    mpi_comm *c = (mpi_comm *)hc;
    if (c && c->mpi) MPI_Abort(c->comm, code);
}

static const comm_ops mpi_ops = {
    .close = mpi_close,
    .local_size = mpi_local_size,
    .broadcast = mpi_broadcast,
    .allreduce_f64 = mpi_allreduce_f64,
    .allgather = mpi_allgather,
    .iallreduce = mpi_iallreduce,
    .ireduce_scatter = mpi_ireduce_scatter,
    .iallgatherv = mpi_iallgatherv,
    .alltoallv = mpi_alltoallv,
    .poll = mpi_poll,
    .progress = mpi_progress,
    .wait = mpi_wait,
    .split = mpi_split,
    .isend = mpi_isend,
    .irecv = mpi_irecv,
    .probe = mpi_probe,
    .set_waiting = mpi_set_waiting,
    .blame = mpi_blame,
    .world_rank = mpi_world_rank,
    .check_alive = mpi_check_alive,
    .abort = mpi_abort,
};
