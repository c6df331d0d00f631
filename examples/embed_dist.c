/* Distributed training from a C program: the rings of embed.c on data-parallel ranks. Every rank
 * builds the same arrays and model; the strategy splits each global batch of 64 across the ranks
 * and averages their gradients; rank 0 prints and saves.
 * Build: cc embed_dist.c $(pkg-config --cflags --libs herd) -o embed_dist
 * Run:   mpirun -np 2 ./embed_dist   (or srun -n 2 --mpi=pmix ./embed_dist; alone: one rank) */
#include <herd/dist.h>
#include <herd/herd.h>
#include <math.h>
#include <stdio.h>

#define N 2000

int main(void) {
    static float x[N * 2], probs[N * 2];
    static int32_t y[N];
    herd_rng rng;
    herd_rng_init(&rng, 42, 0); /* the same data on every rank */
    for (int i = 0; i < N; i++) {
        float angle = 6.2831853f * herd_rng_uniform(&rng), radius;
        y[i] = i % 2;
        radius = (y[i] ? 2.0f : 1.0f) + 0.2f * herd_rng_normal(&rng);
        x[2 * i] = radius * cosf(angle), x[2 * i + 1] = radius * sinf(angle);
    }
    herd_error err = {0};
    herd_comm *comm = NULL;
    herd_model *m = NULL;
    herd_strategy *s = NULL;
    if (herd_comm_open(&comm, 60, &err)) goto fail;
    int rank = herd_comm_rank(comm), world = herd_comm_size(comm);
    /* the strategy says how many rows of a global batch of 64 one rank computes: its model plans for them */
    herd_strategy_config scfg = herd_strategy_defaults(HERD_STRATEGY_DP);
    herd_strategy_layout lay;
    if (herd_strategy_layout_for(&scfg, world, 64, &lay, &err)) goto fail;
    if (herd_model_create(&m, "input 2\ndense 32 relu\ndense 32 relu\ndense 2\n", lay.rows, 1, 7, &err)) goto fail;
    if (herd_strategy_create(&s, comm, m, &scfg, &err)) goto fail;
    herd_train_config cfg = herd_train_defaults();
    cfg.epochs = 20, cfg.batch = 64, cfg.lr = 3e-3f, cfg.seed = 1, cfg.strategy = s;
    herd_tensor xt = herd_tensor_make(HERD_F32, 2, (int64_t[]){N, 2}, x);
    herd_tensor yt = herd_tensor_make(HERD_I32, 1, (int64_t[]){N}, y);
    if (herd_fit(m, &xt, &yt, &cfg, NULL, &err) || herd_predict(m, &xt, probs, &err)) goto fail;
    int hits = 0;
    for (int i = 0; i < N; i++) hits += (probs[2 * i + 1] > probs[2 * i]) == y[i];
    if (herd_strategy_writer(s)) {
        printf("training accuracy: %.3f on %d rank%s\n", (double)hits / N, world, world == 1 ? "" : "s");
        if (herd_model_save(m, "embed_dist.safetensors", &err)) goto fail;
    }
    herd_strategy_destroy(s);
    herd_model_destroy(m);
    herd_comm_close(comm);
    return rank || hits > N * 9 / 10 ? 0 : 1;
fail:
    fprintf(stderr, "embed_dist: %s\n", err.msg);
    if (comm) herd_comm_abort(comm, 1); /* the other ranks must not wait for this one */
    return 1;
}
