# Shared by the shell tests: counters, checks and the summary line CTest logs.
set -u
HERD=${HERD_BIN:?HERD_BIN not set (run through ctest)}
SRC=${HERD_SOURCE_DIR:?}
PASSED=0
FAILED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

pass() { PASSED=$((PASSED + 1)); }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*" >&2; }

# expect_exit CODE DESCRIPTION -- command...   (stdout/stderr kept in $TMP/out, $TMP/err)
expect_exit() {
    local want=$1 what=$2
    shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    if [ "$got" = "$want" ]; then pass; else fail "$what: exit $got, expected $want; stderr: $(head -c 400 "$TMP/err")"; fi
}

# stderr must be exactly one line containing the pattern
expect_err_line() {
    local what=$1 pattern=$2
    local n
    n=$(wc -l <"$TMP/err")
    if [ "$n" = 1 ] && grep -qF -- "$pattern" "$TMP/err"; then pass; else
        fail "$what: stderr should be one line containing '$pattern', got $n line(s): $(head -c 400 "$TMP/err")"; fi
}

expect_out() {
    local what=$1 pattern=$2
    if grep -qE -- "$pattern" "$TMP/out"; then pass; else fail "$what: stdout lacks /$pattern/: $(head -c 400 "$TMP/out")"; fi
}

# Makes an IDX directory with the first N train and M test samples of Fashion-MNIST.
make_subset() {
    local dir=$1 ntrain=$2 ntest=$3
    mkdir -p "$dir"
    /usr/bin/python3 - "$dir" "$ntrain" "$ntest" <<'PY'
import gzip, struct, sys
d, ntr, nte = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
src = "/usr/share/datasets/fashion-mnist/"
for split, n in (("train", ntr), ("t10k", nte)):
    img = gzip.open(src + split + "-images-idx3-ubyte.gz").read()
    lab = gzip.open(src + split + "-labels-idx1-ubyte.gz").read()
    with open(f"{d}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + img[16:16 + n * 784])
    with open(f"{d}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + lab[8:8 + n])
PY
}

# make_gpt_example DIR: DIR/text.txt (words and punctuation, the same on every run), DIR/t.tok
# (herd convert --tokenizer char; its report in DIR/convert.out) and DIR/gpt.spec (a one-block
# character GPT, context 32, its head tied to the token embedding wte); V is the vocabulary
make_gpt_example() {
    local dir=$1
    /usr/bin/python3 - "$dir/text.txt" <<'PY'
import random, sys
r = random.Random(5)
words = "the a cat dog sat ran on under mat house garden quickly slowly and but Emma Harriet said".split()
out = []
for s in range(900):
    n = r.randint(3, 9)
    sent = " ".join(r.choice(words) for _ in range(n))
    out.append(sent[0].upper() + sent[1:] + r.choice([".", "!", "?", ","]))
open(sys.argv[1], "w").write(" ".join(out) + "\n")
PY
    "$HERD" convert "text:$dir/text.txt" "$dir/t.tok" --tokenizer char --threads 2 >"$dir/convert.out" 2>&1 ||
        { fail "herd convert: $(cat "$dir/convert.out")"; return 1; }
    V=$(sed -n 's/.*(vocabulary \([0-9]*\)).*/\1/p' "$dir/convert.out")
    cat >"$dir/gpt.spec" <<EOF2
input 32 dtype=i32 name=idx
embedding $V 32 std=0.02 name=wte
posemb name=wpe
layernorm name=ln1
dense 96 name=qkv
attention 4 causal=1
dense 32 name=proj
add wpe,proj name=res1
layernorm
dense 128
gelu_tanh
dense 32 name=mlp
add res1,mlp
layernorm name=ln_f
dense $V bias=0 tie=wte name=lm_head
EOF2
}

# compare_weights A B ATOL: max abs difference over all tensors of two safetensors files
compare_weights() {
    /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import os, sys
sys.path.insert(0, os.environ["HERD_SOURCE_DIR"] + "/tests")
import numpy as np, spec_torch
a, b = spec_torch.read_safetensors(sys.argv[1]), spec_torch.read_safetensors(sys.argv[2])
assert a.keys() == b.keys(), (sorted(a), sorted(b))
worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
print(f"max abs weight difference {worst:.3g} (tolerance {sys.argv[3]})")
sys.exit(0 if worst <= float(sys.argv[3]) else 1)
PY
}

# require_mpi WHAT: skip (exit 77, reason printed) without mpirun; else allow root runs
require_mpi() {
    if ! command -v mpirun >/dev/null; then
        echo "SKIP: mpirun not installed (openmpi-bin); $1 not run"
        echo "0 passed, 0 failed (skipped)"
        exit 77
    fi
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp
    # under ASan: OpenMPI's components, unloaded at MPI_Finalize, leave allocations LeakSanitizer
    # reports from "<unknown module>" (no suppression can name them); herd's own leaks are
    # checked by every non-MPI test and test_leaks_slow
    export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0"
}

summary() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
}

# fault_case WHAT FAULT PATTERN MAX_S -- TRAIN ARGS: `herd train TRAIN ARGS` with
# HERD_TEST_FAULT=FAULT must end non-zero (not by the 60 s guard) within MAX_S seconds, and
# its first "herd:" line (the one a user reads; mpirun's report when herd had no word, as for
# a rank killed outright) must match PATTERN (grep -E, any case).
fault_case() {
    local what=$1 fault=$2 pattern=$3 max=$4 start rc took first
    shift 5
    start=$(date +%s)
    HERD_TEST_FAULT=$fault timeout 60 "$HERD" train "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    took=$(( $(date +%s) - start ))
    [ $rc != 0 ] && [ $rc != 124 ] && pass || fail "$what: exit $rc"
    [ $took -le "$max" ] && pass || fail "$what: took $took s (bound $max s)"
    first=$(grep "^herd:" "$TMP/err" | grep -v "^herd: note:" | head -1) # the first error, past the run's notes
    [ -n "$first" ] || first=$(tr '\n' ' ' <"$TMP/err")
    echo "$first" | grep -qiE -- "$pattern" && pass || fail "$what: first message lacks /$pattern/: $first"
    echo "$what: exit $rc after $took s: $first"
}
