/* Sampler: every epoch is a permutation, the same (seed, epoch) gives the same order,
 * different epochs or seeds differ, shuffle=0 is the identity. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/data.h"

static int is_permutation(const int64_t *p, int64_t n) {
    char *seen = calloc((size_t)n + 1, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]])
            ok = 0;
        else
            seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static int same(const herd_sampler *a, const herd_sampler *b) {
    return a->n == b->n && memcmp(a->perm, b->perm, (size_t)a->n * sizeof *a->perm) == 0;
}

int main(void) {
    herd_error err = {0};
    herd_sampler a, b;
    const int64_t n = 1000;
    CHECK(herd_sampler_init(&a, n, 42, 1, &err) == HERD_OK, "init: %s", err.msg);
    CHECK(herd_sampler_init(&b, n, 42, 1, &err) == HERD_OK, "init: %s", err.msg);
    for (int64_t e = 0; e < 5; e++) {
        herd_sampler_set_epoch(&a, e);
        CHECK(a.epoch == e, "epoch recorded");
        CHECK(is_permutation(a.perm, n), "epoch %lld is a permutation of [0, %lld)", (long long)e, (long long)n);
    }
    /* Same (seed, epoch) reproduces the order regardless of what came before. */
    herd_sampler_set_epoch(&a, 3);
    herd_sampler_set_epoch(&b, 7);
    herd_sampler_set_epoch(&b, 3);
    CHECK(same(&a, &b), "same seed and epoch give the same order");
    herd_sampler_set_epoch(&b, 4);
    CHECK(!same(&a, &b), "epochs 3 and 4 differ");
    int64_t fixed = 0;
    for (int64_t i = 0; i < n; i++) fixed += a.perm[i] == i;
    CHECK(fixed < 20, "a shuffle leaves few fixed points: %lld of %lld", (long long)fixed, (long long)n);
    herd_sampler_free(&b);
    CHECK(herd_sampler_init(&b, n, 43, 1, &err) == HERD_OK, "init: %s", err.msg);
    herd_sampler_set_epoch(&b, 3);
    CHECK(!same(&a, &b), "seeds 42 and 43 differ at the same epoch");
    herd_sampler_free(&b);

    /* Uniformity, roughly: where index 0 lands over many epochs of a small sampler. */
    herd_sampler s;
    CHECK(herd_sampler_init(&s, 4, 7, 1, &err) == HERD_OK, "init: %s", err.msg);
    int counts[4] = {0};
    for (int64_t e = 0; e < 4000; e++) {
        herd_sampler_set_epoch(&s, e);
        for (int k = 0; k < 4; k++)
            if (s.perm[k] == 0) counts[k]++;
    }
    for (int k = 0; k < 4; k++)
        CHECK(counts[k] > 850 && counts[k] < 1150, "slot %d holds index 0 %d/4000 times", k, counts[k]);
    herd_sampler_free(&s);

    CHECK(herd_sampler_init(&s, n, 42, 0, &err) == HERD_OK, "init: %s", err.msg);
    herd_sampler_set_epoch(&s, 5);
    int ident = 1;
    for (int64_t i = 0; i < n; i++) ident &= s.perm[i] == i;
    CHECK(ident, "shuffle=0 is the identity");
    herd_sampler_free(&s);

    CHECK(herd_sampler_init(&s, 0, 1, 1, &err) == HERD_OK && s.n == 0, "empty sampler: %s", err.msg);
    herd_sampler_set_epoch(&s, 1);
    herd_sampler_free(&s);
    CHECK(herd_sampler_init(&s, 1, 1, 1, &err) == HERD_OK && s.perm[0] == 0, "one sample: %s", err.msg);
    herd_sampler_free(&s);
    CHECK(herd_sampler_init(&s, -1, 1, 1, &err) == HERD_EARG, "negative n rejected");
    herd_sampler_free(&a);
    return check_summary();
}
