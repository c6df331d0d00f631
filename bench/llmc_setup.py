"""bench/gpt's files for llm.c's train_gpt2.c (CPU, fp32): a model checkpoint of the bench's sizes
(llm.c's header: magic 20240326, version 3, maxT, V, L, NH, C, padded V = V; then the parameters in
its order, GPT-2's init: N(0, 0.02), projections N(0, 0.02/sqrt(2L)), layer norms 1 and 0) and
train/val token files (magic 20240520, version 1, count; uint16 ids) cut from herd's token file.
  llmc_setup.py DIR FILE.tok V T C H L"""
import os
import struct
import sys

import numpy as np

d, tok = sys.argv[1], sys.argv[2]
V, T, C, H, L = (int(x) for x in sys.argv[3:8])
raw = open(tok, "rb").read()
n, ids_at = struct.unpack_from("<Q", raw, 24)[0], struct.unpack_from("<Q", raw, 48)[0]
ids = np.frombuffer(raw, dtype="<u2", count=n, offset=ids_at)
r = np.random.default_rng(0)
shapes = [("wte", (V, C)), ("wpe", (T, C)), ("ln1w", (L, C)), ("ln1b", (L, C)), ("qkvw", (L, 3 * C, C)),
          ("qkvb", (L, 3 * C)), ("attprojw", (L, C, C)), ("attprojb", (L, C)), ("ln2w", (L, C)), ("ln2b", (L, C)),
          ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)), ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
          ("lnfw", (C,)), ("lnfb", (C,))]
header = np.zeros(256, dtype=np.int32)
header[:8] = [20240326, 3, T, V, L, H, C, V]
with open(os.path.join(d, "gpt2_124M.bin"), "wb") as f:
    f.write(header.tobytes())
    for name, shape in shapes:
        if name.startswith("ln") and name.endswith("w"):
            a = np.ones(shape)
        elif name.endswith("b"):
            a = np.zeros(shape)
        else:
            a = r.normal(0, 0.02 / (np.sqrt(2 * L) if "proj" in name else 1), shape)
        f.write(a.astype(np.float32).tobytes())
os.makedirs(os.path.join(d, "dev/data/tinyshakespeare"), exist_ok=True)
for split, part in (("train", ids[: len(ids) * 9 // 10]), ("val", ids[len(ids) * 9 // 10:])):
    h = np.zeros(256, dtype=np.int32)
    h[:3] = [20240520, 1, len(part)]
    with open(os.path.join(d, f"dev/data/tinyshakespeare/tiny_shakespeare_{split}.bin"), "wb") as f:
        f.write(h.tobytes() + part.astype(np.uint16).tobytes())
