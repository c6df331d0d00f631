"""herd's optimizers, LR schedules and gradient clipping against torch.optim /
torch.optim.lr_scheduler / torch.nn.utils.clip_grad_norm_ (float32, 20 steps).
SHOW_ERR=1 prints every comparison's worst error as a fraction of its tolerance."""
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.environ.get("HERD_TEST_BIN_DIR", os.path.join(HERE, "..", "build", "tests"))
TRACE = os.path.join(BIN_DIR, "optim_trace")

# final params after 20 steps: float32 roundings differ in order (torch's
# vectorised FMA paths), so compare with a state tolerance, not bit-exactly
P_RTOL, P_ATOL = 1e-5, 1e-6
LR_RTOL = 1e-6      # schedules: both sides in double, herd rounds to float
CLIP_RTOL, CLIP_ATOL = 1e-5, 1e-7

passed = failed = 0


def f32(x):
    """The double nearest to what herd's strtof reads, so both sides use the same constants."""
    return float(np.float32(x))


def trace(*args):
    out = subprocess.run([TRACE] + [str(a) for a in args], check=True, capture_output=True, text=True).stdout
    return np.array([float(x) for x in out.split()], dtype=np.float64)


def compare(what, got, want, rtol, atol):
    global passed, failed
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if os.environ.get("SHOW_ERR") and got.shape == want.shape:
        ratio = np.max(np.abs(got - want) / (atol + rtol * np.abs(want) + 1e-300))
        print(f"{ratio:8.3f} {what}")
    if got.shape == want.shape and np.all(np.abs(got - want) <= atol + rtol * np.abs(want)):
        passed += 1
        return
    failed += 1
    if got.shape != want.shape:
        print(f"FAIL {what}: shape {got.shape} vs torch {want.shape}")
        return
    err = np.abs(got - want) - rtol * np.abs(want)
    i = int(np.argmax(err))
    print(f"FAIL {what}: worst at [{i}] herd {got[i]:.9g} torch {want[i]:.9g} (rtol {rtol} atol {atol})")


# ---- optimizers ----
STEPS, N = 20, 37


def torch_trajectory(kind, lr, wd, mom, b1, b2, eps):
    i = np.arange(N)
    p = torch.nn.Parameter(torch.tensor(((i % 17) - 8) / 8.0, dtype=torch.float32))
    if kind == "sgd":
        opt = torch.optim.SGD([p], lr=lr, weight_decay=wd)
    elif kind in ("momentum", "nesterov"):
        opt = torch.optim.SGD([p], lr=lr, momentum=mom, weight_decay=wd, nesterov=kind == "nesterov")
    elif kind == "adam":
        opt = torch.optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    else:
        opt = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    for k in range(STEPS):
        offset = torch.tensor(((7 * i + 3 * k) % 11 - 5) / 16.0, dtype=torch.float32)
        with torch.no_grad():
            p.grad = p * 0.3 + offset  # float32 multiply by 0.3f, then add: as the helper
        opt.step()
    return p.detach().numpy()


OPT_CASES = [  # kind, lr, weight_decay, momentum, beta1, beta2, eps, chunks
    ("sgd", 0.1, 0.0, 0.0, 0.9, 0.999, 1e-8, 1),
    ("sgd", 0.01, 1e-2, 0.0, 0.9, 0.999, 1e-8, 3),
    ("momentum", 0.05, 0.0, 0.9, 0.9, 0.999, 1e-8, 1),
    ("momentum", 0.1, 5e-3, 0.5, 0.9, 0.999, 1e-8, 3),
    ("nesterov", 0.05, 0.0, 0.9, 0.9, 0.999, 1e-8, 1),
    ("nesterov", 0.02, 1e-2, 0.8, 0.9, 0.999, 1e-8, 3),
    ("adam", 1e-3, 0.0, 0.0, 0.9, 0.999, 1e-8, 1),
    ("adam", 1e-2, 0.0, 0.0, 0.8, 0.99, 1e-6, 1),
    ("adam", 1e-2, 1e-2, 0.0, 0.9, 0.999, 1e-8, 3),
    # wd 0.05, not 0.1: with 0.1 some gradients cancel to exactly 0 in real numbers,
    # leaving only rounding residue that Adam then normalises to a full-size step
    ("adam", 0.1, 0.05, 0.0, 0.9, 0.999, 1e-8, 1),
    ("adamw", 1e-3, 1e-2, 0.0, 0.9, 0.999, 1e-8, 1),
    ("adamw", 1e-2, 0.0, 0.0, 0.9, 0.999, 1e-8, 1),
    ("adamw", 1e-2, 0.1, 0.0, 0.8, 0.99, 1e-6, 3),
    ("adamw", 0.1, 0.05, 0.0, 0.9, 0.999, 1e-8, 1),
]

