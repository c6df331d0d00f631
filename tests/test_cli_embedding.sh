# Embedding models end to end through the CLI: a text classifier and a two-input ranking model
# from a CSV with categorical columns train to bit-identical weights for the same seed, resume
# from a checkpoint (lazy Adam's and Adagrad's table state included) to the same weights as an
# unbroken run, eval and predict feed every input, the --data options and the refusals
# (distributed strategies, an i32 input read by a dense layer) are one line; --embedding-shard on
# one process, herd summary -n N's plan, and its bad input; --sparse-lr and the spec's sparse_lr=.
. "$(dirname "$0")/cli_lib.sh"
D=$TMP/d
mkdir -p "$D"
/usr/bin/python3 - "$D" <<'PY'
import random, sys
d = sys.argv[1]
r = random.Random(4)
words = [["apple", "pear", "plum", "fig"], ["bolt", "nut", "gear", "axle"], ["rain", "snow", "wind", "fog"]]
for k, ws in enumerate(words):
    with open(f"{d}/class{k}.txt", "w") as f:
        for _ in range(60):
            f.write(" ".join(r.choice(ws + ["the", "a"]) for _ in range(r.randint(3, 12))) + "\n%\n")
for name, n in (("train.csv", 600), ("test.csv", 200)):
    with open(f"{d}/{name}", "w") as f:
        f.write("user,item,x,label\n")
        for _ in range(n):
            u, i = r.randrange(30), r.randrange(40)
            f.write(f"u{u},i{i},{r.random():.3f},{(u + i) % 2}\n")
PY
F="text:$D/class0.txt,$D/class1.txt,$D/class2.txt?tokenizer=word&vocab=4096&len=16&sep=%"
cat >"$TMP/text.spec" <<'S'
input 16 dtype=i32
embedding_bag 4096 8 mode=mean pad=0 std=0.1
dense 3
S
cat >"$TMP/mf.spec" <<'S'
input 1 name=x
input 1 dtype=i32 name=user
input 1 dtype=i32 name=item
embedding 64 8 from=user name=u
embedding 64 8 from=item name=i
dot u,i name=s
concat s,x
dense 2
S
C="$D/train.csv?cat=user,item&hash=64&seed=1"

for sparse in adam adagrad; do
    expect_exit 0 "text train ($sparse)" -- "$HERD" train "$TMP/text.spec" --data "$F" --epochs 4 --batch 16 --lr 0.05 \
        --seed 2 --val-split 0.2 --sparse-optimizer $sparse --save "$TMP/t1.safetensors" --threads 2
    expect_out "text source note" "180 documents in 3 classes, word tokens"
    acc=$(sed -n 's/.*val_accuracy: \([0-9.]*\)$/\1/p' "$TMP/out" | tail -1)
    /usr/bin/python3 -c "import sys; sys.exit(0 if float('$acc') > 0.9 else 1)" && pass || fail "text val accuracy $acc"
    expect_exit 0 "text train again" -- "$HERD" train "$TMP/text.spec" --data "$F" --epochs 4 --batch 16 --lr 0.05 \
        --seed 2 --val-split 0.2 --sparse-optimizer $sparse --save "$TMP/t2.safetensors" --threads 1
    cmp -s "$TMP/t1.safetensors" "$TMP/t2.safetensors" && pass || fail "same seed, other thread count: weights differ ($sparse)"
    # stop after 2 epochs (checkpoints), resume to 4: the unbroken run's weights
    rm -rf "$TMP/ck"
    expect_exit 0 "text 2 epochs with checkpoints" -- "$HERD" train "$TMP/text.spec" --data "$F" --epochs 2 --batch 16 \
        --lr 0.05 --seed 2 --val-split 0.2 --sparse-optimizer $sparse --checkpoint-dir "$TMP/ck" --threads 2
    expect_exit 0 "text resume" -- "$HERD" train "$TMP/text.spec" --data "$F" --epochs 4 --batch 16 --lr 0.05 --seed 2 \
        --val-split 0.2 --sparse-optimizer $sparse --resume "$TMP/ck" --save "$TMP/t3.safetensors" --threads 2
    cmp -s "$TMP/t1.safetensors" "$TMP/t3.safetensors" && pass || fail "resumed weights differ from an unbroken run ($sparse)"
