/* Where to cut a model into pipeline stages: after the layers the user names (--split), or
 * balanced by estimated cost (forward FLOPs). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* A cut after layer c is valid when no layer after it reads the model's input, which only the
 * first stage loads (every layer output read across a cut is sent, residual blocks included). */
static int cut_ok(const herd_model *m, int c) {
    for (int l = c + 1; l < herd_model_layer_count(m); l++) {
        int ins[64], n_in = herd_model_layer_inputs(m, l, ins, 64);
        for (int k = 0; k < n_in && k < 64; k++)
            if (ins[k] < 0) return 0;
    }
    return 1;
}

herd_status cli_pipeline_cuts(const herd_model *m, int stages, const char *split, int microbatches, int *cuts,
                              herd_error *err) {
    int L = herd_model_layer_count(m);
    for (int i = 0; i < L && microbatches > 1; i++) {
        herd_layer_info li;
        herd_model_layer(m, i, &li);
        if (!strcmp(li.kind, "batchnorm"))
            return herd_fail(err, HERD_EUNSUPPORTED, "layer '%s': batch norm with --microbatches > 1 is not supported "
                             "(its batch statistics would differ per micro-batch)", li.name);
    }
    if (stages > L) return herd_fail(err, HERD_EARG, "--stages %d exceeds the model's %d layers", stages, L);
    if (split) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", split);
        int n = 0;
        for (char *name = strtok(buf, ","); name; name = strtok(NULL, ",")) {
            int at = -1;
            for (int i = 0; i < L && at < 0; i++) {
                herd_layer_info li;
                herd_model_layer(m, i, &li);
                if (!strcmp(li.name, name)) at = i;
            }
            if (at < 0) return herd_fail(err, HERD_EARG, "--split: no layer named '%s' (see herd summary)", name);
            if (n == stages - 1 || (n > 0 && at <= cuts[n - 1]) || at >= L - 1)
                return herd_fail(err, HERD_EARG, "--split needs %d increasing layer names before the last layer",
                                 stages - 1);
            if (!cut_ok(m, at))
                return herd_fail(err, HERD_EARG, "--split: after '%s', a later layer reads the model's input", name);
            cuts[n++] = at;
        }
        if (n != stages - 1)
            return herd_fail(err, HERD_EARG, "--split names %d layer(s) but --stages %d needs %d", n, stages,
                             stages - 1);
        return HERD_OK;
    }
    double total = 0, cost[4096];
    if (L > 4096) return herd_fail(err, HERD_EARG, "model too deep to split");
    for (int i = 0; i < L; i++) {
        herd_layer_info li;
        herd_model_layer(m, i, &li);
        cost[i] = (double)li.flops + 1e4; /* every layer costs a little, even a flatten */
        total += cost[i];
    }
    double acc = 0;
    int s = 0;
    for (int i = 0; i < L - 1 && s < stages - 1; i++) {
        acc += cost[i];
        int left = L - 1 - i; /* layers after this one */
        if ((acc >= total * (s + 1) / stages || left == stages - 1 - s) && cut_ok(m, i) && left >= stages - 1 - s)
            cuts[s++] = i;
    }
    if (s != stages - 1) return herd_fail(err, HERD_EARG, "cannot cut the model into %d stages", stages);
    return HERD_OK;
}
