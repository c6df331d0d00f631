"""bench/scaling --predict's cost model: reads the figures bench/scaling measured (one file of
tagged lines), fits latency (alpha) and inverse bandwidth (beta) per tc tbf rate from the
point-to-point times; to project past the hosts measured, models every collective herd uses by
the algorithm OpenMPI 4.1's libnbc runs for it (herd's exchanges are all non-blocking, so libnbc
serves them):

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

and, apart from that, fits t = A + B x max(0, bytes a host sends - token bucket) to each collective
as measured on 2 and on 4 hosts (A: its rounds' latencies as they are here, where a round may wait for
a core or for herd's progress thread to poll; B: the link and the reduction). The data-parallel step
on 4 hosts is then predicted from figures measured apart from it, and checked against it (exit 1
beyond 15%). Each run (herd bench --apart) takes the step and its parts in the same processes, in
alternating blocks of 10 steps: the VM's speed swings from one minute to the next, and parts
measured in runs of their own, a minute from the step, put 35% on the compute term (44 -> 54 ms
between rounds, last session's quiet run). Each run's step is predicted from its own parts; the
median of the runs' errors is checked, their spread printed:
  compute   each rank's steps alone, the ranks sharing the cores, no exchange, herd's progress
            thread polling as through a step's forward and backward (wall time), times
            1 + (CPU time of the exchange alone, all ranks) / (CPU time of those steps): the
            exchange's kernel and polling work takes the same cores;
  backward  its share of the compute and when each gradient bucket is ready, from rank 0's
            per-layer profile of its steps alone;
  exposed   the buckets in flight share the link and their rounds overlap, so the last one ends at
            max over buckets k (in ready order) of ready_k + A + B x (bytes sent by k and the later
            ones - token bucket), A and B the allreduce's own fit on 4 hosts; what is left after
            backward is exposed.
Then projects efficiency and images/s to 8-64 nodes at 10, 25 and 100 Gbit/s for the example CNN, a
ResNet-50-sized and a GPT-2-small-sized model with the same step model.
usage: scaling_model.py FIGURES_FILE"""
import math
import re
import sys

TOL = 0.15  # the issue's bar for the 4-host step prediction
FIT_FROM = 65536  # the collectives' fits: sizes from here (herd's buckets are larger; below, a round's
# wait for a core on a loaded machine dominates the median)


def parse(path):
    """tagged lines -> dict: cpu, load, compute{...}, rates{rate: {p2p/...: {bytes: s}, buckets, gamma}}, dp{k: {...}}"""
    fig = {"rates": {}, "dp": {}, "compute": {}}
    rate, ranks, dp = None, 0, {}
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
            ranks = int(kv["ranks"])
            if kv["op"] == "p2p":
                fig["least"] = min(fig.get("least", 1.0), float(kv.get("least", kv["seconds"])))
        elif line.startswith("bucket ") and rate and ranks == 4:  # comm_costs prints them for each world it runs
            fig["rates"][rate]["buckets"].append(4 * int(kv["floats"]))
            fig["rates"][rate].setdefault("bucket_layers", []).append(kv.get("layer", "?"))
        elif line.startswith("burst "):
            fig["burst"] = float(kv["bytes"])
        elif line.startswith("reduce ") and rate:
            fig["rates"][rate]["gamma"] = float(kv["seconds_per_byte"])
        elif line.startswith("dp "):  # one round (older files: the only one) of the step and its figures
            dp = {k: float(v) for k, v in kv.items() if k != "ranks"}
            dp["layers"] = []
            fig["dp"].setdefault((rate, int(kv["ranks"])), []).append(dp)
        elif line.startswith("profile layer="):  # rank 0's steps alone: forward and backward per layer
            dp["layers"].append((kv["layer"], float(kv["forward_ms"]), float(kv["backward_ms"])))
        elif line.startswith("profile step_ms="):
            dp["profile_step_ms"] = float(kv["step_ms"])
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


# bytes one host sends in a collective of n bytes on p ranks, as libnbc runs herd's calls: the x of
# each collective's fit (its slope B is then seconds per byte sent, reduction included)
SENT = {
    "allreduce": lambda n, p: 2 * (p - 1) / p * n,  # the ring: 2 (p-1) rounds of n/p
    "reduce_scatter": lambda n, p: (p - 1) / p * n,  # one reduce per part: the parts of the others
    "allgather": lambda n, p: (p - 1) / p * n,  # its part to every other rank
}


