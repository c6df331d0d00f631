#!/usr/bin/python3
"""Compares herd's reference ops with PyTorch: runs tests/helpers/dump_ops into a temporary directory,
recomputes every case with torch.nn.functional (float64, autograd for gradients) and checks outputs
and gradients within the stated tolerances. Prints the max abs error per tensor, then "N passed, N failed"."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

# herd accumulates in double and rounds once to float, torch runs in float64 here:
# differences are float32 rounding of the results.
ATOL, RTOL = 2e-6, 2e-5

passed = 0
failed = 0


def check(case, name, got, want, atol=ATOL, rtol=RTOL):
    global passed, failed
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        failed += 1
        print(f"FAIL {case} {name}: shape {got.shape} vs torch {want.shape}")
        return
    err = np.abs(got - want)
    bound = atol + rtol * np.abs(want)
    ok = bool(np.all(err <= bound)) and bool(np.all(np.isfinite(got)))
    worst = float(err.max()) if err.size else 0.0
    status = "ok  " if ok else "FAIL"
    print(f"{status} {case:24s} {name:14s} max abs err {worst:.3g} (atol {atol:g} rtol {rtol:g})")
    if ok:
        passed += 1
    else:
        failed += 1
        i = np.unravel_index(int(np.argmax(err - bound)), err.shape)
        print(f"     worst at {tuple(int(k) for k in i)}: herd {got[i]:.9g} torch {want[i]:.9g}")


def check_equal(case, name, got, want):
    global passed, failed
    same = np.array_equal(np.asarray(got), np.asarray(want))
    print(f"{'ok  ' if same else 'FAIL'} {case:24s} {name:14s} exact match")
    if same:
        passed += 1
    else:
        failed += 1
        print(f"     herd {np.asarray(got).ravel()[:12]}\n     torch {np.asarray(want).ravel()[:12]}")


def pairs(s):
    return tuple(int(v) for v in s.split(","))


class Case:
    def __init__(self, directory, name):
        self.dir = directory
        self.name = name

    def np(self, key):
        return np.load(os.path.join(self.dir, f"{self.name}_{key}.npy"))

    def t(self, key, grad=False):
        x = torch.from_numpy(self.np(key).astype(np.float64))
        return x.requires_grad_(grad)


def grads(out, dout, *leaves):
    """Gradient of sum(out * dout) with respect to each leaf (None for leaves that are None)."""
    present = [x for x in leaves if x is not None]
    g = torch.autograd.grad(out, present, grad_outputs=dout)
    it = iter(g)
    return [next(it) if x is not None else None for x in leaves]


def run_conv2d(c, p):
    x, w = c.t("in", True), c.t("w", True)
    b = c.t("b", True) if p["bias"] == "1" else None
    out = F.conv2d(x, w, b, stride=pairs(p["stride"]), padding=pairs(p["padding"]),
                   dilation=pairs(p.get("dilation", "1,1")), groups=int(p.get("groups", "1")))
    check(c.name, "out", c.np("out"), out.detach())
    dx, dw, db = grads(out, c.t("dout"), x, w, b)
    check(c.name, "din", c.np("din"), dx)
    check(c.name, "dw", c.np("dw"), dw)
    if b is not None:
        check(c.name, "db", c.np("db"), db)


def run_maxpool2d(c, p):
    x = c.t("in", True)
    out, idx = F.max_pool2d(x, pairs(p["kernel"]), pairs(p["stride"]), pairs(p["padding"]), return_indices=True)
    check(c.name, "out", c.np("out"), out.detach())
    check_equal(c.name, "argmax", c.np("argmax"), idx.numpy().astype(np.int32))
    (dx,) = grads(out, c.t("dout"), x)
    check(c.name, "din", c.np("din"), dx)


def run_avgpool2d(c, p):
    x = c.t("in", True)
    out = F.avg_pool2d(x, pairs(p["kernel"]), pairs(p["stride"]), pairs(p["padding"]), count_include_pad=True)
    check(c.name, "out", c.np("out"), out.detach())
    (dx,) = grads(out, c.t("dout"), x)
    check(c.name, "din", c.np("din"), dx)


def run_gap(c, p):
    x = c.t("in", True)
    out = F.adaptive_avg_pool2d(x, 1).flatten(1)
    check(c.name, "out", c.np("out"), out.detach())
    (dx,) = grads(out, c.t("dout"), x)
    check(c.name, "din", c.np("din"), dx)


def run_dense(c, p):
    x, w = c.t("in", True), c.t("w", True)
    b = c.t("b", True) if p["bias"] == "1" else None
    out = F.linear(x, w, b)
    check(c.name, "out", c.np("out"), out.detach())
    dx, dw, db = grads(out, c.t("dout"), x, w, b)
    check(c.name, "din", c.np("din"), dx)
    check(c.name, "dw", c.np("dw"), dw)
    if b is not None:
        check(c.name, "db", c.np("db"), db)


def run_batchnorm(c, p):
    momentum, eps = float(p["momentum"]), float(p["eps"])
    x, g, b = c.t("in", True), c.t("gamma", True), c.t("beta", True)
    rm, rv = c.t("running_mean0").clone(), c.t("running_var0").clone()
    out = F.batch_norm(x, rm, rv, g, b, training=True, momentum=momentum, eps=eps)
    check(c.name, "out", c.np("out"), out.detach())
    check(c.name, "running_mean", c.np("running_mean1"), rm)
    check(c.name, "running_var", c.np("running_var1"), rv)
    dims = [0] + list(range(2, x.dim()))
    mean = x.detach().mean(dim=dims)
    var = x.detach().var(dim=dims, unbiased=False)
    check(c.name, "mean", c.np("mean"), mean)
    check(c.name, "rstd", c.np("rstd"), 1.0 / torch.sqrt(var + eps))
    dx, dg, db = grads(out, c.t("dout"), x, g, b)
    check(c.name, "din", c.np("din"), dx)
    check(c.name, "dgamma", c.np("dgamma"), dg)
    check(c.name, "dbeta", c.np("dbeta"), db)
    ev = F.batch_norm(x.detach(), c.t("running_mean0"), c.t("running_var0"), g.detach(), b.detach(),
                      training=False, eps=eps)
    check(c.name, "eval_out", c.np("eval_out"), ev)


ACTS = {
    "relu": lambda x, a: F.relu(x),
    "leaky_relu": lambda x, a: F.leaky_relu(x, a),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "gelu": lambda x, a: F.gelu(x),
    "gelu_tanh": lambda x, a: F.gelu(x, approximate="tanh"),
    "none": lambda x, a: x * 1.0,
    "relu6": lambda x, a: F.relu6(x),
    "hardsigmoid": lambda x, a: F.hardsigmoid(x),
    "hardswish": lambda x, a: F.hardswish(x),
    "silu": lambda x, a: F.silu(x),
}


def run_act(c, p):
    x = c.t("in", True)
    out = ACTS[p["name"]](x, float(p["alpha"]))
    check(c.name, "out", c.np("out"), out.detach())
    (dx,) = grads(out, c.t("dout"), x)
    check(c.name, "din", c.np("din"), dx)


def run_softmax(c, p):
    x = c.t("in", True)
    out = F.softmax(x, dim=-1)
    check(c.name, "out", c.np("out"), out.detach())
    (dx,) = grads(out, c.t("dout"), x)
    check(c.name, "din", c.np("din"), dx)


def run_softmax_xent(c, p):
    x = c.t("logits", True)
    labels = torch.from_numpy(c.np("labels").astype(np.int64))
    loss = F.cross_entropy(x, labels)
    check(c.name, "loss", c.np("loss"), loss.detach().reshape(1))
    check(c.name, "probs", c.np("probs"), F.softmax(x.detach(), dim=-1))
    (dx,) = torch.autograd.grad(loss, [x])
    check(c.name, "dlogits", c.np("dlogits"), dx)


def run_mse(c, p):
    x = c.t("pred", True)
    loss = F.mse_loss(x, c.t("target"))
    check(c.name, "loss", c.np("loss"), loss.detach().reshape(1))
    (dx,) = torch.autograd.grad(loss, [x])
    check(c.name, "dpred", c.np("dpred"), dx)


def run_dropout(c, p):
    global passed, failed
    prob = float(p["p"])
    mask = c.np("mask")
    keep = 1.0 / (1.0 - prob)
    values_ok = bool(np.all((mask == 0) | (np.abs(mask - keep) <= 1e-6 * keep)))
    frac = float(np.mean(mask != 0))
    # Bernoulli(1-p) over mask.size draws: 6 standard deviations
    tol = 6 * np.sqrt(prob * (1 - prob) / mask.size) + 1e-12
    frac_ok = abs(frac - (1 - prob)) <= tol
    ok = values_ok and frac_ok
    print(f"{'ok  ' if ok else 'FAIL'} {c.name:24s} mask           values in {{0, {keep:g}}}: {values_ok}, "
          f"kept {frac:.3f} vs {1 - prob:.3f} +- {tol:.3f}")
    passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    # torch's own dropout draws from its own generator, so apply herd's mask the way F.dropout would
    x = c.t("in", True)
    out = x * torch.from_numpy(mask.astype(np.float64))
    check(c.name, "out", c.np("out"), out.detach())
    (dx,) = grads(out, c.t("dout"), x)
    check(c.name, "din", c.np("din"), dx)


def run_add(c, p):
    a, b = c.t("a", True), c.t("b", True)
    out = a + b
    check(c.name, "out", c.np("out"), out.detach())
    da, db = grads(out, c.t("dout"), a, b)
    check(c.name, "da", c.np("da"), da)
    check(c.name, "db", c.np("db"), db)


RUNNERS = {
    "conv2d": run_conv2d,
    "maxpool2d": run_maxpool2d,
    "avgpool2d": run_avgpool2d,
    "gap": run_gap,
    "dense": run_dense,
    "batchnorm": run_batchnorm,
    "act": run_act,
    "softmax": run_softmax,
    "softmax_xent": run_softmax_xent,
    "mse": run_mse,
    "dropout": run_dropout,
    "add": run_add,
}


def find_helper():
    candidates = []
    if os.environ.get("HERD_TEST_BIN_DIR"):
        candidates.append(os.path.join(os.environ["HERD_TEST_BIN_DIR"], "dump_ops"))
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", "build", "tests", "dump_ops"))
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    sys.exit(f"dump_ops helper not found (tried {candidates}); set HERD_TEST_BIN_DIR")


def main():
    global failed
    torch.set_grad_enabled(True)
    helper = find_helper()
    with tempfile.TemporaryDirectory(prefix="herd_ops_") as tmp:
        subprocess.run([helper, tmp], check=True)
        with open(os.path.join(tmp, "manifest.txt")) as f:
            lines = [ln.split() for ln in f if ln.strip()]
        kinds_seen = set()
        for kind, name, *params in lines:
            kinds_seen.add(kind)
            p = dict(kv.split("=", 1) for kv in params)
            try:
                RUNNERS[kind](Case(tmp, name), p)
            except Exception as e:  # a crash in one case should not hide the others
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
        missing = set(RUNNERS) - kinds_seen
        if missing:
            failed += 1
            print(f"FAIL manifest lacks op kinds {sorted(missing)}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
