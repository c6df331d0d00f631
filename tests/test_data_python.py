"""NumPy writes .npy files (several dtypes, header versions and shapes) and Python's csv module
writes CSV with quoted fields; herd reads them through tests/helpers/data_dump and the counts,
shapes, labels and the sum of every value (float32 in sample order, summed in double) must
match exactly (the sample descriptors too: the stored dtype and natural dims). Fortran order and big-endian arrays must be refused with one line."""
import csv
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("SKIP: python3-numpy is not installed")
    sys.exit(77)

DUMP = os.path.join(os.environ["HERD_TEST_BIN_DIR"], "data_dump")
failed = 0


def check(cond, what):
    global failed
    if not cond:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def dump(spec, *shape):
    r = subprocess.run([DUMP, spec] + [str(s) for s in shape], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def expected(name, x, y, scale_u8):
    """What data_dump prints for features x (N, ...) and labels y: float32 values as herd makes them."""
    f = x.astype(np.float32) / np.float32(255) if scale_u8 else x.astype(np.float32)
    total = 0.0
    for v in f.reshape(-1):  # the same order and double accumulation as the helper
        total += float(v)
    lines = {
        "labels": " ".join(str(int(v)) for v in y[:20]),
        "label_sum": str(int(y.astype(np.int64).sum())),
        "sum": total,
        "first": [float(v) for v in f.reshape(len(f), -1)[0][:8]],
    }
    return {name + " " + k: v for k, v in lines.items()}


def compare(spec, exp, header, what):
    rc, out, err = dump(spec)
    check(rc == 0, f"{what}: data_dump failed: {err.strip()}")
    if rc:
        return
    got = {}
    for line in out.splitlines():
        key, _, val = line.partition("=")
        if " n" in key.split("=")[0] or key.endswith(" none"):
            got.setdefault("header", []).append(line)
        else:
            got[key] = val
    check(header in got.get("header", []), f"{what}: header {header!r} not in {got.get('header')}")
    for k, v in exp.items():
        if k.endswith(" sum"):
            check(float(got.get(k, "nan")) == v, f"{what}: {k} {got.get(k)} != {v!r}")
        elif k.endswith(" first"):
            vals = [float(t) for t in got.get(k, "").split()]
            check(np.allclose(vals, v, rtol=1e-8, atol=0), f"{what}: first values {vals} != {v}")
        else:
            check(got.get(k) == v, f"{what}: {k} {got.get(k)!r} != {v!r}")


rng = np.random.default_rng(7)
with tempfile.TemporaryDirectory() as d:
    # float32 (N,F) with int64 labels, as train_x/train_y with a test pair
    x = rng.standard_normal((50, 6)).astype(np.float32)
    y = rng.integers(0, 4, 50)
    np.save(f"{d}/train_x.npy", x)
    np.save(f"{d}/train_y.npy", y)
    np.save(f"{d}/test_x.npy", x[:7])
    np.save(f"{d}/test_y.npy", y[:7])
    exp = expected("train", x, y, False)
    exp.update(expected("test", x[:7], y[:7], False))
    compare(f"{d}/train_x.npy", exp, f"train n=50 x=f32 6 classes={int(y.max()) + 1}", "f4 (N,F)")
    compare(d, exp, f"test n=7 x=f32 6 classes={max(2, int(y[:7].max()) + 1)}", "directory of pairs")

    # uint8 images (N,H,W) scaled to [0,1], uint8 labels, header version 2.0
    xu = rng.integers(0, 256, (20, 5, 3), dtype=np.uint8)
    yu = rng.integers(0, 3, 20).astype(np.uint8)
    with open(f"{d}/u8x.npy", "wb") as f:
        np.lib.format.write_array(f, xu, version=(2, 0))
    np.save(f"{d}/u8y.npy", yu)
    compare(f"{d}/u8x.npy", expected("train", xu, yu, True), f"train n=20 x=u8 1x5x3 classes={max(2, int(yu.max()) + 1)}", "u1 (N,H,W)")

    # float64 (N,C,H,W) with int32 labels of shape (N,1); int64 and int8 features kept as values
    x8 = rng.standard_normal((9, 2, 3, 4))
    y8 = rng.integers(0, 5, (9, 1)).astype(np.int32)
    np.save(f"{d}/f8X.npy", x8)
    np.save(f"{d}/f8Y.npy", y8)
    compare(f"{d}/f8X.npy", expected("train", x8, y8.reshape(-1), False), f"train n=9 x=f32 2x3x4 classes={max(2, int(y8.max()) + 1)}", "f8 (N,C,H,W)")
    for dt in ("int64", "int8", "int32"):
        xi = rng.integers(-100, 100, (6, 3)).astype(dt)
        np.save(f"{d}/{dt}x.npy", xi)
        np.save(f"{d}/{dt}y.npy", y[:6])
        compare(f"{d}/{dt}x.npy", expected("train", xi, y[:6], False), f"train n=6 x=f32 3 classes={max(2, int(y[:6].max()) + 1)}", dt)

    # refused: Fortran order, big-endian, N mismatch
    np.save(f"{d}/fortx.npy", np.asfortranarray(rng.standard_normal((4, 3)).astype(np.float32)))
    np.save(f"{d}/forty.npy", y[:4])
    rc, out, err = dump(f"{d}/fortx.npy")
    check(rc == 1 and err.count("\n") == 1 and f"{d}/fortx.npy: fortran_order True is not supported" in err, f"fortran: {err!r}")
    np.save(f"{d}/bex.npy", x.astype(">f4"))
    np.save(f"{d}/bey.npy", y)
    rc, out, err = dump(f"{d}/bex.npy")
    check(rc == 1 and "'>f4' big-endian is not supported" in err and err.count("\n") == 1, f"big-endian: {err!r}")
    np.save(f"{d}/nx.npy", x)
    np.save(f"{d}/ny.npy", y[:10])
    rc, out, err = dump(f"{d}/nx.npy")
    check(rc == 1 and f"{d}/ny.npy: 10 labels for 50 samples" in err, f"N mismatch: {err!r}")

    # CSV from Python's csv module: quoted header names with commas, quotes and a newline
    rows = rng.standard_normal((30, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 30)
    header = ['plain', 'with, comma', 'say "hi"\nthere', 'label']
    for quoting, ending in ((csv.QUOTE_MINIMAL, "\r\n"), (csv.QUOTE_ALL, "\n"), (csv.QUOTE_NONNUMERIC, "\r\n")):
        with open(f"{d}/q.csv", "w", newline="") as f:
            w = csv.writer(f, quoting=quoting, lineterminator=ending)
            w.writerow(header)
            for r, lab in zip(rows, labels):
                w.writerow([repr(float(v)) for v in r] + [str(int(lab))])
        compare(f"{d}/q.csv", expected("train", rows, labels, False), f"train n=30 x=f32 3 classes={max(2, int(labels.max()) + 1)}", f"csv quoting {quoting}")
    with open(f"{d}/bad.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerow(["1", "2", "3", "0"])
        w.writerow(["1", "oops", "3", "0"])
    rc, out, err = dump(f"{d}/bad.csv")
    check(rc == 1 and f"{d}/bad.csv:4: column 'with, comma': 'oops' is not a finite number" in err and err.count("\n") == 1,
          f"bad csv: {err!r}")

print(f"{'FAILED' if failed else 'ok'}: {failed} failure(s)")
sys.exit(1 if failed else 0)
