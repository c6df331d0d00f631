"""PyTorch 1.13 side of bench/gpt: a GPT-2 as nanoGPT writes it (token and position embeddings,
pre-norm blocks with fused QKV, causal attention, tanh GELU MLP, final layer norm, head tied to the
token embedding) trained with AdamW on random token windows; the same sizes as herd's spec.
Prints one 'key=value' result line. tests/test_gpt_vs_torch.py imports the model."""
import argparse
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


def main():
    ap = argparse.ArgumentParser()
    for k, v in (("vocab", 96), ("ctx", 128), ("width", 128), ("heads", 4), ("layers", 4), ("batch", 8),
                 ("threads", 2), ("steps", 20), ("warmup", 3)):
        ap.add_argument("--" + k, type=int, default=v)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
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
