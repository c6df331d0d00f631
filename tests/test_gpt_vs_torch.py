"""A small GPT-2 (tests/data/gpt_small.spec: token and position embeddings, 2 blocks of causal
multi-head attention and a tanh-GELU MLP, output projection tied to the token embedding) against
the same model written in PyTorch 1.13 as nanoGPT writes it (bench/torch_gpt.py) (lm_head.weight = wte.weight, one
tensor): every layer's output, the loss and every parameter gradient (the tied table's: both uses
summed) within 1e-5 of the tensor's largest value, and the losses of 10 AdamW steps (weight decay
on matrices only) within 1e-4, on the reference and the cpu backend (herd in float32, PyTorch in
float64)."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import spec_torch  # noqa: E402
from torch_gpt import GPT, herd_to_torch, load_herd_weights  # noqa: E402  (the model bench/gpt times PyTorch with)
from torch_compare import check, summary  # noqa: E402

torch.set_num_threads(1)
SRC = os.environ.get("HERD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ["HERD_TEST_BIN_DIR"]
SPEC = os.path.join(SRC, "tests", "data", "gpt_small.spec")
STEPS = 10


def run(backend, B):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "gpt.safetensors")
        subprocess.run([os.path.join(BIN, "gpt_dump"), SPEC, out, backend, str(B), str(STEPS)], check=True)
        t = spec_torch.read_safetensors(out)
    tag = f"gpt_small[{backend},B={B}]"
    V, C, T = t["wte.weight"].shape[0], t["wte.weight"].shape[1], t["ids"].shape[2]
    model = GPT(V, T, C, 4, 2).double()
    pnames = [k for k in t if not k.startswith(("grad.", "act.")) and k not in ("ids", "labels", "losses")]
    load_herd_weights(model, {k: t[k] for k in pnames})
    assert model.lm_head.weight is model.wte.weight
    ids, labels = torch.tensor(t["ids"], dtype=torch.int64), torch.tensor(t["labels"], dtype=torch.int64)
    acts = {}
    logits = model(ids[0], acts)
    loss = F.cross_entropy(logits.reshape(-1, V), labels[0].reshape(-1))
    loss.backward()
    # float64 PyTorch is the truth; herd computes in float32: 1e-5 of each tensor's largest value
    for name, a in acts.items():
        want = a.detach().numpy()
        check(f"{tag} act.{name}", t["act." + name], want, 1e-5 * float(np.abs(want).max()), 0)
    check(f"{tag} loss", t["losses"][0], loss.item(), 0, 1e-5)
    for k in pnames:
        p = model
        for part in herd_to_torch(k).split("."):
            p = getattr(p, part) if not part.isdigit() else p[int(part)]
        g = p.grad.numpy()
        check(f"{tag} grad.{k}", t["grad." + k], g, 1e-5 * float(np.abs(g).max()), 0)
    # 10 AdamW steps, decay 0.1 on matrices (wte/lm_head, wpe and the dense weights), none on biases and norms
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=1e-3)
    losses = []
    for s in range(STEPS):
        opt.zero_grad()
        logits = model(ids[s], {})
        loss = F.cross_entropy(logits.reshape(-1, V), labels[s].reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    check(f"{tag} losses of {STEPS} AdamW steps", t["losses"], np.array(losses), 1e-4, 0)
    print(f"{tag}: losses herd {np.round(t['losses'], 6).tolist()}")


for backend in ("ref", "cpu"):
    run(backend, 3)
sys.exit(summary())
