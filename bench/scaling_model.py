"""bench/scaling --predict's cost model: reads the figures bench/scaling measured (one file of
tagged lines), fits latency (alpha) and inverse bandwidth (beta) per tc tbf rate from the
point-to-point times, predicts every collective herd uses from the algorithm OpenMPI 4.1's
libnbc runs for it (herd's exchanges are all non-blocking, so libnbc serves them):

  allreduce       libnbc's ring, which herd selects (coll_libnbc_iallreduce_algorithm, set before
                  MPI_Init: src/dist/comm_mpi.c): a reduce-scatter then an allgather around the
                  ring, 2 (p-1) rounds of 1/p of the buffer.
  binomial        what libnbc picks by itself for any in-place call whatever the size or world
                  (nbc_iallreduce.c: `p < 4 || size < 64 KiB || !commutative || inplace`), and
                  herd ran until it chose the ring: a binomial reduce to rank 0, L = ceil(log2 p)
                  rounds of the whole buffer, then a binomial broadcast in which a rank posts all
                  its sends at once, so they share its link: L + (L-1) + ... + 1 buffer times on
                  the critical path. Shown as the alternative.
  reduce_scatter  (ZeRO-1's buckets) one binomial reduce per rank's part, to that rank, all at
                  once (herd's; libnbc's own reduces the whole buffer to rank 0): L rounds, in
                  each of which a rank sends up to p-1 parts.
  allgather       (ZeRO-1's parameters; herd's allgatherv) linear: every rank sends its part to
                  every other at once.
  p2p             pipeline activations / gradients, parameter-server pushes and pulls.

and checks them against the collectives measured on 4 hosts; then the data-parallel step:
step = compute + max(0, exchange - window), exchange = the sum over herd's gradient buckets of
the allreduce time, window = the exchange time backward hid, measured on 2 hosts at the same
rate (exchange alone minus the exposed wait), compute = 4 ranks' step measured apart (no
exchange, the same cores shared); checks it against the 4-host step, and projects efficiency and images/s to 8-64 nodes at 10, 25 and 100
Gbit/s for the example CNN, a ResNet-50-sized and a GPT-2-small-sized model.
usage: scaling_model.py FIGURES_FILE"""
import math
import re
import sys

TOL = 0.15  # the issue's bar for the 4-host step prediction


def parse(path):
    """tagged lines -> dict: cpu, load, compute{...}, rates{rate: {p2p/...: {bytes: s}, buckets, gamma}}, dp{k: {...}}"""
    fig = {"rates": {}, "dp": {}, "compute": {}}
    rate = None
    for line in open(path):
        line = line.strip()
        kv = dict(re.findall(r"(\w+)=([^ ]+)", line))
        if line.startswith("cpu "):
            fig["cpu"] = line[4:]
        elif line.startswith("load "):
            fig.setdefault("load", []).append(line[5:])
        elif line.startswith("compute "):
            fig["compute"].update({k: float(v) for k, v in kv.items()})
        elif line.startswith("rate "):
            rate = line.split()[1]
            fig["rates"][rate] = {"ops": {}, "buckets": []}
        elif line.startswith("op=") and rate:
            fig["rates"][rate]["ops"].setdefault((kv["op"], int(kv["ranks"])), {})[int(kv["bytes"])] = float(kv["seconds"])
            if kv["op"] == "p2p":
                fig["least"] = min(fig.get("least", 1.0), float(kv.get("least", kv["seconds"])))
        elif line.startswith("bucket ") and rate:
            fig["rates"][rate]["buckets"].append(4 * int(kv["floats"]))
        elif line.startswith("burst "):
            fig["burst"] = float(kv["bytes"])
        elif line.startswith("reduce ") and rate:
            fig["rates"][rate]["gamma"] = float(kv["seconds_per_byte"])
        elif line.startswith("dp "):
            fig["dp"][(rate, int(kv["ranks"]))] = {k: float(v) for k, v in kv.items() if k != "ranks"}
    return fig


