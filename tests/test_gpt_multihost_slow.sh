# The character GPT (make_gpt_example: its head tied to the token embedding) across 2 "hosts"
# (network namespaces joined by a bridge, OpenMPI's TCP transport between them, see
# netns_hosts.sh): data parallel with --deterministic gives the weights of one process bit for
# bit, and a 2-stage pipeline cut between the embedding and its tied head (the table on both
# hosts, its gradient summed between them) those of one process to float tolerance.
. "$(dirname "$0")/cli_lib.sh"
. "$(dirname "$0")/netns_hosts.sh"
if ! command -v mpirun >/dev/null; then
    echo "SKIP: mpirun not installed (openmpi-bin)"
    echo "0 passed, 0 failed (skipped)"
    exit 77
fi
if ! why=$(netns_available); then
    echo "SKIP: $why; multi-host tests not run"
    echo "0 passed, 0 failed (skipped)"
    exit 77
fi
trap 'netns_down; rm -rf "$TMP"' EXIT
make_gpt_example "$TMP"
DP=(--data "lm:$TMP/t.tok?stride=16" --batch 16 --optimizer adamw --lr 3e-3 --weight-decay 0.1 --decay matrices
    --clip-norm 1 --seed 3 --progress none --threads 1 --epochs 1 --lr-schedule cosine --deterministic --timeout 60)
# SGD over ~50 steps: float noise stays at the 1e-7 of two data-parallel ranks (test_cli_gpt)
PP=(--data "lm:$TMP/t.tok?stride=64" --batch 16 --optimizer sgd --lr 0.1 --weight-decay 0.1 --decay matrices
    --clip-norm 1 --seed 3 --progress none --threads 1 --epochs 2 --timeout 60)
expect_exit 0 "1 process, deterministic" -- "$HERD" train "$TMP/gpt.spec" "${DP[@]}" --save "$TMP/d1.st"
expect_exit 0 "1 process, sgd" -- "$HERD" train "$TMP/gpt.spec" "${PP[@]}" --save "$TMP/p1.st"
netns_up 2 1gbit
netns_mpirun -np 2 "$HERD" train "$TMP/gpt.spec" "${DP[@]}" --save "$TMP/d2.st" >"$TMP/out" 2>"$TMP/err" && pass ||
    fail "data parallel on 2 hosts: $(tail -c 600 "$TMP/err")"
cmp -s "$TMP/d1.st" "$TMP/d2.st" && pass || fail "--deterministic on 2 hosts: not the bits of 1 process"
grep -q "^test accuracy" "$TMP/out" && pass || fail "no result printed: $(tail -c 300 "$TMP/out")"
netns_mpirun -np 2 "$HERD" train "$TMP/gpt.spec" "${PP[@]}" --strategy pipeline --split res1 --save "$TMP/p2.st" \
    >"$TMP/out" 2>"$TMP/err" && pass || fail "pipeline on 2 hosts: $(tail -c 600 "$TMP/err")"
compare_weights "$TMP/p1.st" "$TMP/p2.st" 1e-5 && pass || fail "pipeline on 2 hosts differs from 1 process"
summary
