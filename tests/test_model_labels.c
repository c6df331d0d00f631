/* Labels outside the model's outputs: herd_model_loss gives NaN and touches nothing out of
 * bounds (run under AddressSanitizer in CI), herd_model_forward_backward refuses with a message
 * naming the sample and the label, for both losses. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "herd/model.h"

static void check_loss(const char *spec) {
    herd_error err = {0};
    herd_model *m = NULL;
    CHECK(herd_model_parse(&m, spec, "labels.spec", &err) == HERD_OK, "%s", err.msg);
    if (!m) return;
    herd_model_init_params(m, 1);
    CHECK(herd_model_prepare(m, "cpu", 2, 1, &err) == HERD_OK, "%s", err.msg);
    memset(herd_model_input(m), 0, 2 * 4 * sizeof(float));
    int32_t good[2] = {0, 2}, bad[2] = {0, 7}, neg[2] = {-1, 0};
    static herd_metrics acc;
    herd_metrics_clear(&acc);
    herd_model_forward(m, 2, 0, &err);
    CHECK(isfinite(herd_model_loss(m, good, 2, &acc)) && acc.counted == 2, "valid labels give a finite loss");
    CHECK(isnan(herd_model_loss(m, bad, 2, &acc)) && acc.counted == 2, "label 7 of 3 outputs: NaN, nothing counted");
    CHECK(isnan(herd_model_loss(m, neg, 2, &acc)), "label -1: NaN");
    float loss;
    CHECK(herd_model_forward_backward(m, bad, 2, 1.0f, &loss, &acc, &err) == HERD_EARG &&
              strstr(err.msg, "label 7 of sample 1 is outside the model's 3 outputs"), "'%s'", err.msg);
    CHECK(herd_model_forward_backward(m, good, 2, 1.0f, &loss, &acc, &err) == HERD_OK && isfinite(loss), "%s",
          err.msg);
    herd_model_destroy(m);
}

int main(void) {
    check_loss("input 4\ndense 3\n");
    check_loss("input 4\ndense 3\nloss mse\n");
    return check_summary();
}
