/* The one-process communicator, used when herd is built without MPI: every collective
 * is the identity (bf16 compression still rounds, so results match a 1-rank MPI run). */
#include <stdlib.h>
#include <string.h>

#include "dist/bf16.h"
#include "dist/comm.h"

struct herd_comm {
    int unused;
};

struct herd_comm_request {
    float *buf;
    int64_t n;
    uint16_t *scratch;
};

static herd_comm_request local_request;

int herd_comm_has_mpi(void) { return 0; }

herd_status herd_comm_open_self(herd_comm **out, herd_error *err) {
    *out = calloc(1, sizeof(herd_comm));
    return *out ? HERD_OK : herd_fail(err, HERD_ENOMEM, "out of memory");
}

herd_status herd_comm_open(herd_comm **out, double timeout_s, herd_error *err) {
    (void)timeout_s;
    if (herd_comm_launched())
        return herd_fail(err, HERD_EUNSUPPORTED, "started by an MPI launcher, but this herd was built without MPI "
                         "(install libopenmpi-dev and rebuild)");
    return herd_comm_open_self(out, err);
}

void herd_comm_close(herd_comm *c) { free(c); }
int herd_comm_rank(const herd_comm *c) { return (void)c, 0; }
int herd_comm_size(const herd_comm *c) { return (void)c, 1; }
int herd_comm_local_size(const herd_comm *c) { return (void)c, 1; }

herd_status herd_comm_broadcast(herd_comm *c, float *buf, int64_t n, int root, herd_error *err) {
    (void)c, (void)buf, (void)n, (void)root, (void)err;
    return HERD_OK;
}

herd_status herd_comm_allreduce_f64(herd_comm *c, double *buf, int n, herd_error *err) {
    (void)c, (void)buf, (void)n, (void)err;
    return HERD_OK;
}

herd_status herd_comm_allgather(herd_comm *c, const float *in, float *out, int64_t n, herd_error *err) {
    (void)c, (void)err;
    memmove(out, in, (size_t)n * sizeof(float));
    return HERD_OK;
}

herd_status herd_comm_iallreduce(herd_comm *c, float *buf, int64_t n, uint16_t *bf16_scratch,
                                 herd_comm_request **req, herd_error *err) {
    (void)c, (void)err;
    local_request = (herd_comm_request){buf, n, bf16_scratch};
    *req = &local_request;
    return HERD_OK;
}

void herd_comm_poll(herd_comm *c) { (void)c; }
void herd_comm_progress(herd_comm *c, int on) { (void)c, (void)on; }

herd_status herd_comm_wait(herd_comm *c, herd_comm_request *req, herd_error *err) {
    (void)c, (void)err;
    if (req->scratch)
        for (int64_t i = 0; i < req->n; i++) req->buf[i] = herd_bf16_to_f32(herd_f32_to_bf16(req->buf[i]));
    return HERD_OK;
}

double herd_comm_timeout(const herd_comm *c) { return (void)c, 60; }

void herd_comm_set_waiting(herd_comm *c, int peer) { (void)c, (void)peer; }

void herd_comm_blame(herd_comm *c, int peer, char *out, size_t size) {
    (void)c, (void)peer;
    if (size) out[0] = 0;
}

int herd_comm_world_rank(const herd_comm *c, int r) { return (void)c, r; }

herd_status herd_comm_check_alive(herd_comm *c, double quiet_since, const char *what, herd_error *err) {
    (void)c, (void)quiet_since, (void)what, (void)err;
    return HERD_OK; /* one process: nobody to wait for */
}

herd_status herd_comm_split(herd_comm *c, int color, herd_comm **out, herd_error *err) {
    (void)c, (void)color;
    return herd_comm_open(out, 0, err);
}

herd_status herd_comm_isend(herd_comm *c, const void *buf, int64_t bytes, int dest, int tag, herd_comm_request **req,
                            herd_error *err) {
    (void)c, (void)buf, (void)bytes, (void)dest, (void)tag, (void)req;
    return herd_fail(err, HERD_EUNSUPPORTED, "point-to-point messages need MPI");
}

herd_status herd_comm_irecv(herd_comm *c, void *buf, int64_t bytes, int src, int tag, herd_comm_request **req,
                            herd_error *err) {
    (void)c, (void)buf, (void)bytes, (void)src, (void)tag, (void)req;
    return herd_fail(err, HERD_EUNSUPPORTED, "point-to-point messages need MPI");
}

herd_status herd_comm_probe(herd_comm *c, int *found, int *src, int *tag, int64_t *bytes, herd_error *err) {
    (void)c, (void)src, (void)tag, (void)bytes, (void)err;
    *found = 0;
    return HERD_OK;
}

void herd_comm_abort(herd_comm *c, int code) { (void)c, (void)code; /* one process: the caller's exit ends the job */ }
