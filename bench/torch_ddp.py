"""PyTorch 1.13 DistributedDataParallel (gloo) side of bench/scaling: the example
Fashion-MNIST CNN, `batch` samples per rank per step, Adam 1e-3, one thread per rank, data
kept as uint8 in memory as herd keeps it. Rank 0 prints 'result images_per_second=...'.
usage: torch_ddp.py WORLD BATCH STEPS [WARMUP]   (spawns WORLD local processes)"""
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_fashion  # noqa: E402


def worker(rank, world, batch, steps, warmup, port):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    x, y = torch_fashion.load("train")
    net = torch.nn.parallel.DistributedDataParallel(torch_fashion.model())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(rank)
    for s in range(warmup + steps):
        if s == warmup:
            dist.barrier()
            t0 = time.perf_counter()
        idx = torch.randint(0, len(x), (batch,), generator=g)
        xb, yb = torch_fashion.batch(x, y, idx)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xb), yb).backward()
        opt.step()
    dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        print(f"result images_per_second={steps * batch * world / dt:.1f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    world, batch, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    warmup = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    mp.spawn(worker, args=(world, batch, steps, warmup, 29500 + os.getpid() % 1000), nprocs=world)
