"""Embedding tables against PyTorch 1.13: herd's trainer runs a few steps of models with
embedding, embedding_bag and dot (tests/helpers/embed_dump.c); PyTorch redoes the first step's
forward, loss and every gradient in float64 (the tables' row-sparse gradients scattered into
dense ones), then replays each step's update in float32 from herd's own gradients with
torch.optim.SparseAdam / Adagrad / SGD on sparse gradients (nn.Embedding(sparse=True)'s) for the
tables and Adam / SGD for the dense layers, comparing every parameter after every step."""
import importlib.util
import json
import os
import subprocess
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import spec_torch  # noqa: E402
from torch_compare import check, summary  # noqa: E402

torch.set_num_threads(1)
SRC = os.environ.get("HERD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ["HERD_TEST_BIN_DIR"]


class RowwiseAdagrad:
    """Row-wise Adagrad (FBGEMM's): one sum a row, s += mean(g^2); p -= lr g / (sqrt(s) + eps), in float32.
    PyTorch has no such optimizer: this is the formula of src/optim/optim.h written out."""
    def __init__(self, params, lr, eps=1e-10):
        self.params, self.lr, self.eps = list(params), lr, eps
        self.sums = [torch.zeros(p.shape[0]) for p in self.params]

    def step(self):
        with torch.no_grad():
            for p, s in zip(self.params, self.sums):
                g = p.grad.coalesce()
                rows, vals = g.indices()[0], g.values()
                s[rows] += (vals * vals).sum(1) / vals.shape[1]
                scale = self.lr / (torch.sqrt(s[rows]) + self.eps)
                p[rows] += -(scale.unsqueeze(1) * vals)


SPARSE = {"adam": lambda ps, lr: torch.optim.SparseAdam(ps, lr=lr),
          "rowwise_adagrad": lambda ps, lr: RowwiseAdagrad(ps, lr),
          "adagrad": lambda ps, lr: torch.optim.Adagrad(ps, lr=lr),
          "sgd": lambda ps, lr: torch.optim.SGD(ps, lr=lr)}
DENSE = {"adam": lambda ps, lr: torch.optim.Adam(ps, lr=lr), "sgd": lambda ps, lr: torch.optim.SGD(ps, lr=lr)}


def run_case(spec, optimizer, sparse_opt, batch, steps, lr=0.05, ragged=False):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "dump.safetensors")
        subprocess.run([os.path.join(BIN, "embed_dump"), spec, out, optimizer, sparse_opt, str(batch), str(steps),
                        str(lr)] + (["ragged"] if ragged else []), check=True)
        t = spec_torch.read_safetensors(out)
    tag = f"{os.path.basename(spec)}[{optimizer}+{sparse_opt},B={batch}{',ragged' if ragged else ''}]"
    step_names = spec_torch.build(spec)
    pnames = [k for k in t if not k.startswith(("s", "input.")) and k not in ("labels", "logits", "loss")]
    sparse = {k[len("s0.ids."):] for k in t if k.startswith("s0.ids.")}
    inputs = {k[len("input."):]: torch.tensor(v) for k, v in t.items() if k.startswith("input.")}
    y = torch.tensor(t["labels"], dtype=torch.int64)
    # step 0 in float64: forward, loss, every gradient
    params = {k: torch.tensor(t[k], dtype=torch.float64, requires_grad=True) for k in pnames}
    xs = {k: (v[:batch] if v.dtype == torch.int32 else v[:batch].double()) for k, v in inputs.items()}
    logits = spec_torch.forward(step_names, xs, params, {}, {})
    loss = F.cross_entropy(logits, y[:batch])
    loss.backward()
    check(tag + " logits", t["logits"], logits.detach().numpy(), 1e-5, 1e-5)
    check(tag + " loss", t["loss"], loss.item(), 1e-6, 1e-6)
    for k, p in params.items():
        want = p.grad.numpy()
        if k in sparse:  # herd's touched rows, distinct and ascending, scattered into the table's shape
            ids, vals = t["s0.ids." + k], t["s0.values." + k]
            check(f"{tag} {k} sparse ids distinct ascending", float(np.all(np.diff(ids) > 0)), 1.0, 0, 0)
            got = np.zeros_like(want)
            got[ids] = vals
            touched = np.abs(want).sum(1) > 0
            check(f"{tag} {k} rows touched", float(set(ids.tolist()) >= set(np.nonzero(touched)[0].tolist())), 1.0, 0, 0)
        else:
            got = t["s0.grad." + k]
        check(f"{tag} grad.{k}", got, want, 1e-6 * float(np.abs(want).max()) + 1e-7, 1e-5)
    # every step's update in float32 from herd's own gradients
    p32 = {k: torch.tensor(t[k], requires_grad=True) for k in pnames}
    dense_opt = DENSE[optimizer]([p for k, p in p32.items() if k not in sparse], lr)
    sparse_opt_t = SPARSE[sparse_opt]([p for k, p in p32.items() if k in sparse], lr)
    for s in range(steps):
        for k, p in p32.items():
            if k in sparse:
                ids = torch.tensor(t[f"s{s}.ids.{k}"], dtype=torch.int64).unsqueeze(0)
                p.grad = torch.sparse_coo_tensor(ids, torch.tensor(t[f"s{s}.values.{k}"]), p.shape)
            else:
                p.grad = torch.tensor(t[f"s{s}.grad.{k}"])
        dense_opt.step()
        sparse_opt_t.step()
        for k, p in p32.items():
            check(f"{tag} step {s + 1} after.{k}", t[f"s{s}.after.{k}"], p.detach().numpy(), 1e-7, 1e-6)


