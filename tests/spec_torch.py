"""An independent reading of herd model specs into PyTorch functional code, used by the
tests that compare herd with PyTorch. It supports the subset of the syntax the test specs use."""
import json
import struct

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "I32": np.int32, "I64": np.int64, "U8": np.uint8, "F64": np.float64}


def read_safetensors(path):
    """Plain safetensors reader: 8-byte LE header size, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).copy()
    return out


def parse_spec(path):
    layers = []
    for line in open(path):
        line = line.split("#")[0].split()
        if line:
            layers.append(line)
    return layers


def opts(words):
    return {k: v for k, v in (w.split("=", 1) for w in words if "=" in w)}


def pair(s):
    a = s.split("x")
    return (int(a[0]), int(a[-1]))


ACTS = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu"}


def build(path):
    """Returns a list of (name, fn(x, params, masks, outs, training)) steps following herd's naming."""
    steps = []
    counters = {}
    names = set()

    def new_name(prefix):
        k = 1
        while f"{prefix}{k}" in names:
            k += 1
        names.add(f"{prefix}{k}")
        return f"{prefix}{k}"

    for words in parse_spec(path):
        kw, o = words[0], opts(words[1:])
        pos = [w for w in words[1:] if "=" not in w and w not in ACTS]
        act = next((w for w in words[1:] if w in ACTS and "=" not in w), None) if kw not in ACTS else None
        if kw in ("input", "train", "loss"):
            continue
        prefix = {"batchnorm": "bn"}.get(kw, kw)
        if "name" in o and not act:  # the line's name goes to its last step: this one
            name = o["name"]
            names.add(name)
        else:
            name = new_name(prefix)
        if kw == "conv":
            k = pair(pos[1])
            s = pair(o.get("stride", "1"))
            pad = o.get("pad", "0")
            p = (k[0] // 2, k[1] // 2) if pad == "same" else (0, 0) if pad == "valid" else pair(pad)
            steps.append((name, lambda x, P, n=name, s=s, p=p, **_: F.conv2d(x, P[n + ".weight"], P.get(n + ".bias"), s, p)))
        elif kw in ("maxpool", "avgpool"):
            k = pair(pos[0])
            s = pair(o["stride"]) if "stride" in o else k
            p = pair(o.get("pad", "0"))
            fn = F.max_pool2d if kw == "maxpool" else F.avg_pool2d
            steps.append((name, lambda x, P, fn=fn, k=k, s=s, p=p, **_: fn(x, k, s, p)))
        elif kw == "gap":
            steps.append((name, lambda x, P, **_: x.mean(dim=(2, 3))))
        elif kw == "flatten":
            steps.append((name, lambda x, P, **_: torch.flatten(x, 1)))
        elif kw == "dense":
            steps.append((name, lambda x, P, n=name, **_: F.linear(x, P[n + ".weight"], P.get(n + ".bias"))))
        elif kw == "dropout":
            steps.append((name, lambda x, P, n=name, masks=None, training=True, **_:
                          x * masks["mask." + n].reshape(x.shape) if training else x))
        elif kw == "batchnorm":
            eps = float(o.get("eps", "1e-5"))
            mom = float(o.get("momentum", "0.1"))

            def bn(x, P, n=name, eps=eps, mom=mom, buffers=None, training=True, **_):
                rm, rv = buffers[n + ".running_mean"], buffers[n + ".running_var"]
                return F.batch_norm(x, rm, rv, P[n + ".weight"], P[n + ".bias"], training, mom, eps)
            steps.append((name, bn))
        elif kw in ACTS:
            act = None
            alpha = float(pos[0]) if pos else float(o.get("alpha", "0.01"))
            steps.append((name, act_fn(kw, alpha)))
        elif kw == "softmax":
            steps.append((name, lambda x, P, **_: F.softmax(x, dim=1)))
        elif kw == "add":
            steps.append((name, lambda x, P, src=pos[0], outs=None, **_: x + outs[src]))
        else:
            raise ValueError("spec_torch: unsupported layer " + kw)
        if act:
            aname = o["name"] if "name" in o else new_name(act)
            names.add(aname)
            steps.append((aname, act_fn(act, float(o.get("alpha", "0.01")))))
    return steps


def act_fn(kind, alpha):
    return {
        "relu": lambda x, P, **_: F.relu(x),
        "leaky_relu": lambda x, P, a=alpha, **_: F.leaky_relu(x, a),
        "sigmoid": lambda x, P, **_: torch.sigmoid(x),
        "tanh": lambda x, P, **_: torch.tanh(x),
        "gelu": lambda x, P, **_: F.gelu(x),
    }[kind]


def forward(steps, x, params, masks, buffers, training=True):
    """training=False: inference (batch norm on running statistics, dropout as identity)."""
    outs = {}
    for name, fn in steps:
        x = fn(x, params, masks=masks, outs=outs, buffers=buffers, training=training)
        outs[name] = x
    return x