done

expect_exit 0 "grad norms of a model with a sparse table" -- "$HERD" train "$TMP/text.spec" --data "$F" --epochs 1 \
    --batch 16 --tensorboard "$TMP/tb" --tb-every 2 --tb-grad-norms
ls "$TMP"/tb/events.out.tfevents.* >/dev/null 2>&1 && pass || fail "no TensorBoard event file"

expect_exit 0 "mf train" -- "$HERD" train "$TMP/mf.spec" --data "$C" --epochs 6 --batch 32 --lr 0.05 --seed 1 \
    --save "$TMP/m.safetensors"
expect_out "hash note" "user: 30 values hashed into 64 rows"
expect_out "test accuracy" "^test accuracy: "
expect_exit 0 "mf eval" -- "$HERD" eval "$TMP/mf.spec" --data "$C" --weights "$TMP/m.safetensors"
expect_out "eval feeds three inputs" "^accuracy: "
expect_exit 0 "mf predict" -- "$HERD" predict "$TMP/mf.spec" --data "$C" --weights "$TMP/m.safetensors" --limit 3
[ "$(wc -l <"$TMP/out")" = 4 ] && pass || fail "predict prints a header and 3 rows"

expect_exit 1 "vocabulary pair refused" -- "$HERD" train "$TMP/mf.spec" --data "$D/train.csv?cat=user,item" --epochs 1
expect_err_line "vocabulary pair" "add hash=N"
expect_exit 0 "deterministic groups in one process" -- "$HERD" train "$TMP/text.spec" --data "$F" --epochs 1 --deterministic
grep -q "summed in group order (--deterministic)" "$TMP/err" && pass || fail "deterministic groups: no exchange note"
printf 'input 16 dtype=i32\ndense 3\n' >"$TMP/bad.spec"
expect_exit 1 "dense on ids" -- "$HERD" train "$TMP/bad.spec" --data "$F" --epochs 1
expect_err_line "dense on ids" "bad.spec:2:1: dense reads input 'input', which holds i32 ids"
printf 'input 8 dtype=i32\nembedding_bag 4096 8\ndense 3\n' >"$TMP/short.spec"
expect_exit 1 "length mismatch" -- "$HERD" train "$TMP/short.spec" --data "$F" --epochs 1
expect_err_line "length mismatch" "is i32 16 but the model's input 'input' is i32 8"
# NPY bags as ids + offsets (nn.EmbeddingBag's form): bad offsets are one line naming the file and row
/usr/bin/python3 - "$D" <<'PY'
import sys
import numpy as np
d = sys.argv[1]
np.save(f"{d}/bx.npy", np.array([3, 1, 4, 1, 5, 9, 2], np.int64))
np.save(f"{d}/by.npy", np.array([0, 1, 0], np.int32))
for name, off in (("ok", [0, 2, 3]), ("dec", [0, 3, 2]), ("empty", [0, 2, 2]), ("start", [1, 2, 3]), ("past", [0, 2, 9]),
                  ("lastempty", [0, 2, 7])):
    np.save(f"{d}/off_{name}.npy", np.array(off, np.int64))
