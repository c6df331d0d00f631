"""herd train --tensorboard on a tiny Fashion-MNIST subset, read back by an independent
reader (struct, a Python CRC32C and a minimal protobuf decoder): the file name, every
record's two masked CRCs, the file_version event, and every scalar against the --log-json
output of the same run (per-epoch train/val/test loss and accuracy, lr, images/s; the
per-step running loss, whose last value of an epoch is that epoch's loss)."""
import gzip
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crc32c import crc32c, masked  # noqa: E402

HERD = os.environ["HERD_BIN"]
FM = "/usr/share/datasets/fashion-mnist/"
passed = failed = 0


def ok(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)


def varint(b, i):
    v = shift = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return v, i


def fields(b):
    """Yields (field number, wire type, value) of one message; value is int, bytes or raw 4/8 bytes."""
    i = 0
    while i < len(b):
        tag, i = varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, v


def read_events(path):
    raw = open(path, "rb").read()
    events, i = [], 0
    while i < len(raw):
        (n,) = struct.unpack_from("<Q", raw, i)
        (lcrc,) = struct.unpack_from("<I", raw, i + 8)
        ok(lcrc == masked(raw[i:i + 8]), f"record at byte {i}: length CRC")
        data = raw[i + 12:i + 12 + n]
        (dcrc,) = struct.unpack_from("<I", raw, i + 12 + n)
        ok(dcrc == masked(data), f"record at byte {i}: data CRC")
        i += 12 + n + 4
        ev = {"step": 0}
        for num, wt, v in fields(data):
            if num == 1 and wt == 1:
                ev["wall_time"] = struct.unpack("<d", v)[0]
            elif num == 2 and wt == 0:
                ev["step"] = v
            elif num == 3 and wt == 2:
                ev["file_version"] = v.decode()
            elif num == 5 and wt == 2:
                for sn, _, sv in fields(v):
                    if sn == 1:
                        val = dict((k, x) for k, _, x in fields(sv))
                        ev["tag"] = val[1].decode()
                        ev["value"] = struct.unpack("<f", val[2])[0]
        events.append(ev)
    ok(i == len(raw), "records end exactly at the end of the file")
    return events