def write_safetensors(path, tensors):
    """Plain safetensors writer (float32 tensors), as read_safetensors reads them"""
    header, offset, blobs = {}, 0, []
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, dtype=np.float32).tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def onnx_case(spec_text, name, batch=5, tables=None, no_id=False):
    """herd's ONNX export of an id model (Gather; several inputs, dot): passes onnx.checker (full) and,
    evaluated node by node, gives the logits spec_torch computes from the exported weights. tables: each
    table layer's graph input (default: 'input'). no_id: bags with unused slots (-1, as cat=COL:L and
    NPY offsets give them; one bag all -1), and the logits also equal herd predict's on those ids."""
    tables = tables or {"emb1": "input", "bag1": "input"}
    import onnx
    from onnx import numpy_helper
    with tempfile.TemporaryDirectory() as d:
        spec = os.path.join(d, name + ".spec")
        with open(spec, "w") as f:
            f.write(spec_text)
        out = os.path.join(d, name + ".onnx")
        subprocess.run([os.path.join(os.path.dirname(BIN), "herd"), "export", spec, "--onnx", out, "--seed", "5"],
                       check=True, capture_output=True)
        m = onnx.load(out)
        try:
            onnx.checker.check_model(m, full_check=True)
            check(f"{name} onnx checker", 1.0, 1.0, 0, 0)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL {name}: onnx checker: {e}")
            check(f"{name} onnx checker", 0.0, 1.0, 0, 0)
        w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
        check(f"{name} ids are int32", float(all(i.type.tensor_type.elem_type in (onnx.TensorProto.INT32, onnx.TensorProto.FLOAT)
                                                 for i in m.graph.input)), 1.0, 0, 0)
        rows = {k.split(".")[0]: v.shape[0] for k, v in w.items() if v.ndim == 2 and k.endswith(".weight") and k.split(".")[0] in tables}
        feeds, rng = {}, np.random.default_rng(2)
        for gi in m.graph.input:  # every model input under its name (the first one is "input")
            shape = [batch] + [dd.dim_value for dd in gi.type.tensor_type.shape.dim[1:]]
            if gi.type.tensor_type.elem_type == onnx.TensorProto.INT32:
                x = rng.integers(0, min(rows[t] for t, src in tables.items() if src == gi.name and t in rows), shape).astype(np.int32)
                x[0] = 0  # an all-pad bag where the spec has pad=0
                if x.ndim == 2 and x.shape[1] > 2:
                    x[1, 1:] = 0
                if no_id:
                    x[2, 3:] = -1
                    x[3] = -1
            else:
                x = rng.standard_normal(shape).astype(np.float32)
            feeds[gi.name] = x
        env = dict(w)
        env.update(feeds)
        for n in m.graph.node:
            a = {at.name: onnx.helper.get_attribute_value(at) for at in n.attribute}
            i = [env[k] for k in n.input]
            if n.op_type == "Gather":
                y = np.take(i[0], i[1], axis=a.get("axis", 0))
            elif n.op_type == "Flatten":
                y = i[0].reshape(i[0].shape[0], -1)
            elif n.op_type == "Gemm":
                y = i[0] @ (i[1].T if a.get("transB", 0) else i[1]) + (i[2] if len(i) > 2 else 0)
            elif n.op_type == "Identity":
                y = i[0]
            elif n.op_type == "ReduceMean":
                y = i[0].mean(axis=tuple(a["axes"]), keepdims=bool(a.get("keepdims", 1)))
            elif n.op_type == "ReduceSum":  # opset 13: the axes an input
                y = i[0].sum(axis=tuple(int(k) for k in i[1]), keepdims=bool(a.get("keepdims", 1)))
            elif n.op_type in ("Mul", "Div", "Max", "Equal", "Less", "Or"):
                y = {"Mul": np.multiply, "Div": np.divide, "Max": np.maximum, "Equal": np.equal, "Less": np.less,
                     "Or": np.logical_or}[n.op_type](i[0], i[1])
            elif n.op_type == "Not":
                y = np.logical_not(i[0])
            elif n.op_type == "Cast":
                y = i[0].astype(np.float32)
            elif n.op_type == "Unsqueeze":
                y = np.expand_dims(i[0], tuple(int(a) for a in i[1]))
            elif n.op_type == "Concat":
                y = np.concatenate(i, axis=a["axis"])
            elif n.op_type == "Transpose":
                y = np.transpose(i[0], a["perm"])
            elif n.op_type == "MatMul":
                y = np.matmul(i[0], i[1])
            elif n.op_type == "Reshape":
                y = i[0].reshape([i[0].shape[k] if v == 0 else v for k, v in enumerate(i[1].tolist())])
            elif n.op_type == "Relu":
                y = np.maximum(i[0], 0)
            else:
                raise ValueError("onnx_case: " + n.op_type)
            env[n.output[0]] = y
        got = env[m.graph.output[0].name]
        P = {k: torch.tensor(v, dtype=torch.float64) for k, v in w.items()}
        names = spec_torch.build(spec)
        first = next(ln.split("name=")[1].split()[0] if "name=" in ln else "input" for ln in spec_text.splitlines()
                     if ln.startswith("input"))
        xs = {(first if k == "input" else k): torch.tensor(v) if v.dtype == np.int32 else torch.tensor(v, dtype=torch.float64)
              for k, v in feeds.items()}
        want = spec_torch.forward(names, xs, P, {}, {}, training=False)
        check(f"{name} onnx logits", got, want.numpy(), 1e-5, 1e-5)
        if no_id:  # herd predict on the same ids with the exported weights
            write_safetensors(os.path.join(d, "w.safetensors"), {k: v for k, v in w.items() if k.endswith((".weight", ".bias"))})
            np.save(os.path.join(d, "x.npy"), feeds["input"])
            np.save(os.path.join(d, "y.npy"), np.zeros(batch, np.int32))  # labels herd predict does not use
            subprocess.run([os.path.join(os.path.dirname(BIN), "herd"), "predict", spec, "--weights",
                            os.path.join(d, "w.safetensors"), "--data", os.path.join(d, "x.npy") + "?x=i32", "--output",
                            "logits", "--out", os.path.join(d, "logits.npy")], check=True, capture_output=True)
            check(f"{name} onnx logits = herd predict's (bags with -1 slots)", got, np.load(os.path.join(d, "logits.npy")),
                  1e-5, 1e-5)


