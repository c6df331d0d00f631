/* The herd_comm calls, dispatched through the communicator's table (comm_ops.h), and which
 * communicator a process opens: MPI's when herd was built with it, else one rank. */
#include "dist/comm_ops.h"

int herd_comm_has_mpi(void) {
#ifdef HERD_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

herd_status herd_comm_open_self(herd_comm **out, herd_error *err) { return herd_comm_threads_open(1, 60, out, err); }

herd_status herd_comm_open(herd_comm **out, double timeout_s, herd_error *err) {
#ifdef HERD_HAVE_MPI
    return herdi_comm_mpi_open(out, timeout_s, err);
#else
    if (herd_comm_launched())
        return herd_fail(err, HERD_EUNSUPPORTED, "started by an MPI launcher, but this herd was built without MPI "
                         "(install libopenmpi-dev and rebuild)");
    return herd_comm_threads_open(1, timeout_s, out, err);
#endif
}

void herd_comm_close(herd_comm *c) {
    if (c) c->ops->close(c);
}

int herd_comm_rank(const herd_comm *c) { return c->rank; }
int herd_comm_size(const herd_comm *c) { return c->size; }
double herd_comm_timeout(const herd_comm *c) { return c->timeout; }
int herd_comm_local_size(const herd_comm *c) { return c->ops->local_size(c); }

herd_status herd_comm_broadcast(herd_comm *c, float *buf, int64_t n, int root, herd_error *err) {
    return c->ops->broadcast(c, buf, n, root, err);
}

herd_status herd_comm_allreduce_f64(herd_comm *c, double *buf, int n, herd_error *err) {
    return c->ops->allreduce_f64(c, buf, n, err);
}

herd_status herd_comm_allgather(herd_comm *c, const float *in, float *out, int64_t n, herd_error *err) {
    return c->ops->allgather(c, in, out, n, err);
}

herd_status herd_comm_iallreduce(herd_comm *c, float *buf, int64_t n, uint16_t *bf16_scratch, herd_comm_request **req,
                                 herd_error *err) {
    return c->ops->iallreduce(c, buf, n, bf16_scratch, req, err);
}

herd_status herd_comm_ireduce_scatter(herd_comm *c, float *buf, const int *counts, herd_comm_request **req,
                                      herd_error *err) {
    return c->ops->ireduce_scatter(c, buf, counts, req, err);
}

herd_status herd_comm_iallgatherv(herd_comm *c, float *buf, const int *counts, herd_comm_request **req,
                                  herd_error *err) {
    return c->ops->iallgatherv(c, buf, counts, req, err);
}

herd_status herd_comm_allgatherv(herd_comm *c, float *buf, const int *counts, herd_error *err) {
    herd_comm_request *req = NULL;
    herd_status st = c->ops->iallgatherv(c, buf, counts, &req, err);
    return st || !req ? st : c->ops->wait(c, req, err);
}

herd_status herd_comm_alltoallv(herd_comm *c, const void *send, const int64_t *send_bytes, void *recv,
                                const int64_t *recv_bytes, herd_error *err) {
    return c->ops->alltoallv(c, send, send_bytes, recv, recv_bytes, err);
}

void herd_comm_poll(herd_comm *c) { c->ops->poll(c); }
void herd_comm_progress(herd_comm *c, int on) { c->ops->progress(c, on); }

herd_status herd_comm_wait(herd_comm *c, herd_comm_request *req, herd_error *err) { return c->ops->wait(c, req, err); }

herd_status herd_comm_split(herd_comm *c, int color, herd_comm **out, herd_error *err) {
    return c->ops->split(c, color, out, err);
}

herd_status herd_comm_isend(herd_comm *c, const void *buf, int64_t bytes, int dest, int tag, herd_comm_request **req,
                            herd_error *err) {
    return c->ops->isend(c, buf, bytes, dest, tag, req, err);
}

herd_status herd_comm_irecv(herd_comm *c, void *buf, int64_t bytes, int src, int tag, herd_comm_request **req,
                            herd_error *err) {
    return c->ops->irecv(c, buf, bytes, src, tag, req, err);
}

herd_status herd_comm_probe(herd_comm *c, int *found, int *src, int *tag, int64_t *bytes, herd_error *err) {
    return c->ops->probe(c, found, src, tag, bytes, err);
}

void herd_comm_set_waiting(herd_comm *c, int peer) { c->ops->set_waiting(c, peer); }
void herd_comm_blame(herd_comm *c, int peer, char *out, size_t size) { c->ops->blame(c, peer, out, size); }
int herd_comm_world_rank(const herd_comm *c, int r) { return c->ops->world_rank(c, r); }

herd_status herd_comm_check_alive(herd_comm *c, double quiet_since, const char *what, herd_error *err) {
    return c->ops->check_alive(c, quiet_since, what, err);
}

void herd_comm_abort(herd_comm *c, int code) {
    if (c) c->ops->abort(c, code);
}
