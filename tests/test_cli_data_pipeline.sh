# The data pipeline end to end on a Fashion-MNIST subset: herd convert to shards, training on
# shards equal to training on the IDX source, damaged shards as one-line errors, herd stats,
# --normalize auto, and the loader: --prefetch 0 and --prefetch 2 --loader-threads 2 (with
# augmentation and the cache) give bit-identical weights.
. "$(dirname "$0")/cli_lib.sh"
SPEC=$SRC/tests/data/small_cnn_nodrop.spec
make_subset "$TMP/d" 600 100
RUN=(--epochs 2 --batch 50 --seed 3 --threads 1 --progress none)

expect_exit 0 "convert" -- "$HERD" convert "$TMP/d" "$TMP/sh" --shards 3
expect_out "convert summary" "wrote 600 train records \(1x28x28, 10 classes\)"
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
    --prefetch 2 --loader-threads 2 --cache --cache-mb 1 --save "$TMP/a2.safetensors"
compare_weights "$TMP/a0.safetensors" "$TMP/a2.safetensors" 0 && pass || fail "prefetch 2 x 2 threads differs from prefetch 0"
cmp -s "$TMP/a0.safetensors" "$TMP/p0.safetensors" && fail "augmentation changed nothing" || pass

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
expect_err_line "bad --augment message" "--augment expects none, crop, flip or crop,flip, found 'rotate'"
expect_exit 2 "bad --normalize" -- "$HERD" train "$SPEC" --data "$TMP/sh" --normalize yes
summary
