# The losses end to end through herd train and herd eval on generated NPY data with typed
# targets: regression (mse, f32 targets, RMSE), binary labels (bce, AUC), per-position
# labels with an ignore index (xent over (T,K) logits); the metrics in the test line and the
# JSON log; targets that do not fit the loss are one-line errors.
. "$(dirname "$0")/cli_lib.sh"
/usr/bin/python3 - "$TMP" <<'PY'
import sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(5)
w = rng.normal(size=(8, 1)).astype(np.float32)
for split, n in (("train", 2000), ("test", 500)):
    x = rng.normal(size=(n, 8)).astype(np.float32)
    np.save(f"{d}/reg_{split}_x.npy", x)
    np.save(f"{d}/reg_{split}_y.npy", (x @ w + 0.1 * rng.normal(size=(n, 1))).astype(np.float32))
    np.save(f"{d}/bin_{split}_x.npy", x)
    np.save(f"{d}/bin_{split}_y.npy", (x @ w > 0).astype(np.float32))
    # per position: 6 positions, class = sign of the feature, every fourth position ignored (-1)
    y = (x[:, :6] > 0).astype(np.int64)
    y[:, ::4] = -1
    np.save(f"{d}/pos_{split}_x.npy", x)
    np.save(f"{d}/pos_{split}_y.npy", y)
    np.save(f"{d}/bad_{split}_x.npy", x)
    np.save(f"{d}/bad_{split}_y.npy", 2 * (x @ w > 0).astype(np.float32))
PY
RUN=(--epochs 4 --batch 32 --seed 1 --threads 1 --progress none --optimizer adam --lr 0.01)
printf 'input 8\ndense 16 relu\ndense 1\nloss mse\n' >"$TMP/reg.spec"
expect_exit 0 "regression trains" -- "$HERD" train "$TMP/reg.spec" --data "$TMP/reg_train_x.npy" "${RUN[@]}" \
    --log-json "$TMP/reg.json" --save "$TMP/reg.st"
rmse=$(sed -n 's/^test rmse: \([0-9.]*\) (loss.*/\1/p' "$TMP/out")
# the noise alone is 0.1; predicting the mean would give about 1 (the targets' std)
[ -n "$rmse" ] && awk "BEGIN { exit !($rmse < 0.3) }" && pass || fail "regression: test rmse '$rmse' (want < 0.3): $(cat "$TMP/out")"
grep -q '"accuracy": null, "rmse": 0\.[0-9]*, "auc": null' "$TMP/reg.json" && pass || fail "JSON log: $(head -c 300 "$TMP/reg.json")"
expect_exit 0 "regression eval" -- "$HERD" eval "$TMP/reg.spec" --weights "$TMP/reg.st" --data "$TMP/reg_train_x.npy"
expect_out "eval prints the rmse" "^rmse: $rmse  loss: "

printf 'input 8\ndense 1\nloss bce\n' >"$TMP/bin.spec"
expect_exit 0 "binary trains" -- "$HERD" train "$TMP/bin.spec" --data "$TMP/bin_train_x.npy" "${RUN[@]}"
auc=$(sed -n 's/^test accuracy: [0-9.]*, auc: \([0-9.]*\), rmse: .*/\1/p' "$TMP/out")
[ -n "$auc" ] && awk "BEGIN { exit !($auc > 0.97) }" && pass || fail "binary: test auc '$auc' (want > 0.97): $(cat "$TMP/out")"

printf 'input 8\ndense 12\nreshape 6x2\nloss xent ignore=-1\n' >"$TMP/pos.spec"
expect_exit 0 "per-position labels train" -- "$HERD" train "$TMP/pos.spec" --data "$TMP/pos_train_x.npy" "${RUN[@]}"
acc=$(sed -n 's/^test accuracy: \([0-9.]*\) (loss.*/\1/p' "$TMP/out")
[ -n "$acc" ] && awk "BEGIN { exit !($acc > 0.97) }" && pass || fail "per position: accuracy '$acc': $(cat "$TMP/out")"

# targets that do not fit: one line naming the data and what is wrong, before any training
expect_exit 1 "bce targets outside [0, 1]" -- "$HERD" train "$TMP/bin.spec" --data "$TMP/bad_train_x.npy" "${RUN[@]}"
expect_err_line "bce targets outside [0, 1]" "target 2 of sample"
expect_exit 1 "float targets for the cross-entropy" -- "$HERD" train "$TMP/pos.spec" --data "$TMP/reg_train_x.npy" "${RUN[@]}"
expect_err_line "float targets for the cross-entropy" "reg_train_x.npy: targets are f32"
expect_exit 1 "per-position labels for a vector output" -- "$HERD" train "$TMP/bin.spec" --data "$TMP/pos_train_x.npy" "${RUN[@]}"
expect_err_line "per-position labels for a vector output" "the bce loss takes f32 targets"
printf 'input 8\ndense 2\nloss xent ignore=x\n' >"$TMP/badloss.spec"
expect_exit 1 "bad loss argument" -- "$HERD" train "$TMP/badloss.spec" --data "$TMP/pos_train_x.npy" "${RUN[@]}"
expect_err_line "bad loss argument" "badloss.spec:3:1: loss xent: ignore=x is not an integer"
# predict follows the loss: values for a regression, the class and its probability for bce,
# per-position probabilities only to a file
expect_exit 0 "predict values" -- "$HERD" predict "$TMP/reg.spec" --weights "$TMP/reg.st" --data "$TMP/reg_train_x.npy" --limit 3
expect_out "predict prints values" "^index	value$"
[ "$(wc -l <"$TMP/out")" = 4 ] && pass || fail "predict values: $(cat "$TMP/out")"
expect_exit 0 "train bce to predict" -- "$HERD" train "$TMP/bin.spec" --data "$TMP/bin_train_x.npy" "${RUN[@]}" --save "$TMP/bin.st"
expect_exit 0 "predict classes of bce" -- "$HERD" predict "$TMP/bin.spec" --weights "$TMP/bin.st" --data "$TMP/bin_train_x.npy" --limit 50
/usr/bin/python3 - "$TMP" <<'PY' && pass || fail "bce predictions do not match the labels"
import sys
import numpy as np
d = sys.argv[1]
y = np.load(f"{d}/bin_test_y.npy")[:50, 0]
rows = [l.split("\t") for l in open(f"{d}/out").read().splitlines()[1:]]
cls = np.array([int(r[1]) for r in rows]); prob = np.array([float(r[2]) for r in rows])
assert len(rows) == 50 and (prob >= 0.5).all() and (prob <= 1).all(), rows[:3]
assert (cls == y).mean() > 0.9, (cls == y).mean()
PY
expect_exit 0 "train per position to predict" -- "$HERD" train "$TMP/pos.spec" --data "$TMP/pos_train_x.npy" "${RUN[@]}" --save "$TMP/pos.st"
expect_exit 1 "per-position predictions need --out" -- "$HERD" predict "$TMP/pos.spec" --weights "$TMP/pos.st" --data "$TMP/pos_train_x.npy"
expect_err_line "per-position predictions need --out" "predicts 12 values per sample; write them with --out"
expect_exit 0 "per-position predictions to a file" -- "$HERD" predict "$TMP/pos.spec" --weights "$TMP/pos.st" \
    --data "$TMP/pos_train_x.npy" --out "$TMP/pos.npy"
/usr/bin/python3 -c "
import numpy as np; p = np.load('$TMP/pos.npy'); assert p.shape == (500, 6, 2), p.shape
assert np.allclose(p.sum(-1), 1, atol=1e-5)" && pass || fail "per-position predictions file"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
