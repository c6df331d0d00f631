"""ONNX both ways against the onnx package (1.12) and PyTorch 1.13.
Out: herd exports the example CNN and the residual/batch-norm test model with random
weights; onnx.checker and strict shape inference accept them; the initializers are exactly
the weights; the exported graph, interpreted node by node with torch (an independent
reading of ONNX semantics), herd's importer + forward, herd's own spec + forward, and
PyTorch on the spec (tests/spec_torch.py) agree on random inputs.
In: PyTorch models (Sequential CNN, one with batch norm, GELU and global pooling, a
residual block, an MLP) exported by torch.onnx.export(opset_version=13) are imported by herd
and give PyTorch's outputs; one is fine-tuned for an epoch with `herd train --model x.onnx`
on a Fashion-MNIST subset. A graph with unsupported operators fails with one line naming them.
Round trip: export -> import (--spec-out, --weights-out) -> export of that spec is byte-identical
for herd's own models, a ResNet-20, a branching graph and ceil-mode pooling included."""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnx
    import onnx.helper as oh
    import onnx.numpy_helper as onh
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print(f"skipped: {e} (install python3-onnx python3-torch python3-numpy)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(__file__))
import spec_torch  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)
SRC = os.environ.get("HERD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ["HERD_TEST_BIN_DIR"]
HERD = os.environ["HERD_BIN"]
EVAL = os.path.join(BIN, "model_eval")
passed = failed = 0
rng = np.random.default_rng(1)


def ok(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)


def close(what, got, want, atol=1e-4, rtol=1e-4):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return ok(False, f"{what}: shape {got.shape} vs {want.shape}")
    err = np.abs(got - want) - rtol * np.abs(want)
    worst = float(err.max()) if err.size else 0.0
    ok(worst <= atol, f"{what}: worst |difference| beyond tolerance {worst:.3g} (atol {atol}, rtol {rtol})")


def write_safetensors(path, tensors, meta=None):
    header, data, off = ({"__metadata__": meta} if meta else {}), b"", 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        data += a.tobytes()
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def run(*args, expect=0):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    ok(r.returncode == expect, f"{' '.join(map(str, args))}: exit {r.returncode}, expected {expect}; stderr: {r.stderr[:400]}")
    return r


def herd_forward(model, weights, x, d):
    inp, out = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
    write_safetensors(inp, {"input": x})
    r = run(EVAL, model, weights, inp, out)
    return spec_torch.read_safetensors(out)["logits"] if r.returncode == 0 else None


def onnx_by_torch(model, x):
    """Evaluates an ONNX graph node by node with torch functional ops (float64)."""
    env = {t.name: torch.tensor(onh.to_array(t), dtype=torch.float64) for t in model.graph.initializer}
    env[model.graph.input[0].name] = torch.tensor(x, dtype=torch.float64)
    for n in model.graph.node:
        a = {at.name: oh.get_attribute_value(at) for at in n.attribute}
        i = [env[k] if k else None for k in n.input]
        op = n.op_type
        if op == "Pad":
            p = i[1].long().tolist()
            y = F.pad(i[0], (p[3], p[7], p[2], p[6]))
        elif op == "Conv":
            p = a.get("pads", [0, 0, 0, 0])
            y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get("strides", [1, 1]), p[:2],
                         a.get("dilations", [1, 1]), a.get("group", 1))
        elif op == "Clip":
            y = torch.clamp(i[0], i[1].item() if len(i) > 1 and i[1] is not None else None,
                            i[2].item() if len(i) > 2 and i[2] is not None else None)
        elif op == "HardSigmoid":
            y = torch.clamp(a.get("alpha", 0.2) * i[0] + a.get("beta", 0.5), 0, 1)
        elif op == "Slice":  # one axis, as herd writes it
            st, en, ax = int(i[1][0]), int(i[2][0]), int(i[3][0])
            y = i[0].narrow(ax, st, min(en, i[0].shape[ax]) - st)
        elif op == "Reshape":
            shape = [i[0].shape[k] if v == 0 else v for k, v in enumerate(i[1].long().tolist())]
            y = i[0].reshape(shape)
        elif op == "Transpose":
            y = i[0].permute(*a["perm"])
        elif op in ("MaxPool", "AveragePool"):
            p = a.get("pads", [0, 0, 0, 0])
            k = a["kernel_shape"]
            s = a.get("strides", [1, 1])
            c = bool(a.get("ceil_mode", 0))
            y = F.max_pool2d(i[0], k, s, p[:2], ceil_mode=c) if op == "MaxPool" else \
                F.avg_pool2d(i[0], k, s, p[:2], ceil_mode=c, count_include_pad=bool(a.get("count_include_pad", 0)))
        elif op == "Concat":
            y = torch.cat(i, a["axis"])
        elif op == "GlobalAveragePool":
            y = i[0].mean(dim=(2, 3), keepdim=True)
        elif op == "Flatten":
            y = torch.flatten(i[0], a.get("axis", 1))
        elif op == "Gemm":
            w = i[1].T if a.get("transB", 0) else i[1]
            y = a.get("alpha", 1.0) * i[0] @ w + (a.get("beta", 1.0) * i[2] if len(i) > 2 else 0)
        elif op == "BatchNormalization":
            y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a.get("epsilon", 1e-5))
        else:
            y = {"Relu": lambda: F.relu(i[0]), "Sigmoid": lambda: torch.sigmoid(i[0]), "Tanh": lambda: torch.tanh(i[0]),
                 "LeakyRelu": lambda: F.leaky_relu(i[0], a.get("alpha", 0.01)), "Erf": lambda: torch.erf(i[0]),
                 "Div": lambda: i[0] / i[1], "Mul": lambda: i[0] * i[1], "Add": lambda: i[0] + i[1],
                 "Sub": lambda: i[0] - i[1],
                 "Identity": lambda: i[0], "Softmax": lambda: F.softmax(i[0], a.get("axis", -1))}[op]()
        env[n.output[0]] = y
    return env[model.graph.output[0].name].numpy()


