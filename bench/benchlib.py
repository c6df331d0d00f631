"""Shared by the bench/ scripts that put herd side by side with another program: the machine line
and alternating measurement.

This VM's speed moves by up to 2x from one minute to the next with nothing else running, so a
ratio from one run of each program says more about the minute than about the programs. Each
figure is therefore measured `reps` times, alternating the programs and swapping which goes
first every round (A B, B A, A B ...), and each program's best run is kept (as timeit keeps the
fastest repeat: the run least disturbed). Every program gets the same number of tries in the
same window; the spread of each is printed with the figure."""
import os


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def alternate(reps, *measures):
    """Runs every measure (a function of no argument returning a figure where higher is better, or a
    tuple whose first item is that figure) reps times, alternating them and swapping the order each
    round. Returns, per measure, (best figure, the best run's whole return value, every figure)."""
    runs = [[] for _ in measures]
    for r in range(reps):
        order = range(len(measures)) if r % 2 == 0 else reversed(range(len(measures)))
        for i in order:
            v = measures[i]()
            runs[i].append(v if isinstance(v, tuple) else (v,))
    out = []
    for rs in runs:
        best = max(rs, key=lambda v: v[0])
        out.append((best[0], best if len(best) > 1 else best[0], [v[0] for v in rs]))
    return out


def spread(values):
    """'min-max' of a measure's figures, for the line that reports its best"""
    return f"{min(values):.1f}-{max(values):.1f}"
