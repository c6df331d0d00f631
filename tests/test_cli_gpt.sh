# A character GPT end to end: herd convert --tokenizer char, training on lm: windows with a tied
# head (the same weights for the same seed, on 1 and 2 MPI ranks with --deterministic, and after
# a resume from a checkpoint; as a 2-stage pipeline cut between the embedding and its tied head,
# equal to one process, its checkpoint resumed), herd generate with the key-value cache giving the tokens of
# full recomputation (greedy and sampled), the same seed the same text, and the bad inputs as
# one line: a prompt character outside the vocabulary, a context past the model's, --tokens 0, a
# token file of another vocabulary size, a non-causal model.
. "$(dirname "$0")/cli_lib.sh"

make_gpt_example "$TMP"
[ -n "$V" ] && pass || fail "no vocabulary size in: $(cat "$TMP/convert.out")"
RUN=(--data "lm:$TMP/t.tok?stride=16" --batch 16 --optimizer adamw --lr 3e-3 --weight-decay 0.1 --decay matrices
     --clip-norm 1 --seed 3 --progress none --threads 2)
expect_exit 0 "train" -- "$HERD" train "$TMP/gpt.spec" "${RUN[@]}" --epochs 3 --lr-schedule cosine --warmup 20 \
    --save "$TMP/w.safetensors"
expect_out "held-out tail" "^test accuracy: "
loss=$(sed -n 's/^test accuracy: [0-9.]* (loss \([0-9.]*\),.*/\1/p' "$TMP/out")
/usr/bin/python3 -c "import sys; sys.exit(0 if float('$loss') < 2.2 else 1)" && pass || fail "validation loss $loss (a uniform guess is ln($V))"
expect_exit 0 "train again" -- "$HERD" train "$TMP/gpt.spec" "${RUN[@]}" --epochs 3 --lr-schedule cosine --warmup 20 \
    --save "$TMP/w_again.safetensors"
cmp -s "$TMP/w.safetensors" "$TMP/w_again.safetensors" && pass || fail "same seed and threads: weights differ"
# checkpoint after 2 epochs, resume to 3: the unbroken run's weights (a constant rate: a cosine
# schedule's length is the run's epochs)
expect_exit 0 "3 epochs" -- "$HERD" train "$TMP/gpt.spec" "${RUN[@]}" --epochs 3 --save "$TMP/w3.safetensors"
expect_exit 0 "2 epochs with checkpoints" -- "$HERD" train "$TMP/gpt.spec" "${RUN[@]}" --epochs 2 --checkpoint-dir "$TMP/ck"
expect_exit 0 "resume" -- "$HERD" train "$TMP/gpt.spec" "${RUN[@]}" --epochs 3 --resume "$TMP/ck" \
    --save "$TMP/wr.safetensors"
cmp -s "$TMP/wr.safetensors" "$TMP/w3.safetensors" && pass || fail "resumed weights differ from an unbroken run"

W=$TMP/w.safetensors
# 60 tokens after 8: the window of 32 moves on twice (by 16), the same way in both paths
for args in "--temperature 0" "--temperature 0.8 --seed 7" "--temperature 1.2 --top-k 5 --seed 9"; do
    # shellcheck disable=SC2086
    expect_exit 0 "generate ($args)" -- "$HERD" generate "$TMP/gpt.spec" --weights "$W" --vocab "$TMP/t.tok" \
        --prompt "Emma sat" --tokens 60 $args
    cp "$TMP/out" "$TMP/cached"
    grep -q "key-value cache" "$TMP/err" && pass || fail "generate says how: $(cat "$TMP/err")"
    # shellcheck disable=SC2086
    expect_exit 0 "recompute ($args)" -- "$HERD" generate "$TMP/gpt.spec" --weights "$W" --vocab "$TMP/t.tok" \
        --prompt "Emma sat" --tokens 60 $args --recompute
    cmp -s "$TMP/out" "$TMP/cached" && pass || fail "cached and recomputed generation differ ($args): $(cat "$TMP/cached") / $(cat "$TMP/out")"
    [ "$(head -c 8 "$TMP/out")" = "Emma sat" ] && [ "$(wc -c <"$TMP/out")" = 69 ] && pass || fail "prompt + 60 characters: $(cat "$TMP/out")"
