# Checkpoints and exact resume: 2 epochs straight and 1.3 epochs + kill -9 + --resume give
# bit-identical weights; a kill -9 during a checkpoint write leaves the previous checkpoint
# usable; checkpoints written by 2 ranks resume on 1 and the other way round (elastic,
# --deterministic: bit-identical); bad resumes fail with one clear line.
. "$(dirname "$0")/cli_lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp
make_subset "$TMP/d" 640 200
SPEC=$SRC/examples/fashion_cnn.spec       # dropout included: its masks must resume exactly too
common=(--data "$TMP/d" --epochs 2 --batch 64 --seed 3 --threads 1 --quiet)   # 10 steps per epoch

expect_exit 0 "straight run" -- "$HERD" train "$SPEC" "${common[@]}" --save "$TMP/straight.st"

# killed at step 13 (1.3 epochs) with checkpoints every 4 steps, then resumed from step 12
HERD_TEST_FAULT=kill:0:13 "$HERD" train "$SPEC" "${common[@]}" --checkpoint-dir "$TMP/c1" --checkpoint-every 4 \
    >/dev/null 2>&1
ls "$TMP/c1"/ckpt-0000000012.safetensors >/dev/null 2>&1 && pass || fail "no checkpoint at step 12: $(ls "$TMP/c1")"
[ "$(ls "$TMP/c1" | wc -l)" = 3 ] && pass || fail "keeps the newest 3 checkpoints: $(ls "$TMP/c1")"
expect_exit 0 "resume" -- "$HERD" train "$SPEC" "${common[@]}" --resume "$TMP/c1" --save "$TMP/resumed.st"
cmp -s "$TMP/straight.st" "$TMP/resumed.st" && pass || fail "resumed weights differ from the straight run"

# kill -9 inside the 2nd checkpoint write (complete temp file, not yet renamed)
HERD_TEST_FAULT=crash:safetensors.before_rename:2 "$HERD" train "$SPEC" "${common[@]}" --checkpoint-dir "$TMP/c2" \
    --checkpoint-every 4 >/dev/null 2>&1
[ $? = 137 ] && pass || fail "the crash fault did not fire"
ls "$TMP/c2" | grep -q "^ckpt-0000000004.safetensors$" && pass || fail "previous checkpoint missing: $(ls "$TMP/c2")"
ls "$TMP/c2" | grep -q "^ckpt-0000000008.safetensors$" && fail "half-written checkpoint visible" || pass
expect_exit 0 "resume after a crash in a write" -- "$HERD" train "$SPEC" "${common[@]}" --resume "$TMP/c2" \
    --save "$TMP/resumed2.st"
cmp -s "$TMP/straight.st" "$TMP/resumed2.st" && pass || fail "resume after the crash differs from the straight run"

# elastic: 2 ranks -> 1 and 1 -> 2, deterministic mode
det=("${common[@]}" --deterministic)
expect_exit 0 "deterministic straight" -- "$HERD" train "$SPEC" "${det[@]}" --save "$TMP/dstraight.st"
HERD_TEST_FAULT=kill:0:13 "$HERD" train "$SPEC" "${det[@]}" -n 2 --checkpoint-dir "$TMP/e21" --checkpoint-every 4 \
    >/dev/null 2>&1
expect_exit 0 "resume 2 -> 1" -- "$HERD" train "$SPEC" "${det[@]}" --resume "$TMP/e21" --save "$TMP/e21.st"
cmp -s "$TMP/dstraight.st" "$TMP/e21.st" && pass || fail "2 -> 1 ranks resume differs"
HERD_TEST_FAULT=kill:0:13 "$HERD" train "$SPEC" "${det[@]}" --checkpoint-dir "$TMP/e12" --checkpoint-every 4 \
    >/dev/null 2>&1
expect_exit 0 "resume 1 -> 2" -- "$HERD" train "$SPEC" "${det[@]}" -n 2 --resume "$TMP/e12" --save "$TMP/e12.st"
cmp -s "$TMP/dstraight.st" "$TMP/e12.st" && pass || fail "1 -> 2 ranks resume differs"

# bad resumes
mkdir -p "$TMP/empty"
expect_exit 1 "resume from an empty directory" -- "$HERD" train "$SPEC" "${common[@]}" --resume "$TMP/empty"
expect_err_line "resume from an empty directory" "no checkpoint"
expect_exit 1 "resume with another batch" -- "$HERD" train "$SPEC" --data "$TMP/d" --epochs 2 --batch 32 --seed 3 \
    --threads 1 --quiet --resume "$TMP/c1"
expect_err_line "resume with another batch" "written with --batch 64"
printf 'input 1x28x28\nflatten\ndense 10\n' >"$TMP/other.spec"
expect_exit 1 "resume another model" -- "$HERD" train "$TMP/other.spec" "${common[@]}" --resume "$TMP/c1"
expect_err_line "resume another model" "c1/ckpt-0000000020.safetensors"
summary
