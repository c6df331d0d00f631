"""PyTorch 1.13 side of bench/resnet18: torchvision's resnet18 as a user would train it (SGD
with momentum 0.9, cross-entropy) on random images of the given size, kept as uint8 in memory
and converted per batch as herd's synthetic set is. Prints one 'key=value' result line."""
import argparse
import time

import torch
import torch.nn.functional as F
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train-speed", "eval-speed"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=1000)
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, 256, (512, 3, a.size, a.size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 1000, (512,), generator=g)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    n = a.warmup + a.steps
    if a.mode == "train-speed":
        net.train()
        for s in range(n):
            if s == a.warmup:
                t0 = time.perf_counter()
            idx = torch.arange(s * a.batch, (s + 1) * a.batch) % len(data)
            x, y = data[idx].float().div_(255.0), labels[idx]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
    else:
        net.eval()
        with torch.no_grad():
            for s in range(n):
                if s == a.warmup:
                    t0 = time.perf_counter()
                idx = torch.arange(s * a.batch, (s + 1) * a.batch) % len(data)
                net(data[idx].float().div_(255.0))
    dt = time.perf_counter() - t0
    print(f"torch: mode={a.mode} batch={a.batch} threads={a.threads} images_per_second={a.steps * a.batch / dt:.1f}")


if __name__ == "__main__":
    main()
