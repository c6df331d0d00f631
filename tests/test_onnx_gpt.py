"""ONNX export and import of a GPT (tests/data/gpt_small.spec: 2 blocks, causal attention, tanh GELU,
head tied to the token embedding; tests/data/gpt_variant.spec: exact GELU, attention over every
position, an untied head with a bias, another layer-norm eps), with random weights of a useful size
written to safetensors:
- the export passes onnx.checker (full_check) and has the form README describes: opset 17, int32
  ids [N, T] in, float logits [N, T, V] out, the tied table one initializer that the Gather and the
  head's Transpose both read;
- herd predict of the .onnx (cpu and ref backends) equals herd predict of the spec with the same
  weights bit for bit, and PyTorch in float64 (tests/spec_torch.py, weights read from the ONNX
  initializers) within 1e-5 of the largest logit; ONNX Runtime too when its Python module is there;
- herd import gives back the spec and bit-identical weights, and export -> import -> export is
  byte-identical;
- variants of the subgraphs herd does not import (a mask that is not causal, a softmax over another
  axis, a transposed head of the wrong perm) are refused with one line naming the node;
- tests/data/gpt_block.spec (a float input reshaped to positions) passes the checker and round-trips."""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import spec_torch  # noqa: E402
from torch_compare import check, summary  # noqa: E402

try:
    import onnx
    from onnx import numpy_helper
except ImportError:
    print("python3-onnx missing: the GPT's ONNX export is not checked")
    sys.exit(77)