def fashion_subset(d, ntrain, ntest):
    src = "/usr/share/datasets/fashion-mnist/"
    if not os.path.exists(src + "train-images-idx3-ubyte.gz"):
        return None
    for split, n in (("train", ntrain), ("t10k", ntest)):
        img = gzip.open(src + split + "-images-idx3-ubyte.gz").read()
        lab = gzip.open(src + split + "-labels-idx1-ubyte.gz").read()
        with open(f"{d}/{split}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + img[16:16 + n * 784])
        with open(f"{d}/{split}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + lab[8:8 + n])
    return d


# ---------------------------------------------------------------- herd → ONNX
def export_case(spec, d, norm=None):
    """norm = (means, stds): the weights carry an input normalisation (herd train --normalize)."""
    tag = os.path.basename(spec) + (" normalised" if norm else "")
    probe = os.path.join(d, "probe.onnx")
    run(HERD, "export", spec, "--onnx", probe, "--seed", "5")
    # random weights with non-trivial batch-norm statistics, named as herd's registry
    w = {}
    for t in onnx.load(probe).graph.initializer:
        if t.name.startswith("herd_") or t.data_type != onnx.TensorProto.FLOAT:  # shared constants, slice bounds
            continue
        shape = list(t.dims)
        if t.name.endswith("running_var"):
            w[t.name] = rng.uniform(0.5, 1.5, shape)
        elif t.name.endswith(".weight") and len(shape) == 1:
            w[t.name] = rng.uniform(0.5, 1.5, shape)
        else:
            fan = int(np.prod(shape[1:])) if len(shape) > 1 else 4
            w[t.name] = rng.normal(0, 1.0 / np.sqrt(fan), shape)
    wpath, opath = os.path.join(d, "w.safetensors"), os.path.join(d, tag + ".onnx")
    meta = {"input_mean": ",".join(map(repr, norm[0])), "input_std": ",".join(map(repr, norm[1]))} if norm else None
    write_safetensors(wpath, w, meta)
    run(HERD, "export", "--model", spec, "--weights", wpath, "--onnx", opath)
    m = onnx.load(opath)
    try:
        onnx.checker.check_model(m, full_check=True)
        onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
        ok(True, "")
    except Exception as e:  # noqa: BLE001
        ok(False, f"{tag}: onnx checker / shape inference: {e}")
    ok(m.ir_version == 8 and m.opset_import[0].version == 13 and m.producer_name == "herd", f"{tag}: header")
    ins, outs = m.graph.input[0], m.graph.output[0]
    ok(ins.name == "input" and ins.type.tensor_type.shape.dim[0].dim_param == "N", f"{tag}: input with batch N")
    ok(outs.name == "logits" and outs.type.tensor_type.shape.dim[0].dim_param == "N", f"{tag}: output logits [N,K]")
    ops = {n.op_type for n in m.graph.node}
    ok("Dropout" not in ops, f"{tag}: dropout left out")
    init = {t.name: onh.to_array(t) for t in m.graph.initializer}
    for k, v in w.items():
        ok(k in init and init[k].dtype == np.float32 and np.array_equal(init[k], v.astype(np.float32)),
           f"{tag}: initializer {k} holds the weights exactly")
    dims = [d_.dim_value for d_ in ins.type.tensor_type.shape.dim[1:]]
    x = rng.normal(0, 1, [3] + dims).astype(np.float32)
    via_import = herd_forward(opath, "-", x, d)
    via_spec = herd_forward(spec, wpath, x, d)
    steps = spec_torch.build(spec)
    P = {k: torch.tensor(v, dtype=torch.float64) for k, v in w.items()}
    xt = torch.tensor(x, dtype=torch.float64)
    if norm:
        shape = (1, -1) + (1,) * (xt.dim() - 2)
        xt = (xt - torch.tensor(norm[0], dtype=torch.float64).view(shape)) / torch.tensor(norm[1], dtype=torch.float64).view(shape)
    want = spec_torch.forward(steps, xt, P, {}, P, training=False).numpy()
    by_torch_onnx = onnx_by_torch(m, x)
    close(f"{tag}: exported graph (torch interpreter) vs PyTorch on the spec", by_torch_onnx, want, 1e-6, 1e-6)
    if via_import is not None and via_spec is not None:
        close(f"{tag}: herd import+forward vs herd spec+forward", via_import, via_spec, 0, 0)
        close(f"{tag}: herd import+forward vs PyTorch", via_import, want)
    # the importer gives back the same spec and registry
    sp = os.path.join(d, "back.spec")
    run(HERD, "import", opath, "--spec-out", sp, "--weights-out", os.path.join(d, "back.safetensors"))
    back = spec_torch.read_safetensors(os.path.join(d, "back.safetensors"))
    if norm:
        raw = open(os.path.join(d, "back.safetensors"), "rb").read()
        bmeta = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]]).get("__metadata__", {})
        got = [float(v) for v in bmeta.get("input_std", "nan").split(",")]
        ok(np.allclose(got, norm[1], rtol=1e-6), f"{tag}: import keeps the input normalisation ({bmeta})")
    ok(sorted(back) == sorted(w), f"{tag}: imported registry names {sorted(back)} vs {sorted(w)}")
    for k in w:
        ok(k in back and np.array_equal(back[k], w[k].astype(np.float32)), f"{tag}: imported {k}")
    # the spec written from the imported model, with its weights, exports the same bytes
    again = os.path.join(d, "again.onnx")
    run(HERD, "export", sp, "--weights", os.path.join(d, "back.safetensors"), "--onnx", again)
    ok(os.path.exists(again) and open(again, "rb").read() == open(opath, "rb").read(),
       f"{tag}: export -> import -> export is not byte-identical")


