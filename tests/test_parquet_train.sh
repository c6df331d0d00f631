# Fashion-MNIST written to a partitioned Parquet directory (Spark's layout: train/part=K/
# part-0000K-….snappy.parquet, _SUCCESS; images as a list<uint8> column, labels int64) by an
# independent writer (npm parquet-wasm) trains to the same weights as from IDX: same samples
# in the same order, same seed => cmp-identical weights and the same test accuracy. The
# row-group cache is held to 1 MiB (5 of the 9 row groups of up to 250 images), so shuffled
# reads evict and decode row groups again while training.
. "$(dirname "$0")/cli_lib.sh"
. "$SRC/tests/parquet/npm_writer.sh"
SPEC=$SRC/examples/fashion_cnn.spec
make_subset "$TMP/idx" 2000 500
parquet_write fashion /usr/share/datasets/fashion-mnist "$TMP/pq" 2000 250 3 && pass || fail "the npm writer failed"
[ -f "$TMP/pq/train/part=2/part-00002-f00d.c000.snappy.parquet" ] && [ -f "$TMP/pq/test/_SUCCESS" ] && pass ||
    fail "unexpected layout: $(find "$TMP/pq" | head)"

PQ="parquet:$TMP/pq/train?image=image&shape=1x28x28&cache_mb=1"
expect_exit 0 "stats of the Parquet directory" -- "$HERD" stats "$PQ"
cp "$TMP/out" "$TMP/stats_pq"
expect_exit 0 "stats of IDX" -- "$HERD" stats "$TMP/idx"
diff <(grep -v '^source' "$TMP/stats_pq") <(grep -v '^source' "$TMP/out") >/dev/null && pass ||
    fail "stats differ: $(diff <(grep -v '^source' "$TMP/stats_pq") <(grep -v '^source' "$TMP/out") | head -6)"

ARGS=(--epochs 1 --batch 32 --seed 5 --threads 2 --prefetch 4 --loader-threads 2)
expect_exit 0 "train from IDX" -- "$HERD" train "$SPEC" --data "$TMP/idx" "${ARGS[@]}" --save "$TMP/w_idx.safetensors"
acc_idx=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
expect_exit 0 "train from Parquet" -- "$HERD" train "$SPEC" --data "$PQ" "${ARGS[@]}" --save "$TMP/w_pq.safetensors"
acc_pq=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
cmp -s "$TMP/w_idx.safetensors" "$TMP/w_pq.safetensors" && pass || fail "Parquet and IDX gave different weights"
[ -n "$acc_idx" ] && [ "$acc_idx" = "$acc_pq" ] && pass || fail "test accuracy: IDX '$acc_idx', Parquet '$acc_pq' (test split from $TMP/pq/test)"
summary
