"""PyTorch 1.13 side of bench/gpt and bench/gpt_converge: a GPT-2 as nanoGPT writes it (token and
position embeddings, pre-norm blocks with fused QKV, causal attention, tanh GELU MLP, final layer
norm, head tied to the token embedding); the same sizes as herd's spec.
Without --data: timed AdamW steps on random token windows, one 'key=value' result line (bench/gpt).
With --data FILE.tok --init W.safetensors: herd's training run redone (bench/gpt_converge): herd's
initial weights, herd's training windows in herd's order (its sampler's Philox stream ported
below), AdamW with decay on matrices, clipping, herd's cosine schedule with warm-up, and the
validation loss on the windows tiling the held-out tail every --eval-every steps.
tests/test_gpt_vs_torch.py imports the model and herd_to_torch."""
import argparse
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.mlp = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.H = H

    def forward(self, x, acts=None, p=""):
        """acts (a dict, or None): every intermediate under herd's layer names, for
        tests/test_gpt_vs_torch.py"""
        rec = (lambda k, t: acts.__setitem__(p + k, t) or t) if acts is not None else (lambda k, t: t)
        B, T, C = x.shape
        qkv = rec("qkv", self.qkv(rec("ln1", self.ln1(x))))
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in qkv.split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) * (C // self.H) ** -0.5
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        y = rec("attn", (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(B, T, C))
        x = rec("res1", x + rec("proj", self.proj(y)))
        h = rec("gelu", F.gelu(rec("fc", self.fc(rec("ln2", self.ln2(x)))), approximate="tanh"))
        return rec("out", x + rec("mlp", self.mlp(h)))


class GPT(nn.Module):
    def __init__(self, V, T, C, H, L):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Parameter(torch.randn(T, C) * 0.02)
        self.h = nn.ModuleList(Block(C, H) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, V, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one parameter

    def forward(self, idx, acts=None):
        rec = (lambda k, t: acts.__setitem__(k, t) or t) if acts is not None else (lambda k, t: t)
        x = rec("wpe", rec("wte", self.wte(idx)) + self.wpe)
        for i, b in enumerate(self.h):
            x = b(x, acts, f"h{i}_")
        return rec("lm_head", self.lm_head(rec("ln_f", self.ln_f(x))))


def herd_to_torch(name):
    """herd's parameter name -> the PyTorch module's (h0_qkv.weight -> h.0.qkv.weight)"""
    layer, kind = name.rsplit(".", 1)
    if layer == "wte":
        return "wte.weight"
    if layer == "wpe":
        return "wpe"
    if layer == "ln_f":
        return name
    block, part = layer.split("_", 1)
    return f"h.{block[1:]}.{part}.{kind}"


def load_herd_weights(model, tensors):
    """Copies herd's tensors (name -> numpy array) into the model, every parameter exactly once."""
    params = dict(model.named_parameters())
    assert len(params) == len(tensors), (sorted(params), sorted(tensors))
    with torch.no_grad():
        for k, v in tensors.items():
            params[herd_to_torch(k)].copy_(torch.from_numpy(v))


# herd's random streams (src/core/rng.c): Philox4x32-10 keyed by splitmix64, Lemire's bounded draw;
# the sampler (src/data/sampler.c) shuffles epoch e with a Fisher-Yates from the top.
M64, M32 = (1 << 64) - 1, (1 << 32) - 1


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _philox(key, counter):
    c0, c1, c2, c3 = counter & M32, counter >> 32, 0, 0
    k0, k1 = key & M32, key >> 32
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


def herd_epoch_order(n, seed, epoch):
    """herd_sampler_set_epoch: the order herd's trainer reads the n training windows in."""
    key = _splitmix64(_splitmix64(seed) ^ ((((0x534D504C << 32) ^ epoch) * 0xD6E8FEB86659FD93) & M64))
    counter, block = 0, None

    def u32():
        nonlocal counter, block
        if counter & 3 == 0:
            block = _philox(key, counter >> 2)
        counter += 1
        return block[(counter - 1) & 3]

    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        b = i + 1
        m = u32() * b
        if m & M32 < b:
            t = (-b & M32) % b
            while m & M32 < t:
                m = u32() * b
        j = m >> 32
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def read_tok(path):
    """A herd token file (src/data/tokens_format.h): its ids as an int64 tensor and the vocabulary size."""
    with open(path, "rb") as f:
        head = f.read(72)
        assert head[:8] == b"HERDTOK1", f"{path}: not a herd token file"
        vocab, width, n = struct.unpack_from("<IIQ", head, 16)
        (ids_at,) = struct.unpack_from("<Q", head, 48)
        f.seek(ids_at)
        raw = f.read(n * width)
    dtype = torch.int16 if width == 2 else torch.int32
    ids = torch.frombuffer(bytearray(raw), dtype=dtype).to(torch.int64)
    return (ids & 0xFFFF if width == 2 else ids), vocab


def herd_lr(step, base, warmup, total, min_lr):
    """herd_schedule_lr with the cosine schedule (src/optim/schedule.c)"""
    if step < warmup:
        return base * (step + 1) / warmup
    s = min(step - warmup, total)
    return min_lr + (base - min_lr) * (1 + math.cos(math.pi * s / total)) / 2


def converge(a):
    """herd's training run of bench/gpt_converge in PyTorch; val loss every eval_every steps."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import spec_torch  # noqa: E402  (the safetensors reader of the tests)

    ids, vocab = read_tok(a.data)
    n, T, B = len(ids), a.ctx, a.batch
    cut = n - int(n * a.val)  # lm: (src/data/lm_data.c): training windows every stride in [0, cut)
    n_train = (cut - T - 1) // a.stride + 1
    n_val = (n - cut - T - 1) // T + 1  # the held-out tail tiled with windows of T
    init = spec_torch.read_safetensors(a.init)
    C = init["wte.weight"].shape[1]
    model = GPT(vocab, T, C, a.heads, a.layers)
    load_herd_weights(model, init)
    decay = [p for p in model.parameters() if p.dim() >= 2]  # herd --decay matrices
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": rest, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = (n_train + B - 1) // B
    total = max(1, steps_per_epoch * a.epochs - a.warmup)
    offs = torch.arange(T + 1)
    val_x = torch.stack([ids[cut + i * T + offs] for i in range(n_val)])

    def val_loss():
        model.eval()
        with torch.no_grad():
            s = sum(F.cross_entropy(model(v[:, :-1]).reshape(-1, vocab), v[:, 1:].reshape(-1), reduction="sum").item()
                    for v in val_x.split(64))
        model.train()
        return s / (n_val * T)

    print(f"torch: {n_train} training windows every {a.stride} ids, {steps_per_epoch} steps an epoch; {n_val} "
          f"validation windows", flush=True)
    print(f"torch: step 0 val_loss {val_loss():.6f}", flush=True)
    train_s, step, first = 0.0, 0, None
    for epoch in range(a.epochs):
        order = herd_epoch_order(n_train, a.seed, epoch)
        for s in range(steps_per_epoch):
            t0 = time.perf_counter()
            starts = torch.tensor(order[s * B:(s + 1) * B]) * a.stride
            rows = ids[starts[:, None] + offs]
            lr = herd_lr(step, a.lr, a.warmup, total, a.min_lr)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(rows[:, :-1]).reshape(-1, vocab), rows[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            opt.step()
            train_s += time.perf_counter() - t0
            step += 1
            first = loss.item() if first is None else first
            if step % a.eval_every == 0 or step == steps_per_epoch * a.epochs:
                print(f"torch: step {step} val_loss {val_loss():.6f} train_loss {loss.item():.4f} "
                      f"({train_s:.1f} s training)", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch: steps={step} first_train_loss={first:.6f} train_seconds={train_s:.1f} "
          f"tokens_per_second={step * B * T / train_s:.1f} peak_rss_mib={rss:.1f}")


def main():
    ap = argparse.ArgumentParser()
    for k, v in (("vocab", 96), ("ctx", 128), ("width", 128), ("heads", 4), ("layers", 4), ("batch", 8),
                 ("threads", 2), ("steps", 20), ("warmup", 3)):
        ap.add_argument("--" + k, type=int, default=v)
    # bench/gpt_converge: herd's run redone (the sizes come from --init; --warmup is then the schedule's)
    ap.add_argument("--data"), ap.add_argument("--init")
    for k, v in (("stride", 128), ("epochs", 1), ("eval-every", 100), ("seed", 1)):
        ap.add_argument("--" + k, type=int, default=v)
    for k, v in (("val", 0.05), ("lr", 2e-3), ("min-lr", 1e-4), ("wd", 0.1), ("clip", 1.0)):
        ap.add_argument("--" + k, type=float, default=v)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.data:
        return converge(a)
    torch.manual_seed(0)
    model = GPT(a.vocab, a.ctx, a.width, a.heads, a.layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, a.vocab, (64, a.ctx + 1), generator=g)
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            t0 = time.perf_counter()
        rows = data[torch.randint(0, 64, (a.batch,), generator=g)]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(rows[:, :-1]).reshape(-1, a.vocab), rows[:, 1:].reshape(-1)).backward()
        opt.step()
    dt = time.perf_counter() - t0
    print(f"torch: tokens_per_second={a.steps * a.batch * a.ctx / dt:.1f} ms_per_step={1e3 * dt / a.steps:.3f}")


if __name__ == "__main__":
    main()