np.save(f"{d}/nx.npy", np.array([3, -1, 4], np.int64))
np.save(f"{d}/ny.npy", np.array([0, 1], np.int32))
np.save(f"{d}/off_n.npy", np.array([0, 1], np.int64))
PY
printf 'input 4 dtype=i32\nembedding_bag 10 4 mode=mean\ndense 2\n' >"$TMP/b4.spec"
expect_exit 0 "NPY ids + offsets" -- "$HERD" train "$TMP/b4.spec" --data "$D/bx.npy?offsets=$D/off_ok.npy" --epochs 1 --batch 2
expect_exit 1 "bags longer than len" -- "$HERD" train "$TMP/b4.spec" --data "$D/bx.npy?offsets=$D/off_ok.npy&len=3" --epochs 1
expect_err_line "bags longer than len" "off_ok.npy: row 2: bag 2 holds 4 ids, more than len=3"
expect_exit 1 "decreasing offsets" -- "$HERD" train "$TMP/b4.spec" --data "$D/bx.npy?offsets=$D/off_dec.npy" --epochs 1
expect_err_line "decreasing offsets" "off_dec.npy: row 2: offset 2 is below the one before (3): offsets may not decrease"
expect_exit 1 "empty bag" -- "$HERD" train "$TMP/b4.spec" --data "$D/bx.npy?offsets=$D/off_empty.npy" --epochs 1
expect_err_line "empty bag" "off_empty.npy: row 2: bag 1 is empty"
expect_exit 1 "first offset" -- "$HERD" train "$TMP/b4.spec" --data "$D/bx.npy?offsets=$D/off_start.npy" --epochs 1
expect_err_line "first offset" "off_start.npy: row 0: the first offset is 1, not 0"
expect_exit 1 "offset past the ids" -- "$HERD" train "$TMP/b4.spec" --data "$D/bx.npy?offsets=$D/off_past.npy" --epochs 1
expect_err_line "offset past the ids" "off_past.npy: row 2: offset 9 is past the 7 ids"
expect_exit 1 "last bag empty" -- "$HERD" train "$TMP/b4.spec" --data "$D/bx.npy?offsets=$D/off_lastempty.npy" --epochs 1
expect_err_line "last bag empty" "off_lastempty.npy: row 2: bag 2 is empty (the last offset is the number of ids)"
expect_exit 1 "negative id in a bag" -- "$HERD" train "$TMP/b4.spec" --data "$D/nx.npy?offsets=$D/off_n.npy&len=4" --epochs 1 --batch 2
expect_err_line "negative id in a bag" "bag 1: id -1 at position 1 is negative"
# bench/embedding_synth: power-law bags of 1..8 ids with a planted signal an embedding_bag model learns
/usr/bin/python3 "$SRC/bench/embedding_synth" "$TMP/synth" 4000 5000 8 --seed 3 >"$TMP/out" && pass || fail "embedding_synth"
grep -q "the 1% most drawn rows take" "$TMP/out" && pass || fail "embedding_synth prints the skew"
printf 'input 8 dtype=i32\nembedding_bag 5000 8 mode=mean\ndense 2\n' >"$TMP/synth.spec"
expect_exit 0 "train on synthetic bags" -- "$HERD" train "$TMP/synth.spec" --data "$TMP/synth/x.npy?x=i32" --val-split 0.2 \
    --epochs 4 --lr 0.02 --batch 32 --seed 1
acc=$(sed -n 's/.*val_accuracy: \([0-9.]*\)$/\1/p' "$TMP/out" | tail -1)
/usr/bin/python3 -c "import sys; sys.exit(0 if float('$acc') > 0.65 else 1)" && pass || fail "planted signal not learned: $acc"
# batches large enough that the bags and the optimizer's rows are split over threads: the same weights
for t in 1 2; do
    expect_exit 0 "synthetic bags, $t threads" -- "$HERD" train "$TMP/synth.spec" --data "$TMP/synth/x.npy?x=i32" --epochs 1 \
        --batch 1024 --seed 1 --threads $t --save "$TMP/syn$t.st"
done
cmp -s "$TMP/syn1.st" "$TMP/syn2.st" && pass || fail "synthetic bags: 2 threads differ from 1"

# --embedding-shard (tests/test_embedding_shard_threads.c trains with it; slow: under mpirun): one
# process row-wise is one process's bits; the plan per rank from herd summary -n N; bad input one line
common=(--epochs 1 --batch 16 --lr 0.05 --seed 2 --threads 1)
expect_exit 0 "text unsharded" -- "$HERD" train "$TMP/text.spec" --data "$F" "${common[@]}" --save "$TMP/u.st"
expect_exit 0 "text sharded, one process" -- "$HERD" train "$TMP/text.spec" --data "$F" "${common[@]}" \
    --embedding-shard row --save "$TMP/s.st"
