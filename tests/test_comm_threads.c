/* The in-process communicator (ranks as threads): every collective against its definition, on
 * every rank; requests waited out of order; bf16 sums; reduce-scatter and allgatherv of uneven
 * parts; alltoallv of uneven and empty parts; splits; point-to-point messages and
 * probes; a rank that never joins is a timeout naming the collective, an abort ends the others'
 * waits. */
#include <string.h>

#include "check.h"
#include "dist/bf16.h"
#include "rank_threads.h"

#define N 64

static void collectives(rank_ctx *r) {
    herd_comm *c = r->comm;
    int me = r->rank, size = r->size;
    float a[N], b[N], expect_a[N], expect_b[N];
    for (int i = 0; i < N; i++) {
        a[i] = (float)(me + 1) * 0.1f + (float)i, b[i] = (float)(me * i);
        expect_a[i] = expect_b[i] = 0;
        for (int q = 0; q < size; q++) expect_a[i] += (float)(q + 1) * 0.1f + (float)i, expect_b[i] += (float)(q * i);
    }
    herd_comm_request *ra, *rb;
    herd_status st = herd_comm_iallreduce(c, a, N, NULL, &ra, &r->err);
    if (!st) st = herd_comm_iallreduce(c, b, N, NULL, &rb, &r->err);
    if (!st) st = herd_comm_wait(c, rb, &r->err); /* the later one first */
    if (!st) st = herd_comm_wait(c, ra, &r->err);
    CHECK(!st, "rank %d: %s", me, r->err.msg);
    CHECK(memcmp(a, expect_a, sizeof a) == 0, "rank %d: the allreduce is not the sum in rank order", me);
    CHECK(memcmp(b, expect_b, sizeof b) == 0, "rank %d: the second allreduce", me);

    /* bf16 on the wire: small integers survive exactly */
    float h[N];
    uint16_t scratch[N];
    for (int i = 0; i < N; i++) h[i] = (float)(i % 7) * (float)(me + 1);
    if (!st && !(st = herd_comm_iallreduce(c, h, N, scratch, &ra, &r->err))) st = herd_comm_wait(c, ra, &r->err);
    int bf_ok = !st;
    for (int i = 0; i < N; i++) bf_ok &= h[i] == (float)(i % 7) * (float)(size * (size + 1) / 2);
    CHECK(bf_ok, "rank %d: bf16 allreduce of small integers", me);

    /* broadcast from the last rank */
    float w[N];
    for (int i = 0; i < N; i++) w[i] = me == size - 1 ? (float)i * 3 : -1;
    if (!st) st = herd_comm_broadcast(c, w, N, size - 1, &r->err);
    int bc_ok = !st;
    for (int i = 0; i < N; i++) bc_ok &= w[i] == (float)i * 3;
    CHECK(bc_ok, "rank %d: broadcast from rank %d", me, size - 1);

    /* allgather in place: each rank's row already sits in its slot of out */
    float all[8 * 4];
    for (int i = 0; i < 4; i++) all[me * 4 + i] = (float)(10 * me + i);
    if (!st) st = herd_comm_allgather(c, all + me * 4, all, 4, &r->err);
    int ag_ok = !st;
    for (int q = 0; q < size; q++)
        for (int i = 0; i < 4; i++) ag_ok &= all[q * 4 + i] == (float)(10 * q + i);
    CHECK(ag_ok, "rank %d: allgather in place", me);

    /* reduce-scatter of uneven parts (rank r keeps r + 1 values), then allgatherv of them back */
    int counts[8], total = 0;
    for (int q = 0; q < size; q++) counts[q] = q + 1, total += q + 1;
    float full[64], part[8];
    for (int i = 0; i < total; i++) full[i] = (float)(i * (me + 1));
    if (!st && !(st = herd_comm_ireduce_scatter(c, full, counts, &ra, &r->err))) st = herd_comm_wait(c, ra, &r->err);
    int rs_ok = !st, off = me * (me + 1) / 2;
    for (int i = 0; i < total; i++) /* this rank's part summed in place, the others as they were */
        rs_ok &= full[i] == (float)(i >= off && i < off + me + 1 ? i * size * (size + 1) / 2 : i * (me + 1));
    CHECK(rs_ok, "rank %d: reduce-scatter of uneven parts, in place", me);
    memcpy(part, full + off, (size_t)(me + 1) * sizeof(float));
    for (int i = 0; i < total; i++) full[i] = -1;
    memcpy(full + off, part, (size_t)(me + 1) * sizeof(float));
    if (!st) st = herd_comm_allgatherv(c, full, counts, &r->err);
    int agv_ok = !st;
    for (int i = 0; i < total; i++) agv_ok &= full[i] == (float)(i * size * (size + 1) / 2);
    CHECK(agv_ok, "rank %d: allgatherv of the reduced parts", me);

    /* alltoallv: rank me sends (me + q) % 3 ints to rank q (some parts empty), each naming sender, receiver, index */
    int64_t sbytes[8], rbytes[8];
    int sendv[8 * 3], recvv[8 * 3], ns = 0, nr = 0;
    for (int q = 0; q < size; q++) {
        sbytes[q] = (int64_t)((me + q) % 3) * (int64_t)sizeof(int), rbytes[q] = (int64_t)((q + me) % 3) * (int64_t)sizeof(int);
        for (int i = 0; i < (me + q) % 3; i++) sendv[ns++] = 100 * me + 10 * q + i;
    }
    if (!st) st = herd_comm_alltoallv(c, sendv, sbytes, recvv, rbytes, &r->err);
    int a2a_ok = !st;
    for (int q = 0; q < size; q++)
        for (int i = 0; i < (q + me) % 3; i++) a2a_ok &= recvv[nr++] == 100 * q + 10 * me + i;
    CHECK(a2a_ok, "rank %d: alltoallv of uneven parts", me);

    double d[2] = {me, 1};
    if (!st) st = herd_comm_allreduce_f64(c, d, 2, &r->err);
    CHECK(!st && d[0] == size * (size - 1) / 2.0 && d[1] == size, "rank %d: f64 allreduce gave %g %g", me, d[0], d[1]);

    /* split by parity: ranks ordered as in the parent, sums within each half */
    herd_comm *half = NULL;
    if (!st) st = herd_comm_split(c, me % 2, &half, &r->err);
    if (!st) {
        int want_size = (size + 1 - me % 2) / 2;
        CHECK(herd_comm_size(half) == want_size && herd_comm_rank(half) == me / 2, "rank %d: split gave rank %d of %d",
              me, herd_comm_rank(half), herd_comm_size(half));
        CHECK(herd_comm_world_rank(half, herd_comm_rank(half)) == me, "rank %d: world rank of the split", me);
        double x = me;
        st = herd_comm_allreduce_f64(half, &x, 1, &r->err);
        double want = 0;
        for (int q = me % 2; q < size; q += 2) want += q;
        CHECK(!st && x == want, "rank %d: sum over the half %g, expected %g", me, x, want);
        herd_comm_close(half);
    }
    r->status = st;
}

