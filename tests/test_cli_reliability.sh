# What an operator meets first, single process (fast; the MPI cases are in test_dp_slow,
# test_ps_slow, test_pipeline_slow): one checkpoint directory per run, resume refuses what
# changes results, a damaged newest checkpoint falls back, every output's write error is
# one line and exit 1, output places are checked before training, layout errors are found
# before launching workers, and SIGINT stops at a step boundary without leaving temp files.
. "$(dirname "$0")/cli_lib.sh"
make_subset "$TMP/d" 640 200
printf 'input 1x28x28\nflatten\ndense 10\n' >"$TMP/m.spec"
C=("$TMP/m.spec" --data "$TMP/d" --epochs 2 --batch 64 --seed 3 --threads 1 --quiet)   # 10 steps per epoch
tmp_files() { ls -a "$1" | grep -c '\.tmp\.' ; }

# ---- checkpoint directories belong to one run ----
expect_exit 0 "first run" -- "$HERD" train "${C[@]}" --checkpoint-dir "$TMP/ck" --checkpoint-every 4 \
    --save "$TMP/straight.st"
expect_exit 1 "a second run into the same directory" -- "$HERD" train "${C[@]}" --checkpoint-dir "$TMP/ck"
expect_err_line "a second run into the same directory" "already holds checkpoints of another run"
[ "$(ls "$TMP/ck" | grep -c '^ckpt-')" = 3 ] && pass || fail "the refused run touched the checkpoints: $(ls "$TMP/ck")"
# a concurrent writer: the directory's lock is held (as by a running herd)
mkdir "$TMP/busy"
exec 9>"$TMP/busy/.herd-lock"
flock -n 9 && pass || fail "could not take the lock for the test"
expect_exit 1 "a directory another run holds" -- "$HERD" train "${C[@]}" --checkpoint-dir "$TMP/busy"
expect_err_line "a directory another run holds" "checkpoint directory is in use by another herd run"
exec 9>&-
expect_exit 0 "the lock is free again" -- "$HERD" train "${C[@]}" --epochs 1 --checkpoint-dir "$TMP/busy"

