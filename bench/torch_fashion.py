"""PyTorch 1.13 side of bench/vs_pytorch: the example Fashion-MNIST CNN as a user would
write it (nn.Sequential, Adam 1e-3), on the same data kept as uint8 in memory as herd keeps
it, converted to float per batch. Prints one 'key=value' result line."""
import argparse
import gzip
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist/"


def load(split):
    img = np.frombuffer(gzip.open(DATA + split + "-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 1, 28, 28)
    lab = np.frombuffer(gzip.open(DATA + split + "-labels-idx1-ubyte.gz").read()[8:], np.uint8).astype(np.int64)
    return torch.from_numpy(img.copy()), torch.from_numpy(lab)


def model():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1152, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def batch(x, y, idx):
    return x[idx].float().div_(255.0), y[idx]


def evaluate(net, x, y, bs=1000):
    net.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), bs):
            xb = x[i:i + bs].float().div_(255.0)
            hits += (net(xb).argmax(1) == y[i:i + bs]).sum().item()
    net.train()
    return hits / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train-speed", "eval-speed", "train-epochs"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.91)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = load("train")
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    if a.mode == "train-speed":
        for s in range(a.warmup + a.steps):
            if s == a.warmup:
                t0 = time.perf_counter()
            idx = torch.randint(0, len(x), (a.batch,), generator=g)
            xb, yb = batch(x, y, idx)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(xb), yb).backward()
            opt.step()
        dt = time.perf_counter() - t0
        print(f"result images_per_second={a.steps * a.batch / dt:.1f}")
    elif a.mode == "eval-speed":
        net.eval()
        with torch.no_grad():
            for s in range(a.warmup + a.steps):
                if s == a.warmup:
                    t0 = time.perf_counter()
                idx = torch.randint(0, len(x), (a.batch,), generator=g)
                net(batch(x, y, idx)[0])
        dt = time.perf_counter() - t0
        print(f"result images_per_second={a.steps * a.batch / dt:.1f}")
    else:
        xt, yt = load("t10k")
        elapsed, reached, acc = 0.0, None, 0.0
        for epoch in range(1, a.epochs + 1):
            t0 = time.perf_counter()
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), a.batch):
                xb, yb = batch(x, y, perm[i:i + a.batch])
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(xb), yb).backward()
                opt.step()
            elapsed += time.perf_counter() - t0
            acc = evaluate(net, xt, yt)
            print(f"epoch {epoch} test_accuracy={acc:.4f} train_seconds={elapsed:.1f}", file=sys.stderr)
            if reached is None and acc >= a.target:
                reached = elapsed
        print(f"result final_accuracy={acc:.4f} seconds_to_target={reached if reached is not None else -1:.1f}")


if __name__ == "__main__":
    main()