/* A ring of messages, two tags each way round, received in the opposite order of their tags;
 * then a probe, and a message too large for its receive. */
static void messages(rank_ctx *r) {
    herd_comm *c = r->comm;
    int me = r->rank, size = r->size, next = (me + 1) % size, prev = (me + size - 1) % size;
    int out1[3] = {me, 1, 2}, out2 = 100 + me, in1[3] = {0}, in2 = 0;
    herd_comm_request *s1, *s2, *q1, *q2;
    herd_status st = herd_comm_isend(c, out1, sizeof out1, next, 7, &s1, &r->err);
    if (!st) st = herd_comm_isend(c, &out2, sizeof out2, next, 8, &s2, &r->err);
    if (!st) st = herd_comm_irecv(c, &in2, sizeof in2, prev, 8, &q2, &r->err);
    if (!st) st = herd_comm_irecv(c, in1, sizeof in1, prev, 7, &q1, &r->err);
    if (!st) st = herd_comm_wait(c, q2, &r->err);
    if (!st) st = herd_comm_wait(c, q1, &r->err);
    if (!st) st = herd_comm_wait(c, s1, &r->err);
    if (!st) st = herd_comm_wait(c, s2, &r->err);
    CHECK(!st && in1[0] == prev && in1[2] == 2 && in2 == 100 + prev, "rank %d: ring messages %d %d", me, in1[0], in2);
    double barrier = 0;
    if (!st) st = herd_comm_allreduce_f64(c, &barrier, 1, &r->err);
    if (!st && me == 0) { /* rank 1 sends 16 bytes with tag 5 */
        int found = 0, src = -1, tag = -1;
        int64_t bytes = 0;
        while (!st && !found) st = herd_comm_probe(c, &found, &src, &tag, &bytes, &r->err);
        CHECK(src == 1 && tag == 5 && bytes == 16, "probe: from %d tag %d %lld bytes", src, tag, (long long)bytes);
        char small[8];
        herd_error e = {0};
        herd_status bad = herd_comm_irecv(c, small, sizeof small, 1, 5, &q1, &e);
        if (!bad) bad = herd_comm_wait(c, q1, &e);
        CHECK(bad == HERD_EFORMAT && strstr(e.msg, "16 bytes"), "a message larger than its receive: %s", e.msg);
    }
    if (!st && me == 1) {
        char sixteen[16] = "sixteen bytes..";
        if (!(st = herd_comm_isend(c, sixteen, sizeof sixteen, 0, 5, &s1, &r->err))) st = herd_comm_wait(c, s1, &r->err);
    }
    r->status = st;
}

