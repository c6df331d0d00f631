# The data pipeline end to end on a Fashion-MNIST subset: herd convert to shards, training on
# shards equal to training on the IDX source, damaged shards as one-line errors, herd stats,
# --normalize auto, and the loader: --prefetch 0 and --prefetch 2 --loader-threads 2 (with
# augmentation and the cache) give bit-identical weights.
. "$(dirname "$0")/cli_lib.sh"
SPEC=$SRC/tests/data/small_cnn_nodrop.spec
make_subset "$TMP/d" 600 100
RUN=(--epochs 2 --batch 50 --seed 3 --threads 1 --progress none)

expect_exit 0 "convert" -- "$HERD" convert "$TMP/d" "$TMP/sh" --shards 3
expect_out "convert summary" "wrote 600 train records \(u8 1x28x28, 10 classes\)"
n=$(ls "$TMP/sh"/train-0000[0-2]-of-00003.herd "$TMP/sh"/test-0000[0-2]-of-00003.herd 2>/dev/null | wc -l)
[ "$n" = 6 ] && pass || fail "convert wrote $n of 6 shard files"
# u8 records: 64-byte header + 200 * (24 index + 784 record) bytes
[ "$(stat -c %s "$TMP/sh/train-00001-of-00003.herd")" = $((64 + 200 * 808)) ] && pass || fail "u8 shard size"

expect_exit 0 "train on IDX" -- "$HERD" train "$SPEC" --data "$TMP/d" "${RUN[@]}" --save "$TMP/idx.safetensors"
acc_idx=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
expect_exit 0 "train on shards" -- "$HERD" train "$SPEC" --data "$TMP/sh" "${RUN[@]}" --save "$TMP/shard.safetensors"
expect_out "shards have a test split" "^test accuracy: $acc_idx "
cmp -s "$TMP/idx.safetensors" "$TMP/shard.safetensors" && pass || fail "shards train differently from their IDX source"
expect_exit 0 "train on a shard glob" -- "$HERD" train "$SPEC" --data "$TMP/sh/train-*.herd" "${RUN[@]}" --save "$TMP/g.safetensors"
cmp -s "$TMP/idx.safetensors" "$TMP/g.safetensors" && pass || fail "glob of shards trains differently"

# the loader: same weights whatever the prefetch depth, thread count or cache
expect_exit 0 "prefetch 0" -- "$HERD" train "$SPEC" --data "$TMP/sh" "${RUN[@]}" --prefetch 0 --save "$TMP/p0.safetensors"
cmp -s "$TMP/idx.safetensors" "$TMP/p0.safetensors" && pass || fail "--prefetch 0 differs from the default --prefetch 2"
AUG=(--augment crop,flip --normalize auto)
expect_exit 0 "augment prefetch 0" -- "$HERD" train "$SPEC" --data "$TMP/sh" "${RUN[@]}" "${AUG[@]}" --prefetch 0 \
    --save "$TMP/a0.safetensors"
expect_out "normalize prints the stats" "^herd: normalising inputs by the training data's stats: mean 0\.[0-9]+ std 0\.[0-9]+"
expect_exit 0 "augment prefetch 2 threads 2 cache" -- "$HERD" train "$SPEC" --data "$TMP/sh" "${RUN[@]}" "${AUG[@]}" \
    --prefetch 2 --loader-threads 2 --cache --cache-mb 0.25 --save "$TMP/a2.safetensors" # u8: 329 of 600 cached
compare_weights "$TMP/a0.safetensors" "$TMP/a2.safetensors" 0 && pass || fail "prefetch 2 x 2 threads differs from prefetch 0"
cmp -s "$TMP/a0.safetensors" "$TMP/p0.safetensors" && fail "augmentation changed nothing" || pass
# ImageNet-style augmentation and given constants: the same weights for any prefetch and threads,
# the constants saved with the weights and applied by herd eval
IMG=(--augment rrc,flip,jitter=0.4 --normalize mean=0.29:std=0.35)
expect_exit 0 "rrc+jitter prefetch 0" -- "$HERD" train "$SPEC" --data "$TMP/sh" "${RUN[@]}" "${IMG[@]}" --prefetch 0 \
    --save "$TMP/r0.safetensors"
acc_r=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
expect_exit 0 "rrc+jitter prefetch 3 threads 2" -- "$HERD" train "$SPEC" --data "$TMP/sh" "${RUN[@]}" "${IMG[@]}" \
    --prefetch 3 --loader-threads 2 --cache --save "$TMP/r2.safetensors"
