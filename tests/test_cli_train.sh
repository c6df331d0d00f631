# End to end on a Fashion-MNIST subset: train with --log-json/--save/--val-split, eval and
# predict with the saved weights, summary, and bit-identical weights for the same seed.
. "$(dirname "$0")/cli_lib.sh"
SPEC=$SRC/examples/fashion_cnn.spec
make_subset "$TMP/d" 3000 1000

expect_exit 0 "summary" -- "$HERD" summary "$SPEC" --batch 32
expect_out "summary total" "Total params: 241546"
expect_out "summary conv1 row" "conv1 \(conv2d\) +32 3x3 s1 p1 +32x28x28 +320"
expect_out "summary memory" "Planned memory at batch 32"

expect_exit 0 "train" -- "$HERD" train "$SPEC" --data "$TMP/d" --epochs 2 --batch 32 --seed 3 --val-split 0.1 \
    --log-json "$TMP/log.json" --save "$TMP/w1.safetensors" --threads 2
expect_out "train prints test accuracy" "^test accuracy: 0\.[0-9]{4}"
grep -q $'\r' "$TMP/out" && fail "non-TTY output contains carriage returns" || pass
expect_out "plain progress lines" "Epoch 2/2"
/usr/bin/python3 - "$TMP/log.json" <<'PY' && pass || fail "log-json content"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
for i, r in enumerate(rows, 1):
    assert r["epoch"] == i
    for k in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images_per_second"):
        assert isinstance(r[k], float) and r[k] >= 0, (k, r)
assert rows[1]["loss"] < rows[0]["loss"], rows
PY
test_acc=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")

expect_exit 0 "eval" -- "$HERD" eval "$SPEC" --data "$TMP/d" --weights "$TMP/w1.safetensors"
expect_out "eval reproduces the test accuracy" "^accuracy: $test_acc "
expect_exit 0 "eval on ref backend" -- "$HERD" eval "$SPEC" --data "$TMP/d" --weights "$TMP/w1.safetensors" --backend ref --threads 1
expect_out "ref backend agrees" "^accuracy: $test_acc "

expect_exit 0 "predict" -- "$HERD" predict "$SPEC" --weights "$TMP/w1.safetensors" \
    --images "$TMP/d/t10k-images-idx3-ubyte" --limit 5 --class-names fashion-mnist
[ "$(wc -l <"$TMP/out")" = 6 ] && pass || fail "predict prints a header and 5 rows"
expect_out "predict row" "^4	[0-9]	0\.[0-9]{4}	"

# same seed, same data => bit-identical weights; another seed => different
expect_exit 0 "train again" -- "$HERD" train "$SPEC" --data "$TMP/d" --epochs 2 --batch 32 --seed 3 --val-split 0.1 \
    --save "$TMP/w2.safetensors" --threads 2 --quiet
cmp -s "$TMP/w1.safetensors" "$TMP/w2.safetensors" && pass || fail "same seed gave different weights"
expect_exit 0 "train other seed" -- "$HERD" train "$SPEC" --data "$TMP/d" --epochs 1 --seed 4 --save "$TMP/w3.safetensors" --quiet
cmp -s "$TMP/w1.safetensors" "$TMP/w3.safetensors" && fail "different seeds gave identical weights" || pass
# --epochs 0 writes the initial weights: training from them (--weights) is training from the seed
expect_exit 0 "train --epochs 0" -- "$HERD" train "$SPEC" --data "$TMP/d" --epochs 0 --seed 4 --save "$TMP/w0.safetensors" \
    --quiet
cmp -s "$TMP/w0.safetensors" "$TMP/w3.safetensors" && fail "--epochs 0 trained" || pass
expect_exit 0 "train from --epochs 0's weights" -- "$HERD" train "$SPEC" --data "$TMP/d" --epochs 1 --seed 4 \
    --weights "$TMP/w0.safetensors" --save "$TMP/w4.safetensors" --quiet
cmp -s "$TMP/w3.safetensors" "$TMP/w4.safetensors" && pass || fail "training from the saved init differs from the seed's"

# other optimizers and schedules run and learn something
for opt in "sgd --lr 0.05" "momentum --lr 0.01 --lr-schedule step" "nesterov --lr 0.01 --lr-schedule cosine --warmup 20" \
           "adamw --weight-decay 0.01 --clip-norm 1"; do
    expect_exit 0 "train --optimizer $opt" -- "$HERD" train "$SPEC" --data "$TMP/d" --epochs 1 --optimizer $opt --quiet
    acc=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
    /usr/bin/python3 -c "import sys; sys.exit(0 if float('$acc') > 0.5 else 1)" && pass || fail "--optimizer $opt reached only $acc"
done
summary
