/* The communicator: how ranks exchange parameters, gradients and metrics. One set of names,
 * several transports behind a table (comm_ops.h): comm_mpi.c (OpenMPI: mpirun, srun, or
 * herd's own launcher) and comm_threads.c (ranks as threads of one process: the fast tests of
 * every strategy, and one process alone), so the core and its tests build and run without MPI.
 * Every blocking wait has a deadline: a rank that died or hangs becomes an error naming
 * what was being waited for, never a silent hang. */
#ifndef HERD_COMM_H
#define HERD_COMM_H

#include <stdint.h>

#include "herd/core.h"
#include "herd/dist.h" /* herd_comm_open, close, rank, size, abort */

typedef struct herd_comm_request herd_comm_request;

/* A communicator of this process alone (one rank), whatever launched it: for a trainer given
 * no strategy. Close with herd_comm_close. */
herd_status herd_comm_open_self(herd_comm **out, herd_error *err);
/* n ranks as threads of this process: comms[r] is rank r's, used by one thread at a time and
 * closed by it (herd_comm_close); every wait gives up after timeout_s (<= 0: 60 s) with an
 * error naming what it waited for. Sums are in rank order: the same on every rank. */
herd_status herd_comm_threads_open(int n, double timeout_s, herd_comm **comms, herd_error *err);
/* Ranks of the job on this host (1 in one process). */
int herd_comm_local_size(const herd_comm *c);
/* 1 when herd was built with MPI. */
int herd_comm_has_mpi(void);
/* 1 when this process looks started by an MPI launcher (environment variables). */
int herd_comm_launched(void);

/* buf[0..n) from root to everyone. */
herd_status herd_comm_broadcast(herd_comm *c, float *buf, int64_t n, int root, herd_error *err);
/* In-place sum across ranks of n doubles (metrics), blocking. */
herd_status herd_comm_allreduce_f64(herd_comm *c, double *buf, int n, herd_error *err);
/* Gathers n floats from every rank into out (size * n, rank order). */
herd_status herd_comm_allgather(herd_comm *c, const float *in, float *out, int64_t n, herd_error *err);

/* Starts an in-place sum of buf[0..n) across ranks; buf must not be touched until the
 * request completes. With bf16_scratch (n values, caller-owned) the values travel as
 * bfloat16 (rounded to nearest even), each pairwise sum done in float and rounded back. */
herd_status herd_comm_iallreduce(herd_comm *c, float *buf, int64_t n, uint16_t *bf16_scratch,
                                 herd_comm_request **req, herd_error *err);
/* Starts, in place, a sum across ranks of buf[0 .. counts[0] + ... + counts[size-1]) of which
 * rank r gets its part, [counts[0] + ... + counts[r-1], + counts[r]), summed where it lies; the
 * other parts of this rank's buf are left as they were. counts is the same on every rank; buf
 * and counts must stay untouched until the request completes. */
herd_status herd_comm_ireduce_scatter(herd_comm *c, float *buf, const int *counts, herd_comm_request **req,
                                      herd_error *err);
/* Starts, in place: every rank's part of buf (rank r's: as herd_comm_ireduce_scatter cuts it)
 * to every rank; buf (every part but this rank's may be written any time until the request
 * completes) and counts must stay until then. */
herd_status herd_comm_iallgatherv(herd_comm *c, float *buf, const int *counts, herd_comm_request **req,
                                  herd_error *err);
/* The same, blocking. */
herd_status herd_comm_allgatherv(herd_comm *c, float *buf, const int *counts, herd_error *err);
/* Every rank sends send_bytes[r] bytes to rank r and receives recv_bytes[r] from it, blocking:
 * the parts lie one after another in rank order in send and in recv (not overlapping). Each
 * rank's recv_bytes[r] must equal rank r's send_bytes[me] (an error naming the rank otherwise,
 * where the transport can tell). */
herd_status herd_comm_alltoallv(herd_comm *c, const void *send, const int64_t *send_bytes, void *recv,
                                const int64_t *recv_bytes, herd_error *err);
/* Lets MPI move outstanding requests forward (non-blocking). */
void herd_comm_poll(herd_comm *c);
/* on = 1: a background thread drives MPI's progress engine while
 * non-blocking collectives are in flight, so they advance while this thread computes
 * (OpenMPI moves large messages only inside MPI calls). on = 0 pauses it. HERD_PROGRESS_US
 * sets the polling interval in microseconds (default 500 when ranks span hosts, no thread when
 * all ranks share one host; 0 = no thread). A no-op when MPI lacks MPI_THREAD_MULTIPLE or in
 * one process. */
void herd_comm_progress(herd_comm *c, int on);
/* Waits for req (and frees it), up to the communicator's deadline. */
herd_status herd_comm_wait(herd_comm *c, herd_comm_request *req, herd_error *err);

/* ---- point to point (parameter server) ---- */
/* Sub-communicator of the ranks passing the same color, ordered by rank. */
herd_status herd_comm_split(herd_comm *c, int color, herd_comm **out, herd_error *err);
herd_status herd_comm_isend(herd_comm *c, const void *buf, int64_t bytes, int dest, int tag, herd_comm_request **req,
                            herd_error *err);
herd_status herd_comm_irecv(herd_comm *c, void *buf, int64_t bytes, int src, int tag, herd_comm_request **req,
                            herd_error *err);
/* Is a message waiting (any source, any tag)? Non-blocking; fills src, tag, bytes when *found. */
herd_status herd_comm_probe(herd_comm *c, int *found, int *src, int *tag, int64_t *bytes, herd_error *err);
/* What this process's main thread now waits for, as the liveness check reports it to the
 * others: peer, a rank of c, or -1 (nothing). herd_comm_wait sets and restores it itself;
 * loops that poll (the parameter server) say whom they wait for with this. On a timeout herd
 * follows who waits on whom to the rank that stopped making progress, and names it. */
void herd_comm_set_waiting(herd_comm *c, int peer);
/* After waiting on peer (a rank of c) ran out: follows who waits on whom from peer to the
 * rank that stopped making progress and writes "; rank N stopped ..." (or the silent ranks,
 * or a cycle) into out, "" when it cannot tell. Takes up to 2 s (a liveness round). */
void herd_comm_blame(herd_comm *c, int peer, char *out, size_t size);
/* The world rank of rank r of c. */
int herd_comm_world_rank(const herd_comm *c, int r);
/* For loops that poll instead of waiting: call every iteration with the time the one it
 * waits for was last heard from. Once that is PING_AFTER_S (3 s) ago, a liveness check of
 * every process runs (non-blocking, across calls); one that cannot answer it (stopped,
 * killed) is an error naming it, about 5 s after it stopped. */
herd_status herd_comm_check_alive(herd_comm *c, double quiet_since, const char *what, herd_error *err);
/* Seconds every wait may take before it fails (the --timeout). */
double herd_comm_timeout(const herd_comm *c);

#endif
