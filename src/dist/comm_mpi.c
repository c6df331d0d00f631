/* The MPI communicator (OpenMPI from Debian). Collectives are non-blocking underneath so
 * every wait can poll with a deadline instead of hanging on a dead or stuck rank. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/bf16.h"
#include "dist/comm.h"

#define MAX_REQUESTS 256

struct herd_comm_request {
    MPI_Request r;
    float *buf;
    int64_t n;
    uint16_t *scratch;
    int in_use;
    const char *what;
};

struct herd_comm {
    int mpi; /* 0: not launched by MPI, a one-rank communicator */
    MPI_Comm comm;
    int rank, size;
    double timeout;
    MPI_Op bf16_sum;
    herd_comm_request reqs[MAX_REQUESTS];
};

int herd_comm_has_mpi(void) { return 1; }

int herd_comm_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

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

herd_status herd_comm_open(herd_comm **out, double timeout_s, herd_error *err) {
    herd_comm *c = calloc(1, sizeof *c);
    if (!c) return herd_fail(err, HERD_ENOMEM, "out of memory");
    c->timeout = timeout_s > 0 ? timeout_s : 60;
    c->size = 1;
    if (herd_comm_launched()) {
        int provided, rc;
        if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS) {
            free(c);
            return mpi_fail(err, rc, "init");
        }
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
        MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
        MPI_Comm_rank(c->comm, &c->rank);
        MPI_Comm_size(c->comm, &c->size);
        MPI_Op_create(bf16_sum_fn, 1, &c->bf16_sum);
        c->mpi = 1;
    }
    *out = c;
    return HERD_OK;
}

void herd_comm_close(herd_comm *c) {
    if (!c) return;
    if (c->mpi) {
        MPI_Op_free(&c->bf16_sum);
        MPI_Comm_free(&c->comm);
        MPI_Finalize();
    }
    free(c);
}

int herd_comm_rank(const herd_comm *c) { return c->rank; }
int herd_comm_size(const herd_comm *c) { return c->size; }

static herd_comm_request *take_request(herd_comm *c, const char *what) {
    for (int i = 0; i < MAX_REQUESTS; i++)
        if (!c->reqs[i].in_use) {
            herd_comm_request *r = &c->reqs[i];
            memset(r, 0, sizeof *r);
            r->in_use = 1;
            r->what = what;
            return r;
        }
    return NULL;
}

herd_status herd_comm_wait(herd_comm *c, herd_comm_request *req, herd_error *err) {
    herd_status st = HERD_OK;
    if (c->mpi) {
        double deadline = herd_now() + c->timeout;
        int done = 0, polls = 0;
        while (!done) {
            int rc = MPI_Test(&req->r, &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) {
                st = mpi_fail(err, rc, req->what);
                break;
            }
            if (done) break;
            if (herd_now() > deadline) {
                st = herd_fail(err, HERD_EIO, "rank %d: no answer within %.0f s to %s of %lld values: another rank "
                               "died or hangs", c->rank, c->timeout, req->what, (long long)req->n);
                break;
            }
            if (++polls > 1000) { /* spin briefly, then stop burning the core */
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
        }
    }
    if (st == HERD_OK && req->scratch)
        for (int64_t i = 0; i < req->n; i++) req->buf[i] = herd_bf16_to_f32(req->scratch[i]);
    req->in_use = 0;
    return st;
}

herd_status herd_comm_iallreduce(herd_comm *c, float *buf, int64_t n, uint16_t *bf16_scratch,
                                 herd_comm_request **req, herd_error *err) {
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

void herd_comm_poll(herd_comm *c) {
    if (!c->mpi) return;
    int flag;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->comm, &flag, MPI_STATUS_IGNORE); /* drives OpenMPI's progress engine */
}

herd_status herd_comm_broadcast(herd_comm *c, float *buf, int64_t n, int root, herd_error *err) {
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
    return herd_comm_wait(c, r, err);
}

herd_status herd_comm_allreduce_f64(herd_comm *c, double *buf, int n, herd_error *err) {
    if (!c->mpi) return HERD_OK;
    herd_comm_request *r = take_request(c, "metrics allreduce");
    if (!r) return herd_fail(err, HERD_EINTERNAL, "too many requests in flight");
    r->n = n;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, c->comm, &r->r);
    if (rc != MPI_SUCCESS) {
        r->in_use = 0;
        return mpi_fail(err, rc, "allreduce");
    }
    return herd_comm_wait(c, r, err);
}

herd_status herd_comm_allgather(herd_comm *c, const float *in, float *out, int64_t n, herd_error *err) {
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
    return herd_comm_wait(c, r, err);
}

void herd_comm_abort(herd_comm *c, int code) {
    if (c && c->mpi) MPI_Abort(c->comm, code);
}