cmp -s "$TMP/u.st" "$TMP/s.st" && pass || fail "--embedding-shard row on one process: not the unsharded bits"
# --sparse-lr: equal to --lr gives the default's bits; the spec's train sparse_lr= is the same as the option;
# another rate other weights; out of range one line
expect_exit 0 "--sparse-lr = --lr" -- "$HERD" train "$TMP/text.spec" --data "$F" "${common[@]}" --sparse-lr 0.05 \
    --save "$TMP/same.st"
cmp -s "$TMP/u.st" "$TMP/same.st" && pass || fail "--sparse-lr equal to --lr: not the default's bits"
expect_exit 0 "--sparse-lr 0.1" -- "$HERD" train "$TMP/text.spec" --data "$F" "${common[@]}" --sparse-lr 0.1 \
    --save "$TMP/twice.st"
expect_out "--sparse-lr in the start line" "adam lr 0.05, tables lr 0.1,"
cmp -s "$TMP/u.st" "$TMP/twice.st" && fail "--sparse-lr 0.1: the default's weights" || pass
{ cat "$TMP/text.spec"; echo "train sparse_lr=0.1"; } >"$TMP/text_slr.spec"
expect_exit 0 "spec sparse_lr=0.1" -- "$HERD" train "$TMP/text_slr.spec" --data "$F" "${common[@]}" --save "$TMP/spec.st"
compare_weights "$TMP/twice.st" "$TMP/spec.st" 0 >/dev/null && pass || fail "the spec's sparse_lr=0.1: not --sparse-lr 0.1's weights"
expect_exit 2 "--sparse-lr 0" -- "$HERD" train "$TMP/text.spec" --data "$F" "${common[@]}" --sparse-lr 0
expect_err_line "--sparse-lr 0" "--sparse-lr"
expect_exit 0 "summary -n 4" -- "$HERD" summary "$TMP/mf.spec" -n 4
expect_out "summary: the auto plan" "sharded row-wise over 4 ranks \\(auto: table-wise would put 2048 bytes on rank 0, 200% of an even share"
expect_out "summary: rank 3's bytes" "rank 3 +1024 bytes \\(25.0%\\)"
expect_exit 0 "summary of two inputs" -- "$HERD" summary "$SRC/examples/dlrm_small.spec"
expect_out "summary: each input's dims and dtype" "^Model: .*examples/dlrm_small.spec \\(inputs counts 13, ids 26 i32\\)$"
expect_exit 0 "summary -n 2 table" -- "$HERD" summary "$TMP/mf.spec" -n 2 --embedding-shard table
expect_out "summary: table-wise" "rank 1 +2048 bytes \\(50.0%\\)"
printf 'input 2\ndense 2\n' >"$TMP/dense.spec"
/usr/bin/python3 -c "print('a,b,label'); [print(f'{i * 0.1:.1f},{i % 3},{i % 2}') for i in range(20)]" >"$D/x.csv"
expect_exit 1 "no tables to shard" -- "$HERD" train "$TMP/dense.spec" --data "$D/x.csv" --epochs 1 --embedding-shard row
expect_err_line "no tables to shard" "--embedding-shard: the model has no embedding table to shard"
expect_exit 1 "unknown plan" -- "$HERD" train "$TMP/text.spec" --data "$F" "${common[@]}" --embedding-shard diagonal
expect_err_line "unknown plan" "--embedding-shard diagonal: unknown plan (expected table, row or auto)"
expect_exit 2 "summary: unknown plan" -- "$HERD" summary "$TMP/mf.spec" -n 2 --embedding-shard diagonal
expect_err_line "summary: unknown plan" "--embedding-shard diagonal: unknown plan"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
