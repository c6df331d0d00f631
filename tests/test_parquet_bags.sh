# Parquet list columns as bags (parquet:...?bags=COL:L): bags of 1..6 ids in a list<int64> and a
# list<int32> column, written by an independent writer (npm parquet-wasm: dictionary pages v1,
# and plain pages v2, several row groups and pages), train an embedding_bag model to the same
# weights (cmp) as the same bags given as NPY ids + offsets; a float column beside the bag
# becomes the first input field, the bag the second. Bad input: a bag longer than L, an empty
# bag, a column of floats, bags=COL without :L: one line naming the file and what is wrong.
. "$(dirname "$0")/cli_lib.sh"
. "$SRC/tests/parquet/npm_writer.sh"
/usr/bin/python3 - "$TMP" <<'PY'
import json, sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
n = 300
bags = [rng.integers(0, 50, rng.integers(1, 7)).tolist() for _ in range(n)]
label = [int(b[0] % 3) for b in bags]
f = rng.standard_normal(n).astype(np.float32).tolist()
json.dump({"tags": bags, "label": label}, open(d + "/bags.json", "w"))
json.dump({"tags": bags, "label": label, "f": f}, open(d + "/bags_f.json", "w"))
json.dump({"tags": bags[:5] + [[]] + bags[6:], "label": label}, open(d + "/empty.json", "w"))
np.save(d + "/x.npy", np.array([i for b in bags for i in b], np.int64))
np.save(d + "/off.npy", np.cumsum([0] + [len(b) for b in bags[:-1]]).astype(np.int64))
np.save(d + "/y.npy", np.array(label, np.int64))
np.save(d + "/f.npy", np.array(f, np.float32))
PY
for c in "i64 INT64 100" "i32 INT32 64 v2" "f INT64 1000" "empty INT32 1000"; do
    set -- $c
    json=$TMP/bags.json
    [ "$1" = f ] && json=$TMP/bags_f.json
    [ "$1" = empty ] && json=$TMP/empty.json
    parquet_write bags "$json" "$TMP/$1/part-0.parquet" "$3" "$2" ${4:-} && pass || fail "the npm writer failed ($1)"
done
printf 'input 6 dtype=i32\nembedding_bag 50 4 mode=mean\ndense 3\n' >"$TMP/bag.spec"
train() { # DATA WEIGHTS
    expect_exit 0 "train on $1" -- "$HERD" train "$TMP/bag.spec" --data "$1" --epochs 2 --batch 16 --lr 0.05 --seed 3 \
        --threads 1 --save "$2" --quiet
}
train "$TMP/x.npy?offsets=$TMP/off.npy" "$TMP/w_npy.safetensors"
train "parquet:$TMP/i64?bags=tags:6" "$TMP/w_i64.safetensors"
cmp -s "$TMP/w_npy.safetensors" "$TMP/w_i64.safetensors" && pass || fail "list<int64> bags train otherwise than NPY offsets"
train "parquet:$TMP/i32?bags=tags:6" "$TMP/w_i32.safetensors"
cmp -s "$TMP/w_npy.safetensors" "$TMP/w_i32.safetensors" && pass || fail "list<int32> bags (v2 pages) train otherwise"

# a float column and a bag: two input fields, f32 (1) then i32 (6); herd predict reads both
printf 'input 1 name=f\ninput 6 dtype=i32 name=tags\nembedding_bag 50 4 mode=sum from=tags name=bag\nconcat f,bag\ndense 3\n' \
    >"$TMP/two.spec"
expect_exit 0 "train on a float column and a bag" -- "$HERD" train "$TMP/two.spec" --data "parquet:$TMP/f?bags=tags:6" \
    --epochs 1 --batch 16 --seed 3 --threads 1 --save "$TMP/w_two.safetensors" --quiet
expect_exit 0 "predict from a float column and a bag" -- "$HERD" predict "$TMP/two.spec" --weights "$TMP/w_two.safetensors" \
    --data "parquet:$TMP/f?bags=tags:6" --output logits --out "$TMP/logits.npy"
/usr/bin/python3 - "$TMP" <<'PY' && pass || fail "two-field logits differ from numpy's"
import json, struct, sys
import numpy as np
d = sys.argv[1]
raw = open(d + "/w_two.safetensors", "rb").read()
(k,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + k]); h.pop("__metadata__", None)
w = {n: np.frombuffer(raw[8 + k + e["data_offsets"][0]:8 + k + e["data_offsets"][1]], np.float32).reshape(e["shape"])
     for n, e in h.items()}
data = json.load(open(d + "/bags_f.json"))
bag = np.array([w["bag.weight"][b].sum(0) for b in data["tags"]])
x = np.concatenate([np.array(data["f"], np.float32)[:, None], bag], 1)
want = x @ w["dense1.weight"].T + w["dense1.bias"]
got = np.load(d + "/logits.npy")
assert got.shape == want.shape and np.allclose(got, want, rtol=1e-5, atol=1e-5), (got[:2], want[:2])
PY

# ---- bad input: one line naming the file ----
printf 'input 3 dtype=i32\nembedding_bag 50 4 mode=mean\ndense 3\n' >"$TMP/bag3.spec"
expect_exit 1 "a bag longer than L" -- "$HERD" train "$TMP/bag3.spec" --data "parquet:$TMP/i64?bags=tags:3" --epochs 1 --quiet
expect_err_line "a bag longer than L" "ids, more than the bag's 3 (bags=COL:L)"
grep -q "i64/part-0.parquet: row group 0, column 'tags': row" "$TMP/err" && pass || fail "no file and row: $(cat "$TMP/err")"
expect_exit 1 "an empty bag" -- "$HERD" train "$TMP/bag.spec" --data "parquet:$TMP/empty?bags=tags:6" --epochs 1 --quiet
expect_err_line "an empty bag" "row 5: an empty bag (a null or empty list)"
expect_exit 1 "a float column as a bag" -- "$HERD" train "$TMP/bag.spec" --data "parquet:$TMP/f?bags=f:6" --epochs 1 --quiet
expect_err_line "a float column as a bag" "column 'f' holds FLOAT, not integer ids"
expect_exit 1 "bags= without :L" -- "$HERD" train "$TMP/bag.spec" --data "parquet:$TMP/i64?bags=tags" --epochs 1 --quiet
expect_err_line "bags= without :L" "bags=tags: 'tags' is not COL:L"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
