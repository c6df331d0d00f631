# Every strategy across 4 "hosts": network namespaces joined by a bridge, addresses
# 198.18.0.1-4 (see netns_hosts.sh), OpenMPI's TCP transport between them, one rank a host.
# Each run must equal its one-process reference as the 2-3 host test checks it:
#   data parallel and ZeRO-1 with --deterministic: bit-identical (cmp) to 1 process;
#   parameter server (1 server + 3 workers, K=0), a 4-stage pipeline and 2 stages x 2
#   replicas: the unsplit model's weights within 1e-5.
# One set of hosts for every run, small data (600 images): about 40 s on 2 cores.
. "$(dirname "$0")/cli_lib.sh"
. "$(dirname "$0")/netns_hosts.sh"
netns_require "4-host tests"
trap 'netns_down; rm -rf "$TMP"' EXIT
make_subset "$TMP/d" 600 100
FASHION=$SRC/examples/fashion_cnn.spec
SMALL=$SRC/tests/data/small_cnn_nodrop.spec
det=(--data "$TMP/d" --epochs 1 --batch 60 --seed 5 --threads 1 --quiet --deterministic)
plain=(--data "$TMP/d" --epochs 1 --batch 60 --seed 5 --threads 1 --quiet)
expect_exit 0 "1 process, deterministic" -- "$HERD" train "$FASHION" "${det[@]}" --det-groups 4 --save "$TMP/one.st"
expect_exit 0 "1 process, small model" -- "$HERD" train "$SMALL" "${plain[@]}" --save "$TMP/small1.st"
netns_up 4 1gbit
hosts4() { # WHAT OUT ARGS...: herd train on the 4 hosts, output kept for the failure message
    local what=$1 out=$2
    shift 2
    netns_mpirun -np 4 "$HERD" train "$@" --save "$out" >"$TMP/out" 2>"$TMP/err" && pass ||
        fail "$what on 4 hosts: $(tail -c 600 "$TMP/err")"
}
hosts4 "data parallel" "$TMP/dp.st" "$FASHION" "${det[@]}" --det-groups 4
cmp -s "$TMP/one.st" "$TMP/dp.st" && pass || fail "data parallel on 4 hosts not bit-identical to 1 process"
grep -q "^test accuracy" "$TMP/out" && pass || fail "data parallel on 4 hosts: no result printed"
hosts4 "ZeRO-1" "$TMP/zero.st" "$FASHION" "${det[@]}" --det-groups 4 --zero 1
cmp -s "$TMP/one.st" "$TMP/zero.st" && pass || fail "ZeRO-1 on 4 hosts not bit-identical to 1 process"
hosts4 "parameter server" "$TMP/ps.st" "$SMALL" "${plain[@]}" --strategy ps --servers 1 --staleness 0
compare_weights "$TMP/small1.st" "$TMP/ps.st" 1e-5 && pass || fail "ps (1 server + 3 workers) on 4 hosts differs from 1 process"
hosts4 "4-stage pipeline" "$TMP/pp4.st" "$SMALL" "${plain[@]}" --strategy pipeline --stages 4 --microbatches 4
grep -q "^pipeline bubble" "$TMP/out" && pass || fail "4-stage pipeline: no bubble line: $(head -c 300 "$TMP/out")"
compare_weights "$TMP/small1.st" "$TMP/pp4.st" 1e-5 && pass || fail "4-stage pipeline on 4 hosts differs from 1 process"
hosts4 "2 stages x 2" "$TMP/pp22.st" "$SMALL" "${plain[@]}" --strategy pipeline --stages 2 --microbatches 2 --schedule 1f1b
compare_weights "$TMP/small1.st" "$TMP/pp22.st" 1e-5 && pass || fail "2 stages x 2 pipelines on 4 hosts differ from 1 process"
summary
