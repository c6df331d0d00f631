# Criteo click logs end to end (issue 15): bench's synthetic generator writes a small TSV,
# examples/dlrm_small.spec trains on it directly (criteo:FILE?hash=R) to a validation AUC well
# above chance, `herd convert criteo:... --hash-rows R` writes version 2 shards (several fields,
# f32 targets) that train to the same weights as the TSV, the same bytes for 1 and 2 threads and
# after a conversion killed with SIGKILL and resumed; bad lines and a hash size of 0 are one line
# naming the file (and line).
. "$(dirname "$0")/cli_lib.sh"
SYNTH=${HERD_BUILD_DIR:?}/criteo_synth
SPEC=$SRC/examples/dlrm_small.spec
"$SYNTH" 10000 11 "$TMP/day.tsv" 2>"$TMP/synth.err" && pass || fail "criteo_synth did not write the TSV"
"$SYNTH" 10000 11 2>/dev/null >"$TMP/again.tsv" && cmp -s "$TMP/day.tsv" "$TMP/again.tsv" && pass || fail "criteo_synth: not the same bytes for the same seed"
cols=$(awk -F'\t' '{print NF}' "$TMP/day.tsv" | sort -u | tr '\n' ' ')
[ "$cols" = "40 " ] && pass || fail "criteo_synth: lines of $cols columns (expected 40)"
grep -qP '\t\t' "$TMP/day.tsv" && pass || fail "criteo_synth: no missing values"

RUN=(--epochs 3 --batch 64 --val-split 0.25 --seed 5 --threads 2)
expect_exit 0 "dlrm from the TSV" -- "$HERD" train "$SPEC" --data "criteo:$TMP/day.tsv?hash=1000" "${RUN[@]}" \
    --save "$TMP/tsv.st" --log-json "$TMP/tsv.json"
expect_out "the source's note" "10000 lines; C1..C26 hashed into 1000 rows each"
auc=$(sed -n 's/.*"val_auc": \([0-9.]*\).*/\1/p' "$TMP/tsv.json" | tail -1)
[ -n "$auc" ] && awk "BEGIN { exit !($auc > 0.68) }" && pass || fail "dlrm: validation AUC '$auc' (want > 0.68; $(cat "$TMP/synth.err"))"

expect_exit 0 "convert" -- "$HERD" convert "criteo:$TMP/day.tsv" "$TMP/sh" --shards 3 --hash-rows 1000 --threads 2
expect_out "convert's summary" "wrote 10000 train records"
expect_exit 0 "convert, 1 thread" -- "$HERD" convert "criteo:$TMP/day.tsv?hash=1000" "$TMP/sh1" --shards 3 --threads 1
same=1
for k in 0 1 2; do cmp -s "$TMP/sh/train-0000$k-of-00003.herd" "$TMP/sh1/train-0000$k-of-00003.herd" || same=0; done
[ $same = 1 ] && pass || fail "convert: shards differ between 1 and 2 threads"
expect_exit 0 "dlrm from the shards" -- "$HERD" train "$SPEC" --data "$TMP/sh" "${RUN[@]}" --save "$TMP/sh.st"
cmp -s "$TMP/tsv.st" "$TMP/sh.st" && pass || fail "weights trained on the shards differ from the TSV's"

# killed (SIGKILL) as the second shard is about to be renamed into place, then resumed
HERD_TEST_FAULT=crash:shard.before_rename:2 "$HERD" convert "criteo:$TMP/day.tsv" "$TMP/sk" --shards 3 \
    --hash-rows 1000 >/dev/null 2>&1
