# Data-parallel training of embedding models (src/dist/sparse_exchange.c): --deterministic gives
# bit-identical tables and weights on 1, 2 and 4 ranks (each micro-group's rows gathered and
# summed id by id in group order); without it 2 ranks (a gather of ids and values) and 4 ranks
# on a 4-row table (each rank touches most rows: a dense allreduce is fewer bytes) match one
# process to float tolerance, and the choice is printed; parameter-server training (staleness 0)
# matches one process. The same with the tables sharded (--embedding-shard row|table), and
# a killed rank that owns a shard stops the job naming it; validation through the sharded lookup has
# the bits of the unsharded ranks' (loss, accuracy, AUC). Short runs: a few steps each.
. "$(dirname "$0")/cli_lib.sh"
require_mpi "data-parallel embedding tests"
D=$TMP/d
mkdir -p "$D"
/usr/bin/python3 - "$D" <<'PY'
import random, sys
d = sys.argv[1]
r = random.Random(4)
words = [["apple", "pear", "plum", "fig"], ["bolt", "nut", "gear", "axle"], ["rain", "snow", "wind", "fog"]]
for k, ws in enumerate(words):
    with open(f"{d}/class{k}.txt", "w") as f:
        for _ in range(40):
            f.write(" ".join(r.choice(ws + ["the", "a"]) for _ in range(r.randint(3, 12))) + "\n%\n")
with open(f"{d}/r.csv", "w") as f:
    f.write("user,item,x,label\n")
    for _ in range(256):
        u, i = r.randrange(30), r.randrange(40)
        f.write(f"u{u},i{i},{r.random():.3f},{(u + i) % 2}\n")
PY
F="text:$D/class0.txt,$D/class1.txt,$D/class2.txt?tokenizer=word&vocab=4096&len=16&sep=%"
cat >"$TMP/text.spec" <<'S'
input 16 dtype=i32
embedding_bag 4096 8 mode=mean pad=0 std=0.1
dense 3
S
for rows in 4 64; do
    cat >"$TMP/mf$rows.spec" <<S
input 1 name=x
input 1 dtype=i32 name=user
input 1 dtype=i32 name=item
embedding $rows 8 from=user name=u
embedding $rows 8 from=item name=i
dot u,i name=s
concat s,x
dense 2
S
done
# the exchange's note (herd: note: on stderr)
expect_note() { grep -q -E "$2" "$TMP/err" && pass || fail "$1: no note matching /$2/"; }
common=(--epochs 2 --batch 16 --lr 0.05 --seed 2 --threads 1)
for n in 1 2 4; do
    expect_exit 0 "deterministic $n" -- "$HERD" train "$TMP/text.spec" --data "$F" "${common[@]}" --deterministic -n $n \
        --save "$TMP/d$n.st"
done
expect_note "the exchange is printed" "table 'bag1.weight': .* gather of ids and values .* summed in group order"
cmp -s "$TMP/d1.st" "$TMP/d2.st" && pass || fail "deterministic: 2 ranks not bit-identical to 1"
cmp -s "$TMP/d1.st" "$TMP/d4.st" && pass || fail "deterministic: 4 ranks not bit-identical to 1"

C="$D/r.csv?cat=user,item&hash=64&seed=1"
U="$D/r.csv?cat=user,item&hash=4&seed=1"
mf=(--epochs 1 --batch 64 --lr 0.05 --seed 1 --threads 1 --sparse-optimizer sgd --optimizer sgd)
expect_exit 0 "mf one process" -- "$HERD" train "$TMP/mf64.spec" --data "$C" "${mf[@]}" --save "$TMP/m1.st"
expect_exit 0 "mf 2 ranks" -- "$HERD" train "$TMP/mf64.spec" --data "$C" "${mf[@]}" -n 2 --save "$TMP/m2.st"
expect_note "2 ranks gather" "table 'i.weight': .* from 2 groups: gather of ids and values"
compare_weights "$TMP/m1.st" "$TMP/m2.st" 1e-5 && pass || fail "mf: 2 ranks differ from one process"
expect_exit 0 "mf small table one process" -- "$HERD" train "$TMP/mf4.spec" --data "$U" "${mf[@]}" --save "$TMP/u1.st"
expect_exit 0 "mf small table 4 ranks" -- "$HERD" train "$TMP/mf4.spec" --data "$U" "${mf[@]}" -n 4 --save "$TMP/u4.st"
expect_note "4 ranks on 4 rows: dense" "table 'u.weight': .* from 4 groups: dense allreduce"
compare_weights "$TMP/u1.st" "$TMP/u4.st" 1e-5 && pass || fail "mf: 4 ranks (dense exchange) differ from one process"

