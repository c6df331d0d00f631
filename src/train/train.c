/* The training loop and evaluation. One step reads top to bottom: batch, forward, loss,
 * backward, clip, update; nothing is allocated inside it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "herd/train.h"
#include "optim/optim.h"

herd_train_config herd_train_defaults(void) {
    herd_train_config c;
    memset(&c, 0, sizeof c);
    c.epochs = 1;
    c.batch = 32;
    c.optimizer = "adam";
    c.lr = 1e-3f;
    c.schedule = "constant";
    c.lr_step_epochs = 1;
    c.lr_gamma = 0.1f;
    return c;
}

static herd_status check_data(const herd_model *m, const herd_dataset *ds, herd_error *err) {
    int c, h, w;
    herd_model_input_shape(m, &c, &h, &w);
    if (ds->c != c || ds->h != h || ds->w != w)
        return herd_fail(err, HERD_ESHAPE, "%s: samples are %dx%dx%d but the model's input is %dx%dx%d", ds->source,
                         ds->c, ds->h, ds->w, c, h, w);
    if (ds->num_classes > herd_model_output_size(m))
        return herd_fail(err, HERD_ESHAPE, "%s: labels go up to %d but the model has only %d outputs", ds->source,
                         ds->num_classes - 1, herd_model_output_size(m));
    if (ds->n < 1) return herd_fail(err, HERD_EFORMAT, "%s: the dataset is empty", ds->source);
    return HERD_OK;
}

static herd_status nonfinite_error(herd_model *m, int B, int64_t step, herd_error *err) {
    int at = herd_model_first_nonfinite(m, B, 0);
    herd_layer_info info;
    if (at >= 0) {
        herd_model_layer(m, at, &info);
        return herd_fail(err, HERD_ENUMERIC, "step %lld: the output of layer '%s' became non-finite (NaN/Inf); "
                         "try a lower learning rate or gradient clipping", (long long)step, info.name);
    }
    return herd_fail(err, HERD_ENUMERIC, "step %lld: the loss became non-finite (NaN/Inf)", (long long)step);
}

herd_status herd_evaluate(herd_model *m, herd_dataset *ds, int batch, double *loss, double *accuracy,
                          herd_error *err) {
    herd_status st = check_data(m, ds, err);
    if (st) return st;
    int32_t *labels = malloc((size_t)batch * sizeof *labels);
    int64_t *idx = malloc((size_t)batch * sizeof *idx);
    if (!labels || !idx) {
        free(labels);
        free(idx);
        return herd_fail(err, HERD_ENOMEM, "out of memory");
    }
    double total_loss = 0;
    int64_t hits = 0;
    for (int64_t off = 0; off < ds->n && !st; off += batch) {
        int B = (int)(ds->n - off < batch ? ds->n - off : batch);
        for (int b = 0; b < B; b++) idx[b] = off + b;
        if ((st = herd_dataset_batch(ds, idx, B, herd_model_input(m), labels, err))) break;
        if ((st = herd_model_forward(m, B, 0, err))) break;
        int correct;
        total_loss += (double)herd_model_loss(m, labels, B, &correct) * B;
        hits += correct;
    }
    free(labels);
    free(idx);
    if (st) return st;
    *loss = total_loss / (double)ds->n;
    *accuracy = (double)hits / (double)ds->n;
    return HERD_OK;
}

herd_status herd_train(herd_model *m, herd_dataset *train, herd_dataset *val, const herd_train_config *cfg,
                       const herd_train_callbacks *cb, herd_error *err) {
    herd_status st;
    if ((st = check_data(m, train, err))) return st;
    if (val && (st = check_data(m, val, err))) return st;
    if (cfg->epochs < 1) return herd_fail(err, HERD_EARG, "epochs must be at least 1");
    if (cfg->batch < 1) return herd_fail(err, HERD_EARG, "batch must be at least 1");
    herd_opt_kind kind;
    if (!herd_opt_kind_parse(cfg->optimizer, &kind))
        return herd_fail(err, HERD_EARG, "unknown optimizer '%s' (expected sgd, momentum, nesterov, adam, adamw)",
                         cfg->optimizer);
    herd_schedule sched;
    memset(&sched, 0, sizeof sched);
    if (!herd_sched_kind_parse(cfg->schedule ? cfg->schedule : "constant", &sched.kind))
        return herd_fail(err, HERD_EARG, "unknown LR schedule '%s' (expected constant, step, cosine)", cfg->schedule);
    if (!(cfg->lr > 0) || !isfinite(cfg->lr)) return herd_fail(err, HERD_EARG, "learning rate must be positive");

    int64_t steps_per_epoch = (train->n + cfg->batch - 1) / cfg->batch;
    sched.base_lr = cfg->lr;
    sched.warmup_steps = cfg->warmup_steps;
    sched.step_size = (int64_t)(cfg->lr_step_epochs > 0 ? cfg->lr_step_epochs : 1) * steps_per_epoch;
    sched.gamma = cfg->lr_gamma;
    sched.total_steps = steps_per_epoch * cfg->epochs - cfg->warmup_steps;
    if (sched.total_steps < 1) sched.total_steps = 1;
    sched.min_lr = cfg->min_lr;

    herd_optim_config oc = herd_optim_defaults(kind);
    oc.weight_decay = cfg->weight_decay;
    if (cfg->momentum > 0) oc.momentum = cfg->momentum;
    int64_t n_params;
    float *params = herd_model_params(m, &n_params);
    float *grads = herd_model_grads(m);
    herd_optimizer opt;
    if ((st = herd_optimizer_init(&opt, &oc, n_params, err))) return st;
    herd_sampler sampler;
    if ((st = herd_sampler_init(&sampler, train->n, cfg->seed, 1, err))) {
        herd_optimizer_free(&opt);
        return st;
    }
    int32_t *labels = malloc((size_t)cfg->batch * sizeof *labels);
    if (!labels) {
        st = herd_fail(err, HERD_ENOMEM, "out of memory");
        goto done;
    }

    int64_t global_step = 0;
    for (int epoch = 1; epoch <= cfg->epochs && !st; epoch++) {
        herd_sampler_set_epoch(&sampler, epoch - 1);
        if (cb && cb->epoch_begin) cb->epoch_begin(cb->user, epoch, cfg->epochs, steps_per_epoch);
        double t0 = herd_now(), loss_sum = 0;
        int64_t hits = 0, seen = 0;
        float lr = cfg->lr;
        for (int64_t s = 0; s < steps_per_epoch; s++, global_step++) {
            int64_t off = s * cfg->batch;
            int B = (int)(train->n - off < cfg->batch ? train->n - off : cfg->batch);
            if ((st = herd_dataset_batch(train, sampler.perm + off, B, herd_model_input(m), labels, err))) break;
            if ((st = herd_model_forward(m, B, 1, err))) break;
            int correct;
            float loss = herd_model_loss(m, labels, B, &correct);
            if (!isfinite(loss)) {
                st = nonfinite_error(m, B, global_step, err);
                break;
            }
            herd_model_backward(m, labels, B, 1.0f);
            if (cfg->clip_norm > 0) herd_clip_grad_norm(grads, n_params, cfg->clip_norm);
            lr = herd_schedule_lr(&sched, global_step);
            herd_optimizer_step(&opt, params, grads, lr);
            loss_sum += (double)loss * B;
            hits += correct;
            seen += B;
            if (cb && cb->step) cb->step(cb->user, s + 1, loss_sum / (double)seen, (double)hits / (double)seen);
        }
        if (st) break;
        herd_epoch_stats es;
        es.epoch = epoch;
        es.seconds = herd_now() - t0;
        es.loss = loss_sum / (double)seen;
        es.accuracy = (double)hits / (double)seen;
        es.images_per_second = (double)seen / (es.seconds > 0 ? es.seconds : 1e-9);
        es.lr = lr;
        es.val_loss = es.val_accuracy = -1;
        if (val && (st = herd_evaluate(m, val, cfg->batch, &es.val_loss, &es.val_accuracy, err))) break;
        if (cb && cb->epoch_end) cb->epoch_end(cb->user, &es);
    }
done:
    free(labels);
    herd_sampler_free(&sampler);
    herd_optimizer_free(&opt);
    return st;
}
