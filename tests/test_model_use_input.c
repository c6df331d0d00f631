/* herd_model_use_input: a model runs on a lent input buffer (the loader's prefetched rows)
 * exactly as on its planned one, never writes it, and goes back to the planned buffer on NULL;
 * a model with a layer viewing its input (flatten first) refuses and keeps its buffer. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "herd/model.h"

static herd_model *make(const char *spec) {
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, spec, "spec", &err) == HERD_OK, "%s", err.msg);
    if (!m) return NULL;
    herd_model_init_params(m, 5);
    CHECK(herd_model_prepare(m, "cpu", 3, 1, &err) == HERD_OK, "%s", err.msg);
    return m;
}

int main(void) {
    herd_error err = {0};
    herd_model *m = make("input 3x9x9\nconv 4 3 pad=1\nbatchnorm relu\ngap\ndense 5\n");
    if (!m) return check_summary();
    const int n = 3 * 3 * 9 * 9, outs = 3 * 5;
    float *planned = herd_model_batch_buffer(m), *lent = malloc(n * sizeof(float)), *keep = malloc(n * sizeof(float));
    for (int i = 0; i < n; i++) planned[i] = (float)((i * 29) % 23) / 23.0f - 0.5f;
    memcpy(lent, planned, n * sizeof(float));
    memcpy(keep, lent, n * sizeof(float));
    float want[15], got[15];
    CHECK(herd_model_forward(m, 3, 1, &err) == HERD_OK, "%s", err.msg);
    memcpy(want, herd_model_output(m), outs * sizeof(float));
    memset(planned, 0, n * sizeof(float)); /* a stale planned buffer must not be read */
    CHECK(herd_model_use_input(m, lent) == 1, "a one-input conv model takes a lent input");
    CHECK(herd_model_input(m) == lent, "the lent buffer is the model's input");
    CHECK(herd_model_batch_buffer(m) == planned, "the batch buffer stays the planned one while lent");
    CHECK(herd_model_forward(m, 3, 1, &err) == HERD_OK, "%s", err.msg);
    memcpy(got, herd_model_output(m), outs * sizeof(float));
    CHECK(!memcmp(want, got, sizeof want), "outputs on the lent input differ from the planned buffer's");
    CHECK(!memcmp(lent, keep, n * sizeof(float)), "the model wrote into the lent input");
    CHECK(herd_model_use_input(m, NULL) == 1 && herd_model_input(m) == planned, "NULL goes back to the planned buffer");
    herd_model_destroy(m);

    herd_model *f = make("input 1x4x4\nflatten\ndense 3\n");
    if (f) {
        float *own = herd_model_input(f);
        CHECK(herd_model_use_input(f, lent) == 0, "flatten views the input: lending must be refused");
        CHECK(herd_model_input(f) == own, "a refused loan leaves the planned buffer");
        herd_model_destroy(f);
    }
    free(lent), free(keep);
    return check_summary();
}
