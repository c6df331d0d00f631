/* herd ONNX: models out to and in from ONNX files (opset 13), weights included, so a
 * model trained in herd runs in ONNX Runtime and a PyTorch export trains in herd. */
#ifndef HERD_ONNX_H
#define HERD_ONNX_H

#include "herd/core.h"
#include "herd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes m with its current weights to path atomically: ir_version 8, opset ai.onnx 13,
 * input "input" [N,C,H,W] (N symbolic), output "logits" [N,K], every registry tensor as a
 * float initializer under its registry name. Dropout is left out (identity at inference);
 * GELU becomes its erf formula; batch norm is written for inference. */
herd_status herd_model_export_onnx(const herd_model *m, const char *path, herd_error *err);

/* Reads an ONNX model (a chain of supported operators with identity residual Adds) into a
 * herd model with the file's weights loaded, as if parsed from the equivalent spec
 * (herd_onnx_to_spec) and loaded from a weights file. Unsupported operators are listed by name in one error; HERD_EFORMAT for a malformed
 * file, HERD_EUNSUPPORTED for a valid graph herd cannot express. */
herd_status herd_model_import_onnx(herd_model **out, const char *path, herd_error *err);

/* Translates an ONNX file into herd spec text without building the model: the caller
 * frees *spec_text. */
herd_status herd_onnx_to_spec(const char *path, char **spec_text, herd_error *err);

#ifdef __cplusplus
}
#endif
#endif