# --embedding-shard (src/dist/embedding_shard.c) under mpirun: with --deterministic the bits of one
# process on 1, 2 and 4 ranks for both plans; without it 2 and 4 ranks row-wise within float
# tolerance of one process and table-wise equal to row-wise; the plan and the table bytes of
# every rank are printed, and the bytes exchanged a step
for n in 1 2 4; do
    for plan in row table; do
        expect_exit 0 "sharded $plan, deterministic $n" -- "$HERD" train "$TMP/text.spec" --data "$F" "${common[@]}" \
            --deterministic -n $n --embedding-shard $plan --save "$TMP/s$n$plan.st"
        cmp -s "$TMP/d1.st" "$TMP/s$n$plan.st" && pass || fail "sharded $plan on $n ranks not bit-identical to 1 process"
        if [ $n = 4 ] && [ $plan = row ]; then
            expect_note "the row plan and each rank's bytes" \
                "embedding tables sharded row-wise over 4 ranks; table bytes by rank: 32768 32768 32768 32768"
            expect_note "the bytes exchanged a step" "embedding exchange a step .*by rank: [0-9]+ [0-9]+ [0-9]+ [0-9]+"
        fi
    done
done
for n in 2 4; do
    expect_exit 0 "mf sharded row $n" -- "$HERD" train "$TMP/mf64.spec" --data "$C" "${mf[@]}" -n $n --embedding-shard row \
        --save "$TMP/mr$n.st"
    compare_weights "$TMP/m1.st" "$TMP/mr$n.st" 1e-5 && pass || fail "mf: $n ranks row-wise differ from one process"
    expect_exit 0 "mf sharded table $n" -- "$HERD" train "$TMP/mf64.spec" --data "$C" "${mf[@]}" -n $n \
        --embedding-shard table --save "$TMP/mt$n.st"
    cmp -s "$TMP/mr$n.st" "$TMP/mt$n.st" && pass || fail "mf: $n ranks table-wise differ from row-wise"
done
# validation on several ranks: evaluated in pieces of each rank's planned rows (the global batch
# once exceeded them: "rows 0..16 exceed the planned batch 8"), through the sharded lookup
expect_exit 0 "sharded with a validation split" -- "$HERD" train "$TMP/mf64.spec" --data "$C" "${mf[@]}" -n 2 \
    --embedding-shard row --val-split 0.25 --progress plain
expect_out "validation figures" "val_accuracy: [0-9.]+"
# validation through the sharded lookup (ids to their owners, rows back; no rank gathers whole
# tables for it): under --deterministic a DLRM's validation loss, accuracy and AUC after each of 2
# epochs, sharded row- and table-wise on 2 ranks, are the unsharded 2 ranks' (the JSON log's 6 places)
"$HERD_BUILD_DIR/criteo_synth" 1000 3 "$TMP/day.tsv" 2>/dev/null && pass || fail "criteo_synth"
dl=(--data "criteo:$TMP/day.tsv?hash=300" --epochs 2 --batch 64 --lr 0.05 --seed 1 --threads 1 --val-split 0.3
    --deterministic -n 2)
for plan in none row table; do
    shard=(); [ $plan = none ] || shard=(--embedding-shard $plan)
    expect_exit 0 "dlrm validation, $plan" -- "$HERD" train "$SRC/examples/dlrm_small.spec" "${dl[@]}" "${shard[@]}" \
        --log-json "$TMP/v$plan.json"
    sed -E 's/.*("val_loss": [^,]+, "val_accuracy": [^,]+, "val_rmse": [^,]+, "val_auc": [^,]+),.*/\1/' \
        "$TMP/v$plan.json" >"$TMP/v$plan.txt"
done
[ "$(grep -c '"val_auc": 0\.[0-9]' "$TMP/vnone.txt")" = 2 ] && pass || fail "dlrm validation: no AUC in $(cat "$TMP/vnone.txt")"
for plan in row table; do
    cmp -s "$TMP/vnone.txt" "$TMP/v$plan.txt" && pass ||
        fail "dlrm validation sharded $plan: $(cat "$TMP/v$plan.txt") against unsharded $(cat "$TMP/vnone.txt")"
done
# a killed rank that owns a shard stops the job within 10 s, naming it
fault_case "killed shard owner" kill:1:3 "rank 1" 10 -- "$TMP/text.spec" --data "$F" "${common[@]}" -n 2 \
    --embedding-shard row
# the parameter server moves the rows a batch touches (src/dist/param_server.c): 2 workers and a
# server at staleness 0 train the tables as one process does
expect_exit 0 "parameter server" -- "$HERD" train "$TMP/mf64.spec" --data "$C" "${mf[@]}" -n 3 --strategy ps \
    --staleness 0 --save "$TMP/mps.st"
compare_weights "$TMP/m1.st" "$TMP/mps.st" 1e-5 && pass || fail "mf: parameter server differs from one process"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
