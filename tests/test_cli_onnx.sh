# herd export / herd import and .onnx models through the CLI: round trip of a spec, the
# --model alias, weights as safetensors (export --safetensors), eval/predict/summary on an .onnx file without --weights, usage errors
# (exit 2) and bad files (exit 1, one line naming the file).
. "$(dirname "$0")/cli_lib.sh"
SPEC=$SRC/tests/data/residual_bn.spec

for c in export import; do
    expect_exit 0 "herd $c --help" -- "$HERD" $c --help
    expect_out "herd $c --help" "usage: herd $c"
done
"$HERD" train --help >"$TMP/out"
grep -q -- "--model FILE" "$TMP/out" && pass || fail "train --help lacks --model"
grep -q -- "--tensorboard DIR" "$TMP/out" && pass || fail "train --help lacks --tensorboard"

expect_exit 2 "export without --onnx" -- "$HERD" export "$SPEC"
expect_err_line "export without --onnx" "export needs --onnx FILE"
expect_exit 2 "import without outputs" -- "$HERD" import "$TMP/x.onnx"
expect_err_line "import without outputs" "import needs --spec-out"
expect_exit 2 "--model and a positional" -- "$HERD" summary "$SPEC" --model "$SPEC"
expect_err_line "--model and a positional" "unexpected argument"

expect_exit 0 "export" -- "$HERD" export --model "$SPEC" --seed 3 --onnx "$TMP/r.onnx"
# --safetensors: the weights under herd's names, the random init of --seed (the same seed the
# same bits, another seed others), and what --weights gave, unchanged
expect_exit 0 "export --safetensors" -- "$HERD" export "$SPEC" --seed 3 --safetensors "$TMP/i3.safetensors"
expect_exit 0 "export --safetensors, seed 4" -- "$HERD" export "$SPEC" --seed 4 --safetensors "$TMP/i4.safetensors"
expect_exit 0 "export --weights --safetensors" -- "$HERD" export "$SPEC" --weights "$TMP/i3.safetensors" \
    --safetensors "$TMP/i3b.safetensors"
cmp -s "$TMP/i3.safetensors" "$TMP/i3b.safetensors" && ! cmp -s "$TMP/i3.safetensors" "$TMP/i4.safetensors" && pass ||
    fail "export --safetensors: seed 3 twice differ, or seeds 3 and 4 agree"
expect_exit 0 "import" -- "$HERD" import "$TMP/r.onnx" --spec-out "$TMP/r.spec" --weights-out "$TMP/r.safetensors"
# the imported spec builds the same model: same layers, shapes and parameter counts (dropout,
# an identity at inference, is not exported)
"$HERD" summary "$SPEC" --batch 4 | sed 1d | grep -v '(dropout)' >"$TMP/a"
"$HERD" summary "$TMP/r.spec" --batch 4 | sed 1d >"$TMP/b"
cmp -s "$TMP/a" "$TMP/b" && pass || fail "summary of the imported spec differs: $(diff "$TMP/a" "$TMP/b" | head -5)"
"$HERD" summary "$TMP/r.onnx" --batch 4 | sed 1d >"$TMP/c"
cmp -s "$TMP/a" "$TMP/c" && pass || fail "summary of the .onnx differs: $(diff "$TMP/a" "$TMP/c" | head -5)"
# export of the imported spec + weights gives the same file
expect_exit 0 "re-export" -- "$HERD" export "$TMP/r.spec" --weights "$TMP/r.safetensors" --onnx "$TMP/r2.onnx"
cmp -s "$TMP/r.onnx" "$TMP/r2.onnx" && pass || fail "export -> import -> export is not byte-identical"
ls "$TMP"/*.tmp.* >/dev/null 2>&1 && fail "a temp file was left behind" || pass
# kill -9 after the temp file is complete, before the rename: the old file stays whole
cp "$TMP/r.onnx" "$TMP/keep.onnx"
rc=$( (HERD_TEST_FAULT=crash:onnx.before_rename:1 "$HERD" export "$SRC/examples/fashion_cnn.spec" \
    --onnx "$TMP/r.onnx" >/dev/null 2>&1; echo $?) 2>/dev/null)
[ "$rc" = 137 ] && pass || fail "the crash fault in the ONNX writer did not fire (exit $rc)"
cmp -s "$TMP/r.onnx" "$TMP/keep.onnx" && pass || fail "a crash before the rename changed the old file"
rm -f "$TMP"/r.onnx.tmp.*

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    make_subset "$TMP/fm" 64 32
    expect_exit 0 "export fashion" -- "$HERD" export "$SRC/examples/fashion_cnn.spec" --onnx "$TMP/f.onnx"
    expect_exit 0 "eval x.onnx without --weights" -- "$HERD" eval "$TMP/f.onnx" --data "$TMP/fm" --threads 1
    expect_out "eval x.onnx" "accuracy: "
    expect_exit 0 "predict x.onnx" -- "$HERD" predict --model "$TMP/f.onnx" --images "$TMP/fm/t10k-images-idx3-ubyte" \
        --limit 3 --threads 1
    [ "$(wc -l <"$TMP/out")" = 4 ] && pass || fail "predict x.onnx: expected a header and 3 lines, got $(cat "$TMP/out")"
fi

# a convolution after global pooling (a squeeze-and-excitation): the pool is written as
# GlobalAveragePool alone, (N, C, 1, 1); export -> import -> export is byte-identical
printf 'input 3x4x4\ngap\nconv 2 1\nflatten\ndense 3\n' >"$TMP/gapconv.spec"
expect_exit 0 "export of a conv after gap" -- "$HERD" export "$TMP/gapconv.spec" --onnx "$TMP/gapconv.onnx"
expect_exit 0 "re-export of a conv after gap" -- "$HERD" export "$TMP/gapconv.onnx" --onnx "$TMP/gapconv2.onnx"
cmp -s "$TMP/gapconv.onnx" "$TMP/gapconv2.onnx" && pass || fail "gap + conv: export -> import -> export differs"
# a convolution reading a dense layer's (N, F) output has no NCHW form: refused, nothing written
printf 'input 3x4x4\nflatten\ndense 6\nconv 2 1\nflatten\ndense 3\n' >"$TMP/flatconv.spec"
expect_exit 1 "export of a conv on a flat tensor" -- "$HERD" export "$TMP/flatconv.spec" --onnx "$TMP/flatconv.onnx"
expect_err_line "export of a conv on a flat tensor" "$TMP/flatconv.onnx: layer 'conv1' reads a flat tensor"
[ ! -e "$TMP/flatconv.onnx" ] && pass || fail "a file was written for a failed export"

printf 'not protobuf at all\n' >"$TMP/bad.onnx"
expect_exit 1 "bad .onnx" -- "$HERD" summary "$TMP/bad.onnx"
expect_err_line "bad .onnx" "$TMP/bad.onnx: not a valid ONNX file"
expect_exit 1 "missing .onnx" -- "$HERD" train --model "$TMP/none.onnx"
expect_err_line "missing .onnx" "$TMP/none.onnx: cannot open"
expect_exit 1 "import of a bad file writes nothing" -- "$HERD" import "$TMP/bad.onnx" --spec-out "$TMP/bad.spec"
[ ! -e "$TMP/bad.spec" ] && pass || fail "a spec was written for a bad file"
summary
