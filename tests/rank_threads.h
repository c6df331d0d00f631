/* Runs one function as every rank of an in-process communicator (herd_comm_threads_open), one
 * thread per rank, for the fast tests of distributed code. */
#ifndef HERD_TEST_RANK_THREADS_H
#define HERD_TEST_RANK_THREADS_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "dist/comm.h"

typedef struct rank_ctx {
    herd_comm *comm;
    int rank, size;
    void *arg;          /* the caller's, shared by every rank */
    herd_status status; /* what the rank's function returned */
    herd_error err;
    void (*fn)(struct rank_ctx *r);
} rank_ctx;

static void *rank_main(void *p) {
    rank_ctx *r = p;
    r->fn(r);
    herd_comm_close(r->comm);
    return NULL;
}

/* fn(ctx) on n threads; ctx[r] (n of them, caller-owned) keeps each rank's status and error.
 * Returns 0 when every rank returned HERD_OK. */
static int run_ranks(int n, double timeout_s, void (*fn)(rank_ctx *r), void *arg, rank_ctx *ctx) {
    herd_comm *comms[64];
    pthread_t th[64];
    herd_error err = {0};
    if (n > 64 || herd_comm_threads_open(n, timeout_s, comms, &err)) return -1;
    for (int r = 0; r < n; r++) {
        ctx[r] = (rank_ctx){.comm = comms[r], .rank = r, .size = n, .arg = arg, .fn = fn};
        if (pthread_create(&th[r], NULL, rank_main, &ctx[r]) != 0) abort(); /* a test harness failure */
    }
    int bad = 0;
    for (int r = 0; r < n; r++) {
        pthread_join(th[r], NULL);
        bad |= ctx[r].status != HERD_OK;
    }
    return bad;
}

/* Copies src to dst (a checkpoint into a fresh directory, for the resume-on-another-layout
 * tests); 0 on success. */
static inline int copy_file(const char *src, const char *dst) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    char buf[1 << 16];
    size_t k;
    int ok = a && b;
    while (ok && (k = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, k, b) == k;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    return ok ? 0 : -1;
}

#endif