cmp -s "$TMP/r0.safetensors" "$TMP/r2.safetensors" && pass || fail "rrc+jitter: prefetch 3 x 2 threads differs from prefetch 0"
cmp -s "$TMP/r0.safetensors" "$TMP/a0.safetensors" && fail "rrc+jitter trains as crop,flip" || pass
expect_exit 0 "eval weights trained with given constants" -- "$HERD" eval "$SPEC" --weights "$TMP/r0.safetensors" \
    --data "$TMP/sh" --threads 1
expect_out "eval applies the given constants" "^accuracy: $acc_r "

# --normalize auto travels with the weights (safetensors metadata input_mean / input_std) and
# herd eval, predict, export and import apply it: the same test accuracy as training printed
expect_exit 0 "normalize only" -- "$HERD" train "$SPEC" --data "$TMP/d" "${RUN[@]}" --normalize auto --save "$TMP/n.st" \
    --checkpoint-dir "$TMP/nck"
acc_n=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
stats=$(sed -n "s/^herd: normalising inputs by the training data's stats: mean \([0-9.]*\) std \([0-9.]*\)$/\1 \2/p" "$TMP/out")
meta=$(/usr/bin/python3 -c "
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; m = json.loads(b[8:8 + n])['__metadata__']
print('%.6g %.6g' % (float(m['input_mean']), float(m['input_std'])))" "$TMP/n.st")
[ -n "$stats" ] && [ "$meta" = "$stats" ] && pass || fail "metadata '$meta' is not the printed stats '$stats'"
# a checkpoint serves as --weights too, normalisation included
last_ck=$(ls "$TMP"/nck/*.safetensors | tail -1)
expect_exit 0 "eval a checkpoint of normalised training" -- "$HERD" eval "$SPEC" --weights "$last_ck" --data "$TMP/d" \
    --threads 1
expect_out "a checkpoint carries the normalisation" "^accuracy: $acc_n "
expect_exit 0 "eval normalised weights" -- "$HERD" eval "$SPEC" --weights "$TMP/n.st" --data "$TMP/d" --threads 1
expect_out "eval applies the normalisation" "^accuracy: $acc_n "
grep -q "normalising inputs as the weights were trained" "$TMP/err" && pass || fail "eval does not say it normalises"
# the same weights without the metadata evaluate differently (the check above can fail)
/usr/bin/python3 - "$TMP/n.st" "$TMP/plain.st" "$TMP/badmeta.st" <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
def write(path, meta):
    h['__metadata__'] = meta
    t = json.dumps(h).encode(); t += b' ' * (-len(t) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(t)) + t + b[8 + n:])
m = dict(h['__metadata__'])
write(sys.argv[2], {k: v for k, v in m.items() if not k.startswith('input_')})
write(sys.argv[3], dict(m, input_std='0.35,x'))
PY
expect_exit 0 "eval without the metadata" -- "$HERD" eval "$SPEC" --weights "$TMP/plain.st" --data "$TMP/d" --threads 1
grep -q "^accuracy: $acc_n " "$TMP/out" && fail "the normalisation made no difference" || pass
expect_exit 1 "damaged normalisation metadata" -- "$HERD" eval "$SPEC" --weights "$TMP/badmeta.st" --data "$TMP/d"
expect_err_line "damaged metadata message" "badmeta.st: metadata input_std must be 1 comma-separated finite numbers >= 0"
# predict normalises too: its classes match those of the exported ONNX model and of its import
T10K=$TMP/d/t10k-images-idx3-ubyte
expect_exit 0 "predict normalised" -- "$HERD" predict "$SPEC" --weights "$TMP/n.st" --images "$T10K" --limit 20 --threads 1
cp "$TMP/out" "$TMP/pred_st"
expect_exit 0 "predict without the metadata" -- "$HERD" predict "$SPEC" --weights "$TMP/plain.st" --images "$T10K" \
    --limit 20 --threads 1
cmp -s "$TMP/out" "$TMP/pred_st" && fail "predict ignores the normalisation" || pass
expect_exit 0 "export normalised" -- "$HERD" export "$SPEC" --weights "$TMP/n.st" --onnx "$TMP/n.onnx"
expect_exit 0 "eval exported" -- "$HERD" eval "$TMP/n.onnx" --data "$TMP/d" --threads 1
expect_out "the ONNX graph normalises" "^accuracy: $acc_n "
expect_exit 0 "predict exported" -- "$HERD" predict "$TMP/n.onnx" --images "$T10K" --limit 20 --threads 1
cmp -s "$TMP/out" "$TMP/pred_st" && pass || fail "predictions of the ONNX model differ: $(diff "$TMP/out" "$TMP/pred_st" | head -4)"
expect_exit 0 "import normalised" -- "$HERD" import "$TMP/n.onnx" --spec-out "$TMP/n.spec" --weights-out "$TMP/n2.st"
expect_exit 0 "eval imported" -- "$HERD" eval "$TMP/n.spec" --weights "$TMP/n2.st" --data "$TMP/d" --threads 1
expect_out "import keeps the normalisation" "^accuracy: $acc_n "
# fine-tuning from such weights trains on inputs normalised the same way, and keeps the stats
expect_exit 0 "fine-tune normalised weights" -- "$HERD" train "$SPEC" --data "$TMP/d" "${RUN[@]}" --epochs 1 \
    --weights "$TMP/n.st" --save "$TMP/n3.st"
grep -q "normalising inputs as the weights were trained" "$TMP/err" && pass || fail "fine-tuning ignores the stats"
expect_exit 0 "eval fine-tuned" -- "$HERD" eval "$SPEC" --weights "$TMP/n3.st" --data "$TMP/d" --threads 1
grep -q "normalising inputs as the weights were trained" "$TMP/err" && pass || fail "fine-tuned weights lost the stats"

# herd stats
expect_exit 0 "stats" -- "$HERD" stats "$TMP/sh"
expect_out "stats mean" "^channel 0: mean 0\.[0-9]+ std 0\.[0-9]+ min 0 max 1$"
expect_out "stats classes" "^classes: 0:[0-9]+ 1:"
cp "$TMP/out" "$TMP/stats_shards"
expect_exit 0 "stats of the IDX source" -- "$HERD" stats "$TMP/d"
diff <(grep -v '^source' "$TMP/out") <(grep -v '^source' "$TMP/stats_shards") >/dev/null && pass || fail "stats of shards and source differ"

# damaged shards: one line naming the file (and record), exit 1
mkdir -p "$TMP/bad"
cp "$TMP/sh/train-00000-of-00003.herd" "$TMP/bad/train-00000-of-00001.herd"
printf 'X' | dd of="$TMP/bad/train-00000-of-00001.herd" bs=1 seek=$((64 + 200 * 24 + 5 * 784 + 100)) conv=notrunc 2>/dev/null
expect_exit 1 "record CRC" -- "$HERD" train "$SPEC" --data "$TMP/bad" "${RUN[@]}" --prefetch 2
expect_err_line "record CRC message" "train-00000-of-00001.herd: record 5: CRC mismatch"
printf 'Y' | dd of="$TMP/bad/train-00000-of-00001.herd" bs=1 seek=0 conv=notrunc 2>/dev/null
expect_exit 1 "bad magic" -- "$HERD" stats "$TMP/bad"
expect_err_line "bad magic message" "train-00000-of-00001.herd: bad magic"
head -c 1000 "$TMP/sh/train-00000-of-00003.herd" >"$TMP/bad/train-00000-of-00001.herd"
expect_exit 1 "truncated index" -- "$HERD" stats "$TMP/bad"
expect_err_line "truncated index message" "train-00000-of-00001.herd: truncated index"

expect_exit 2 "bad --augment" -- "$HERD" train "$SPEC" --data "$TMP/sh" --augment rotate
expect_err_line "bad --augment message" "--augment expects a list of none, crop, flip, rrc (random_resized_crop), brightness=X, contrast=X, saturation=X, jitter=X (X in [0, 100]), found 'rotate'"
expect_exit 2 "bad jitter strength" -- "$HERD" train "$SPEC" --data "$TMP/sh" --augment flip,brightness=-1
expect_err_line "bad jitter message" "found 'flip,brightness=-1'"
expect_exit 2 "bad --normalize" -- "$HERD" train "$SPEC" --data "$TMP/sh" --normalize yes
expect_err_line "bad --normalize message" "--normalize expects none, auto, imagenet or mean=M1,M2,..:std=S1,S2,.."
expect_exit 2 "--normalize with a zero std" -- "$HERD" train "$SPEC" --data "$TMP/sh" --normalize mean=0.5:std=0
expect_exit 1 "--normalize imagenet on 1 channel" -- "$HERD" train "$SPEC" --data "$TMP/sh" "${RUN[@]}" --normalize imagenet
expect_err_line "channel count message" "--normalize gives 3 values each, the model's input has 1 channels"
summary