def state_dict_case(bag):
    """herd's saved weights (tables whole, under their layer names) load into PyTorch modules named as the
    layers with load_state_dict(strict=True) and give herd predict's logits: nn.EmbeddingBag fed ids +
    offsets from bags of 1..6 ids read from an NPY file with -1 in the unused slots (FILEx.npy?x=i32), or
    nn.Embedding on one id a sample."""
    herd = os.path.join(os.path.dirname(BIN), "herd")
    rng = np.random.default_rng(3)
    n, L = 96, 6 if bag else 1
    with tempfile.TemporaryDirectory() as d:
        ids = rng.integers(0, 50, (n, L)).astype(np.int32)
        for i in range(n if bag else 0):
            ids[i, 1 + rng.integers(0, L):] = -1  # bag i holds its first 1..6 slots
        np.save(os.path.join(d, "y.npy"), (ids[:, 0] % 3).astype(np.int32))
        data = os.path.join(d, "x.npy") + "?x=i32"
        if bag == "offsets":  # nn.EmbeddingBag's own form: every bag's ids flat, one offset a bag
            kept = ids != -1
            np.save(os.path.join(d, "x.npy"), ids[kept].astype(np.int64))
            np.save(os.path.join(d, "off.npy"), np.concatenate([[0], kept.sum(1).cumsum()[:-1]]).astype(np.int64))
            data = os.path.join(d, "x.npy") + "?offsets=" + os.path.join(d, "off.npy")
        else:
            np.save(os.path.join(d, "x.npy"), ids)
        spec = os.path.join(d, "m.spec")
        with open(spec, "w") as f:
            f.write(f"input {L} dtype=i32\n" + ("embedding_bag 50 4 mode=mean name=tags\n" if bag else
                                                 "embedding 50 4 name=tags\n") + "dense 3 name=out\n")
        w, out = os.path.join(d, "w.safetensors"), os.path.join(d, "logits.npy")
        r = subprocess.run([herd, "train", spec, "--data", data, "--epochs", "2", "--batch", "16", "--lr", "0.05",
                            "--seed", "3", "--save", w, "--quiet"], capture_output=True, text=True)
        if r.returncode:
            print("FAIL state_dict: herd train: " + r.stderr.strip())
            check("state_dict train", 0.0, 1.0, 0, 0)
            return
        subprocess.run([herd, "predict", spec, "--weights", w, "--data", data, "--output", "logits", "--out", out],
                       check=True, capture_output=True)
        t = spec_torch.read_safetensors(w)
        got = np.load(out)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tags = torch.nn.EmbeddingBag(50, 4, mode="mean") if bag else torch.nn.Embedding(50, 4)
            self.out = torch.nn.Linear(4, 3)

        def forward(self, x):
            if not bag:
                return self.out(self.tags(x[:, 0].long()))
            kept = x != -1
            offsets = torch.cat([torch.zeros(1, dtype=torch.long), kept.sum(1).cumsum(0)[:-1]])
            return self.out(self.tags(x[kept].long(), offsets))

    m = M()
    m.load_state_dict({k: torch.tensor(v) for k, v in t.items()}, strict=True)
    what = {"offsets": "EmbeddingBag (NPY ids + offsets)", True: "EmbeddingBag (-1 slots)", False: "Embedding"}[bag]
    check(f"state_dict {what}: the table whole", float(t["tags.weight"].shape == (50, 4)), 1.0, 0, 0)
    with torch.no_grad():
        want = m(torch.tensor(ids)).numpy()
    check(f"state_dict {what}: herd predict's logits", got, want, 1e-5, 1e-5)