torch.set_num_threads(1)
SRC = os.environ.get("HERD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
HERD = os.environ["HERD_BIN"]


def herd(*args, ok=True):
    r = subprocess.run([HERD] + list(args), capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise RuntimeError(f"herd {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return r


def write_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, dtype="<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def random_weights(onnx_path, seed):
    """every registry tensor of the export, redrawn: layer-norm gains near 1, the rest N(0, 0.3^2)"""
    r = np.random.RandomState(seed)
    m = onnx.load(onnx_path)
    out = {}
    for t in m.graph.initializer:
        if t.name.startswith("herd_"):
            continue  # the export's own constants (shapes, scale, mask, GELU's numbers)
        a = numpy_helper.to_array(t)
        w = r.normal(0, 0.3, a.shape)
        if t.name.endswith(".weight") and a.ndim == 1:
            w += 1.0
        out[t.name] = w.astype(np.float32)
    return out


def predict(model, ids_path, out, *extra):
    herd("predict", model, "--data", ids_path + "?x=i32", "--output", "logits", "--out", out, "--threads", "1", *extra)
    return np.load(out)


def one_line_refusal(tag, path, node, d):
    r = herd("import", path, "--spec-out", os.path.join(d, "refused.spec"), ok=False)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    good = r.returncode == 1 and len(lines) == 1 and f"'{node}'" in lines[0] and path in lines[0]
    if not good:
        print(f"FAIL {tag}: exit {r.returncode}, stderr {r.stderr!r} (want one line naming '{node}')")
    else:
        print(f"{tag}: {lines[0]}")
    check(tag, float(good), 1.0, 0, 0)


def case(spec_name, table, posemb, tied, seed):
    spec = os.path.join(SRC, "tests", "data", spec_name)
    with tempfile.TemporaryDirectory() as d:
        p = lambda name: os.path.join(d, name)  # noqa: E731
        herd("export", spec, "--seed", "1", "--onnx", p("init.onnx"))
        W = random_weights(p("init.onnx"), seed)
        write_safetensors(p("w.safetensors"), W)
        herd("export", spec, "--weights", p("w.safetensors"), "--onnx", p("gpt.onnx"))
        m = onnx.load(p("gpt.onnx"))
        tag = spec_name
        try:
            onnx.checker.check_model(m, full_check=True)
            check(f"{tag} onnx.checker full_check", 1.0, 1.0, 0, 0)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL {tag}: onnx checker: {e}")
            check(f"{tag} onnx.checker full_check", 0.0, 1.0, 0, 0)
        g = m.graph
        dims = lambda vi: [x.dim_param or x.dim_value for x in vi.type.tensor_type.shape.dim]  # noqa: E731
        T, V = W[posemb + ".weight"].shape[0], W[table + ".weight"].shape[0]
        check(f"{tag} opset 17", float(m.opset_import[0].version), 17.0, 0, 0)
        check(f"{tag} ids int32 [N, T]", float(g.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT32 and
                                               dims(g.input[0]) == ["N", T]), 1.0, 0, 0)
        check(f"{tag} logits [N, T, V]", float(dims(g.output[0]) == ["N", T, V]), 1.0, 0, 0)
        names = [t.name for t in g.initializer]
        check(f"{tag} every initializer once", float(len(names) == len(set(names))), 1.0, 0, 0)
        if tied:
            readers = sorted(n.op_type for n in g.node if table + ".weight" in n.input)
            check(f"{tag} tied table read by Gather and Transpose", float(readers == ["Gather", "Transpose"]), 1.0, 0, 0)
        ops = sorted({n.op_type for n in g.node})
        print(f"{tag}: {len(g.node)} nodes, ops {' '.join(ops)}")

        # logits: herd on the .onnx, herd on the spec, PyTorch float64 on the ONNX initializers
        ids = np.random.RandomState(seed).randint(0, V, size=(4, T)).astype(np.int32)
        np.save(p("t_x.npy"), ids)
        np.save(p("t_y.npy"), np.roll(ids, -1, axis=1))
        got = predict(p("gpt.onnx"), p("t_x.npy"), p("o.npy"))
        got_ref = predict(p("gpt.onnx"), p("t_x.npy"), p("o_ref.npy"), "--backend", "ref")
        spec_logits = predict(spec, p("t_x.npy"), p("s.npy"), "--weights", p("w.safetensors"))
        check(f"{tag} herd predict .onnx == spec + weights (cpu, exact)", got, spec_logits, 0, 0)
        P = {t.name: torch.tensor(numpy_helper.to_array(t), dtype=torch.float64) for t in g.initializer}
        want = spec_torch.forward(spec_torch.build(spec), {"idx": torch.tensor(ids)}, P, {}, {},
                                  training=False).detach().numpy()
        scale = float(np.abs(want).max())
        print(f"{tag}: herd .onnx vs PyTorch float64: max difference {np.abs(got - want).max():.3g} "
              f"(cpu), {np.abs(got_ref - want).max():.3g} (ref); largest logit {scale:.3g}")
        check(f"{tag} herd .onnx (cpu) vs PyTorch float64 (max |logit| {scale:.3g})", got, want, 1e-5 * scale, 0)
        check(f"{tag} herd .onnx (ref) vs PyTorch float64", got_ref, want, 1e-5 * scale, 0)
        # int64 ids, as PyTorch exports nn.Embedding's input: the same model
        v = onnx.load(p("gpt.onnx"))
        v.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT64
        onnx.save(v, p("ids64.onnx"))
        check(f"{tag} int64 ids: the same logits", predict(p("ids64.onnx"), p("t_x.npy"), p("o64.npy")), got, 0, 0)
        try:
            import onnxruntime as ort  # not a Debian package: checked where it is installed
            s = ort.InferenceSession(p("gpt.onnx"), providers=["CPUExecutionProvider"])
            check(f"{tag} ONNX Runtime vs PyTorch float64", s.run(None, {"input": ids})[0], want, 1e-5 * scale, 0)
        except ImportError:
            print(f"{tag}: onnxruntime not installed: ONNX Runtime not run (bench/gpt_onnx runs it from npm)")

        # import: the spec and the weights back; export -> import -> export byte-identical
        herd("import", p("gpt.onnx"), "--spec-out", p("r.spec"), "--weights-out", p("r.safetensors"))
        back = spec_torch.read_safetensors(p("r.safetensors"))
        same = sorted(back) == sorted(W) and all(np.array_equal(back[k], W[k]) for k in W)
        check(f"{tag} imported weights bit-identical", float(same), 1.0, 0, 0)
        herd("export", p("r.spec"), "--weights", p("r.safetensors"), "--onnx", p("again.onnx"))
        herd("export", p("gpt.onnx"), "--onnx", p("again2.onnx"))
        b = [open(p(f), "rb").read() for f in ("gpt.onnx", "again.onnx", "again2.onnx")]
        check(f"{tag} export -> import -> export byte-identical", float(b[0] == b[1] == b[2]), 1.0, 0, 0)

        # variants herd does not import: one line naming the node that differs
        attn = [n for n in g.node if n.op_type == "Softmax"][0]
        prefix = attn.name[: -len("_probs")]
        if tied:
            v = onnx.load(p("gpt.onnx"))
            mask = [t for t in v.graph.initializer if t.name.startswith("herd_causal_mask")][0]
            a = numpy_helper.to_array(mask).copy()
            a[0, 1] = 0.0  # position 0 sees position 1: not causal
            mask.CopyFrom(numpy_helper.from_array(a, mask.name))
            onnx.save(v, p("bad_mask.onnx"))
            one_line_refusal(f"{tag} a mask that is not causal", p("bad_mask.onnx"), prefix + "_masked", d)
            v = onnx.load(p("gpt.onnx"))
            for n in v.graph.node:
                if n.op_type == "Transpose" and n.name == "lm_head_wT":
                    n.attribute[0].ints[:] = [0, 1]
            onnx.save(v, p("bad_head.onnx"))
            one_line_refusal(f"{tag} a head Transpose of perm 0,1", p("bad_head.onnx"), "lm_head_wT", d)
        v = onnx.load(p("gpt.onnx"))
        for n in v.graph.node:
            if n.name == attn.name:
                n.attribute[0].i = 2
        onnx.save(v, p("bad_softmax.onnx"))
        one_line_refusal(f"{tag} a softmax over the queries", p("bad_softmax.onnx"), attn.name, d)


# a GPT block on a float input reshaped to positions (tests/data/gpt_block.spec): checker, round trip
with tempfile.TemporaryDirectory() as d:
    block = os.path.join(SRC, "tests", "data", "gpt_block.spec")
    herd("export", block, "--seed", "2", "--onnx", os.path.join(d, "b.onnx"))
    onnx.checker.check_model(onnx.load(os.path.join(d, "b.onnx")), full_check=True)
    herd("export", os.path.join(d, "b.onnx"), "--onnx", os.path.join(d, "b2.onnx"))
    same = open(os.path.join(d, "b.onnx"), "rb").read() == open(os.path.join(d, "b2.onnx"), "rb").read()
    check("gpt_block.spec export -> import -> export byte-identical", float(same), 1.0, 0, 0)

case("gpt_small.spec", "wte", "wpe", True, 7)
case("gpt_variant.spec", "tok", "pos", False, 8)
sys.exit(summary())
