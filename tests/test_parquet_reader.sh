# The Parquet reader against files an independent writer made (Apache Arrow's Rust writer as
# npm parquet-wasm, tests/parquet/write.cjs): every codec (none, snappy, gzip, zstd) x
# dictionary or plain x data page v1/v2, several row groups and pages, DELTA encodings, list
# columns as features and images, raw image bytes, text labels, nullable columns, a Hive-style
# partitioned directory with _SUCCESS, .crc and _temporary/ to skip: every value herd reads
# equals what the writer was given (tests/helpers/parquet_check). Then bad input: one line
# naming the file and what is wrong, exit 1; and herd stats / herd convert on a Parquet source.
. "$(dirname "$0")/cli_lib.sh"
. "$SRC/tests/parquet/npm_writer.sh"
C=$TMP/c
parquet_write cases "$C" && pass || fail "the npm writer failed"

"$HERD_TEST_BIN_DIR/parquet_check" "$C" >"$TMP/check" 2>&1 && pass || fail "values differ: $(grep -v '^ok' "$TMP/check" | head -20)"
grep -q "^36 passed, 0 failed" "$TMP/check" && pass || fail "expected 36 cases: $(tail -1 "$TMP/check")"

# ---- bad input: one line naming the file and the problem ----
GOOD=$C/plain-uncompressed.parquet
/usr/bin/python3 - "$GOOD" "$C" <<'PY'
import sys
good, d = sys.argv[1], sys.argv[2]
b = open(good, "rb").read()
open(d + "/badmagic.parquet", "wb").write(b"PAR0" + b[4:])
open(d + "/truncfooter.parquet", "wb").write(b[:4] + b[-18:])       # length field says more than is there
open(d + "/cut.parquet", "wb").write(b[:len(b) // 2])                 # no footer at all
open(d + "/empty.parquet", "wb").write(b"")
# the first page header (the label column, uncompressed, PLAIN): compressed_page_size made 2^30
def varint(p):
    v = s = 0
    while True:
        v |= (b[p] & 0x7f) << s; s += 7; p += 1
        if not b[p - 1] & 0x80: return v, p
assert b[4:7] == b"\x15\x00\x15", b[4:8]
_, p = varint(7)
assert b[p] == 0x15
_, q = varint(p + 1)
z = (1 << 30) << 1
enc = bytearray()
while True:
    enc.append((z & 0x7f) | (0x80 if z >> 7 else 0)); z >>= 7
    if not z: break
open(d + "/longpage.parquet", "wb").write(b[:p + 1] + bytes(enc) + b[q:])
PY
bad() { # bad DESCRIPTION SPEC PATTERN
    expect_exit 1 "$1" -- "$HERD" stats "$2"
    expect_err_line "$1" "$3"
}
bad "wrong magic" "parquet:$C/badmagic.parquet" "$C/badmagic.parquet: bad magic 'PAR0' at the start"
bad "truncated footer" "parquet:$C/truncfooter.parquet" "$C/truncfooter.parquet: truncated footer"
bad "cut file" "parquet:$C/cut.parquet" "$C/cut.parquet: bad magic"
bad "empty file" "parquet:$C/empty.parquet" "$C/empty.parquet: 0 bytes is too short"
bad "page longer than the file" "parquet:$C/longpage.parquet" "$C/longpage.parquet: row group 0, column 'label': page 0: page of 1073741824 bytes"
bad "unsupported codec" "parquet:$C/brotli.parquet?features=f32" "$C/brotli.parquet: row group 0, column 'label': compression codec BROTLI is not supported"
bad "unsupported encoding" "parquet:$C/bss.parquet?features=f32" "$C/bss.parquet: row group 0, column 'f32': page 0: encoding BYTE_STREAM_SPLIT of FLOAT values is not supported"
bad "missing column" "parquet:$C/snappy-dict-v1.parquet?features=f32,nope" "$C/snappy-dict-v1.parquet: no column 'nope' (columns: f32, f64"
bad "missing label" "parquet:$C/snappy-dict-v1.parquet?features=f32&label=y" "$C/snappy-dict-v1.parquet: no column 'y'"
bad "null value" "parquet:$C/snappy-dict-v1.parquet?features=f32,sparse" "$C/snappy-dict-v1.parquet: row group 0, column 'sparse': row 3: null value"
bad "text feature" "parquet:$C/snappy-dict-v1.parquet?features=name" "$C/snappy-dict-v1.parquet: column 'name' holds text, not numbers"
bad "image without shape" "parquet:$C/snappy-dict-v1.parquet?image=px" "image=px needs the image's shape (shape=CxHxW)"
bad "wrong image shape" "parquet:$C/snappy-dict-v1.parquet?image=raw&shape=1x2x2" "row 0: 12 bytes are neither 1x2x2 raw pixels nor a PNG/JPEG image"
bad "unknown option" "parquet:$C/snappy-dict-v1.parquet?colour=red" "unknown option 'colour'"
bad "text target" "parquet:$C/snappy-dict-v1.parquet?features=f32&target=name" "target column 'name' holds text"
bad "label and target" "parquet:$C/snappy-dict-v1.parquet?label=label&target=f64" "give label= (class ids) or target= (float values), not both"
bad "no files" "parquet:$C/nothing-*.parquet" "$C/nothing-*.parquet: no such file or directory"
mkdir -p "$C/mixed" && cp "$GOOD" "$C/mixed/part-0.parquet" && echo "not parquet" >"$C/mixed/README"
bad "a non-Parquet file in the directory" "parquet:$C/mixed" "$C/mixed/README: "
rm "$C/mixed/README"
expect_exit 0 "hidden and _ files are skipped" -- "$HERD" stats "parquet:$C/mixed?features=f32"

# text partition values as labels: ids in sorted order (kind=ant -> 0, kind=bee -> 1)
mkdir -p "$C/kinds/kind=bee" "$C/kinds/kind=ant"
cp "$GOOD" "$C/kinds/kind=bee/part-0.parquet"
cp "$C/snappy-dict-v1.parquet" "$C/kinds/kind=ant/part-0.parquet"
expect_exit 0 "text partition labels" -- "$HERD" stats "parquet:$C/kinds?features=f32&label=kind"
expect_out "text partition labels are sorted ids" "^classes: 0:1000 1:1000$"
expect_exit 0 "a glob over partitions" -- "$HERD" stats "parquet:$C/kinds/kind=b*?features=f32&label=kind"
expect_out "the glob's partition value" "^classes: 0:1000 1:0$"

# ---- herd stats and herd convert take a Parquet source as any other ----
expect_exit 0 "stats" -- "$HERD" stats "parquet:$C/partitioned?features=f32,vec"
expect_out "stats samples" "^samples: 1000$"
expect_out "stats shape" "^shape: 6 \(f32\)$"
cp "$TMP/out" "$TMP/stats_parquet"
expect_exit 0 "convert" -- "$HERD" convert "parquet:$C/partitioned?features=f32,vec" "$TMP/shards" --shards 3
expect_exit 0 "stats of the shards" -- "$HERD" stats "$TMP/shards"
diff <(grep -Ev '^(source|shape)' "$TMP/stats_parquet") <(grep -Ev '^(source|shape)' "$TMP/out") >/dev/null && pass ||
    fail "stats of the shards differ from the Parquet source's: $(diff <(grep -Ev '^(source|shape)' "$TMP/stats_parquet") <(grep -Ev '^(source|shape)' "$TMP/out") | head -5)"
summary
