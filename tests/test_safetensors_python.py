# safetensors interop with a plain json+numpy implementation of the format: herd's
# writer is read back in python, and a torch state_dict written in python is read by herd.
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

BIN_DIR = os.environ.get("HERD_TEST_BIN_DIR") or os.path.join(os.path.dirname(__file__), "..", "build", "tests")
TOOL = os.path.join(BIN_DIR, "st_tool")
DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8}
failures = 0
passed = 0


def check(cond, what):
    global failures, passed
    if cond:
        passed += 1
    else:
        failures += 1
        print("FAIL:", what, file=sys.stderr)


def read_safetensors(path):
    """Plain reader: 8-byte LE header length, JSON header, raw LE data."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    tensors = {}
    covered = 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, end = e["data_offsets"]
        check(b == covered, f"{name}: offsets contiguous ({b} vs {covered})")
        covered = end
        dt = np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(data[b:end], dtype=dt).reshape(e["shape"])
    check(covered == len(data), f"tensors cover the data section ({covered} of {len(data)})")
    return n, list(header.keys()), tensors, meta


def write_safetensors(path, tensors, meta):
    """Plain writer in the reference layout: metadata first, header padded to 8 bytes."""
    rev = {np.dtype(v): k for k, v in DTYPES.items()}
    header = {"__metadata__": meta} if meta else {}
    blobs, off = [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": rev[arr.dtype], "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def herd_to_python(tmp):
    path = os.path.join(tmp, "from_herd.safetensors")
    subprocess.run([TOOL, "write", path], check=True)
    n, order, t, meta = read_safetensors(path)
    check(n % 8 == 0, f"header length {n} is a multiple of 8")
    check(order == ["alpha", "beta.weight", "gamma", "delta"], f"tensor order {order}")
    check(meta == {"producer": "herd", "format": "pt"}, f"metadata {meta}")
    check(t["alpha"].dtype == np.float32 and t["alpha"].shape == (3,), "alpha shape")
    check(np.array_equal(t["alpha"], np.array([0.0, 0.5, -1.25], np.float32)), f"alpha values {t['alpha']}")
    beta = (np.arange(24, dtype=np.float32) * np.float32(0.25) - np.float32(3)).reshape(2, 3, 4)
    check(t["beta.weight"].shape == (2, 3, 4), f"beta shape {t['beta.weight'].shape}")
    check(np.array_equal(t["beta.weight"], beta), "beta values")
    check(t["gamma"].shape == () and float(t["gamma"]) == 42.5, f"gamma scalar {t['gamma']}")
    check(t["delta"].shape == (0, 5), f"delta empty {t['delta'].shape}")
    print(f"herd -> python: {len(t)} tensors compared exactly")


def python_to_herd(tmp):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10)
    )
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    path = os.path.join(tmp, "from_torch.safetensors")
    write_safetensors(path, sd, {"format": "pt", "note": "ünïcode \"quoted\""})
    out = subprocess.run([TOOL, "dump", path, "format", "note"], check=True, capture_output=True, text=True).stdout
    lines = [l.split("\t") for l in out.strip().split("\n")]
    tensors = [l for l in lines if l[0] != "meta"]
    meta = {l[1]: l[2] for l in lines if l[0] == "meta"}
    check([l[0] for l in tensors] == list(sd.keys()), f"names {[l[0] for l in tensors]} vs {list(sd.keys())}")
    for name, dtype, shape, s in tensors:
        ref = sd[name]
        got_shape = tuple(int(x) for x in shape.split(",")) if shape else ()
        check(dtype == "F32", f"{name} dtype {dtype}")
        check(got_shape == ref.shape, f"{name} shape {got_shape} vs {ref.shape}")
        want = float(ref.astype(np.float64).sum())
        check(abs(float(s) - want) <= 1e-9 + 1e-9 * abs(want), f"{name} sum {s} vs {want} (atol 1e-9 rtol 1e-9)")
    check(meta == {"format": "pt", "note": "ünïcode \"quoted\""}, f"metadata {meta}")
    print(f"python -> herd: {len(tensors)} tensors of a torch state_dict compared")

    # herd rejects the same file with bytes appended that no tensor covers.
    bad = os.path.join(tmp, "bad.safetensors")
    with open(path, "rb") as f:
        raw = f.read()
    with open(bad, "wb") as f:
        f.write(raw + b"\0\0\0\0")
    r = subprocess.run([TOOL, "dump", bad], capture_output=True, text=True)
    check(r.returncode == 1 and r.stderr.startswith("st_tool: " + bad), f"trailing bytes rejected: {r.stderr!r}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        herd_to_python(tmp)
        python_to_herd(tmp)
    print(f"{passed} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
