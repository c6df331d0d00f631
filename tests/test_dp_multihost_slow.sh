# Data parallel across "hosts": network namespaces joined by a bridge, OpenMPI's TCP
# transport between them (see netns_hosts.sh). The same herd command runs unchanged under
# mpirun; 2 hosts must give the weights of 1 process (deterministic mode: bit-identical),
# and a rank killed on a remote host must stop the job with an error within 10 s.
. "$(dirname "$0")/cli_lib.sh"
. "$(dirname "$0")/netns_hosts.sh"
netns_require "multi-host tests"
trap 'netns_down; rm -rf "$TMP"' EXIT
make_subset "$TMP/d" 640 200
FASHION=$SRC/examples/fashion_cnn.spec
common=(--data "$TMP/d" --epochs 1 --batch 64 --seed 5 --threads 1 --quiet --deterministic)

expect_exit 0 "1 process" -- "$HERD" train "$FASHION" "${common[@]}" --save "$TMP/one.st"
netns_up 2 1gbit
netns_mpirun -np 2 "$HERD" train "$FASHION" "${common[@]}" --save "$TMP/two.st" >"$TMP/out" 2>"$TMP/err" && pass ||
    fail "mpirun on 2 hosts: $(tail -c 600 "$TMP/err")"
cmp -s "$TMP/one.st" "$TMP/two.st" && pass || fail "2 hosts not bit-identical to 1 process"
grep -q "^test accuracy" "$TMP/out" && pass || fail "no result printed"

# the other strategies across the same hosts: parameter server (1 server + 2 workers on 3
# hosts, K=0 equals data parallel) and a 2-stage pipeline (equals the unsplit model)
netns_down
netns_up 3 1gbit
SMALL=$SRC/tests/data/small_cnn_nodrop.spec
plain=(--data "$TMP/d" --epochs 1 --batch 64 --seed 5 --threads 1 --quiet)
expect_exit 0 "1 process, small model" -- "$HERD" train "$SMALL" "${plain[@]}" --save "$TMP/small1.st"
netns_mpirun -np 3 "$HERD" train "$SMALL" "${plain[@]}" --strategy ps --save "$TMP/ps.st" >"$TMP/out" 2>"$TMP/err" &&
    pass || fail "ps on 3 hosts: $(tail -c 600 "$TMP/err")"
compare_weights "$TMP/small1.st" "$TMP/ps.st" 1e-5 && pass || fail "ps on 3 hosts differs from 1 process"
netns_mpirun -np 2 "$HERD" train "$SMALL" "${plain[@]}" --strategy pipeline --microbatches 4 --save "$TMP/pp.st" \
    >"$TMP/out" 2>"$TMP/err" && pass || fail "pipeline on 2 hosts: $(tail -c 600 "$TMP/err")"
compare_weights "$TMP/small1.st" "$TMP/pp.st" 1e-5 && pass || fail "pipeline on 2 hosts differs from 1 process"

# A remote rank killed mid-run: non-zero within 10 s, rank 1 named.
start=$(date +%s)
HERD_TEST_FAULT=kill:1:3 netns_mpirun -x HERD_TEST_FAULT -np 2 "$HERD" train "$FASHION" "${common[@]}" --timeout 5 \
    >"$TMP/out" 2>"$TMP/err"
rc=$?
took=$(( $(date +%s) - start ))
[ $rc != 0 ] && pass || fail "killed remote rank: exit 0"
[ $took -le 10 ] && pass || fail "killed remote rank: took $took s"
grep -qi "rank 1" "$TMP/err" && pass || fail "killed rank not named: $(head -c 400 "$TMP/err")"
# A remote rank stopped as a whole (SIGSTOP): the liveness check names it within 10 s, default --timeout.
start=$(date +%s)
HERD_TEST_FAULT=stop:1:3 netns_mpirun -x HERD_TEST_FAULT -np 2 "$HERD" train "$FASHION" "${common[@]}" \
    >"$TMP/out" 2>"$TMP/err" &
job=$!
( sleep 60 && kill -9 $job ) >/dev/null 2>&1 & # never a hung test, whatever happens
dog=$!
wait $job
rc=$?
pkill -P $dog sleep 2>/dev/null
kill $dog 2>/dev/null
took=$(( $(date +%s) - start ))
[ $rc != 0 ] && pass || fail "stopped remote rank: exit 0"
[ $took -le 10 ] && pass || fail "stopped remote rank: took $took s"
grep -q "rank(s) 1 stopped responding" "$TMP/err" && pass || fail "stopped rank not named: $(head -c 400 "$TMP/err")"
summary