for kind, lr, wd, mom, b1, b2, eps, chunks in OPT_CASES:
    herd = trace("opt", kind, lr, wd, mom, b1, b2, eps, STEPS, N, chunks)
    want = torch_trajectory(kind, f32(lr), f32(wd), f32(mom), f32(b1), f32(b2), f32(eps))
    compare(f"{kind} lr={lr} wd={wd} mom={mom} betas=({b1},{b2}) eps={eps} chunks={chunks}: params after {STEPS} steps",
            herd, want, P_RTOL, P_ATOL)

# ---- LR schedules ----
# SequentialLR passes an epoch to the next scheduler's step(), which warns in 1.13
warnings.filterwarnings("ignore", message="The epoch parameter", category=UserWarning)
SCHED_STEPS = 50


def torch_lrs(make_sched, base, steps):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = make_sched(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def with_warmup(warmup, main):
    """LinearLR from base/W reaching base at step W-1, then the main schedule from its step 0."""
    def make(opt):
        lin = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / warmup, end_factor=1.0,
                                                total_iters=warmup - 1)
        return torch.optim.lr_scheduler.SequentialLR(opt, [lin, main(opt)], milestones=[warmup])
    return make


SCHED_CASES = [  # herd args (kind base warmup step_size gamma total min), torch scheduler factory
    (("constant", 0.1, 0, 0, 0, 0, 0), lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0)),
    (("step", 0.1, 0, 7, 0.5, 0, 0), lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5)),
    (("step", 0.5, 0, 10, 0.1, 0, 0), lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=10, gamma=0.1)),
    (("cosine", 0.1, 0, 0, 0, 49, 1e-4),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=49, eta_min=f32(1e-4))),
    (("cosine", 1.0, 0, 0, 0, 49, 0), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=49)),
    (("cosine", 0.1, 5, 0, 0, 44, 1e-3),
     with_warmup(5, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=44, eta_min=f32(1e-3)))),
    (("step", 0.2, 8, 6, 0.5, 0, 0), with_warmup(8, lambda o: torch.optim.lr_scheduler.StepLR(o, 6, gamma=0.5))),
    (("constant", 0.3, 10, 0, 0, 0, 0), with_warmup(10, lambda o: torch.optim.lr_scheduler.ConstantLR(o, 1.0))),
]

for args, make in SCHED_CASES:
    herd = trace("sched", *args, SCHED_STEPS)
    want = torch_lrs(make, f32(args[1]), SCHED_STEPS)
    compare(f"schedule {args}: lr at steps 0..{SCHED_STEPS - 1}", herd, want, LR_RTOL, 1e-12)

# ---- clipping: herd clips one flat buffer, torch the same numbers as three tensors ----
CLIP_N = 3 + 17 + 200
CLIP_SPLIT = [3, 17, 200]
for max_norm in (1.0, 5.0, 20.0, 1e3):
    herd = trace("clip", max_norm, CLIP_N)
    i = np.arange(CLIP_N)
    flat = (((13 * i) % 29) - 14) / 8.0
    params, start = [], 0
    for n in CLIP_SPLIT:
        t = torch.nn.Parameter(torch.zeros(n))
        t.grad = torch.tensor(flat[start:start + n], dtype=torch.float32)
        params.append(t)
        start += n
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
    want = np.concatenate([t.grad.numpy() for t in params])
    compare(f"clip max_norm={max_norm}: norm", herd[:1], [norm], CLIP_RTOL, 0.0)
    compare(f"clip max_norm={max_norm}: clipped grads (norm {norm:.4f})", herd[1:], want, CLIP_RTOL, CLIP_ATOL)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
