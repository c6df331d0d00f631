"""ONNX Runtime as a benchmark anchor, shared by bench/onnx_zoo and bench/inference: the npm
package onnxruntime-node installed with --ignore-scripts into a temporary directory for one run
(nothing is kept in the repository), and a node script timing InferenceSession.run on one
input of a given shape filled with 0.5 (or int32 token ids), 2 intra-op threads; profile() gives
ONNX Runtime's own time per node (session option enableProfiling)."""
import glob
import json
import os
import re
import subprocess

ORT_JS = r"""
const ort = require('onnxruntime-node');
(async () => {
  const path = process.argv[2], steps = +process.argv[3], threads = +process.argv[4];
  let args = process.argv.slice(5), vocab = 0;
  if (args[0].startsWith('ids=')) { vocab = +args[0].slice(4); args = args.slice(1); }  // int32 token ids
  const dims = args.map(Number), n = dims.reduce((a, b) => a * b, 1);
  const opts = {intraOpNumThreads: threads, interOpNumThreads: 1};
  if (process.env.ORT_PROFILE) opts.enableProfiling = true, opts.profileFilePrefix = process.env.ORT_PROFILE;
  const s = await ort.InferenceSession.create(path, opts);
  const x = vocab ? new ort.Tensor('int32', Int32Array.from({length: n}, (_, i) => (i * 7) % vocab), dims)
                  : new ort.Tensor('float32', new Float32Array(n).fill(0.5), dims);
  const feeds = {}; feeds[s.inputNames[0]] = x;
  for (let i = 0; i < 2; i++) await s.run(feeds);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) await s.run(feeds);
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (process.env.ORT_PROFILE) s.endProfiling();
  console.log(`images_per_second=${(dims[0] * steps / dt).toFixed(2)}`);
})();
"""


def install(d):
    """Installs onnxruntime-node under d; returns the timing script's path, or None (with a note)."""
    try:
        r = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--silent",
                            "onnxruntime-node"], cwd=d, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"note: npm install onnxruntime-node failed ({e}); ONNX Runtime left out")
        return None
    if r.returncode != 0:
        print(f"note: npm install onnxruntime-node failed ({r.stderr.strip()[-200:]}); ONNX Runtime left out")
        return None
    js = os.path.join(d, "ort_speed.js")
    open(js, "w").write(ORT_JS)
    version = json.load(open(os.path.join(d, "node_modules", "onnxruntime-node", "package.json")))["version"]
    print(f"onnxruntime-node {version} (npm, --ignore-scripts, in a temporary directory)", flush=True)
    return js


def speed(js, path, dims, steps, threads=2, vocab=0):
    """Images/s of ONNX Runtime on path with an input of shape dims (batch first): floats of 0.5, or
    (vocab > 0) int32 token ids below vocab, as herd exports a GPT."""
    ids = [f"ids={vocab}"] if vocab else []
    p = subprocess.run(["node", js, path, str(steps), str(threads)] + ids + [str(x) for x in dims], capture_output=True,
                       text=True, cwd=os.path.dirname(js))
    m = re.search(r"images_per_second=([0-9.]+)", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"onnxruntime on {path}: {(p.stderr or p.stdout).strip()[-300:]}")
    return float(m.group(1))


def profile(js, path, dims, steps, threads=2):
    """ONNX Runtime's mean time per run of each node, in ms, in execution order: [(node, op, ms)],
    from its profile (enableProfiling) over `steps` timed runs and the 2 warm-up runs."""
    prefix = os.path.join(os.path.dirname(js), "ort_profile")
    p = subprocess.run(["node", js, path, str(steps), str(threads)] + [str(x) for x in dims], capture_output=True,
                       text=True, cwd=os.path.dirname(js), env=dict(os.environ, ORT_PROFILE=prefix))
    files = glob.glob(prefix + "*.json")
    if p.returncode != 0 or len(files) != 1:
        raise RuntimeError(f"onnxruntime profile of {path}: {(p.stderr or p.stdout).strip()[-300:]}")
    f = files[0]
    nodes = {}
    for e in json.load(open(f)):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            t = nodes.setdefault(e["name"][:-len("_kernel_time")], [e["args"].get("op_name", "?"), 0.0, 0])
            t[1] += e["dur"] / 1000.0
            t[2] += 1
    os.remove(f)
    return [(name, op, total / n) for name, (op, total, n) in nodes.items()]
