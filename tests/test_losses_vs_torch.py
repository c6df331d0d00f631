"""The loss table against PyTorch 1.13 (float64): herd's helper runs forward and backward of a
small model against typed targets and dumps logits, targets, loss, the gradient of the loss with
respect to the logits and the metrics; PyTorch recomputes the loss and its gradient from herd's
logits. Cases: softmax cross-entropy per sample and per position with ignore_index, MSE on f32
targets and on one-hot labels, binary cross-entropy with logits on f32 targets and 0/1 labels.
Metrics: accuracy, RMSE and AUC (binned) against exact computations."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import spec_torch  # noqa: E402

from torch_compare import check, summary  # noqa: E402

BIN = os.environ["HERD_TEST_BIN_DIR"]


def exact_auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (len(pos) * len(neg))


def run(name, spec_text, targets, batch, loss_fn, metrics):
    with tempfile.TemporaryDirectory() as d:
        spec = os.path.join(d, name + ".spec")
        open(spec, "w").write(spec_text)
        out = os.path.join(d, "dump.safetensors")
        subprocess.run([os.path.join(BIN, "loss_dump"), spec, out, targets, str(batch)], check=True)
        t = spec_torch.read_safetensors(out)
    logits = torch.tensor(t["logits"], dtype=torch.float64, requires_grad=True)
    y = t["targets"]
    loss = loss_fn(logits, y)
    loss.backward()
    check(name + " loss", t["loss"], loss.item(), 1e-6, 1e-5)
    check(name + " d loss / d logits", t["dlogits"], logits.grad.numpy(), 1e-7, 1e-4)
    z = t["logits"].astype(np.float64)
    for metric, want in metrics(z, y).items():
        tol = 2e-3 if metric == "auc" else 1e-5
        check(f"{name} {metric}", t[metric], want, tol, 0)
    # what herd does not measure is -1
    for metric in ("accuracy", "rmse", "auc"):
        if metric not in metrics(z, y):
            check(f"{name} {metric} not measured", t[metric], -1.0, 0, 0)


def xent(ignore):
    def fn(logits, y):
        B, P, K = logits.shape
        return F.cross_entropy(logits.reshape(B * P, K), torch.tensor(y.reshape(-1), dtype=torch.int64),
                               ignore_index=ignore if ignore is not None else -100)
    return fn


def class_accuracy(ignore):
    def fn(z, y):
        pred, lab = z.argmax(-1).reshape(-1), y.reshape(-1)
        keep = lab != ignore if ignore is not None else np.ones_like(lab, bool)
        return {"accuracy": (pred[keep] == lab[keep]).mean()}
    return fn


def main():
    # softmax cross-entropy, one class per sample (the default loss)
    run("xent", "input 12\ndense 5\n", "classes", 9, xent(None), class_accuracy(None))
    # per position: 6 positions of 7 classes, every third position labelled -1 and ignored
    run("xent_positions", "input 12\ndense 42\nreshape 6x7\nloss xent ignore=-1\n", "ignored", 5, xent(-1),
        class_accuracy(-1))
    # MSE against one-hot class labels (the old `loss mse`)
    def mse_onehot(logits, y):
        return F.mse_loss(logits[:, 0, :], F.one_hot(torch.tensor(y[:, 0], dtype=torch.int64), 5).double())
    run("mse_classes", "input 12\ndense 5\nloss mse\n", "classes", 8, mse_onehot, lambda z, y: {
        "accuracy": (z[:, 0, :].argmax(-1) == y[:, 0]).mean()})
    # MSE against f32 targets (regression: ratings)
    def mse_values(logits, y):
        return F.mse_loss(logits.reshape(logits.shape[0], -1), torch.tensor(y, dtype=torch.float64))
    run("mse_values", "input 12\ndense 3\nloss mse\n", "values", 10, mse_values, lambda z, y: {
        "rmse": np.sqrt(((z.reshape(len(y), -1) - y) ** 2).mean())})
    # binary cross-entropy with logits, f32 targets of 4 outputs and 0/1 labels of one output
    def bce(logits, y):
        return F.binary_cross_entropy_with_logits(logits.reshape(logits.shape[0], -1),
                                                  torch.tensor(y, dtype=torch.float64))
    def bce_metrics(z, y):
        z, y = z.reshape(len(y), -1).ravel(), y.astype(np.float64).ravel()
        p = 1 / (1 + np.exp(-z))
        lab = (y >= 0.5).astype(int)
        return {"accuracy": ((z > 0) == (lab == 1)).mean(), "rmse": np.sqrt(((p - y) ** 2).mean()),
                "auc": exact_auc(z, lab)}
    run("bce_values", "input 12\ndense 4\nloss bce\n", "values", 64, bce, bce_metrics)
    run("bce_labels", "input 12\ndense 1\nloss bce\n", "binary", 200, bce, bce_metrics)
    sys.exit(summary())


main()
