/* The communicator's table of functions, one implementation per transport: comm_mpi.c
 * (processes over OpenMPI) and comm_threads.c (ranks as threads of one process, and the
 * one-rank communicator). comm.c dispatches herd_comm_* through it; comm.h documents each call.
 * Requests (struct herd_comm_request) are each implementation's own: they only ever go back to
 * the communicator that made them. */
#ifndef HERD_COMM_OPS_H
#define HERD_COMM_OPS_H

#include "dist/comm.h"

typedef struct comm_ops comm_ops;

/* What every communicator has; an implementation's struct starts with it. */
struct herd_comm {
    const comm_ops *ops;
    int rank, size;
    double timeout; /* seconds every wait may take */
};

struct comm_ops {
    void (*close)(herd_comm *c);
    int (*local_size)(const herd_comm *c);
    herd_status (*broadcast)(herd_comm *c, float *buf, int64_t n, int root, herd_error *err);
    herd_status (*allreduce_f64)(herd_comm *c, double *buf, int n, herd_error *err);
    herd_status (*allgather)(herd_comm *c, const float *in, float *out, int64_t n, herd_error *err);
    herd_status (*iallreduce)(herd_comm *c, float *buf, int64_t n, uint16_t *bf16_scratch, herd_comm_request **req,
                              herd_error *err);
    herd_status (*ireduce_scatter)(herd_comm *c, float *buf, const int *counts, herd_comm_request **req,
                                   herd_error *err);
    herd_status (*iallgatherv)(herd_comm *c, float *buf, const int *counts, herd_comm_request **req,
                               herd_error *err); /* *req NULL: nothing to wait for (one rank) */
    herd_status (*alltoallv)(herd_comm *c, const void *send, const int64_t *send_bytes, void *recv,
                             const int64_t *recv_bytes, herd_error *err);
    void (*poll)(herd_comm *c);
    void (*progress)(herd_comm *c, int on);
    herd_status (*wait)(herd_comm *c, herd_comm_request *req, herd_error *err);
    herd_status (*split)(herd_comm *c, int color, herd_comm **out, herd_error *err);
    herd_status (*isend)(herd_comm *c, const void *buf, int64_t bytes, int dest, int tag, herd_comm_request **req,
                         herd_error *err);
    herd_status (*irecv)(herd_comm *c, void *buf, int64_t bytes, int src, int tag, herd_comm_request **req,
                         herd_error *err);
    herd_status (*probe)(herd_comm *c, int *found, int *src, int *tag, int64_t *bytes, herd_error *err);
    void (*set_waiting)(herd_comm *c, int peer);
    void (*blame)(herd_comm *c, int peer, char *out, size_t size);
    int (*world_rank)(const herd_comm *c, int r);
    herd_status (*check_alive)(herd_comm *c, double quiet_since, const char *what, herd_error *err);
    void (*abort)(herd_comm *c, int code);
};

/* The MPI communicator (built with MPI only): the job's world when a launcher started this
 * process, else one rank. */
herd_status herdi_comm_mpi_open(herd_comm **out, double timeout_s, herd_error *err);

#endif
