# herd predict reads what herd train reads: the test split of an IDX directory, a CSV file and
# an NPY pair give the same classes as the IDX images file did; --out writes every output row
# to an NPY file that numpy reads: probabilities that sum to 1 whose argmax is the printed class
# and reaches herd eval's accuracy, and logits whose softmax they are.
. "$(dirname "$0")/cli_lib.sh"
make_subset "$TMP/d" 600 200
printf 'input 1x28x28\nconv 8 3 pad=1 relu\nmaxpool 2\nflatten\ndense 10\n' >"$TMP/m.spec"
expect_exit 0 "train" -- "$HERD" train "$TMP/m.spec" --data "$TMP/d" --epochs 1 --batch 32 --threads 1 --quiet \
    --save "$TMP/w.st"
expect_exit 0 "predict --images" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" --images "$TMP/d/t10k-images-idx3-ubyte" --threads 1
cp "$TMP/out" "$TMP/by_images"
expect_exit 0 "predict --data (IDX test split)" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" --data "$TMP/d" --threads 1
cmp -s "$TMP/out" "$TMP/by_images" && pass || fail "--data and --images differ: $(diff "$TMP/out" "$TMP/by_images" | head -3)"
expect_exit 0 "predict --out probs" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" --data "$TMP/d" --threads 1 \
    --out "$TMP/p.npy"
expect_out "summary line" "^wrote 200 x 10 probabilities of .* to .*p.npy"
expect_exit 0 "predict --out logits" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" --data "$TMP/d" --threads 1 \
    --out "$TMP/l.npy" --output logits
expect_exit 0 "eval" -- "$HERD" eval "$TMP/m.spec" --weights "$TMP/w.st" --data "$TMP/d" --threads 1
acc=$(sed -n 's/^accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
/usr/bin/python3 - "$TMP" "$acc" <<'PY' && pass || fail "the NPY outputs do not check out"
import sys, numpy as np, gzip
d, acc = sys.argv[1], float(sys.argv[2])
p, l = np.load(d + "/p.npy"), np.load(d + "/l.npy")
assert p.shape == (200, 10) and p.dtype == np.float32 and l.shape == (200, 10), (p.shape, l.shape)
assert np.allclose(p.sum(1), 1, atol=1e-5), p.sum(1)[:4]
e = np.exp(l - l.max(1, keepdims=True))
assert np.allclose(p, e / e.sum(1, keepdims=True), atol=1e-6)
printed = [int(r.split("\t")[1]) for r in open(d + "/by_images").read().split("\n")[1:] if r]
assert (p.argmax(1) == np.array(printed)).all()
labels = np.frombuffer(open(d + "/d/t10k-labels-idx1-ubyte", "rb").read()[8:], np.uint8)
got = (p.argmax(1) == labels).mean()
assert abs(got - acc) < 1e-3, (got, acc)
# the same images as CSV and as NPY
x = np.frombuffer(open(d + "/d/t10k-images-idx3-ubyte", "rb").read()[16:], np.uint8).reshape(200, 1, 28, 28)
np.save(d + "/q_x.npy", x)
np.save(d + "/q_y.npy", labels.astype(np.int64))
with open(d + "/q.csv", "w") as f:
    f.write(",".join(f"p{i}" for i in range(784)) + ",label\n")
    for i in range(200):
        f.write(",".join(f"{v / 255.0:.9g}" for v in x[i].ravel()) + f",{labels[i]}\n")
PY
expect_exit 0 "predict --data NPY" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" --data "$TMP/q_x.npy" --threads 1
cmp -s "$TMP/out" "$TMP/by_images" && pass || fail "NPY predictions differ"
# features without a labels file: predict needs no labels (train and eval still do)
cp "$TMP/q_x.npy" "$TMP/nolabels_x.npy"
expect_exit 0 "predict --data NPY without labels" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" \
    --data "$TMP/nolabels_x.npy" --threads 1
cmp -s "$TMP/out" "$TMP/by_images" && pass || fail "unlabelled NPY predictions differ"
expect_exit 1 "train on NPY without labels" -- "$HERD" train "$TMP/m.spec" --data "$TMP/nolabels_x.npy" --epochs 1
grep -q "nolabels_y.npy" "$TMP/err" && pass || fail "train without labels does not name the labels file: $(cat "$TMP/err")"
expect_exit 0 "predict --data CSV" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" --data "$TMP/q.csv" --threads 1
cmp -s "$TMP/out" "$TMP/by_images" && pass || fail "CSV predictions differ: $(diff "$TMP/out" "$TMP/by_images" | head -3)"
expect_exit 2 "both --data and --images" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" --data "$TMP/d" \
    --images "$TMP/d/t10k-images-idx3-ubyte"
expect_exit 2 "bad --output" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" --data "$TMP/d" --output raw
expect_exit 1 "unwritable --out" -- "$HERD" predict "$TMP/m.spec" --weights "$TMP/w.st" --data "$TMP/d" --out /nonexistent/p.npy
grep -q "/nonexistent/p.npy" "$TMP/err" && pass || fail "error does not name the file: $(cat "$TMP/err")"
summary
