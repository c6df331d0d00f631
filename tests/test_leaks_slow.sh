#!/usr/bin/env bash
# herd train (with validation, JSON log, checkpoints and a resume), eval, predict and summary,
# and a few of their error exits, free everything they allocate: under LeakSanitizer when
# herd is built with HERD_SANITIZE=ON (the leak report makes herd exit 23), otherwise under
# valgrind --leak-check=full (exit 9 on any definite or possible leak or memory error).
source "$(dirname "$0")/cli_lib.sh"

if [ "${HERD_SANITIZED:-0}" = 1 ]; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
    RUN=()
    checker="LeakSanitizer"
elif command -v valgrind >/dev/null; then
    RUN=(valgrind --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=9 -q)
    checker="valgrind"
else
    echo "skipped: needs valgrind (Debian package valgrind) or a HERD_SANITIZE=ON build"
    exit 77
fi
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || {
    echo "skipped: needs dataset-fashion-mnist"
    exit 77
}

cd "$TMP"
make_subset sub 96 32
# small but with every kind of state: conv, batch norm buffers, dropout, dense
printf 'input 1x28x28\nconv 4 3 pad=1 relu\nmaxpool 2\nbatchnorm\nflatten\ndropout 0.2\ndense 10\n' >tiny.spec

# leak_free WHAT WANT_EXIT herd-args...: one herd run under the checker, expecting WANT_EXIT
leak_free() {
    local what=$1 want=$2
    shift 2
    "${RUN[@]}" "$HERD" "$@" >out 2>err
    local got=$?
    if [ "$got" = "$want" ] && ! grep -q "LeakSanitizer\|definitely lost\|ERROR SUMMARY: [1-9]" err; then pass; else
        fail "$what under $checker: exit $got (want $want): $(grep -m3 -E 'LeakSanitizer|lost|ERROR|herd:' err)"
    fi
}

T=(--threads 1 --progress none --batch 32)
leak_free "train" 0 train tiny.spec --data sub --epochs 1 "${T[@]}" --val-split 0.25 --log-json log.json \
    --save w.safetensors --checkpoint-dir ck --checkpoint-every 1
leak_free "train --resume" 0 train tiny.spec --data sub --epochs 2 "${T[@]}" --val-split 0.25 --resume ck
leak_free "train --weights" 0 train tiny.spec --data sub --epochs 1 "${T[@]}" --weights w.safetensors --optimizer sgd
leak_free "eval" 0 eval tiny.spec --data sub --weights w.safetensors --threads 1
leak_free "eval --backend ref" 0 eval tiny.spec --data sub --weights w.safetensors --threads 1 --backend ref
leak_free "predict" 0 predict tiny.spec --weights w.safetensors --images sub/t10k-images-idx3-ubyte --limit 5 --threads 1
leak_free "summary" 0 summary tiny.spec --batch 8
# error exits release what they had opened too
printf 'input 1x28x28\nconv 4 3\ndense 10\n' >bad.spec
leak_free "train, bad spec" 1 train bad.spec --data sub --epochs 1 "${T[@]}"
leak_free "eval, missing weights" 1 eval tiny.spec --data sub --weights missing.safetensors --threads 1
leak_free "predict, bad images" 1 predict tiny.spec --weights w.safetensors --images tiny.spec --threads 1
leak_free "train, resume with another batch" 1 train tiny.spec --data sub --epochs 2 --threads 1 --progress none \
    --batch 16 --resume ck
leak_free "usage error" 2 train tiny.spec --epochs -1
echo "checked with $checker"
summary
