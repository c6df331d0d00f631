# Bad input through the CLI: usage errors exit 2, everything else exits 1; each prints
# exactly one line on stderr naming the file (and line:col for specs). No crash, no hang.
. "$(dirname "$0")/cli_lib.sh"
SPEC=$SRC/examples/fashion_cnn.spec

expect_exit 0 "herd --help" -- "$HERD" --help
expect_out "herd --help lists commands" "train.*"
for c in train eval predict summary; do
    expect_exit 0 "herd $c --help" -- "$HERD" $c --help
    expect_out "herd $c --help" "usage: herd $c"
done
"$HERD" train --help >"$TMP/out"
for o in --data --epochs --batch --lr --optimizer --weight-decay --seed --threads --val-split --log-json --save \
         --backend --lr-schedule --warmup --clip-norm --strategy --stages --microbatches --schedule --split --servers --staleness \
         --checkpoint-dir --checkpoint-every --resume --on-nan --workers --bucket-mb --grad-compress --deterministic; do
    grep -q -- "$o" "$TMP/out" && pass || fail "train --help lacks $o"
done

expect_exit 2 "no command" -- "$HERD"
expect_exit 2 "unknown command" -- "$HERD" trian
expect_err_line "unknown command" "unknown command 'trian'"
expect_exit 2 "unknown option" -- "$HERD" train "$SPEC" --epochz 3
expect_err_line "unknown option" "unknown option '--epochz'"
expect_exit 2 "bad number" -- "$HERD" train "$SPEC" --epochs three
expect_err_line "bad number" "--epochs expects an integer"
expect_exit 2 "out of range" -- "$HERD" train "$SPEC" --lr -1
expect_err_line "out of range" "--lr expects a number in"
expect_exit 2 "negative seed behind a blank" -- "$HERD" train "$SPEC" --seed " -1"
expect_err_line "negative seed behind a blank" "--seed expects a non-negative integer"
expect_exit 2 "missing value" -- "$HERD" train "$SPEC" --batch
expect_err_line "missing value" "--batch needs a value"
expect_exit 2 "missing spec" -- "$HERD" train
expect_exit 2 "eval without weights" -- "$HERD" eval "$SPEC"
expect_err_line "eval without weights" "eval needs --weights"
expect_exit 2 "bad progress mode" -- "$HERD" train "$SPEC" --progress fancy
expect_err_line "bad progress mode" "--progress expects"

printf 'input 1x28x28\nconvv 32 3\n' >"$TMP/bad.spec"
expect_exit 1 "bad spec" -- "$HERD" train "$TMP/bad.spec"
expect_err_line "bad spec" "$TMP/bad.spec:2:1: unknown layer 'convv'"
expect_exit 1 "missing spec file" -- "$HERD" summary "$TMP/none.spec"
expect_err_line "missing spec file" "$TMP/none.spec: cannot open"
expect_exit 1 "unknown backend" -- "$HERD" summary "$SPEC" --backend gpu
expect_err_line "unknown backend" "unknown backend 'gpu'"
expect_exit 1 "missing data" -- "$HERD" train "$SPEC" --data "$TMP/nodata"
expect_err_line "missing data" "$TMP/nodata"

# damaged IDX files: wrong magic, truncated
make_subset "$TMP/d" 64 32
cp -r "$TMP/d" "$TMP/magic"
printf '\x00\x00\x09\x03' | dd of="$TMP/magic/train-images-idx3-ubyte" conv=notrunc 2>/dev/null
expect_exit 1 "wrong IDX magic" -- "$HERD" train "$SPEC" --data "$TMP/magic" --epochs 1
expect_err_line "wrong IDX magic" "$TMP/magic/train-images-idx3-ubyte"
cp -r "$TMP/d" "$TMP/trunc"
truncate -s 5000 "$TMP/trunc/t10k-images-idx3-ubyte"
expect_exit 1 "truncated IDX" -- "$HERD" train "$SPEC" --data "$TMP/trunc" --epochs 1
expect_err_line "truncated IDX" "$TMP/trunc/t10k-images-idx3-ubyte"
cp -r "$TMP/d" "$TMP/count"
cp "$TMP/count/t10k-labels-idx1-ubyte" "$TMP/count/train-labels-idx1-ubyte"
expect_exit 1 "label count mismatch" -- "$HERD" train "$SPEC" --data "$TMP/count" --epochs 1

expect_exit 1 "unknown optimizer" -- "$HERD" train "$SPEC" --data "$TMP/d" --optimizer adamm
expect_err_line "unknown optimizer" "unknown optimizer 'adamm'"

# a model whose input does not fit the data
printf 'input 3x32x32\nflatten\ndense 10\n' >"$TMP/cifar.spec"
expect_exit 1 "shape mismatch with data" -- "$HERD" train "$TMP/cifar.spec" --data "$TMP/d" --epochs 1
expect_err_line "shape mismatch with data" "model's input is 3x32x32"

