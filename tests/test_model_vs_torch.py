"""Whole models against PyTorch 1.13: herd's helper runs one training step (forward in
training mode, loss, backward, one optimizer step) and dumps everything; PyTorch redoes it
from the same weights, input and dropout masks. Checks logits, loss, every parameter
gradient, batch-norm running stats and the parameters after one Adam/SGD step."""
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

torch.set_num_threads(1)
SRC = os.environ.get("HERD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ["HERD_TEST_BIN_DIR"]


def run_case(spec, backend, batch, optimizer):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "dump.safetensors")
        subprocess.run([os.path.join(BIN, "model_dump"), spec, out, backend, str(batch), optimizer], check=True)
        t = spec_torch.read_safetensors(out)
    tag = f"{os.path.basename(spec)}[{backend},B={batch},{optimizer}]"
    steps = spec_torch.build(spec)
    pnames = [k for k in t if not k.startswith(("grad.", "after.", "mask.")) and k not in ("input", "labels", "logits", "loss")]
    params = {k: torch.tensor(t[k], dtype=torch.float64, requires_grad=True)
              for k in pnames if not k.endswith(("running_mean", "running_var"))}
    buffers = {k: torch.tensor(t[k], dtype=torch.float64) for k in pnames if k.endswith(("running_mean", "running_var"))}
    masks = {k: torch.tensor(v, dtype=torch.float64) for k, v in t.items() if k.startswith("mask.")}
    x = torch.tensor(t["input"], dtype=torch.float64)
    y = torch.tensor(t["labels"], dtype=torch.int64)
    logits = spec_torch.forward(steps, x, params, masks, buffers)
    if y.dim() == 2:  # a class per position: logits (B, T, K)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    else:
        loss = F.cross_entropy(logits, y)
    loss.backward()
    # float64 PyTorch is the truth; herd computes in float32
    check(tag + " logits", t["logits"], logits.detach().numpy(), 1e-4, 1e-3)
    check(tag + " loss", t["loss"], loss.item(), 1e-5, 1e-4)
    for k, p in params.items():
        # float32 noise, relative to the tensor's largest gradient (5e-4: batch norm over 4 samples of a dense layer
        # amplifies rounding differences ~20x on the way back); 2e-6 absolute for gradients that are exactly 0
        # in theory (a bias right before batch norm)
        scale = float(np.abs(p.grad.numpy()).max())
        check(f"{tag} grad.{k}", t["grad." + k], p.grad.numpy(), 5e-4 * scale + 2e-6, 1e-3)
    for k, b in buffers.items():
        check(f"{tag} {k} after the step", t["after." + k], b.numpy(), 1e-5, 1e-4)
    # one optimizer step, in float32 as herd does, from herd's own gradients
    p32 = {k: torch.tensor(t[k], requires_grad=True) for k in params}
    for k, p in p32.items():
        p.grad = torch.tensor(t["grad." + k])
    opt = {"adam": lambda ps: torch.optim.Adam(ps, lr=1e-3), "sgd": lambda ps: torch.optim.SGD(ps, lr=1e-3),
           "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-3),
           "momentum": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9)}[optimizer](list(p32.values()))
    opt.step()
    for k, p in p32.items():
        check(f"{tag} after.{k}", t["after." + k], p.detach().numpy(), 1e-7, 1e-5)


specs = [os.path.join(SRC, "examples", "fashion_cnn.spec"), os.path.join(SRC, "tests", "data", "residual_bn.spec")]
for spec in specs:
    for backend in ("ref", "cpu"):
        run_case(spec, backend, 4, "adam")
run_case(specs[0], "cpu", 1, "sgd")
run_case(specs[1], "cpu", 7, "adamw")
# graphs: branches joined by concat, projection shortcuts, a three-way add; ResNet-20 with SGD momentum
graph = os.path.join(SRC, "tests", "data", "concat_graph.spec")
for backend in ("ref", "cpu"):
    run_case(graph, backend, 4, "adam")
layernorm = os.path.join(SRC, "tests", "data", "layernorm.spec")
for backend in ("ref", "cpu"):
    run_case(layernorm, backend, 3, "adamw")
# ceil-mode pooling (clipped last windows; cpu falls back to ref for those layers)
ceil_pool = os.path.join(SRC, "tests", "data", "ceil_pool.spec")
for backend in ("ref", "cpu"):
    run_case(ceil_pool, backend, 3, "sgd")
# a transformer block: dense per position, causal multi-head attention, layer norms, residual adds,
# per-position logits and labels
gpt = os.path.join(SRC, "tests", "data", "gpt_block.spec")
for backend in ("ref", "cpu"):
    run_case(gpt, backend, 3, "adamw")
# depthwise, grouped and dilated convs, relu6, hardswish, silu and squeeze-and-excitation gates
mobile = os.path.join(SRC, "tests", "data", "mobile.spec")
for backend in ("ref", "cpu"):
    run_case(mobile, backend, 4, "sgd")
resnet20 = os.path.join(SRC, "examples", "resnet20_cifar.spec")
run_case(resnet20, "ref", 3, "momentum")
run_case(resnet20, "cpu", 4, "momentum")
sys.exit(summary())