/* Rank 1 never joins: rank 0's wait gives up at the deadline, naming the collective. */
static void absent(rank_ctx *r) {
    if (r->rank == 1) return;
    double t0 = herd_now(), x = 1;
    herd_status st = herd_comm_allreduce_f64(r->comm, &x, 1, &r->err);
    CHECK(st == HERD_EIO && strstr(r->err.msg, "no answer within") && strstr(r->err.msg, "allreduce"),
          "absent rank: %s", r->err.msg);
    CHECK(herd_now() - t0 < 5, "absent rank: the wait took %.1f s", herd_now() - t0);
}

/* Rank 1 aborts: rank 0, waiting for a message from it, stops at once. */
static void aborted(rank_ctx *r) {
    if (r->rank == 1) {
        herd_comm_abort(r->comm, 3);
        return;
    }
    int x;
    herd_comm_request *q;
    double t0 = herd_now();
    herd_status st = herd_comm_irecv(r->comm, &x, sizeof x, 1, 1, &q, &r->err);
    if (!st) st = herd_comm_wait(r->comm, q, &r->err);
    CHECK(st == HERD_EIO && strstr(r->err.msg, "ended the job (code 3)"), "abort: %s", r->err.msg);
    CHECK(herd_now() - t0 < 5, "abort: the wait took %.1f s", herd_now() - t0);
}

int main(void) {
    rank_ctx ctx[8];
    for (int n = 1; n <= 5; n += 2) {
        int bad = run_ranks(n, 20, collectives, NULL, ctx);
        CHECK(!bad, "%d ranks: collectives failed: %s", n, ctx[0].err.msg);
    }
    CHECK(!run_ranks(4, 20, messages, NULL, ctx), "messages: %s / %s", ctx[0].err.msg, ctx[1].err.msg);
    run_ranks(2, 0.5, absent, NULL, ctx);
    run_ranks(2, 20, aborted, NULL, ctx);
    herd_error err = {0};
    herd_comm *c;
    CHECK(herd_comm_threads_open(0, 1, &c, &err) == HERD_EARG, "0 ranks accepted");
    return check_summary();
}