# weights that do not fit the model; a damaged weights file; a missing images file
"$HERD" train "$TMP/cifar.spec" --help >/dev/null
printf 'input 1x28x28\nflatten\ndense 10\n' >"$TMP/lin.spec"
expect_exit 0 "train tiny linear model" -- "$HERD" train "$TMP/lin.spec" --data "$TMP/d" --epochs 1 --save "$TMP/lin.safetensors"
expect_exit 1 "weights of another model" -- "$HERD" eval "$SPEC" --data "$TMP/d" --weights "$TMP/lin.safetensors"
expect_err_line "weights of another model" "$TMP/lin.safetensors"
head -c 100 "$TMP/lin.safetensors" >"$TMP/cut.safetensors"
expect_exit 1 "truncated weights" -- "$HERD" eval "$TMP/lin.spec" --data "$TMP/d" --weights "$TMP/cut.safetensors"
expect_err_line "truncated weights" "$TMP/cut.safetensors"
expect_exit 1 "missing images" -- "$HERD" predict "$TMP/lin.spec" --weights "$TMP/lin.safetensors" --images "$TMP/none.idx"
expect_err_line "missing images" "$TMP/none.idx"
# --save into a directory that does not exist fails cleanly and leaves the old file alone
cp "$TMP/lin.safetensors" "$TMP/keep.safetensors"
expect_exit 1 "unwritable save path" -- "$HERD" train "$TMP/lin.spec" --data "$TMP/d" --epochs 1 --save "$TMP/no/dir/w.safetensors"
cmp -s "$TMP/lin.safetensors" "$TMP/keep.safetensors" && pass || fail "earlier weights file changed"

# not a regular file where herd reads one: a FIFO (open() would wait for a writer forever), a
# directory, a device that never ends; one line naming the file, never a hang
mkdir -p "$TMP/odd/dir.spec" "$TMP/odd/c"
for f in m.spec m.onnx w.safetensors trainx.npy a.tfrecord a.herd t.tok a.txt b.txt c.tsv d.db a.csv c/data_batch_1.bin; do
    mkfifo "$TMP/odd/$f"
done
odd() { # odd WHAT PATTERN -- herd args...
    local what=$1 pattern=$2
    shift 3
    expect_exit 1 "$what" -- timeout 20 "$HERD" "$@"
    expect_err_line "$what" "$pattern"
}
O=$TMP/odd
odd "FIFO spec" "$O/m.spec: not a regular file (a FIFO)" -- summary "$O/m.spec"
odd "FIFO onnx" "$O/m.onnx: not a regular file (a FIFO)" -- summary "$O/m.onnx"
odd "directory spec" "$O/dir.spec: not a regular file (a directory)" -- summary "$O/dir.spec"
odd "FIFO weights" "$O/w.safetensors: not a regular file (a FIFO)" -- eval "$TMP/lin.spec" --data "$TMP/d" --weights "$O/w.safetensors"
odd "FIFO npy" "$O/trainx.npy: not a regular file (a FIFO)" -- stats "$O/trainx.npy"
odd "FIFO tfrecord" "$O/a.tfrecord: not a regular file (a FIFO)" -- stats "$O/a.tfrecord"
odd "FIFO shard" "$O/a.herd: not a regular file (a FIFO)" -- stats "$O/a.herd"
odd "FIFO csv" "$O/a.csv: not a regular file (a FIFO)" -- stats "$O/a.csv"
odd "FIFO CIFAR-10" "$O/c: directory holds neither" -- stats "$O/c"
odd "FIFO token file" "$O/t.tok: not a regular file (a FIFO)" -- stats "lm:$O/t.tok?ctx=4"
odd "FIFO text" "$O/a.txt: not a regular file (a FIFO)" -- stats "text:$O/a.txt,$O/b.txt"
odd "device text" "/dev/zero: not a regular file (a device)" -- stats "text:/dev/zero,$O/b.txt"
odd "FIFO criteo" "$O/c.tsv: not a regular file (a FIFO)" -- stats "criteo:$O/c.tsv?hash=10"
odd "FIFO sqlite" "$O/d.db: not a regular file (a FIFO)" -- stats "sqlite:$O/d.db?query=SELECT 1 AS label"
# a FIFO named as the newest checkpoint: skipped as damaged, the run resumes from the one before
expect_exit 0 "checkpoints of the linear model" -- "$HERD" train "$TMP/lin.spec" --data "$TMP/d" --epochs 1 --quiet \
    --checkpoint-dir "$O/ck" --checkpoint-every 1
mkfifo "$O/ck/ckpt-0000099999.safetensors"
expect_exit 0 "resume past a FIFO checkpoint" -- timeout 30 "$HERD" train "$TMP/lin.spec" --data "$TMP/d" --epochs 2 \
    --resume "$O/ck" --progress none
grep -q "skipped 1 damaged checkpoint (newest: $O/ck/ckpt-0000099999.safetensors: not a regular file (a FIFO))" "$TMP/err" &&
    pass || fail "resume past a FIFO checkpoint: $(head -c 300 "$TMP/err")"
odd "FIFO tokenizer input" "$O/a.txt: not a regular file (a FIFO)" -- convert "text:$O/a.txt" "$O/out.tok" --tokenizer byte

# srun with Slurm's default --mpi=none: every task would train alone as rank 0 of 1
if "$HERD" --version 2>/dev/null | grep -q "mpi: yes" || [ -n "$(command -v mpirun)" ]; then
    SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=1 expect_exit 1 "srun --mpi=none" -- "$HERD" train "$TMP/lin.spec" --data "$TMP/d" --epochs 1
    expect_err_line "srun --mpi=none" "srun started 2 tasks, but they cannot reach each other through MPI"
fi

summary