# ---------------------------------------------------------------- PyTorch → ONNX → herd
class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = self.bn(self.c1(x))
        x = F.relu(x + y)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Normalized(nn.Module):
    """torchvision-style input normalisation inside the model: exported as Sub then Div."""
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.49, 0.48, 0.45]).view(3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.24, 0.26]).view(3, 1, 1))
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.head(torch.flatten(F.relu(self.conv(x)), 1))


class ViewNet(nn.Module):
    """LeNet-style x.view(x.size(0), -1): under a dynamic batch, Shape/Gather/Unsqueeze/Concat/Reshape."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


class AddmmNet(nn.Module):
    """torch.addmm with beta and alpha: exported as one Gemm with alpha=2, beta=0.5 (folded into the weights)."""
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 20) * 0.3)
        self.b = nn.Parameter(torch.randn(4))

    def forward(self, x):
        return torch.addmm(self.b, x, self.w.t(), beta=0.5, alpha=2.0)


def torch_models():
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 6 * 6, 32), nn.ReLU(), nn.Linear(32, 10))
    bn = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.LeakyReLU(0.1),
                       nn.AvgPool2d(2), nn.Conv2d(6, 12, 1), nn.GELU(), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
                       nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.Sigmoid(), nn.Dropout(0.3),
                       nn.Linear(16, 5))
    mlp = nn.Sequential(nn.Linear(20, 30), nn.Tanh(), nn.Linear(30, 3), nn.Softmax(dim=1))
    return [("cnn", cnn, (1, 28, 28)), ("bn_gelu", bn, (3, 12, 10)), ("residual", Residual(), (3, 8, 8)),
            ("mlp", mlp, (20,)), ("normalized", Normalized(), (3, 8, 8)), ("view", ViewNet(), (1, 8, 8)),
            ("addmm", AddmmNet(), (20,))]


def import_case(name, model, shape, d):
    for mod in model.modules():  # non-trivial running statistics
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(4, *shape)
    path = os.path.join(d, name + ".onnx")
    # without dynamic axes PyTorch shares weights through Identity nodes: both forms are read
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if name != "bn_gelu" else None
    torch.onnx.export(model, x, path, opset_version=13, input_names=["x"], output_names=["y"], dynamic_axes=axes)
    with torch.no_grad():
        want = model(x).numpy()
    if name == "mlp":  # herd leaves a final softmax to the loss: compare logits
        with torch.no_grad():
            want = model[:-1](x).numpy()
    got = herd_forward(path, "-", x.numpy(), d)
    ops = sorted({n.op_type for n in onnx.load(path).graph.node})
    if name == "addmm":
        gemm = [n for n in onnx.load(path).graph.node if n.op_type == "Gemm"]
        attrs = {a.name: oh.get_attribute_value(a) for a in gemm[0].attribute} if gemm else {}
        ok(attrs.get("alpha") == 2.0 and attrs.get("beta") == 0.5, f"addmm exports a Gemm with alpha and beta: {attrs}")
    if got is not None:
        close(f"torch {name} ({', '.join(ops)}): herd import+forward vs PyTorch", got, want)
    return path


def finetune(path, d):
    os.makedirs(os.path.join(d, "fm"))
    data = fashion_subset(os.path.join(d, "fm"), 256, 128)
    if data is None:
        print("note: Fashion-MNIST not installed; fine-tuning part skipped")
        return
    save = os.path.join(d, "tuned.safetensors")
    r = run(HERD, "train", "--model", path, "--data", data, "--epochs", "1", "--batch", "32", "--lr", "0.01",
            "--progress", "none", "--save", save, "--threads", "1")
    ok("test accuracy" in r.stdout, f"train --model x.onnx prints a test accuracy: {r.stdout[-300:]}")
    ok("eval-mode export" not in r.stderr, f"a conv net without batch norm or dropout is not taken for an eval-mode "
                                           f"export: {r.stderr[-300:]}")
    r = run(HERD, "eval", path, "--weights", save, "--data", data, "--threads", "1")
    ok("accuracy" in r.stdout, f"eval x.onnx --weights tuned: {r.stdout}")
    tuned = spec_torch.read_safetensors(save)
    ok(len(tuned) == 8, f"fine-tuned registry has the 4 layers' weights and biases: {sorted(tuned)}")


def unsupported_case(d):
    g = oh.make_graph([oh.make_node("Resize", ["x", "", "s"], ["r"]), oh.make_node("LSTM", ["r", "w", "w"], ["y"]),
                       oh.make_node("Resize", ["y", "", "s"], ["z"])], "g",
                      [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 1, 4, 4])],
                      [oh.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["N", 4])])
    path = os.path.join(d, "bad.onnx")
    onnx.save(oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]), path)
    r = run(HERD, "summary", path, expect=1)
    lines = r.stderr.strip().splitlines()
    ok(len(lines) == 1 and lines[0].endswith("bad.onnx: unsupported operators: Resize (nodes 'r', 'z'), LSTM (node 'y')"),
       f"one-line error listing the operators, got {r.stderr!r}")


def refusals_case(d):
    """Two independent nodes herd refuses (a Clip to [-1, 1], a HardSigmoid with ONNX's default alpha)
    and one after a refused node: both are named in one line, by import and by herd import --check
    (one per line, nothing written); a valid file passes --check."""
    w = rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32)
    lo, hi = np.array(-1.0, np.float32), np.array(1.0, np.float32)
    g = oh.make_graph([oh.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                       oh.make_node("Clip", ["c", "lo", "hi"], ["k"], name="clip"),
                       oh.make_node("HardSigmoid", ["c"], ["h"], name="hsig"),
                       oh.make_node("Add", ["k", "h"], ["s"], name="sum"),
                       oh.make_node("GlobalAveragePool", ["s"], ["p"], name="pool"),
                       oh.make_node("Flatten", ["p"], ["y"], name="flat")], "g",
                      [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 1, 6, 6])],
                      [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])],
                      [onh.from_array(w, "w"), onh.from_array(lo, "lo"), onh.from_array(hi, "hi")])
    path = os.path.join(d, "two_bad.onnx")
    onnx.save(oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]), path)
    r = run(HERD, "summary", path, expect=1)
    lines = r.stderr.strip().splitlines()
    ok(len(lines) == 1 and "2 nodes cannot be imported" in lines[0] and "node 'clip' (Clip): min=-1 max=1" in lines[0]
       and "node 'hsig' (HardSigmoid): alpha=0.2 beta=0.5" in lines[0], f"both refusals in one line, got {r.stderr!r}")
    spec = os.path.join(d, "two_bad.spec")
    r = run(HERD, "import", path, "--check", expect=1)
    refused = [l for l in r.stdout.splitlines() if l.startswith("refused: ")]
    ok(len(refused) == 2 and "'clip'" in refused[0] and "'hsig'" in refused[1],
       f"--check prints each refused node on its own line: {r.stdout!r}")
    ok("2 nodes refused, 3 after them not checked, of 6" in r.stdout, f"--check sums up: {r.stdout!r}")
    ok(not os.path.exists(spec), "--check wrote a file")
    good = os.path.join(d, "mm.onnx")
    r = run(HERD, "import", good, "--check")
    ok("imports: 2 ONNX nodes as 1 herd layers, 28 trainable parameters" in r.stdout, f"--check of a valid file: {r.stdout!r}")


def feature_map_case(d):
    """A feature extractor (its output a (C,H,W) map, no flatten): imports, herd predict prints one
    line of C*H*W values per sample and --out writes (N, C, H, W), both equal to PyTorch's maps."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2, padding=1)).eval()
    path, data = os.path.join(d, "features.onnx"), os.path.join(d, "maps_x.npy")
    torch.onnx.export(model, torch.randn(1, 3, 8, 8), path, opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    x = torch.randn(5, 3, 8, 8)
    np.save(data, x.numpy())
    np.save(os.path.join(d, "maps_y.npy"), np.zeros(5, np.int32))  # the npy source reads labels beside the samples
    with torch.no_grad():
        want = model(x).numpy()
    r = run(HERD, "predict", path, "--data", data, "--threads", "1")
    lines = r.stdout.strip().splitlines()
    ok(len(lines) == 6 and lines[0] == "index\tvalues (2x4x4, channel by channel, row by row)",
       f"predict of a feature map: a header and one line per sample: {r.stdout[:300]!r}")
    if len(lines) == 6:
        got = np.array([[float(v) for v in l.split("\t")[1:]] for l in lines[1:]])
        close("predict prints the feature maps", got, want.reshape(5, -1), atol=1e-5)
    out = os.path.join(d, "maps.npy")
    run(HERD, "predict", path, "--data", data, "--out", out, "--output", "logits", "--threads", "1")
    if os.path.exists(out):
        close("predict --out writes (N, C, H, W) maps", np.load(out), want, atol=1e-5)


def layernorm_formula_case(d):
    """PyTorch's layer norm below opset 17 (tests/data/torch_convnext.onnx) imports as layernorm layers;
    the same formula with a mean that drops its axis (keepdims=0: the Sub then broadcasts another way)
    or another power is refused at that node, not taken for a layer norm."""
    seed = os.path.join(SRC, "tests", "data", "torch_convnext.onnx")
    r = run(HERD, "import", seed, "--spec-out", "-")
    ok(r.stdout.count("layernorm") == 3 and "permute 1,2,0" in r.stdout and "scale" in r.stdout,
       f"the ConvNeXt stage imports with its 3 layer norms: {r.stdout!r}")
    for what in ("keepdims=0", "Pow 3"):
        m = onnx.load(seed)
        if what == "keepdims=0":  # the first mean
            next(n for n in m.graph.node if n.op_type == "ReduceMean").attribute.append(oh.make_attribute("keepdims", 0))
        else:  # the exponent of the first Pow, a Constant node's value
            pw = next(n for n in m.graph.node if n.op_type == "Pow")
            c = next(n for n in m.graph.node if n.op_type == "Constant" and n.output[0] == pw.input[1])
            c.attribute[0].t.CopyFrom(onh.from_array(np.array(3.0, np.float32)))
        path = os.path.join(d, "ln_bad.onnx")
        onnx.save(m, path)
        r = run(HERD, "summary", path, expect=1)
        lines = r.stderr.strip().splitlines()
        ok(len(lines) == 1 and "(ReduceMean)" in lines[0], f"a layer norm's formula with {what}: refused in one line "
                                                            f"at the ReduceMean: {r.stderr!r}")


def matmul_case(d):
    """MatMul + Add (a dense layer as some exporters write it) with the weight stored [in, out]."""
    w = rng.normal(0, 0.3, (6, 4)).astype(np.float32)
    b = rng.normal(0, 0.3, (4,)).astype(np.float32)
    g = oh.make_graph([oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Add", ["h", "b"], ["y"])], "g",
                      [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 6])],
                      [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])],
                      [onh.from_array(w, "w"), onh.from_array(b, "b")])
    path = os.path.join(d, "mm.onnx")
    onnx.save(oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)]), path)
    x = rng.normal(0, 1, (5, 6)).astype(np.float32)
    got = herd_forward(path, "-", x, d)
    if got is not None:
        close("MatMul+Add import", got, x.astype(np.float64) @ w + b)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        for spec in (os.path.join(SRC, "examples", "fashion_cnn.spec"), os.path.join(SRC, "tests", "data", "residual_bn.spec"),
                     os.path.join(SRC, "tests", "data", "concat_graph.spec"), os.path.join(SRC, "examples", "resnet20_cifar.spec"),
                     os.path.join(SRC, "tests", "data", "ceil_pool.spec"), os.path.join(SRC, "tests", "data", "mobile.spec")):
            export_case(spec, d)
        export_case(os.path.join(SRC, "examples", "fashion_cnn.spec"), d, norm=([0.286], [0.353]))
        paths = {name: import_case(name, m, shape, d) for name, m, shape in torch_models()}
        finetune(paths["cnn"], d)
        unsupported_case(d)
        matmul_case(d)
        feature_map_case(d)
        refusals_case(d)
        layernorm_formula_case(d)

    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
