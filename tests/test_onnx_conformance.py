"""ONNX's own operator test cases against herd's import: the cases are generated in the test from
onnx.backend.test.case.node (Debian's python3-onnx, the code that produces ONNX's conformance data)
for every operator herd imports. Each case's extra graph inputs (weights, bounds, shapes) become
initializers, as exporters write them; an output that is not one vector per sample gets a Flatten
(herd models end in one, and the values are compared in that order). Each case must either give
ONNX's expected output (within 1e-5 absolute + 1e-4 relative) or be refused with one line naming
the file (and, for a node herd cannot translate, the node); a case accepted with another value, a
crash or an unclear refusal fails the test. Prints the pass/refuse counts per operator."""
import collections
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import warnings
    with warnings.catch_warnings():  # onnx 1.12's case generators use the aliases NumPy 1.24 removed
        warnings.simplefilter("ignore")
        for alias, t in (("float", float), ("int", int), ("bool", bool), ("object", object)):
            if not hasattr(np, alias):
                setattr(np, alias, t)
    import onnx
    import onnx.backend.test.case.node as node_cases
    from onnx import helper as oh
    from onnx import numpy_helper as onh
except ImportError as e:
    print(f"skipped: {e} (install python3-onnx python3-numpy)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(__file__))
import spec_torch  # noqa: E402

BIN = os.environ["HERD_TEST_BIN_DIR"]
EVAL = os.path.join(BIN, "model_eval")
# every operator a layer kind or a pattern of the importer takes
OPS = ["Conv", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "MaxPool", "AveragePool",
       "GlobalAveragePool", "Gemm", "MatMul", "Flatten", "Dropout", "BatchNormalization", "Add", "Sub", "Mul", "Div",
       "Concat", "Softmax", "LayerNormalization", "Identity", "Pad", "Reshape", "Shape", "Gather", "Unsqueeze",
       "Slice", "Transpose", "Cast", "ReduceMean", "Erf", "Constant"]


def write_input(path, x):
    import json
    import struct
    header = {"input": {"dtype": "F32", "shape": list(x.shape), "data_offsets": [0, x.nbytes]}}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + x.astype("<f4").tobytes())


def herd_case(case, inputs, outputs, d):
    """('pass' | 'refused' | 'graph' | 'FAIL', detail)"""
    g = case.model.graph
    node = g.node[0]
    names = [i.name for i in g.input]
    if not names or len(inputs) != len(names):
        return "graph", "no data input"
    first = np.asarray(inputs[0])
    inits = [onh.from_array(np.asarray(v), n) for n, v in zip(names[1:], inputs[1:])]
    graph_in = [g.input[0]]
    nodes = list(g.node)
    outs = list(g.output)
    want = np.asarray(outputs[0]) if outputs else None
    if want is not None and want.ndim > 2 and len(outs) == 1:  # one vector per sample, in C, H, W order
        nodes.append(oh.make_node("Flatten", [outs[0].name], ["herd_flat"], name="herd_flatten", axis=1))
        outs = [oh.make_tensor_value_info("herd_flat", outs[0].type.tensor_type.elem_type, None)]
    model = oh.make_model(oh.make_graph(nodes, "case", graph_in, outs, inits), opset_imports=case.model.opset_import)
    path = os.path.join(d, "case.onnx")
    onnx.save(model, path)
    inp, out = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
    if first.dtype != np.float32:
        first = first.astype(np.float32)  # herd refuses the non-float input itself
    write_input(inp, first.reshape(first.shape if first.ndim else (1,)))
    r = subprocess.run([EVAL, path, "-", inp, out], capture_output=True, text=True, timeout=60)
    if r.returncode not in (0, 1):
        return "FAIL", f"exit {r.returncode}: {r.stderr[-300:]}"
    if r.returncode == 1:
        msg = r.stderr.strip()
        lines = msg.splitlines()
        if len(lines) != 1 or path not in lines[0]:
            return "FAIL", f"refusal not one line naming the file: {msg[-300:]}"
        return ("refused" if "node " in lines[0] else "graph"), lines[0].split(path + ": ", 1)[-1]
    got = spec_torch.read_safetensors(out)["logits"].astype(np.float64)
    want = want.astype(np.float64).reshape(got.shape[0], -1) if want is not None and want.size == got.size else None
    if want is None:
        return "FAIL", f"accepted, but the output has {got.size} values where ONNX's has {np.asarray(outputs[0]).size}"
    err = np.abs(got - want)
    bad = err > 1e-5 + 1e-4 * np.abs(want)
    if bad.any():
        return "FAIL", f"accepted, but computes another value: max |difference| {err.max():.3g}"
    return "pass", ""


def main():
    counts = collections.defaultdict(collections.Counter)
    failures, examples = [], {}
    with tempfile.TemporaryDirectory() as d:
        seen = set()
        for case in node_cases.collect_testcases(""):  # "": every operator's cases (imports the generators once)
            g = case.model.graph
            op = g.node[0].op_type if len(g.node) == 1 else None
            if op in OPS and case.name not in seen:
                seen.add(case.name)
                for inputs, outputs in case.data_sets:
                    verdict, detail = herd_case(case, inputs, outputs, d)
                    counts[op][verdict] += 1
                    if verdict == "FAIL":
                        failures.append(f"{case.name}: {detail}")
                    elif verdict != "pass":
                        examples.setdefault((op, verdict), f"{case.name}: {detail}")
    total = collections.Counter()
    print(f"{'operator':20} {'cases':>5} {'pass':>5} {'node refused':>13} {'graph refused':>14} {'FAIL':>5}")
    for op in OPS:
        c = counts[op]
        total.update(c)
        print(f"{op:20} {sum(c.values()):5} {c['pass']:5} {c['refused']:13} {c['graph']:14} {c['FAIL']:5}")
    print(f"{'all':20} {sum(total.values()):5} {total['pass']:5} {total['refused']:13} {total['graph']:14} "
          f"{total['FAIL']:5}")
    for (op, verdict), text in sorted(examples.items()):
        print(f"  e.g. {verdict:8} {text[:200]}")
    for f in failures:
        print("FAIL", f)
    print(f"{total['pass'] + total['refused'] + total['graph']} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
