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


ACTS = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "relu6", "hardsigmoid", "hardswish", "silu"}


def build(path):
    """Returns a list of (name, input names, fn(xs, params, masks, outs, training)) steps following herd's
    naming: a line reads the line before it, `from=A,B` names its inputs, `add NAME` adds NAME to the line
    before, `add A,B` and `concat A,B` join the layers named."""
    steps = []
    names = set()
    inputs = []

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
        if kw == "input":
            name = o.get("name", "input" if not inputs else new_name("input"))
            names.add(name)
            inputs.append(name)
            continue
        if kw in ("train", "loss"):
            continue
        tip = steps[-1][0] if steps else inputs[-1]
        src = [tip]
        if "from" in o:
            src = o["from"].split(",")
        elif kw in ("add", "concat", "mul", "dot"):
            src = pos[0].split(",")
            if len(src) == 1 and kw != "dot":
                src = [tip] + src
        prefix = {"batchnorm": "bn", "layernorm": "ln", "embedding": "emb", "embedding_bag": "bag"}.get(kw, kw)
        if "name" in o and not act:  # the line's name goes to its last step: this one
            name = o["name"]
            names.add(name)
        else:
            name = new_name(prefix)
        one = None  # a function of the single input x
        if kw == "conv":
            k = pair(pos[1])
            s = pair(o.get("stride", "1"))
            pad = o.get("pad", "0")
            g = int(o.get("groups", "1"))
            dl = pair(o.get("dilation", "1"))
            p = (dl[0] * (k[0] // 2), dl[1] * (k[1] // 2)) if pad == "same" else (0, 0) if pad == "valid" else pair(pad)
            # a vector (N, C) is read as (N, C, 1, 1), as herd does
            one = (lambda x, P, n=name, s=s, p=p, g=g, dl=dl, **_:
                   F.conv2d(x if x.dim() == 4 else x[:, :, None, None], P[n + ".weight"], P.get(n + ".bias"), s, p,
                            dl, g))
        elif kw in ("maxpool", "avgpool"):
            k = pair(pos[0])
            s = pair(o["stride"]) if "stride" in o else k
            p = pair(o.get("pad", "0"))
            fn = F.max_pool2d if kw == "maxpool" else F.avg_pool2d
            c = o.get("ceil", "0") == "1"
            one = lambda x, P, fn=fn, k=k, s=s, p=p, c=c, **_: fn(x, k, s, p, ceil_mode=c)
        elif kw == "slice":  # channels (features) [start, end)
            a, e = (int(pos[0]), int(pos[1])) if len(pos) >= 2 else (int(o["start"]), int(o["end"]))
            one = lambda x, P, a=a, e=e, **_: x[:, a:e]
        elif kw == "shuffle":
            g = int(pos[0]) if pos else int(o["groups"])
            one = (lambda x, P, g=g, **_:
                   x.view(x.shape[0], g, x.shape[1] // g, *x.shape[2:]).transpose(1, 2).reshape(x.shape))
        elif kw == "gap":
            one = lambda x, P, **_: x.mean(dim=(2, 3))
        elif kw == "flatten":
            one = lambda x, P, **_: torch.flatten(x, 1)
        elif kw == "dense":
            # a (N, C, 1, 1) map is a vector to herd; tie=NAME reads NAME's table as the weight; positions=1:
            # per position of channels-last (N, H, W, C)
            one = lambda x, P, n=name, w=o.get("tie", name), cl=o.get("positions") == "1", **_: F.linear(
                x.flatten(1) if x.dim() == 4 and not cl else x, P[w + ".weight"], P.get(n + ".bias"))
        elif kw == "permute":  # the sample's axes; a vector (N, F) as (N, F, 1, 1)
            axes = [int(a) for a in pos[0].split(",")]
            one = (lambda x, P, axes=axes, **_:
                   (x[:, :, None, None] if x.dim() == 2 and len(axes) == 3 else x).permute(0, *[a + 1 for a in axes]))
        elif kw == "scale":  # weight (C, 1, 1) over (N, C, H, W), (F) over (N, F)
            one = lambda x, P, n=name, **_: x * P[n + ".weight"]
        elif kw == "dropout":
            one = (lambda x, P, n=name, masks=None, training=True, **_:
                   x * masks["mask." + n].reshape(x.shape) if training else x)
        elif kw == "batchnorm":
            eps = float(o.get("eps", "1e-5"))
            mom = float(o.get("momentum", "0.1"))

            def bn(x, P, n=name, eps=eps, mom=mom, buffers=None, training=True, **_):
                rm, rv = buffers[n + ".running_mean"], buffers[n + ".running_var"]
                return F.batch_norm(x, rm, rv, P[n + ".weight"], P[n + ".bias"], training, mom, eps)
            one = bn
        elif kw == "layernorm":
            eps = float(o.get("eps", "1e-5"))
            one = (lambda x, P, n=name, eps=eps, **_:
                   F.layer_norm(x, (x.shape[-1],), P[n + ".weight"], P[n + ".bias"], eps))
        elif kw in ACTS:
            alpha = float(pos[0]) if pos else float(o.get("alpha", "0.01"))
            one = act_fn(kw, alpha)
        elif kw == "reshape":
            dims = [int(v) for v in pos[0].split("x")]
            one = lambda x, P, dims=dims, **_: x.reshape(x.shape[0], *dims)
        elif kw == "posemb":
            one = lambda x, P, n=name, **_: x + P[n + ".weight"]
        elif kw == "attention":
            one = lambda x, P, h=int(pos[0]), c=o.get("causal", "0") == "1", **_: attention(x, h, c)
        elif kw == "softmax":
            one = lambda x, P, **_: F.softmax(x, dim=1)
        elif kw == "embedding":
            pad = int(o["pad"]) if "pad" in o else None

            def emb(x, P, n=name, pad=pad, **_):
                y = F.embedding(x.long(), P[n + ".weight"], padding_idx=pad)
                return y[:, 0] if x.shape[1] == 1 else y  # one id: a (D) vector, as herd gives
            one = emb
        elif kw == "embedding_bag":
            pad = int(o["pad"]) if "pad" in o else None
            mode = o.get("mode", "mean")

            def bag(x, P, n=name, pad=pad, mode=mode, **_):
                # as nn.EmbeddingBag(ids, offsets): the ids of each bag but its unused slots (-1), flat
                kept = x != -1
                offsets = torch.cat([torch.zeros(1, dtype=torch.long), kept.sum(1).cumsum(0)[:-1]])
                return F.embedding_bag(x[kept].long(), P[n + ".weight"], offsets, mode=mode, padding_idx=pad)
            one = bag
        elif kw == "dot":

            def dot(xs, P, **_):
                z = torch.cat([x.unsqueeze(1) if x.dim() == 2 else x for x in xs], dim=1)  # (B, V, D)
                zz = torch.bmm(z, z.transpose(1, 2))
                i, j = torch.triu_indices(z.shape[1], z.shape[1], offset=1)
                return zz[:, i, j]  # pairs i < j in row order, as herd's dot
            steps.append((name, src, dot))
        elif kw == "add":
            steps.append((name, src, lambda xs, P, **_: sum(xs[1:], xs[0])))
        elif kw == "concat":
            steps.append((name, src, lambda xs, P, **_: torch.cat(xs, dim=1)))
        elif kw == "mul":  # a per-channel gate (N, C) or (N, C, 1, 1) times an image, or one shape
            steps.append((name, src, lambda xs, P, **_: gate_mul(xs[0], xs[1])))
        else:
            raise ValueError("spec_torch: unsupported layer " + kw)
        if one is not None:
            steps.append((name, src, lambda xs, P, one=one, **kw_: one(xs[0], P, **kw_)))
        if act:
            aname = o["name"] if "name" in o else new_name(act)
            names.add(aname)
            f = act_fn(act, float(o.get("alpha", "0.01")))
            steps.append((aname, [name], lambda xs, P, f=f, **kw_: f(xs[0], P, **kw_)))
    return steps


def attention(x, heads, causal):
    """x (B, T, 3C): queries, keys, values; softmax(q k^T / sqrt(hs)) v per head, causal mask."""
    B, T, C3 = x.shape
    C = C3 // 3
    q, k, v = (t.reshape(B, T, heads, C // heads).transpose(1, 2) for t in x.split(C, dim=-1))
    s = q @ k.transpose(-2, -1) / (C // heads) ** 0.5
    if causal:
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)

def gate_mul(a, b):
    if a.dim() == 2 and b.dim() == 4:
        a = a[:, :, None, None]
    if b.dim() == 2 and a.dim() == 4:
        b = b[:, :, None, None]
    return a * b


def act_fn(kind, alpha):
    return {
        "relu": lambda x, P, **_: F.relu(x),
        "leaky_relu": lambda x, P, a=alpha, **_: F.leaky_relu(x, a),
        "sigmoid": lambda x, P, **_: torch.sigmoid(x),
        "tanh": lambda x, P, **_: torch.tanh(x),
        "gelu": lambda x, P, **_: F.gelu(x),
        "gelu_tanh": lambda x, P, **_: F.gelu(x, approximate="tanh"),
        "relu6": lambda x, P, **_: F.relu6(x),
        "hardsigmoid": lambda x, P, **_: F.hardsigmoid(x),
        "hardswish": lambda x, P, **_: F.hardswish(x),
        "silu": lambda x, P, **_: F.silu(x),
    }[kind]


def forward(steps, x, params, masks, buffers, training=True):
    """training=False: inference (batch norm on running statistics, dropout as identity). x is the
    first input (a dict of input name -> tensor for several)."""
    outs = dict(x) if isinstance(x, dict) else {"input": x}
    for name, src, fn in steps:
        y = fn([outs[s] for s in src], params, masks=masks, outs=outs, buffers=buffers, training=training)
        outs[name] = y
    return y
