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

# srun with Slurm's default --mpi=none: every task would train alone as rank 0 of 1
if "$HERD" --version 2>/dev/null | grep -q "mpi: yes" || [ -n "$(command -v mpirun)" ]; then
    SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=1 expect_exit 1 "srun --mpi=none" -- "$HERD" train "$TMP/lin.spec" --data "$TMP/d" --epochs 1
    expect_err_line "srun --mpi=none" "srun started 2 tasks, but they cannot reach each other through MPI"
fi

summary