def subset(d, ntrain, ntest):
    for split, n in (("train", ntrain), ("t10k", ntest)):
        img = gzip.open(FM + split + "-images-idx3-ubyte.gz").read()
        lab = gzip.open(FM + split + "-labels-idx1-ubyte.gz").read()
        with open(f"{d}/{split}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + img[16:16 + n * 784])
        with open(f"{d}/{split}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + lab[8:8 + n])


if not os.path.exists(FM + "train-images-idx3-ubyte.gz"):
    print("skipped: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    sys.exit(77)
ok(crc32c(b"123456789") == 0xE3069283, "the test's CRC32C gives the standard check value")

with tempfile.TemporaryDirectory() as d:
    subset(d, 256, 64)
    spec = os.path.join(d, "tiny.spec")
    open(spec, "w").write("input 1x28x28\nconv 4 3 relu\nmaxpool 2\nflatten\ndense 10\n")
    tb, js = os.path.join(d, "tb"), os.path.join(d, "log.json")
    t0 = time.time()
    r = subprocess.run([HERD, "train", spec, "--data", d, "--epochs", "2", "--batch", "32", "--val-split", "0.25",
                        "--tensorboard", tb, "--tb-every", "2", "--log-json", js, "--test-each-epoch",
                        "--lr-schedule", "cosine", "--lr", "0.01", "--threads", "1", "--progress", "none"],
                       capture_output=True, text=True)
    t1 = time.time()
    ok(r.returncode == 0, f"herd train --tensorboard: exit {r.returncode}: {r.stderr[:400]}")
    files = os.listdir(tb) if os.path.isdir(tb) else []
    ok(len(files) == 1, f"one event file in {tb}: {files}")
    if files:
        m = re.fullmatch(r"events\.out\.tfevents\.(\d+)\.(.+)\.(\d+)", files[0])
        ok(m is not None and abs(int(m.group(1)) - t0) < 60 and m.group(2) == socket.gethostname(),
           f"file name events.out.tfevents.<time>.<host>.<pid>: {files[0]}")
        events = read_events(os.path.join(tb, files[0]))
        ok(events[0].get("file_version") == "brain.Event:2" and "tag" not in events[0], "first event: file_version")
        ok(all(t0 - 1 <= e["wall_time"] <= t1 + 1 for e in events), "wall times within the run")
        ok(all(a["wall_time"] <= b["wall_time"] for a, b in zip(events, events[1:])), "wall times never go back")
        logs = [json.loads(line) for line in open(js)]
        ok(len(logs) == 2, f"2 epochs logged in JSON: {len(logs)}")
        scal = {}
        for e in events[1:]:
            scal.setdefault(e["tag"], []).append((e["step"], e["value"]))
        pairs = {"train/loss": "loss", "train/accuracy": "accuracy", "val/loss": "val_loss",
                 "val/accuracy": "val_accuracy", "test/loss": "test_loss", "test/accuracy": "test_accuracy",
                 "lr": "lr", "images_per_second": "images_per_second"}
        for tag, key in pairs.items():
            got = scal.get(tag, [])
            want = [(j["epoch"], j[key]) for j in logs]
            ok([s for s, _ in got] == [s for s, _ in want], f"{tag}: steps {got} vs epochs {want}")
            # JSON prints 6 decimals (images/s: 1); events hold float32
            tol = 0.051 if key == "images_per_second" else 1e-6
            for (_, g), (_, w) in zip(got, want):
                ok(abs(g - w) <= tol + 1e-6 * abs(w), f"{tag}: event {g} vs JSON {w}")
        # 192 training samples / batch 32 = 6 steps per epoch; every 2nd step logged
        run = scal.get("train/running_loss", [])
        ok([s for s, _ in run] == [2, 4, 6, 8, 10, 12], f"train/running_loss steps: {[s for s, _ in run]}")
        for ep, j in enumerate(logs, 1):
            last = [v for s, v in run if s == 6 * ep]
            ok(last and abs(last[0] - j["loss"]) <= 1e-5, f"epoch {ep}: last running loss {last} = epoch loss {j['loss']}")
    # --tb-grad-norms, checked independently: one plain SGD step (lr 0.5, 32 samples, batch 32)
    # moves each layer's weights by lr * its gradient, so grad_norm/LAYER = |w1 - w0| / lr
    g = os.path.join(d, "g")
    os.makedirs(g)
    subset(g, 32, 32)
    w0, w1, tbg = os.path.join(d, "w0.st"), os.path.join(d, "w1.st"), os.path.join(d, "tbg")
    common = ["--data", g, "--epochs", "1", "--batch", "32", "--optimizer", "sgd", "--threads", "1", "--progress", "none"]
    r0 = subprocess.run([HERD, "train", spec, *common, "--lr", "0.01", "--save", w0], capture_output=True, text=True)
    r1 = subprocess.run([HERD, "train", spec, *common, "--lr", "0.5", "--weights", w0, "--save", w1, "--tensorboard",
                         tbg, "--tb-every", "1", "--tb-grad-norms"], capture_output=True, text=True)
    ok(r0.returncode == 0 and r1.returncode == 0, f"--tb-grad-norms runs: {r0.stderr[:200]} {r1.stderr[:200]}")
    if r1.returncode == 0:
        ev = read_events(os.path.join(tbg, os.listdir(tbg)[0]))
        norms = {e["tag"][len("grad_norm/"):]: (e["step"], e["value"]) for e in ev if e.get("tag", "").startswith("grad_norm/")}
        ok(sorted(norms) == ["conv1", "dense1", "total"], f"grad_norm tags: {sorted(norms)}")

        def tensors(path):
            b = open(path, "rb").read()
            n = struct.unpack("<Q", b[:8])[0]
            h = json.loads(b[8:8 + n])
            return {k: struct.unpack(f"<{(v['data_offsets'][1] - v['data_offsets'][0]) // 4}f",
                                     b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
                    for k, v in h.items() if k != "__metadata__"}
        a, b = tensors(w0), tensors(w1)
        total = 0.0
        for layer in ("conv1", "dense1"):
            sq = sum((y - x) ** 2 for k in a if k.startswith(layer + ".") for x, y in zip(a[k], b[k]))
            total += sq
            want = sq ** 0.5 / 0.5
            step, got = norms.get(layer, (None, float("nan")))
            ok(step == 1 and abs(got - want) <= 1e-3 * want, f"grad_norm/{layer} {got} at step {step} vs |dw|/lr {want}")
        got = norms.get("total", (0, float("nan")))[1]
        ok(abs(got - total ** 0.5 / 0.5) <= 1e-3 * got, f"grad_norm/total {got} vs {total ** 0.5 / 0.5}")
    r = subprocess.run([HERD, "train", spec, "--data", g, "--tb-grad-norms", "--tensorboard", tbg], capture_output=True,
                       text=True)
    ok(r.returncode == 2 and "--tb-grad-norms needs --tb-every" in r.stderr, f"--tb-grad-norms without --tb-every: {r.stderr!r}")
    # an unwritable directory is one error line naming it, before any training
    bad = os.path.join(d, "log.json", "tb")
    r = subprocess.run([HERD, "train", spec, "--data", d, "--epochs", "1", "--tensorboard", bad, "--progress", "none"],
                       capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    ok(r.returncode == 1 and len(lines) == 1 and bad in lines[0], f"bad --tensorboard dir: exit {r.returncode}, {r.stderr!r}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
