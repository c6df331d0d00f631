"""torchvision classifiers through ONNX into herd: resnet18, resnet50, densenet121, googlenet,
mobilenet_v2, mobilenet_v3_small, squeezenet1_0, efficientnet_b0, regnet_x_400mf,
shufflenet_v2_x0_5 and convnext_tiny (random weights, eval mode, 3x64x64; alexnet and vgg11 at 3x224x224 in
test_onnx_torchvision_large_slow) exported by Debian's PyTorch 1.13 / torchvision 0.14 with a dynamic
batch; the exporter folds batch norm into the convolutions, writes ResNet's flatten as Flatten,
GoogLeNet's and DenseNet's branches as Concat (DenseNet's with up to 25 inputs), GoogLeNet's max
pools with ceil_mode=1, depthwise and grouped convolutions with group=, ReLU6 as Clip, SiLU and
Hardswish as Sigmoid/HardSigmoid then Mul, squeeze-and-excitation gates as a broadcast Mul, and
ShuffleNet's chunk and channel shuffle as shape subgraphs, Slice, Reshape and Transpose, and
ConvNeXt's blocks as Transpose to channels-last, its LayerNorm written out (ReduceMean, Sub, Pow,
ReduceMean, Add, Sqrt, Div, Mul, Add: PyTorch's export below opset 17), MatMul + Add per position,
GELU's erf formula, Transpose back and a Mul by the (C,1,1) layer scale. Each must
import and give PyTorch's logits on a batch within 1e-4 of the largest logit; `herd import
--spec-out --weights-out` must give a spec that re-parses into the same model (same summary, the
same logits bit for bit); herd's export of the imported model must pass onnx.checker (full) and
export -> import -> export must be byte-identical; one SGD step of `herd train --model NAME.onnx` on
a tiny synthetic NPY set must move the weights as PyTorch's gradient of the same model does (for
the models in FINETUNE), and herd train must warn that the file looks like an eval-mode export.
HERD_TORCHVISION_MODELS, _FINETUNE and _SIZE select other models and sizes."""
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn.functional as F
    import torchvision
except ImportError as e:
    print(f"skipped: {e} (install python3-onnx python3-torch python3-torchvision python3-numpy)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(__file__))
import spec_torch  # noqa: E402
from test_onnx_python import write_safetensors  # noqa: E402  (importing it runs nothing: guarded below)

torch.set_num_threads(2)
torch.manual_seed(0)
BIN = os.environ["HERD_TEST_BIN_DIR"]
HERD = os.environ["HERD_BIN"]
EVAL = os.path.join(BIN, "model_eval")
SIZE = int(os.environ.get("HERD_TORCHVISION_SIZE", "64"))
passed = failed = 0
# HERD_TORCHVISION_MODELS=a,b runs those alone (while working on one)
MODELS = tuple(filter(None, os.environ.get("HERD_TORCHVISION_MODELS", "").split(","))) or ("resnet18", "resnet50", "densenet121", "googlenet", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_0",
          "efficientnet_b0", "regnet_x_400mf", "shufflenet_v2_x0_5", "convnext_tiny")
# one SGD step of herd train from the .onnx against PyTorch's gradient: plain convolutions and
# projection shortcuts; depthwise convolutions, hardswish, hardsigmoid and the squeeze-and-excitation
# gate; SiLU; grouped convolutions; channel slices and shuffles
FINETUNE = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf", "shufflenet_v2_x0_5",
            "convnext_tiny")
if "HERD_TORCHVISION_FINETUNE" in os.environ:  # set with HERD_TORCHVISION_MODELS (test_onnx_torchvision_large_slow)
    FINETUNE = tuple(filter(None, os.environ["HERD_TORCHVISION_FINETUNE"].split(",")))


def ok(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)


def run(*args, expect=0):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    ok(r.returncode == expect, f"{' '.join(map(str, args))}: exit {r.returncode}, expected {expect}; stderr: {r.stderr[:500]}")
    return r


def herd_logits(model, weights, x, d):
    inp, out = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
    write_safetensors(inp, {"input": x})
    r = run(EVAL, model, weights, inp, out)
    return spec_torch.read_safetensors(out)["logits"] if r.returncode == 0 else None


def summary(model):
    r = run(HERD, "summary", model, "--batch", "2")
    return [l for l in r.stdout.splitlines()[1:] if "cpu backend cannot run" not in l]


