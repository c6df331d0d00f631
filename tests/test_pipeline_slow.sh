# Pipeline parallelism: P = 2 and 3 stages with M = 1 and 4 micro-batches, GPipe and 1F1B,
# and 2 pipelines of 2 stages (-n 4) train to the weights of the unsplit model (float
# tolerance); --split by name; cuts inside residual blocks of ResNet-20 (every tensor that
# crosses a cut is sent) train to the unsplit weights too; misuse is refused; a killed stage
# rank stops the job within 10 s.
. "$(dirname "$0")/cli_lib.sh"
require_mpi "pipeline tests"
make_subset "$TMP/d" 640 200
SPEC=$SRC/tests/data/small_cnn_nodrop.spec   # no dropout: masks depend on how a batch is cut into micro-batches
common=(--data "$TMP/d" --epochs 1 --batch 64 --seed 5 --threads 1 --quiet --optimizer adam)
expect_exit 0 "unsplit" -- "$HERD" train "$SPEC" "${common[@]}" --save "$TMP/one.st"
for cfg in "2 1 gpipe" "2 4 gpipe" "2 4 1f1b" "3 1 1f1b" "3 4 gpipe" "3 4 1f1b"; do
    set -- $cfg
    expect_exit 0 "P=$1 M=$2 $3" -- "$HERD" train "$SPEC" "${common[@]}" -n $1 --strategy pipeline --stages $1 \
        --microbatches $2 --schedule $3 --save "$TMP/p.st"
    grep -q "^pipeline bubble: measured" "$TMP/out" && pass || fail "no bubble figure"
    compare_weights "$TMP/one.st" "$TMP/p.st" 1e-5 && pass || fail "P=$1 M=$2 $3 differs from the unsplit model"
done
expect_exit 0 "2 pipelines x 2 stages" -- "$HERD" train "$SPEC" "${common[@]}" -n 4 --strategy pipeline --stages 2 \
    --save "$TMP/p4.st"
compare_weights "$TMP/one.st" "$TMP/p4.st" 1e-5 && pass || fail "pipeline + data parallel differs"
# checkpoints: 2 epochs straight = 1 epoch, stop, --resume for the second (bit-identical, P=2 M=4
# 1F1B, and 2 pipelines x 2 stages); a pipeline's checkpoint resumes in one process (elastic)
# to the unsplit model's weights within float tolerance
PIPE=(-n 2 --strategy pipeline --stages 2 --microbatches 4 --schedule 1f1b)
expect_exit 0 "pipeline, 2 epochs straight" -- "$HERD" train "$SPEC" "${common[@]}" "${PIPE[@]}" --epochs 2 \
    --save "$TMP/straight.st"
expect_exit 0 "pipeline, 1 epoch with checkpoints" -- "$HERD" train "$SPEC" "${common[@]}" "${PIPE[@]}" --epochs 1 \
    --checkpoint-dir "$TMP/pck" --checkpoint-every 4
cp -r "$TMP/pck" "$TMP/pck1"
expect_exit 0 "pipeline, resumed for epoch 2" -- "$HERD" train "$SPEC" "${common[@]}" "${PIPE[@]}" --epochs 2 \
    --resume "$TMP/pck" --save "$TMP/resumed.st"
cmp -s "$TMP/straight.st" "$TMP/resumed.st" && pass || fail "pipeline resume is not bit-identical to the straight run"
expect_exit 0 "2x2, 2 epochs straight" -- "$HERD" train "$SPEC" "${common[@]}" -n 4 --strategy pipeline --stages 2 \
    --epochs 2 --save "$TMP/straight4.st"
expect_exit 0 "2x2, 1 epoch with checkpoints" -- "$HERD" train "$SPEC" "${common[@]}" -n 4 --strategy pipeline \
    --stages 2 --epochs 1 --checkpoint-dir "$TMP/pck4"
expect_exit 0 "2x2, resumed" -- "$HERD" train "$SPEC" "${common[@]}" -n 4 --strategy pipeline --stages 2 --epochs 2 \
    --resume "$TMP/pck4" --save "$TMP/resumed4.st"
cmp -s "$TMP/straight4.st" "$TMP/resumed4.st" && pass || fail "2x2 pipeline resume is not bit-identical"
expect_exit 0 "unsplit, 2 epochs" -- "$HERD" train "$SPEC" "${common[@]}" --epochs 2 --save "$TMP/one2.st"
expect_exit 0 "pipeline checkpoint resumed in one process" -- "$HERD" train "$SPEC" "${common[@]}" --epochs 2 \
    --resume "$TMP/pck1" --save "$TMP/elastic.st"
compare_weights "$TMP/one2.st" "$TMP/elastic.st" 1e-5 && pass || fail "elastic resume of a pipeline checkpoint differs"

# --clip-norm clips by the whole model's gradient norm, not each stage's own
expect_exit 0 "unsplit, clipped" -- "$HERD" train "$SPEC" "${common[@]}" --clip-norm 0.05 --save "$TMP/one_c.st"
expect_exit 0 "P=3, clipped" -- "$HERD" train "$SPEC" "${common[@]}" -n 3 --strategy pipeline --stages 3 --clip-norm 0.05 \
    --save "$TMP/p_c.st"