def fit_collective(pts, sent, burst):
    """t = A + B max(0, sent(n) - burst) through {bytes: seconds}, least squares of the relative error
    (each size weighs the same; one slow outlier among small sizes does not tilt the slope)"""
    xs = [(max(0.0, sent(n) - burst), t) for n, t in pts.items()]
    w = [1 / t ** 2 for _, t in xs]
    sw, sx, sy = sum(w), sum(wi * x for wi, (x, _) in zip(w, xs)), sum(wi * t for wi, (_, t) in zip(w, xs))
    sxx, sxy = sum(wi * x * x for wi, (x, _) in zip(w, xs)), sum(wi * x * t for wi, (x, t) in zip(w, xs))
    den = sw * sxx - sx * sx
    b = (sw * sxy - sx * sy) / den if den > 0 else 0.0
    if b < 0:
        b = 0.0
    return (sy - b * sx) / sw, b


def exchange_end(ready, lat, wire):
    """when the last of the buckets in flight is done: they share the link (wire(ks): its seconds for
    the buckets ks) and their rounds overlap (libnbc moves every collective in flight at each poll), so
    the end is the latest, over the buckets in ready order, of one's ready time + the latency left +
    the link time of it and every later one"""
    order = sorted(range(len(ready)), key=ready.__getitem__)
    return max(ready[order[i]] + max(lat[k] for k in order[i:]) + wire(order[i:]) for i in range(len(order)))


