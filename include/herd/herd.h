/* herd.h: the public C API, one include for programs that embed herd. Handles are opaque
 * (herd_model, herd_dataset, herd_trainer, ...); every call that can fail returns a
 * herd_status and fills a herd_error with one line saying what went wrong. Link with
 * `pkg-config --libs herd`. The sub-headers document each module; this file adds the
 * shortest path from arrays in memory to a trained model and its predictions. */
#ifndef HERD_HERD_H
#define HERD_HERD_H

#include "herd/core.h"
#include "herd/data.h"
#include "herd/io.h"
#include "herd/model.h"
#include "herd/onnx.h"
#include "herd/tensorboard.h"
#include "herd/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HERD_VERSION "0.1.0"

/* A model from spec text (see README "Model specs"), initialised from seed and planned for
 * batches up to max_batch on the fast cpu backend with `threads` threads (0 = all cores). */
herd_status herd_model_create(herd_model **out, const char *spec_text, int max_batch, int threads, uint64_t seed,
                              herd_error *err);

/* Trains m in this process on N samples: x points to one array per model input
 * (herd_model_input_count; one for most models), in input order, each (N, input dims...): f32 or
 * u8 (k/255, as 8-bit images) for an f32 input (e.g. (N,C,H,W) or (N,F)), i32 ids for an i32
 * input (herd_model_check_data says what fits); y holds the targets the model's loss takes
 * (herd_model_set_loss): (N) i32 class ids in [0, outputs), (N, T) i32 labels per position, or
 * (N, ...) f32 values. The arrays are copied; cfg->batch must not
 * exceed the model's max_batch; cb may be NULL. Inputs are raw: a model whose weights carry an
 * input normalisation (herd_model_input_norm) has it applied here and in herd_predict. */
herd_status herd_fit(herd_model *m, const herd_tensor *x, const herd_tensor *y, const herd_train_config *cfg,
                     const herd_train_callbacks *cb, herd_error *err);

/* The predictions of the N samples of x (as herd_fit's) into probs (N * outputs floats), as
 * the model's loss reads its outputs (herd_model_predictions): class probabilities (the
 * softmax), probabilities of 1 (bce: the sigmoid), or values (mse). */
herd_status herd_predict(herd_model *m, const herd_tensor *x, float *probs, herd_error *err);

#ifdef __cplusplus
}
#endif
#endif