def randomize(model):
    """Weights that keep the signal alive through every layer (torchvision's own init lets GoogLeNet's
    logits collapse onto the classifier's bias) and non-trivial batch-norm statistics, which the
    exporter folds into the convolutions."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            elif isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.0)
                mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
            elif isinstance(mod, torch.nn.Linear):
                torch.nn.init.normal_(mod.weight, 0, mod.in_features ** -0.5)
    return model


def case(name, d, full):
    """full: also the written spec, herd's export and its round trip (resnet50 adds nothing to those)."""
    t0 = time.time()
    kw = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    model = randomize(getattr(torchvision.models, name)(weights=None, **kw)).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    path = os.path.join(d, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    with torch.no_grad():
        want = model(x).numpy().astype(np.float64)
    t_export = time.time() - t0
    ops = sorted({n.op_type for n in onnx.load(path).graph.node})
    got = herd_logits(path, "-", x.numpy(), d)
    if got is None:
        return None
    scale = float(np.abs(want).max())
    rel = float(np.abs(got - want).max()) / scale
    ok(rel <= 1e-4, f"{name}: herd vs PyTorch logits: max |difference| {rel:.3g} of the largest logit")
    spec, weights = os.path.join(d, name + ".spec"), os.path.join(d, name + ".safetensors")
    if not full:
        print(f"{name}: {len(ops)} operator types ({', '.join(ops)}); max |herd - PyTorch| / max |logit| = {rel:.2e} "
              f"(max |logit| {scale:.3g})")
        return None
    # the spec herd writes for it parses into the same model
    run(HERD, "import", path, "--spec-out", spec, "--weights-out", weights)
    ok(summary(spec) == summary(path), f"{name}: the written spec does not build the same model")
    again = herd_logits(spec, weights, x.numpy(), d)
    ok(again is not None and np.array_equal(again, got), f"{name}: spec + weights give other logits than the .onnx")
    # herd's own export of it: valid ONNX, and export -> import -> export byte-identical
    e1, e2 = os.path.join(d, name + "_herd.onnx"), os.path.join(d, name + "_herd2.onnx")
    run(HERD, "export", path, "--onnx", e1)
    try:
        onnx.checker.check_model(onnx.load(e1), full_check=True)
        ok(True, "")
    except Exception as e:  # noqa: BLE001
        ok(False, f"{name}: onnx checker on herd's export: {e}")
    run(HERD, "export", e1, "--onnx", e2)
    ok(os.path.exists(e2) and open(e1, "rb").read() == open(e2, "rb").read(),
       f"{name}: export -> import -> export is not byte-identical")
    via_export = herd_logits(e1, "-", x.numpy(), d)
    ok(via_export is not None and np.array_equal(via_export, got), f"{name}: herd's export computes other logits")
    print(f"{name}: {len(ops)} operator types ({', '.join(ops)}); max |herd - PyTorch| / max |logit| = {rel:.2e} "
          f"(max |logit| {scale:.3g}); "
          f"export {t_export:.1f} s, the rest {time.time() - t0 - t_export:.1f} s")
    return path, spec, weights


def finetune(name, path, spec, weights, d):
    """One SGD step of herd train from the .onnx, against PyTorch's gradient of the imported model."""
    rng = np.random.default_rng(3)
    B, lr = 4, 0.05
    x = rng.normal(0, 1, (B, 3, SIZE, SIZE)).astype(np.float32)
    y = rng.integers(0, 1000, B).astype(np.int64)
    data = os.path.join(d, "npy")
    os.makedirs(data, exist_ok=True)
    for split in ("train", "test"):
        np.save(os.path.join(data, f"{split}_x.npy"), x)
        np.save(os.path.join(data, f"{split}_y.npy"), y)
    tuned = os.path.join(d, "tuned.safetensors")
    r = run(HERD, "train", "--model", path, "--data", data, "--epochs", "1", "--batch", str(B), "--optimizer", "sgd",
            "--lr", str(lr), "--threads", "2", "--progress", "none", "--save", tuned)
    ok("test accuracy" in r.stdout, f"train --model {name}.onnx prints a test accuracy: {r.stdout[-300:]}")
    # PyTorch's eval-mode export folded batch norm into the convolutions (AlexNet: dropped its dropouts)
    warn = [l for l in r.stderr.splitlines() if "looks like an eval-mode export" in l]
    # (ConvNeXt has no batch norm: its stochastic depth is what the eval-mode export dropped)
    expect = {"alexnet": "no Dropout between its 3 fully connected", "convnext_tiny": "no Dropout between"}
    ok(len(warn) == 1 and warn[0].startswith("herd: warning: ") and expect.get(name, "batch norm folded") in warn[0],
       f"train --model {name}.onnx warns once that it looks like an eval-mode export: {r.stderr[-400:]}")
    if r.returncode:
        return
    before, after = spec_torch.read_safetensors(weights), spec_torch.read_safetensors(tuned)
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in before.items()}
    logits = spec_torch.forward(spec_torch.build(spec), torch.tensor(x, dtype=torch.float64), P, {}, P)
    F.cross_entropy(logits, torch.tensor(y)).backward()
    worst = 0.0
    for k, p in P.items():
        step = (before[k].astype(np.float64) - after[k]) / lr  # herd's gradient
        g = p.grad.numpy()
        # the step is read back from float32 weights: it cannot be known closer than an ulp of the
        # weight over lr (squeeze-and-excitation convs have gradients of 1e-6 on weights near 1)
        resolution = np.spacing(np.maximum(np.abs(before[k]), np.abs(after[k]))).astype(np.float64) / lr
        excess = np.abs(step - g) - 2 * resolution
        err = float(max(excess.max(), 0)) / (float(np.abs(g).max()) + 1e-12)
        worst = max(worst, err)
        ok(err <= 1e-3, f"{name} fine-tune: {k}: herd's SGD step differs from PyTorch's gradient by {err:.3g} "
                        f"of the largest (beyond the float32 resolution of the step)")
    print(f"{name}: one SGD step from the .onnx: max |herd step / lr - PyTorch gradient| beyond the step's float32 "
          f"resolution = {worst:.2e} of the tensor's largest gradient")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        out = {name: case(name, d, name != "resnet50") for name in MODELS}
        for name in FINETUNE:
            if out.get(name):
                finetune(name, *out[name], d)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