data = os.path.join(SRC, "tests", "data")
state_dict_case(bag=True)
state_dict_case(bag="offsets")
state_dict_case(bag=False)
if importlib.util.find_spec("onnx"):
    onnx_case("input 5 dtype=i32\nembedding 30 4 pad=0\nflatten\ndense 3\n", "seq")
    onnx_case("input 1 dtype=i32\nembedding 30 4\ndense 3\n", "one_id")
    onnx_case("input 6 dtype=i32\nembedding_bag 30 4 mode=mean pad=0\ndense 3\n", "bag_mean_pad")
    onnx_case("input 6 dtype=i32\nembedding_bag 30 4 mode=sum pad=0\ndense 3\n", "bag_sum_pad")
    onnx_case("input 6 dtype=i32\nembedding_bag 30 4 mode=mean\ndense 3\n", "bag_mean")
    onnx_case("input 6 dtype=i32\nembedding_bag 30 4 mode=sum\ndense 3\n", "bag_sum")
    for mode in ("mean", "sum"):
        onnx_case(f"input 6 dtype=i32\nembedding_bag 30 4 mode={mode} pad=0\ndense 3\n", f"bag_{mode}_pad_no_id", no_id=True)
        onnx_case(f"input 6 dtype=i32\nembedding_bag 30 4 mode={mode}\ndense 3\n", f"bag_{mode}_no_id", no_id=True)
    with open(os.path.join(SRC, "tests", "data", "mf_dot.spec")) as f:  # three inputs, MF score and DLRM pairs
        onnx_case(f.read(), "mf_dot", tables={"u": "input", "i": "item"})
else:
    print("python3-onnx missing: the ONNX export of embedding is not checked")
for sparse_opt in ("adam", "adagrad", "sgd"):
    run_case(os.path.join(data, "embedding_seq.spec"), "adam", sparse_opt, 4, 3)
run_case(os.path.join(data, "embedding_bag.spec"), "adam", "adam", 5, 3)
run_case(os.path.join(data, "embedding_bag.spec"), "sgd", "adagrad", 3, 2)
run_case(os.path.join(data, "mf_dot.spec"), "adam", "adam", 6, 3)
run_case(os.path.join(data, "mf_dot.spec"), "sgd", "sgd", 4, 2)
run_case(os.path.join(data, "embedding_bag.spec"), "adam", "rowwise_adagrad", 4, 3)
# bags of 1..L ids (cat=COL:L columns): PyTorch takes them as ids + offsets
run_case(os.path.join(data, "embedding_bag.spec"), "adam", "adam", 6, 3, ragged=True)
run_case(os.path.join(data, "embedding_bag.spec"), "sgd", "adagrad", 4, 2, ragged=True)
sys.exit(summary())
