# A NaN/Inf during training: --on-nan stop (default) exits 1 naming the first layer whose
# output went non-finite, and keeps the last checkpoint; --on-nan skip-step skips those
# updates, says how many, and finishes.
. "$(dirname "$0")/cli_lib.sh"
make_subset "$TMP/d" 256 64
printf 'input 1x28x28\nflatten\ndense 16 tanh\ndense 10\n' >"$TMP/m.spec"
# weights whose second layer holds an Inf: the first non-finite output is dense2's
/usr/bin/python3 - "$TMP/bad.st" <<'PY'
import json, struct, sys
import numpy as np
rng = np.random.default_rng(0)
t = {"dense1.weight": rng.normal(0, 0.05, (16, 784)), "dense1.bias": np.zeros(16),
     "dense2.weight": rng.normal(0, 0.1, (10, 16)), "dense2.bias": np.zeros(10)}
t["dense2.weight"][3, 5] = np.inf
header, blobs, off = {}, [], 0
for k, v in t.items():
    b = v.astype("<f4").tobytes()
    header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
expect_exit 1 "stop on Inf" -- "$HERD" train "$TMP/m.spec" --data "$TMP/d" --epochs 1 --weights "$TMP/bad.st" --quiet \
    --checkpoint-dir "$TMP/ck"
expect_err_line "stop on Inf" "step 0: the output of layer 'dense2' became non-finite"
[ -z "$(ls "$TMP/ck" 2>/dev/null)" ] && pass || fail "a checkpoint was written after the non-finite step"
expect_exit 0 "skip-step" -- "$HERD" train "$TMP/m.spec" --data "$TMP/d" --epochs 1 --weights "$TMP/bad.st" --quiet \
    --on-nan skip-step
grep -q "epoch 1: 8 step(s) skipped for non-finite gradients" "$TMP/err" && pass || fail "skip count: $(cat "$TMP/err")"
expect_exit 2 "bad --on-nan" -- "$HERD" train "$TMP/m.spec" --on-nan ignore

# a NaN in the data itself: the sample is named, not a layer (and not "a lower learning rate")
/usr/bin/python3 - "$TMP" <<'PY'
import sys
import numpy as np
x = np.random.default_rng(1).random((64, 4), dtype=np.float32)
x[5, 2] = np.nan
np.save(sys.argv[1] + "/trainx.npy", x)
np.save(sys.argv[1] + "/trainy.npy", np.arange(64) % 3)
PY
printf 'input 4\ndense 3\n' >"$TMP/t.spec"
expect_exit 1 "NaN in the data" -- "$HERD" train "$TMP/t.spec" --data "$TMP/trainx.npy" --epochs 1 --quiet
expect_err_line "NaN in the data" "trainx.npy: sample 5 holds a non-finite input value (NaN/Inf)"
expect_exit 1 "stats of NaN data" -- "$HERD" stats "$TMP/trainx.npy"
expect_err_line "stats of NaN data" "trainx.npy: sample 5: channel 2 holds a non-finite value (NaN/Inf)"
expect_exit 1 "normalize auto on NaN data" -- "$HERD" train "$TMP/t.spec" --data "$TMP/trainx.npy" --epochs 1 --quiet \
    --normalize auto
expect_err_line "normalize auto on NaN data" "sample 5: channel 2 holds a non-finite value"
summary
