# The data pipeline over MPI ranks: herd stats prints the same numbers on 1 and 4 ranks, and
# deliberately skewed shard files (10, 100 and 900 records; class 9 only in the last) train
# with -n 2 --deterministic to the same weights as one rank: the sampler splits every global
# batch of one permutation, so every rank runs the same steps whatever the shard sizes.
. "$(dirname "$0")/cli_lib.sh"
require_mpi "data pipeline MPI tests"
SPEC=$SRC/tests/data/small_cnn_nodrop.spec
make_subset "$TMP/d" 1500 100

expect_exit 0 "stats 1 rank" -- "$HERD" stats "$TMP/d"
cp "$TMP/out" "$TMP/stats1"
expect_exit 0 "stats 4 ranks" -- "$HERD" stats "$TMP/d" -n 4
cmp -s "$TMP/out" "$TMP/stats1" && pass || fail "stats on 4 ranks differ from 1 rank: $(diff "$TMP/out" "$TMP/stats1" | head -5)"
expect_exit 0 "stats 3 ranks of shards" -- "$HERD" stats "$TMP/d" -n 3
cmp -s "$TMP/out" "$TMP/stats1" && pass || fail "stats on 3 ranks differ from 1 rank"

# skewed shards from three IDX subsets
/usr/bin/python3 - "$TMP" <<'PY'
import struct, sys, os
t = sys.argv[1]
img = open(f"{t}/d/train-images-idx3-ubyte", "rb").read()[16:]
lab = open(f"{t}/d/train-labels-idx1-ubyte", "rb").read()[8:]
recs = [(img[i * 784:(i + 1) * 784], lab[i]) for i in range(len(lab))]
nine = [r for r in recs if r[1] == 9]
rest = [r for r in recs if r[1] != 9]
parts = {"a": rest[:10], "b": rest[10:110], "c": (nine + rest[110:])[:900]}
assert len(parts["c"]) == 900 and any(r[1] == 9 for r in parts["c"])
for name, rs in parts.items():
    os.makedirs(f"{t}/{name}", exist_ok=True)
    with open(f"{t}/{name}/train-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(rs), 28, 28) + b"".join(r[0] for r in rs))
    with open(f"{t}/{name}/train-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, len(rs)) + bytes(r[1] for r in rs))
PY
mkdir -p "$TMP/skew"
k=0
for part in a b c; do
    expect_exit 0 "convert $part" -- "$HERD" convert "$TMP/$part" "$TMP/conv_$part" --shards 1
    mv "$TMP/conv_$part/train-00000-of-00001.herd" "$TMP/skew/train-0000$k-of-00003.herd"
    k=$((k + 1))
done
sizes=$(stat -c %s "$TMP/skew"/*.herd | tr '\n' ' ')
[ "$sizes" = "$((64 + 10 * 808)) $((64 + 100 * 808)) $((64 + 900 * 808)) " ] && pass || fail "skewed shard sizes: $sizes"

RUN=(--epochs 2 --batch 32 --seed 5 --threads 1 --progress none --deterministic --timeout 20)
# 1010 records, batch 32: 32 steps an epoch (the last of 18), so 64 steps; a rank with fewer would
# leave the other waiting in the gradient exchange and the job would fail within --timeout
expect_exit 0 "skewed, 1 rank" -- "$HERD" train "$SPEC" --data "$TMP/skew" "${RUN[@]}" --save "$TMP/w1.safetensors" \
    --checkpoint-dir "$TMP/ck1" --checkpoint-every 64
expect_exit 0 "skewed, 2 ranks" -- "$HERD" train "$SPEC" --data "$TMP/skew" "${RUN[@]}" -n 2 --save "$TMP/w2.safetensors" \
    --checkpoint-dir "$TMP/ck2" --checkpoint-every 64
[ -f "$TMP/ck1/ckpt-0000000064.safetensors" ] && [ -f "$TMP/ck2/ckpt-0000000064.safetensors" ] && pass ||
    fail "expected 64 steps on 1 and 2 ranks: $(ls "$TMP/ck1" "$TMP/ck2" | tr '\n' ' ')"
compare_weights "$TMP/w1.safetensors" "$TMP/w2.safetensors" 0 && pass || fail "skewed shards: 2 ranks differ from 1"
expect_exit 0 "skewed, 2 ranks, prefetch 0" -- "$HERD" train "$SPEC" --data "$TMP/skew" "${RUN[@]}" -n 2 --prefetch 0 \
    --save "$TMP/w3.safetensors"
cmp -s "$TMP/w2.safetensors" "$TMP/w3.safetensors" && pass || fail "2 ranks: --prefetch 0 differs from --prefetch 2"
summary