compare_weights "$TMP/one_c.st" "$TMP/p_c.st" 1e-5 && pass || fail "clipped pipeline differs from the clipped unsplit model"
compare_weights "$TMP/one.st" "$TMP/one_c.st" 1e-3 && fail "--clip-norm 0.05 clipped nothing" || pass
expect_exit 0 "2 pipelines x 2 stages, clipped" -- "$HERD" train "$SPEC" "${common[@]}" -n 4 --strategy pipeline \
    --stages 2 --clip-norm 0.05 --save "$TMP/p4_c.st"
compare_weights "$TMP/one_c.st" "$TMP/p4_c.st" 1e-5 && pass || fail "clipped pipeline + data parallel differs"
expect_exit 0 "--split by name" -- "$HERD" train "$SPEC" "${common[@]}" -n 2 --strategy pipeline --stages 2 \
    --split maxpool1 --save "$TMP/ps.st"
compare_weights "$TMP/one.st" "$TMP/ps.st" 1e-5 && pass || fail "--split maxpool1 differs"

# layout errors are found before mpirun starts: one line, exit 2 (not one per rank under MPI's banner)
expect_exit 2 "unknown split layer" -- "$HERD" train "$SPEC" "${common[@]}" -n 2 --strategy pipeline --split convv
expect_err_line "unknown split layer" "no layer named 'convv'"
expect_exit 2 "stages must divide ranks" -- "$HERD" train "$SPEC" "${common[@]}" -n 3 --strategy pipeline --stages 2
expect_err_line "stages must divide ranks" "that --stages 2 divides"
# graph cuts: ResNet-20 cut inside a residual block (the skip connection and the main branch
# both cross the cut), in 2 and 3 stages, against the unsplit model
mkdir -p "$TMP/r"
/usr/bin/python3 -c "
import numpy as np
r = np.random.default_rng(4)
np.save('$TMP/r/train_x.npy', r.random((96, 3, 32, 32), dtype=np.float32))
np.save('$TMP/r/train_y.npy', r.integers(0, 10, 96))"
RES=$SRC/examples/resnet20_cifar.spec
rcommon=(--data "$TMP/r/train_x.npy" --epochs 1 --batch 32 --seed 3 --threads 1 --quiet --optimizer momentum --lr 0.05)
expect_exit 0 "resnet20 unsplit" -- "$HERD" train "$RES" "${rcommon[@]}" --save "$TMP/r1.st"
expect_exit 0 "resnet20, cut inside block s1b1" -- "$HERD" train "$RES" "${rcommon[@]}" -n 2 --strategy pipeline \
    --stages 2 --microbatches 1 --split conv2 --save "$TMP/r2.st"
compare_weights "$TMP/r1.st" "$TMP/r2.st" 1e-5 && pass || fail "resnet20 cut inside a block differs from unsplit"
expect_exit 0 "resnet20, 3 stages cut inside two blocks" -- "$HERD" train "$RES" "${rcommon[@]}" -n 3 \
    --strategy pipeline --stages 3 --microbatches 1 --split conv2,s2b1_main --schedule gpipe --save "$TMP/r3.st"
compare_weights "$TMP/r1.st" "$TMP/r3.st" 1e-5 && pass || fail "resnet20 in 3 stages differs from unsplit"
printf 'input 1x28x28\nconv 4 3 pad=1\nconv 1 1\nadd input\nflatten\ndense 10\n' > "$TMP/reads_input.spec"
expect_exit 2 "a later stage reading the model input" -- "$HERD" train "$TMP/reads_input.spec" --data "$TMP/d" \
    --epochs 1 --quiet -n 2 --strategy pipeline --split conv1 --microbatches 1
expect_err_line "a later stage reading the model input" "reads the model's input"
expect_exit 2 "batch norm with micro-batches" -- "$HERD" train "$SRC/tests/data/residual_bn.spec" --data "$TMP/d" \
    --epochs 1 --quiet -n 2 --strategy pipeline --microbatches 4
expect_err_line "batch norm with micro-batches" "batch norm with --microbatches > 1"

# a stage hung in its main thread, 3 stages: every stage's first line names the hung one, not the
# healthy neighbour it waits on (the hang fault fires on every stage, not only the last)
for r in 0 1; do
    fault_case "stage $r of 3 hung" hang:$r:3 "rank $r stopped making progress" 14 -- "$SPEC" "${common[@]}" \
        --epochs 5 -n 3 --strategy pipeline --stages 3 --timeout 5
done
expect_exit 2 "bad schedule" -- "$HERD" train "$SPEC" --strategy pipeline --schedule zigzag

# a stage rank killed mid-step: everyone stops, non-zero, within 10 s, and it is named
start=$(date +%s)
HERD_TEST_FAULT=kill:1:3 "$HERD" train "$SPEC" "${common[@]}" -n 2 --strategy pipeline --timeout 5 >"$TMP/out" 2>"$TMP/err"
rc=$?
took=$(( $(date +%s) - start ))
[ $rc != 0 ] && pass || fail "killed stage: exit 0"
[ $took -le 10 ] && pass || fail "killed stage: took $took s"
grep -qi "rank 1" "$TMP/err" && pass || fail "killed stage not named: $(head -c 400 "$TMP/err")"
summary