def step_model(d, fit, buckets, layers, p, burst):
    """the data-parallel step on p ranks from figures measured apart from it:
    compute: the k ranks' steps alone, without exchange (wall time, their mean), slowed by the CPU
      time the exchange takes on the same cores: x (1 + exchange CPU / compute CPU), both measured
      (the exchanges alone and the steps alone, all ranks);
    backward: its share of that compute and each bucket's ready time, from rank 0's per-layer
      profile of its steps alone (a bucket starts when the backward of its first parameter's layer
      ends);
    exchange: the buckets in flight share the link and the rounds (libnbc progresses every
      collective in flight at each poll), so the last one ends at max over buckets k, in ready order,
      of ready_k + A + B x (bytes sent by k and the later ones - token bucket), A and B the
      allreduce's own fit at p ranks; the exposed part is what is left after backward."""
    a, b = fit
    apart = d["compute_ms"] / 1e3
    slow = 1 + d["exchange_cpu_ms"] / d["compute_cpu_ms"]
    compute = apart * slow
    prof = d["layers"]
    scale = compute / (d["profile_step_ms"] / 1e3)
    names = [name for name, _, _ in prof]
    bwd = [bw / 1e3 * scale for _, _, bw in prof]
    backward = sum(bwd)
    ready = [sum(bwd[names.index(l):]) if l in names else backward for l in layers]
    sent = [SENT["allreduce"](n, p) for n in buckets]
    finish = exchange_end(ready, [a] * len(buckets), lambda ks: b * max(0.0, sum(sent[k] for k in ks) - burst))
    exposed = max(0.0, finish - backward)
    return {"a": a, "b": b, "apart": apart, "slow": slow, "compute": compute, "backward": backward,
            "bwd_share": backward / compute, "ready": ready, "finish": finish, "exposed": exposed,
            "alone": a + b * max(0.0, sum(sent) - burst), "step": compute + exposed}


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
    print("2. each collective fitted on its own: t = A + B x max(0, bytes a host sends - token bucket), least "
          "relative squares over the sizes measured, per rate and world (the slowest rank's median); A holds the "
          "rounds' latencies as they are here (a round may wait for a core), B the link and the reduction")
    print(f"{'rate':>9} {'op':>15} {'ranks':>5} {'A ms':>7} {'B ns/B':>7} {'achieved':>10}   fit error at "
          + " ".join(f"{n // 1024}K" for n in sorted(next(iter(fig["rates"].values()))["ops"].get(("allreduce", 4), {}))
                     if n >= FIT_FROM))
    fits = {}
    for rate, r in fig["rates"].items():
        for (op, p), pts in sorted(r["ops"].items()):
            if op == "p2p" or p < 2:
                continue
            pts = {n: t for n, t in pts.items() if n >= FIT_FROM}
            a, b = fit_collective(pts, lambda n, op=op, p=p: SENT[op](n, p), fig.get("burst", 0.0))
            fits[(rate, op, p)] = (a, b)
            errs = " ".join(f"{100 * ((a + b * max(0.0, SENT[op](n, p) - fig.get('burst', 0.0))) / t - 1):+.0f}%"
                            for n, t in sorted(pts.items()))
            print(f"{rate:>9} {op:>15} {p:5d} {1e3 * a:7.2f} {1e9 * b:7.2f} {8 / b / 1e6 if b > 0 else 0:6.0f} Mb/s   {errs}")
    print()
    ok = True
    print("3. data-parallel step of the example CNN (batch 32 a rank, 1 thread a rank, all ranks on this machine's "
          "cores): step = compute + exposed exchange, every term measured apart from the step it predicts")
    for rate, r in fig["rates"].items():
        for k in (2, 4):
            if (rate, k) not in fig["dp"] or (rate, "allreduce", k) not in fits:
                continue
            rounds = fig["dp"][(rate, k)]
            ms = [step_model(d, fits[(rate, "allreduce", k)], r["buckets"], r["bucket_layers"], k, fig.get("burst", 0.0))
                  for d in rounds]
            errs = [m["step"] / (d["ms_per_step"] / 1e3) - 1 for m, d in zip(ms, rounds)]
            # the figure checked: the median over the runs of each run's error (its step against the
            # prediction from its own parts); the breakdown is that run's
            mid = sorted(range(len(errs)), key=errs.__getitem__)[(len(errs) - 1) // 2]
            d, m, err = rounds[mid], ms[mid], errs[mid]
            meas = d["ms_per_step"] / 1e3
            checked = k == 4
            if checked:
                ok = ok and abs(err) <= TOL
            print(f"   {rate}, {k} hosts: buckets {', '.join(f'{n / 1024:.0f} KiB after {l}' for n, l in zip(r['buckets'], r['bucket_layers']))}")
            if len(rounds) > 1:
                print("      runs (compute apart ms -> predicted / measured step ms: error): " + "; ".join(
                    f"{rd['compute_ms']:.1f} -> {1e3 * mo['step']:.1f} / {rd['ms_per_step']:.1f}: {100 * e:+.1f}%"
                    for rd, mo, e in zip(rounds, ms, errs)) + f"; median {100 * err:+.1f}%, spread "
                      f"{100 * min(errs):+.1f}% to {100 * max(errs):+.1f}% over {len(errs)} runs; the median run ({mid + 1}):")
            wait = d.get("wait_mean_ms", d["comm_wait_ms"])
            print(f"      compute apart (the {k} ranks' steps alone, no exchange) {d['compute_ms']:.2f} ms, "
                  f"{d['compute_cpu_ms']:.2f} ms of CPU; the exchange alone takes {d['exchange_cpu_ms']:.2f} ms of CPU "
                  f"(all ranks) -> x{m['slow']:.3f}: compute in the step {1e3 * m['compute']:.2f} ms "
                  f"(measured: step - the ranks' mean wait = {d['ms_per_step'] - wait:.2f} ms"
                  + (f"; CPU of all ranks in the step {d['step_cpu_ms']:.2f} ms, modelled "
                     f"{d['compute_cpu_ms'] + d['exchange_cpu_ms']:.2f})" if "step_cpu_ms" in d else ")"))
            print(f"      backward {1e3 * m['backward']:.2f} ms ({m['bwd_share']:.0%} of the profile's step); buckets "
                  f"ready at " + ", ".join(f"{1e3 * t:.2f}" for t in m["ready"]) + " ms of it; allreduce "
                  f"A {1e3 * m['a']:.2f} ms, B {1e9 * m['b']:.2f} ns/B")
            print(f"      exchange alone: model {1e3 * m['alone']:.2f} ms, measured {d['exchange_ms']:.2f} ms "
                  f"({100 * (1e3 * m['alone'] / d['exchange_ms'] - 1):+.1f}%); last bucket done {1e3 * m['finish']:.2f} ms "
                  f"after backward's start -> exposed {1e3 * m['exposed']:.2f} ms (measured wait: the ranks' mean "
                  f"{wait:.2f} ms, rank 0 {d['comm_wait_ms']:.2f} ms)")
            print(f"      step: {1e3 * m['apart']:.2f} compute apart + {1e3 * (m['compute'] - m['apart']):.2f} the exchange's "
                  f"CPU + {1e3 * m['exposed']:.2f} exposed = {1e3 * m['step']:.2f} ms predicted, {1e3 * meas:.2f} ms "
                  f"measured: error {100 * err:+.1f}%" + (f" ({'within' if abs(err) <= TOL else 'OUTSIDE'} {TOL:.0%}"
                                                           f"{', the median of the runs' if len(errs) > 1 else ''})"
                                                           if checked else " (2 hosts: shown, not checked)"))
    print()
    # projection: nodes like this machine (its cores, herd's measured compute) behind a switch; the
    # step as above (exchange_end), the collectives from the alpha-beta-gamma model of how libnbc
    # runs them: alpha the least software latency measured (a node has its own cores: no round
    # waits for one), beta = the nominal rate with the overhead measured here
    over = min(nets[r].b * bits_per_second(r) / 8 for r in nets)
    alpha = fig.get("least", min(n.a for n in nets.values()))
    gamma = min(n.g for n in nets.values())
    res_s = 3 * 4.1e9 / (c["resnet_gflops"] * 1e9)
    gpt_tok = (6 * 124e6 + 6 * 12 * 1024 * 768) / (c["dense_gflops"] * 1e9)
    # the CNN's backward share and its buckets' ready times (as shares of backward) from the profile
    # measured on 2 hosts; the sized models: backward = 2/3 of the compute (twice the forward's
    # FLOPs), their buckets ready in proportion to the parameters behind them
    prof = next((d[0] for (r, k), d in fig["dp"].items() if k == 2 and d[0].get("layers")), None)
    r0 = fig["rates"][next(iter(fig["rates"]))]
    if prof:
        names = [name for name, _, _ in prof["layers"]]
        bwd = [bw for _, _, bw in prof["layers"]]
        cnn_bwd = sum(bwd) / prof["profile_step_ms"]
        cnn_ready = [sum(bwd[names.index(l):]) / sum(bwd) if l in names else 1.0 for l in r0["bucket_layers"]]
    else:
        cnn_bwd, cnn_ready = 2 / 3, [1.0] * len(r0["buckets"])

    def even(buckets):
        return [sum(buckets[:k + 1]) / sum(buckets) for k in range(len(buckets))]

    models = [
        ("example CNN", 32, "images", c["node_ms"] / 1e3, r0["buckets"], cnn_bwd, cnn_ready),
        ("ResNet-50-sized (25.6 M)", 32, "images", 32 * res_s, herd_buckets(25.6e6), 2 / 3, even(herd_buckets(25.6e6))),
        ("GPT-2-small-sized (124 M)", 8 * 1024, "tokens", 8 * 1024 * gpt_tok, herd_buckets(124e6), 2 / 3,
         even(herd_buckets(124e6))),
    ]
    print("4. projection: weak scaling, nodes with this machine's cores and herd's compute on them, a "
          "non-blocking switch; step = compute + the exchange left after backward (as in 3); DP = herd "
          "(libnbc's ring allreduce), binomial = the same with libnbc's default for an in-place call")
    print(f"   alpha {1e6 * alpha:.0f} us (the least one-way time of a 4 KiB message, any rate: the software's latency "
          f"without the wait for a core that the median has here), beta = nominal rate x "
          f"{over:.2f} (measured wire overhead), reduction {1e9 * gamma:.3f} ns/B (measured); the exchange's CPU "
          f"time is not charged to the nodes' compute")
    print(f"   a node = 2 cores of this CPU, its compute from herd's CPU time at 1 thread, halved: example CNN "
          f"{c['node_ms']:.2f} ms a step of 32 (backward {cnn_bwd:.0%}, buckets ready at "
          f"{', '.join(f'{x:.0%}' for x in cnn_ready)} of it: the profile on 2 hosts); ResNet-50-sized "
          f"{1e3 * res_s:.1f} ms a sample = 3 x 4.1 GFLOP at {c['resnet_gflops']:.1f} GFLOP/s (herd on ResNet-18 at "
          f"64x64); GPT-2-small-sized {1e3 * gpt_tok:.2f} ms a token = (6 x 124 M + 6 x 12 x 1024 x 768) FLOP at "
          f"{c['dense_gflops']:.1f} GFLOP/s (herd on a dense MLP); those two: backward 2/3, buckets ready in "
          f"proportion to their parameters")
    print(f"{'model':>26} {'Gbit/s':>6} {'nodes':>5} {'step s':>8} {'DP eff':>7} {'DP rate/s':>11} "
          f"{'binom eff':>9} {'ZeRO-1 eff':>10}")
    for name, batch, unit, comp, buckets, bshare, ready_share in models:
        backward = bshare * comp
        ready = [x * backward for x in ready_share]
        for gbit in (10, 25, 100):
            net = Net(alpha, over * 8 / (gbit * 1e9), gamma)
            for p in (8, 16, 32, 64):
                def step(op):  # compute + what the buckets' collectives leave exposed after backward
                    lat = [op(0, p)] * len(buckets)
                    end = exchange_end(ready, lat, lambda ks: sum(op(buckets[k], p) - lat[k] for k in ks))
                    return comp + max(0.0, end - backward)

                s_dp = step(net.allreduce)
                s_binom = step(net.binomial)
                s_zero = step(net.reduce_scatter) + net.allgather(sum(buckets), p)
                print(f"{name:>26} {gbit:6d} {p:5d} {s_dp:8.3f} {comp / s_dp:7.2f} {p * batch / s_dp:11.0f} "
                      f"{comp / s_binom:9.2f} {comp / s_zero:10.2f}")
    print(f"   ({unit} per second of the whole job; efficiency = compute / step, 1.00 = the exchange fully hidden)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