[ $? = 137 ] && pass || fail "convert was not killed at the fault point"
ls "$TMP/sk"/*.tmp.* >/dev/null 2>&1 && [ ! -e "$TMP/sk/train-00001-of-00003.herd" ] && pass ||
    fail "the killed conversion left no temp file, or a shard it had not finished: $(ls "$TMP/sk")"
expect_exit 0 "convert --resume" -- "$HERD" convert "criteo:$TMP/day.tsv" "$TMP/sk" --shards 3 --hash-rows 1000 --resume
expect_out "the finished shard kept" "kept .*train-00000-of-00003.herd"
same=1
for k in 0 1 2; do cmp -s "$TMP/sh/train-0000$k-of-00003.herd" "$TMP/sk/train-0000$k-of-00003.herd" || same=0; done
[ $same = 1 ] && ! ls "$TMP/sk"/*.tmp.* >/dev/null 2>&1 && pass || fail "resumed shards differ from an unbroken conversion's"

# version 2 shards of another source of several fields (a CSV's categorical columns, i32 labels)
/usr/bin/python3 - "$TMP/rank.csv" <<'PY'
import random, sys
r = random.Random(4)
with open(sys.argv[1], "w") as f:
    f.write("user,item,x,label\n")
    for _ in range(400):
        u, i = r.randrange(30), r.randrange(40)
        f.write(f"u{u},i{i},{r.random():.3f},{(u + i) % 2}\n")
PY
printf 'input 1 name=x\ninput 1 dtype=i32 name=user\ninput 1 dtype=i32 name=item\nembedding 64 8 from=user name=u\nembedding 64 8 from=item name=i\ndot u,i name=s\nconcat s,x\ndense 2\n' >"$TMP/mf.spec"
CSV="$TMP/rank.csv?cat=user,item&hash=64"
expect_exit 0 "convert a CSV with categorical columns" -- "$HERD" convert "$CSV" "$TMP/csh" --shards 2
expect_exit 0 "train on the CSV" -- "$HERD" train "$TMP/mf.spec" --data "$CSV" --epochs 2 --batch 32 --seed 2 --save "$TMP/c1.st"
expect_exit 0 "train on its shards" -- "$HERD" train "$TMP/mf.spec" --data "$TMP/csh" --epochs 2 --batch 32 --seed 2 --save "$TMP/c2.st"
cmp -s "$TMP/c1.st" "$TMP/c2.st" && pass || fail "weights trained on the CSV's shards differ from the CSV's"
expect_exit 1 "shards of other fields" -- "$HERD" train "$TMP/mf.spec" --data "$TMP/csh/train-00000-of-00002.herd,$TMP/sh/train-00000-of-00003.herd" --epochs 1
expect_err_line "shards of other fields" "fields differ from those of"

# bad input: one line naming the file and line
head -3 "$TMP/day.tsv" >"$TMP/bad_cols.tsv"
printf '1\t2\t3\n' >>"$TMP/bad_cols.tsv"
expect_exit 1 "a short row" -- "$HERD" convert "criteo:$TMP/bad_cols.tsv" "$TMP/x" --hash-rows 10
expect_err_line "a short row" "bad_cols.tsv:4: 3 columns (expected 40"
head -2 "$TMP/day.tsv" >"$TMP/bad_hex.tsv"
sed -n 3p "$TMP/day.tsv" | awk -F'\t' 'BEGIN { OFS = "\t" } { $20 = "12zq"; print }' >>"$TMP/bad_hex.tsv"
expect_exit 1 "a bad categorical value" -- "$HERD" train "$SPEC" --data "criteo:$TMP/bad_hex.tsv?hash=1000" --epochs 1
expect_err_line "a bad categorical value" "bad_hex.tsv:3: column C6: '12zq' is not a hexadecimal id"
expect_exit 1 "hash rows 0" -- "$HERD" convert "criteo:$TMP/day.tsv" "$TMP/x" --hash-rows 0
expect_err_line "hash rows 0" "day.tsv: hash rows 0: expected 1.."
expect_exit 1 "no hash" -- "$HERD" train "$SPEC" --data "criteo:$TMP/day.tsv" --epochs 1
expect_err_line "no hash" "no hash=R"
expect_exit 2 "--hash-rows for another source" -- "$HERD" convert "$TMP/day.csv" "$TMP/x" --hash-rows 5
expect_err_line "--hash-rows for another source" "--hash-rows is for criteo: sources"
# ids past the table: hash=2000 fills rows up to 52000 of a 26000-row table
expect_exit 1 "ids past the table" -- "$HERD" train "$SPEC" --data "criteo:$TMP/day.tsv?hash=2000" --epochs 1
[ "$(wc -l <"$TMP/err")" = 1 ] && pass || fail "ids past the table: $(head -c 400 "$TMP/err")"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