# ---- resume refuses what changes the results, names the difference, honours documented overrides ----
cp -r "$TMP/ck" "$TMP/ck0"
for case in "--seed 4|written with --seed 3, resumed with 4" \
            "--val-split 0.1|written with the training data $TMP/d/train-images-idx3-ubyte, resumed with $TMP/d/train-images-idx3-ubyte[0:576]" \
            "--deterministic|written with --deterministic groups off, resumed with 4" \
            "--optimizer sgd|written with optimizer adam, resumed with sgd"; do
    opt=${case%%|*} want=${case#*|}
    # shellcheck disable=SC2086
    expect_exit 1 "resume with $opt" -- "$HERD" train "${C[@]}" --resume "$TMP/ck" $opt
    expect_err_line "resume with $opt" "$want"
done
printf 'input 1x28x28\nflatten\ndense 10\nrelu\n' >"$TMP/other.spec"
expect_exit 1 "resume another model" -- "$HERD" train "$TMP/other.spec" "${C[@]:1}" --resume "$TMP/ck"
expect_err_line "resume another model" "ckpt-0000000020.safetensors: written with a model of structure hash"
expect_exit 0 "resume with a new --lr and more epochs (documented overrides)" -- "$HERD" train "${C[@]}" \
    --resume "$TMP/ck" --lr 0.01 --epochs 3

# ---- a truncated newest checkpoint: resume from the one before, and say so ----
cp -r "$TMP/ck0" "$TMP/ck1"
(HERD_TEST_FAULT=kill:0:14 "$HERD" train "${C[@]}" --checkpoint-dir "$TMP/cut" --checkpoint-every 4 \
    --checkpoint-sync) >/dev/null 2>&1 # written before step 13, so checkpoint 12 is complete at the kill
head -c 1000 "$TMP/cut/ckpt-0000000012.safetensors" >"$TMP/x" && mv "$TMP/x" "$TMP/cut/ckpt-0000000012.safetensors"
expect_exit 0 "resume past a truncated checkpoint" -- "$HERD" train "${C[@]}" --resume "$TMP/cut" --save "$TMP/cut.st"
expect_err_line "resume past a truncated checkpoint" "note: skipped 1 damaged checkpoint (newest: $TMP/cut/ckpt-0000000012.safetensors"
grep -q "resuming from $TMP/cut/ckpt-0000000008.safetensors" "$TMP/err" && pass || fail "the fallback is not named"
cmp -s "$TMP/straight.st" "$TMP/cut.st" && pass || fail "resume from the older checkpoint is not bit-identical"

# ---- SIGINT: stop at a step boundary, no temp file, the last checkpoint named ----
# Ctrl-C inside the 2nd checkpoint write (before its rename) of synchronous checkpoints: the
# write completes, training stops after that step, and the message says where the checkpoint is
HERD_TEST_FAULT=sigint:safetensors.before_rename:2 "$HERD" train "${C[@]}" --checkpoint-dir "$TMP/int" \
    --checkpoint-every 4 --checkpoint-sync >"$TMP/out" 2>"$TMP/err"
[ $? = 130 ] && pass || fail "SIGINT: exit $? (expected 130)"
grep -q "^herd: stopped by SIGINT: stopped on request after step 8 of epoch 1; the last checkpoint is $TMP/int/ckpt-0000000008.safetensors (continue with --resume $TMP/int)" "$TMP/err" &&
    pass || fail "SIGINT message: $(cat "$TMP/err")"
[ "$(tmp_files "$TMP/int")" = 0 ] && pass || fail "SIGINT left a temp file: $(ls -a "$TMP/int")"
expect_exit 0 "resume after SIGINT" -- "$HERD" train "${C[@]}" --resume "$TMP/int" --save "$TMP/int.st"
cmp -s "$TMP/straight.st" "$TMP/int.st" && pass || fail "resume after SIGINT is not bit-identical"
# the same Ctrl-C in the background thread's write (the default): training goes on to the next
# step boundary, waits for the write in flight and any checkpoint due, and names the last one
HERD_TEST_FAULT=sigint:safetensors.before_rename:2 "$HERD" train "${C[@]}" --checkpoint-dir "$TMP/inta" \
    --checkpoint-every 4 >"$TMP/out" 2>"$TMP/err"
[ $? = 130 ] && pass || fail "SIGINT (background write): exit $? (expected 130)"
last=$(sed -n 's/.*the last checkpoint is \([^ ]*\) (continue.*/\1/p' "$TMP/err")
[ -n "$last" ] && [ -f "$last" ] && [ "$last" = "$TMP/inta/$(ls "$TMP/inta" | grep '^ckpt-' | tail -1)" ] && pass ||
    fail "SIGINT (background write): the named checkpoint '$last' is not the newest file: $(ls -a "$TMP/inta"; cat "$TMP/err")"
[ "$(tmp_files "$TMP/inta")" = 0 ] && pass || fail "SIGINT (background write) left a temp file: $(ls -a "$TMP/inta")"
expect_exit 0 "resume after SIGINT (background write)" -- "$HERD" train "${C[@]}" --resume "$TMP/inta" --save "$TMP/inta.st"
cmp -s "$TMP/straight.st" "$TMP/inta.st" && pass || fail "resume after SIGINT (background write) is not bit-identical"
# a second Ctrl-C in the same write: stop at once, the temp file removed, the previous checkpoint kept
HERD_TEST_FAULT=sigint2:safetensors.before_rename:2 "$HERD" train "${C[@]}" --checkpoint-dir "$TMP/int2" \
    --checkpoint-every 4 --checkpoint-sync >"$TMP/out" 2>"$TMP/err"
[ $? = 130 ] && pass || fail "second SIGINT: exit $? (expected 130)"
grep -q "stopped at once" "$TMP/err" && pass || fail "second SIGINT message: $(cat "$TMP/err")"
[ "$(tmp_files "$TMP/int2")" = 0 ] && pass || fail "second SIGINT left a temp file: $(ls -a "$TMP/int2")"
[ "$(ls "$TMP/int2" | grep '^ckpt-')" = ckpt-0000000004.safetensors ] && pass || fail "checkpoints: $(ls "$TMP/int2")"
# a kill -9 inside a write (the background thread's) leaves its temp file and the checkpoint before
# it intact: the next run into the directory removes the temp file and resumes bit-identically
(HERD_TEST_FAULT=crash:safetensors.before_rename:2 "$HERD" train "${C[@]}" --checkpoint-dir "$TMP/crash" \
    --checkpoint-every 4) >/dev/null 2>&1
[ "$(tmp_files "$TMP/crash")" = 1 ] && pass || fail "the crash left no temp file to clean: $(ls -a "$TMP/crash")"
[ "$(ls "$TMP/crash" | grep 'safetensors$')" = ckpt-0000000004.safetensors ] && pass || fail "after the crash: $(ls "$TMP/crash")"
expect_exit 0 "resume after a crash in a write" -- "$HERD" train "${C[@]}" --resume "$TMP/crash" --save "$TMP/crash.st"
cmp -s "$TMP/straight.st" "$TMP/crash.st" && pass || fail "resume after a crash in a background write is not bit-identical"
grep -q "note: removed 1 unfinished checkpoint temp file left in $TMP/crash" "$TMP/err" && pass || fail "$(cat "$TMP/err")"
[ "$(tmp_files "$TMP/crash")" = 0 ] && pass || fail "stale temp file not removed: $(ls -a "$TMP/crash")"

# ---- outputs: one rule (a write error is one line naming the file, exit 1) and checked at start ----
expect_exit 1 "--log-json on a full device" -- "$HERD" train "${C[@]}" --log-json /dev/full
expect_err_line "--log-json on a full device" "/dev/full: cannot write the JSON log: No space left on device"
for o in --save --trace; do
    expect_exit 1 "$o into a missing directory" -- "$HERD" train "${C[@]}" --progress plain $o "$TMP/missing/out"
    expect_err_line "$o into a missing directory" "$TMP/missing/out: cannot write there ($o): No such file or directory"
    grep -q "Epoch" "$TMP/out" && fail "$o: trained before failing" || pass
    expect_exit 1 "$o under a file" -- "$HERD" train "${C[@]}" $o "$TMP/m.spec/out"
    expect_err_line "$o under a file" "cannot write there ($o): Not a directory"
done

# ---- layout errors are found before herd launches workers: one line, exit 2 (no mpirun needed) ----
expect_exit 2 "-n 64 with batch 32" -- "$HERD" train "${C[@]}" --batch 32 -n 64
expect_err_line "-n 64 with batch 32" "--batch 32 is smaller than the 64 workers"
expect_exit 2 "asynchronous ps with checkpoints" -- "$HERD" train "${C[@]}" -n 3 --strategy ps --staleness inf \
    --checkpoint-dir "$TMP/psck"
expect_err_line "asynchronous ps with checkpoints" "checkpoints with --strategy ps need a bounded --staleness"
expect_exit 2 "stages not dividing -n" -- "$HERD" train "$SRC/examples/fashion_cnn.spec" "${C[@]:1}" -n 3 \
    --strategy pipeline --stages 2
expect_err_line "stages not dividing -n" "needs a number of ranks (-n 3) that --stages 2 divides"
expect_exit 2 "a bad --split" -- "$HERD" train "$SRC/examples/fashion_cnn.spec" "${C[@]:1}" -n 2 --strategy pipeline \
    --split nosuchlayer
expect_err_line "a bad --split" "no layer named 'nosuchlayer'"
summary