done
expect_exit 0 "seed 7 again" -- "$HERD" generate "$TMP/gpt.spec" --weights "$W" --vocab "$TMP/t.tok" --prompt "Emma sat" \
    --tokens 24 --temperature 0.8 --seed 7
cp "$TMP/out" "$TMP/s7"
expect_exit 0 "seed 7 once more" -- "$HERD" generate "$TMP/gpt.spec" --weights "$W" --vocab "$TMP/t.tok" \
    --prompt "Emma sat" --tokens 24 --temperature 0.8 --seed 7 --threads 1
cmp -s "$TMP/out" "$TMP/s7" && pass || fail "same seed, other text"
differ=0
for s in 1 2 3; do
    "$HERD" generate "$TMP/gpt.spec" --weights "$W" --vocab "$TMP/t.tok" --prompt "Emma sat" --tokens 24 \
        --temperature 1.5 --seed $s >"$TMP/o$s" 2>/dev/null
    cmp -s "$TMP/o$s" "$TMP/s7" || differ=1
done
[ $differ = 1 ] && pass || fail "other seeds give the same text"

# the trained model through ONNX: exported, generated from the .onnx (imported, no --weights) as
# from the spec, and exported again byte for byte
expect_exit 0 "export to ONNX" -- "$HERD" export "$TMP/gpt.spec" --weights "$W" --onnx "$TMP/gpt.onnx"
for args in "--temperature 0" "--temperature 0.8 --top-k 5 --seed 7"; do
    # shellcheck disable=SC2086
    "$HERD" generate "$TMP/gpt.spec" --weights "$W" --vocab "$TMP/t.tok" --prompt "Emma sat" --tokens 40 $args \
        >"$TMP/from_spec" 2>/dev/null
    # shellcheck disable=SC2086
    expect_exit 0 "generate from the .onnx ($args)" -- "$HERD" generate "$TMP/gpt.onnx" --vocab "$TMP/t.tok" \
        --prompt "Emma sat" --tokens 40 $args
    cmp -s "$TMP/out" "$TMP/from_spec" && pass || fail "the .onnx generates other text ($args): $(cat "$TMP/out") / $(cat "$TMP/from_spec")"
done
expect_exit 0 "export the .onnx again" -- "$HERD" export "$TMP/gpt.onnx" --onnx "$TMP/gpt2.onnx"
cmp -s "$TMP/gpt.onnx" "$TMP/gpt2.onnx" && pass || fail "export -> import -> export of the GPT is not byte-identical"

# bad input: one line each
expect_exit 1 "prompt outside the vocabulary" -- "$HERD" generate "$TMP/gpt.spec" --weights "$W" --vocab "$TMP/t.tok" \
    --prompt "Emma ~" --tokens 4
expect_err_line "prompt outside the vocabulary" "'~' (byte 5 of the text) is not in the vocabulary"
expect_exit 1 "prompt past the model's context" -- "$HERD" generate "$TMP/gpt.spec" --weights "$W" \
    --vocab "$TMP/t.tok" --prompt "Emma sat on the mat and Harriet ran" --tokens 3
expect_err_line "prompt past the model's context" "a prompt of 35 tokens is longer than the model's context of 32"
expect_exit 2 "--tokens 0" -- "$HERD" generate "$TMP/gpt.spec" --weights "$W" --vocab "$TMP/t.tok" --prompt "Emma" --tokens 0
expect_err_line "--tokens 0" "generate at least 1 token"
expect_exit 0 "a smaller vocabulary" -- "$HERD" convert "text:$TMP/text.txt" "$TMP/small.tok" --tokenizer char --vocab 20
expect_exit 1 "token file of another vocabulary" -- "$HERD" generate "$TMP/gpt.spec" --weights "$W" --vocab "$TMP/small.tok" \
    --prompt "Emma" --tokens 4
expect_err_line "token file of another vocabulary" "not the token file the model was trained on"
sed 's/causal=1/causal=0/' "$TMP/gpt.spec" >"$TMP/nc.spec"
expect_exit 1 "non-causal attention" -- "$HERD" generate "$TMP/nc.spec" --weights "$W" --vocab "$TMP/t.tok" \
    --prompt "Emma" --tokens 4