def bits_per_second(rate):
    m = re.fullmatch(r"([0-9.]+)([kmg]?)bit", rate)
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]


class Net:
    """alpha (s a message), beta (s a byte on one host's link), gamma (s a byte of reduction) and
    credit: the bytes of a host's tc tbf token bucket (0 on a real network). Idle links refill
    it (256 KiB at 1 Gbit/s in 2 ms), so every batch of sends a host makes in a collective finds
    it full: the first `credit` bytes leave at the veth's speed, the rest at the tbf rate."""

    def __init__(self, alpha, beta, gamma, credit=0.0):
        self.a, self.b, self.g, self.c = alpha, beta, gamma, credit

    def wire(self, n):  # one host sending n bytes (at once, to one or more peers)
        return max(0.0, n - self.c) * self.b

    def p2p(self, n, p=2):
        return self.a + self.wire(n)

    def allreduce(self, n, p):  # libnbc's ring (herd's choice)
        return 2 * (p - 1) * self.a + self.wire(2 * (p - 1) / p * n) + (p - 1) / p * n * self.g

    def binomial(self, n, p):  # libnbc's default for an in-place call
        if p < 2:
            return 0.0
        L = math.ceil(math.log2(p))
        return L * (self.a + self.wire(n) + n * self.g) + sum(self.a + self.wire(k * n) for k in range(1, L + 1))

    def reduce_scatter(self, n, p):  # one binomial reduce per part, to its rank, all at once
        L = math.ceil(math.log2(p))
        return L * (self.a + self.wire((p - 1) / p * n)) + (p - 1) / p * n * self.g

    def allgather(self, n, p):  # linear allgatherv, n = the whole gathered buffer
        return (p - 1) * self.a + self.wire((p - 1) / p * n)

    def ps_step(self, n, workers, servers):  # push then pull, each server's link carries all workers' shards
        return 2 * (self.a + self.wire(workers * n / servers))

    def pipeline_hop(self, n):  # one micro-batch's activation (or its gradient) to the next stage
        return self.p2p(n)

    def dp_exchange(self, buckets, p, binomial=False):
        return sum((self.binomial if binomial else self.allreduce)(n, p) for n in buckets)

    def zero_exchange(self, buckets, p):  # (overlappable reduce-scatters, the allgather after the update)
        return sum(self.reduce_scatter(n, p) for n in buckets), self.allgather(sum(buckets), p)


def herd_buckets(params):
    """herd's automatic buckets for a model of `params` floats whose tensors are small against
    25 MiB: min(25 MiB, a quarter of the model) each, the rest in the last (data_parallel.c)"""
    total = 4 * params
    per = min(25 * 1048576, total / 4)
    out = []
    while total > per:
        out.append(per)
        total -= per
    return out + [total] if total > 0 else out


