# Parameter server: with staleness 0 it is synchronous data parallelism (same weights as
# --strategy dp to float tolerance); bounded and unbounded staleness train; a straggler
# does not stall K=inf; a killed server stops the job within 10 s, naming it.
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
expect_exit 2 "ps with checkpoints (refused before launch)" -- "$HERD" train "$SMALL" "${common[@]}" -n 3 --strategy ps \
    --checkpoint-dir "$TMP/ck"
expect_err_line "ps with checkpoints" "not supported with --strategy ps"

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