expect_err_line "non-causal attention" "cannot generate one position at a time"
printf '\xff\xfe' >"$TMP/bad.txt"
expect_exit 1 "not UTF-8" -- "$HERD" convert "text:$TMP/bad.txt" "$TMP/bad.tok" --tokenizer char
expect_err_line "not UTF-8" "bad.txt:1: not valid UTF-8 (byte 0xff)"
[ ! -e "$TMP/bad.tok" ] && pass || fail "a failed convert left a token file"

# data parallel: 2 ranks with --deterministic train the one-rank weights (the tied table's
# gradient is dense, so it goes through the buckets)
if command -v mpirun >/dev/null; then
    require_mpi "gpt data parallel"
    DP=("${RUN[@]}" --epochs 1 --threads 1 --lr-schedule cosine --deterministic --timeout 60)
    expect_exit 0 "1 rank" -- "$HERD" train "$TMP/gpt.spec" "${DP[@]}" --save "$TMP/d1.safetensors"
    expect_exit 0 "2 ranks" -- "$HERD" train "$TMP/gpt.spec" "${DP[@]}" -n 2 --save "$TMP/d2.safetensors"
    cmp -s "$TMP/d1.safetensors" "$TMP/d2.safetensors" && pass || fail "--deterministic: 1 and 2 ranks differ"
    # a 2-stage pipeline cut between the embedding and the head tied to it: the tied table on
    # both stages, its gradient summed between them; equal to one process to float tolerance
    # (measured 2.4e-7, as 2 data-parallel ranks without --deterministic; SGD over ~50 steps: AdamW,
    # or hundreds of steps at a high rate, grow float noise into visible differences on any layout),
    # its checkpoint resumed as the same pipeline (the same bits) and in one process
    PP=(--data "lm:$TMP/t.tok?stride=64" --batch 16 --optimizer sgd --lr 0.1 --weight-decay 0.1 --decay matrices
        --clip-norm 1 --seed 3 --progress none --threads 1 --epochs 2 --timeout 60)
    expect_exit 0 "one process (sgd)" -- "$HERD" train "$TMP/gpt.spec" "${PP[@]}" --save "$TMP/p1.safetensors"
    expect_exit 0 "2-stage pipeline across the tied weight" -- "$HERD" train "$TMP/gpt.spec" "${PP[@]}" -n 2 \
        --strategy pipeline --split res1 --checkpoint-dir "$TMP/pck" --save "$TMP/p2.safetensors"
    compare_weights "$TMP/p1.safetensors" "$TMP/p2.safetensors" 1e-5 && pass || fail "pipeline against one process"
    first=$(ls "$TMP/pck" | grep '^ckpt-.*safetensors$' | head -1)
    mkdir -p "$TMP/pr1" "$TMP/pr2" && cp "$TMP/pck/$first" "$TMP/pr1/" && cp "$TMP/pck/$first" "$TMP/pr2/"
    expect_exit 0 "resume the pipeline" -- "$HERD" train "$TMP/gpt.spec" "${PP[@]}" -n 2 --strategy pipeline \
        --split res1 --resume "$TMP/pr1" --save "$TMP/pr1.safetensors"
    cmp -s "$TMP/pr1.safetensors" "$TMP/p2.safetensors" && pass || fail "pipeline resumed: not the unbroken run's bits"
    expect_exit 0 "resume the pipeline's checkpoint in one process" -- "$HERD" train "$TMP/gpt.spec" "${PP[@]}" \
        --resume "$TMP/pr2" --save "$TMP/pr2.safetensors"
    compare_weights "$TMP/pr2.safetensors" "$TMP/p2.safetensors" 1e-5 && pass || fail "pipeline checkpoint in one process"
    # untied, the embedding's table has a row-sparse gradient, which a pipeline does not update:
    # refused in one line (it used to stop on an internal assertion)
    sed 's/ tie=wte//' "$TMP/gpt.spec" >"$TMP/untied.spec"
    expect_exit 1 "pipeline with a row-sparse table" -- "$HERD" train "$TMP/untied.spec" "${PP[@]}" -n 2 \
        --strategy pipeline --split res1
    grep -q "row-sparse gradients, which pipeline training does not exchange" "$TMP/err" && pass ||
        fail "untied pipeline: $(head -c 300 "$TMP/err")"
else
    echo "note: mpirun not installed; the 2-rank check was not run"
fi
summary
