# Parameter server: with staleness 0 it is synchronous data parallelism (same weights as
# --strategy dp to float tolerance), also for an embedding model whose rows it moves as touched
# and whose checkpoints resume under ps and dp; bounded and unbounded staleness train; a
# straggler does not stall K=inf; a killed server stops the job within 10 s, naming it.
. "$(dirname "$0")/cli_lib.sh"
require_mpi "parameter-server tests"
make_subset "$TMP/d" 640 200
SMALL=$SRC/tests/data/small_cnn_nodrop.spec
common=(--data "$TMP/d" --epochs 2 --batch 64 --seed 5 --threads 1 --quiet)
expect_exit 0 "dp, 2 ranks" -- "$HERD" train "$SMALL" "${common[@]}" -n 2 --save "$TMP/dp.st"
expect_exit 0 "ps K=0: 1 server + 2 workers" -- "$HERD" train "$SMALL" "${common[@]}" -n 3 --strategy ps --staleness 0 \
    --save "$TMP/ps0.st"
compare_weights "$TMP/dp.st" "$TMP/ps0.st" 1e-5 && pass || fail "ps K=0 differs from data parallel"
expect_exit 0 "ps K=0, 2 servers" -- "$HERD" train "$SMALL" "${common[@]}" -n 4 --strategy ps --servers 2 \
    --save "$TMP/ps0s2.st"
compare_weights "$TMP/dp.st" "$TMP/ps0s2.st" 1e-5 && pass || fail "ps K=0 with 2 servers differs from data parallel"
for k in 2 inf; do
    expect_exit 0 "ps K=$k with a straggler" -- env HERD_TEST_DELAY=1:30 "$HERD" train "$SMALL" "${common[@]}" -n 3 \
        --strategy ps --staleness $k --save "$TMP/ps$k.st"
    acc=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
    /usr/bin/python3 -c "import sys; sys.exit(0 if float('$acc') > 0.3 else 1)" && pass || fail "ps K=$k reached $acc"
done
expect_exit 2 "bad staleness" -- "$HERD" train "$SMALL" --strategy ps --staleness -1
expect_exit 2 "ps needs more ranks than servers" -- "$HERD" train "$SMALL" "${common[@]}" --strategy ps
expect_err_line "ps needs more ranks than servers" "needs more ranks"
expect_exit 2 "asynchronous ps with checkpoints (refused before launch)" -- "$HERD" train "$SMALL" "${common[@]}" -n 3 \
    --strategy ps --staleness inf --checkpoint-dir "$TMP/ck"
expect_err_line "asynchronous ps with checkpoints" "need a bounded --staleness"

# an embedding model (issue 15): dlrm_small on a synthetic click log; the workers move only the
# table rows their batches touch, the table split between 2 servers; equal to data parallel
"$HERD_BUILD_DIR/criteo_synth" 2560 4 "$TMP/c.tsv" 2>/dev/null && pass || fail "criteo_synth"
DLRM=$SRC/examples/dlrm_small.spec
dl=(--data "criteo:$TMP/c.tsv?hash=1000" --epochs 2 --batch 128 --seed 3 --threads 1)   # 20 steps an epoch
expect_exit 0 "dlrm, dp" -- "$HERD" train "$DLRM" "${dl[@]}" --quiet -n 2 --save "$TMP/dl_dp.st"
expect_exit 0 "dlrm, ps with 2 servers" -- "$HERD" train "$DLRM" "${dl[@]}" -n 4 --strategy ps --servers 2 \
    --save "$TMP/dl_ps.st"
compare_weights "$TMP/dl_dp.st" "$TMP/dl_ps.st" 1e-5 && pass || fail "dlrm: ps differs from data parallel"
# each worker: a pull and a push a step for 40 steps, and a whole pull after each epoch and at the end
expect_out "the servers' load" "server rank 3: [0-9.]+ MiB moved, [0-9]+ table rows, 166 requests"
# checkpoints under ps: killed at step 13, resumed from step 12 under ps (the bits of the run
# without a stop: two workers' sums do not depend on arrival order) and under dp
expect_exit 0 "dlrm, ps, straight" -- "$HERD" train "$DLRM" "${dl[@]}" --quiet -n 3 --strategy ps \
    --checkpoint-dir "$TMP/pc0" --checkpoint-every 4 --save "$TMP/dl_straight.st"
HERD_TEST_FAULT=kill:0:13 "$HERD" train "$DLRM" "${dl[@]}" --quiet -n 3 --strategy ps --checkpoint-dir "$TMP/pc1" \
    --checkpoint-every 4 --checkpoint-sync >/dev/null 2>&1   # sync: step 12's is on disk before step 13
ls "$TMP/pc1"/ckpt-0000000012.safetensors >/dev/null 2>&1 && pass || fail "ps: no checkpoint at step 12: $(ls "$TMP/pc1")"
mkdir -p "$TMP/pc2" && cp "$TMP/pc1"/ckpt-0000000012.safetensors "$TMP/pc2/"
expect_exit 0 "dlrm, ps resumed" -- "$HERD" train "$DLRM" "${dl[@]}" --quiet -n 3 --strategy ps --resume "$TMP/pc1" \
    --save "$TMP/dl_resumed.st"
cmp -s "$TMP/dl_straight.st" "$TMP/dl_resumed.st" && pass || fail "ps: resumed weights differ from the straight run"
expect_exit 0 "dlrm, a ps checkpoint resumed under dp" -- "$HERD" train "$DLRM" "${dl[@]}" --quiet -n 2 \
    --resume "$TMP/pc2" --save "$TMP/dl_dp_resumed.st"
compare_weights "$TMP/dl_straight.st" "$TMP/dl_dp_resumed.st" 1e-5 && pass || fail "a ps checkpoint resumed under dp"

# the rank that stopped making progress is named first, never the healthy server: a worker
# hung in its main thread (--timeout 5), the server hung, and a stopped worker under
# --staleness inf (the asynchronous server's wait is covered by the liveness check: ~5 s)
fault_case "hung worker" hang:0:5 "nothing from worker rank 0 .*rank 0 stopped making progress" 12 -- \
    "$SMALL" "${common[@]}" -n 3 --strategy ps --timeout 5
fault_case "hung server" hang:2:5 "rank 2 stopped making progress" 12 -- \
    "$SMALL" "${common[@]}" -n 3 --strategy ps --timeout 5
fault_case "stopped worker, K=inf" stop:1:5 "rank\(s\) 1 stopped responding" 10 -- \
    "$SMALL" "${common[@]}" --epochs 20 -n 3 --strategy ps --staleness inf

# kill -9 the server (the last rank) mid-training: everyone stops, non-zero, within 10 s
"$HERD" train "$SRC/examples/fashion_cnn.spec" --data "$TMP/d" --epochs 50 --batch 64 --threads 1 --quiet -n 3 \
    --strategy ps >"$TMP/out" 2>"$TMP/err" &
job=$!
sleep 3
server=""
for p in $(pgrep -P $job); do   # this job's ranks only (mpirun's children), never another run's on the machine
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=2" && server=$p
done
[ -n "$server" ] && pass || fail "server process not found"
start=$(date +%s)
kill -9 "$server" 2>/dev/null
wait $job
rc=$?
took=$(( $(date +%s) - start ))
[ $rc != 0 ] && pass || fail "killed server: exit 0"
[ $took -le 10 ] && pass || fail "killed server: took $took s"
grep -qi "rank 2" "$TMP/err" && pass || fail "killed server not named: $(head -c 400 "$TMP/err")"
summary