def main():
    fig = parse(sys.argv[1])
    c = fig["compute"]
    print(f"cpu: {fig.get('cpu', '?')}; load average during the run: {' -> '.join(fig.get('load', []))}")
    print()
    print("1. alpha-beta per tc tbf rate (point-to-point between 2 of 4 netns hosts: alpha the one-way time of the "
          "smallest message, beta the least-squares slope over 512 KiB - 4 MiB)")
    print(f"{'rate':>9} {'alpha ms':>9} {'beta ns/B':>10} {'achieved':>10} {'of nominal':>11}")
    nets = {}
    for rate, r in fig["rates"].items():
        pts = sorted(r["ops"][("p2p", 4)].items())
        burst = fig.get("burst", 0.0)
        # alpha: the smallest message's one-way time (latency); beta: the slope through it over
        # the messages of at least 512 KiB (bandwidth), beyond the token bucket
        a = pts[0][1]
        big = [(n - burst, t - a) for n, t in pts if n >= 524288]
        b = sum(x * y for x, y in big) / sum(x * x for x, _ in big)
        nets[rate] = Net(a, b, r.get("gamma", 0.0), burst)
        print(f"{rate:>9} {1e3 * a:9.3f} {1e9 * b:10.3f} {8 / b / 1e6:7.0f} Mb/s {8 / b / bits_per_second(rate):10.2f}x")
    print(f"   (t = alpha + (bytes - {fig.get('burst', 0) / 1024:.0f} KiB) x beta: the first bytes of a message leave "
          "at the veth's speed while the host's tbf token bucket lasts)")
    print()
    print("2. collectives on 4 hosts: measured (slowest rank) against the model, each rate")
    print(f"{'rate':>9} {'op':>15} {'bytes':>9} {'measured ms':>12} {'model ms':>9} {'error':>7}")
    for rate, r in fig["rates"].items():
        net = nets[rate]
        for op in ("allreduce", "reduce_scatter", "allgather"):
            for n, t in sorted(r["ops"].get((op, 4), {}).items()):
                if n < 65536:
                    continue
                m = getattr(net, op)(n, 4)
                print(f"{rate:>9} {op:>15} {n:9d} {1e3 * t:12.2f} {1e3 * m:9.2f} {100 * (m / t - 1):+6.1f}%")
    print()
    ok = True
    print("3. data-parallel step of the example CNN on 4 hosts (batch 32 a rank, 1 thread a rank, "
          "4 ranks on this machine's cores)")
    for rate, r in fig["rates"].items():
        if (rate, 4) not in fig["dp"]:
            continue
        net, d2, d4 = nets[rate], fig["dp"][(rate, 2)], fig["dp"][(rate, 4)]
        buckets = r["buckets"]
        # compute per step: the step minus the exposed exchange wait of the same run (c_job), and
        # apart: k single-rank processes at once right before and after, no exchange (c_apart)
        cj2, cj4 = ((d["ms_per_step"] - d["comm_wait_ms"]) / 1e3 for d in (d2, d4))
        ca4 = d4["compute_ms"] / 1e3
        hidden2 = max(0.0, d2["exchange_ms"] - d2["comm_wait_ms"]) / 1e3
        e4 = net.dp_exchange(buckets, 4)
        meas = d4["ms_per_step"] / 1e3
        print(f"   rate {rate}: buckets {', '.join(f'{n / 1024:.0f}' for n in buckets)} KiB")
        print(f"   2 hosts: step {d2['ms_per_step']:.2f} ms, exchange alone {d2['exchange_ms']:.2f} ms, exposed wait "
              f"{d2['comm_wait_ms']:.2f} ms -> backward hid {1e3 * hidden2:.2f} ms, {hidden2 / cj2:.0%} of the compute "
              f"(step - wait)")
        print(f"   4 hosts: exchange alone measured {d4['exchange_ms']:.2f} ms, model {1e3 * e4:.2f} ms "
              f"({100 * (e4 * 1e3 / d4['exchange_ms'] - 1):+.1f}%); exposed wait measured {d4['comm_wait_ms']:.2f} ms")
        # window: the exchange time backward hid on 2 hosts, as it is: with 4 ranks on the cores
        # backward takes longer, but the progress threads that move the exchange meanwhile get
        # as much less CPU time
        for label, c4_, checked in (("compute measured apart (4 ranks at once, no exchange)", ca4, True),
                                    ("compute from the run itself (step - wait)", cj4, False)):
            pred = c4_ + max(0.0, e4 - hidden2)
            err = pred / meas - 1
            if checked:
                ok = ok and abs(err) <= TOL
            print(f"   {label}: {1e3 * c4_:.2f} ms + exposed max(0, {1e3 * e4:.2f} - {1e3 * hidden2:.2f}) ms -> 4-host "
                  f"step measured {1e3 * meas:.2f} ms, predicted {1e3 * pred:.2f} ms: error {100 * err:+.1f}%"
                  + (f" ({'within' if abs(err) <= TOL else 'OUTSIDE'} {TOL:.0%})" if checked else " (for comparison)"))
    print()
    # projection: nodes like this machine (its cores, herd's measured compute), alpha from the
    # smallest software latency measured, beta = the nominal rate with the overhead measured here
    over = min(nets[r].b * bits_per_second(r) / 8 for r in nets)
    alpha = fig.get("least", min(n.a for n in nets.values()))
    gamma = min(n.g for n in nets.values())
    # the hidden share of the compute, the largest measured: another process's load only adds
    # waits (a rank waiting for one the scheduler held back), never hides more
    frac = max(max(0.0, d["exchange_ms"] - d["comm_wait_ms"]) / (d["ms_per_step"] - d["comm_wait_ms"])
               for (rate, k), d in fig["dp"].items() if k == 2)
    res_s = 3 * 4.1e9 / (c["resnet_gflops"] * 1e9)
    gpt_tok = (6 * 124e6 + 6 * 12 * 1024 * 768) / (c["dense_gflops"] * 1e9)
    models = [
        ("example CNN", 32, "images", c["node_ms"] / 1e3, fig["rates"][next(iter(fig["rates"]))]["buckets"]),
        ("ResNet-50-sized (25.6 M)", 32, "images", 32 * res_s, herd_buckets(25.6e6)),
        ("GPT-2-small-sized (124 M)", 8 * 1024, "tokens", 8 * 1024 * gpt_tok, herd_buckets(124e6)),
    ]
    print("4. projection: weak scaling, nodes with this machine's cores and herd's compute on them, a "
          "non-blocking switch; DP = herd (libnbc's ring allreduce), binomial = the same with "
          "libnbc's default for an in-place call")
    print(f"   alpha {1e6 * alpha:.0f} us (the least one-way time of a 4 KiB message, any rate: the software's latency "
          f"without the wait for a core that the median has here), beta = nominal rate x "
          f"{over:.2f} (measured wire overhead), reduction {1e9 * gamma:.3f} ns/B (measured); "
          f"backward hides {frac:.0%} of the compute time (the most measured on 2 hosts)")
    print(f"   a node = 2 cores of this CPU, its compute from herd's CPU time at 1 thread, halved: example CNN "
          f"{c['node_ms']:.2f} ms a step of 32; ResNet-50-sized {1e3 * res_s:.1f} ms a sample = 3 x 4.1 GFLOP at "
          f"{c['resnet_gflops']:.1f} GFLOP/s (herd on ResNet-18 at 64x64); GPT-2-small-sized {1e3 * gpt_tok:.2f} ms a "
          f"token = (6 x 124 M + 6 x 12 x 1024 x 768) FLOP at {c['dense_gflops']:.1f} GFLOP/s (herd on a dense MLP)")
    print(f"{'model':>26} {'Gbit/s':>6} {'nodes':>5} {'step s':>8} {'DP eff':>7} {'DP rate/s':>11} "
          f"{'binom eff':>9} {'ZeRO-1 eff':>10}")
    for name, batch, unit, comp, buckets in models:
        for gbit in (10, 25, 100):
            net = Net(alpha, over * 8 / (gbit * 1e9), gamma)
            for p in (8, 16, 32, 64):
                win = frac * comp

                def step(ex):
                    return comp + max(0.0, ex - win)

                s_dp = step(net.dp_exchange(buckets, p))
                s_binom = step(net.dp_exchange(buckets, p, binomial=True))
                rs, ag = net.zero_exchange(buckets, p)
                s_zero = step(rs) + ag
                print(f"{name:>26} {gbit:6d} {p:5d} {s_dp:8.3f} {comp / s_dp:7.2f} {p * batch / s_dp:11.0f} "
                      f"{comp / s_binom:9.2f} {comp / s_zero:10.2f}")
    print(f"   ({unit} per second of the whole job; efficiency = compute / step, 1.00 = the exchange fully hidden)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
