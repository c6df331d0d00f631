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

/* Reads an ONNX model into a herd model with the file's weights loaded: the graph's nodes
 * become builder calls (herd_model_add_layer), each operator translated by the layer kind
 * that owns it or by one of the importer's multi-node patterns, and the initializers are
 * copied into the registry. Every unsupported operator is listed, with a node using it, in
 * one error; other refusals name the node and its operator. HERD_EFORMAT for a malformed
 * file, HERD_EUNSUPPORTED for a valid graph herd cannot express. herd_model_write_spec gives
 * the equivalent spec. */
herd_status herd_model_import_onnx(herd_model **out, const char *path, herd_error *err);

/* What herd_model_import_onnx would refuse, without reading the weights: report(ctx, line) is
 * called once for the list of unsupported operators and once per node herd cannot translate
 * ("FILE: node 'N' (OP): reason"); nodes reading what a refused node writes are not checked
 * (counted in unchecked). HERD_OK when the file would import; otherwise the error
 * herd_model_import_onnx would give (every refused node in one line). */
typedef struct herd_onnx_check_result {
    int nodes;      /* in the ONNX graph */
    int refused;    /* nodes refused (not counting the unsupported-operator list) */
    int unchecked;  /* nodes after a refused one */
    int layers;     /* herd layers the translated part makes */
    int64_t params; /* trainable parameters, when the whole file translates */
} herd_onnx_check_result;
herd_status herd_onnx_check(const char *path, void (*report)(void *ctx, const char *line), void *ctx,
                            herd_onnx_check_result *res, herd_error *err);

#ifdef __cplusplus
}
#endif
#endif
