#!/usr/bin/env bash
# Writes the seed corpora tests/fuzz/corpus/<target>/: a few small valid files of each
# format and a few broken ones, so that libFuzzer starts from inputs that reach deep into
# each parser. The files are checked in; rerun this after a format changes:
#   tests/fuzz/make_corpus.sh build/herd
set -euo pipefail
cd "$(dirname "$0")/../.."
HERD=${1:-build/herd}
OUT=tests/fuzz/corpus
[ -x "$HERD" ] || { echo "make_corpus.sh: $HERD is not built (give the herd binary as argument)" >&2; exit 2; }
rm -rf "$OUT"
mkdir -p "$OUT"/{spec,idx,cifar,json,safetensors,checkpoint,cli}

# ---- model specs: the examples and test specs, plus small valid and invalid ones ----
for f in examples/*.spec tests/data/*.spec; do cp "$f" "$OUT/spec/$(basename "$f")"; done
printf 'input 1x8x8\nconv 4 3 pad=same relu name=a\nconv 4 3 pad=1\nadd a relu\nmaxpool 2\nbatchnorm\ngap\ndense 3\n' >"$OUT/spec/residual.spec"
printf 'input 784\ndense 16 gelu\ndropout 0.5\nleaky_relu 0.1\ndense 10 bias=0\nsoftmax\nloss mse\ntrain optimizer=sgd lr=0.1 batch=8 epochs=2\n' >"$OUT/spec/mlp_mse.spec"
printf 'input 3x5x7\nconv 2 3x5 stride=2x1 pad=1x2 tanh\navgpool 2 stride=1 pad=1\nflatten\ndense 4 sigmoid\n' >"$OUT/spec/rect.spec"
printf 'input 1x28x28\nconv 8 3\ndense 10\n' >"$OUT/spec/bad_dense_needs_flatten.spec"
printf 'input 1x4x4\nconv 8 9\nflatten\ndense 2\n' >"$OUT/spec/bad_kernel_too_big.spec"
printf 'input 1x4x4\nwobble 3\n' >"$OUT/spec/bad_unknown_layer.spec"
printf 'input 2x2\n' >"$OUT/spec/bad_input_shape.spec"

python3 - "$OUT" <<'PY'
import gzip, json, struct, sys
out = sys.argv[1]

def w(path, data):
    with open(f"{out}/{path}", "wb") as f:
        f.write(data)

# ---- IDX ----
def idx(dims, data, typ=8):
    return bytes([0, 0, typ, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data
w("idx/images3d", idx([3, 4, 5], bytes(range(60))))
w("idx/labels1d", idx([6], bytes([0, 1, 2, 9, 4, 5])))
w("idx/images4d", idx([2, 3, 2, 2], bytes(range(24))))
w("idx/images3d.gz", gzip.compress(idx([2, 3, 3], bytes(range(18)))))
w("idx/bad_magic", b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
w("idx/bad_type_float32", idx([2], b"\x00" * 8, typ=0x0D))
w("idx/bad_truncated", idx([4, 4], bytes(10)))
w("idx/bad_trailing", idx([2], b"ab") + b"extra")
w("idx/bad_ndim", bytes([0, 0, 8, 5]) + bytes(20))

# ---- CIFAR-10 binary ----
def rec(label, seed):
    return bytes([label]) + bytes((seed * 31 + i * 7) % 256 for i in range(3072))
w("cifar/two_records.bin", rec(3, 1) + rec(9, 2))
w("cifar/one_record.bin", rec(0, 5))
w("cifar/bad_label.bin", rec(10, 1))
w("cifar/bad_short.bin", rec(1, 1)[:1000])

# ---- safetensors ----
def st(tensors, meta=None, align=8, extra=b""):
    hdr, data = {}, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % align)
    return struct.pack("<Q", len(h)) + h + data + extra
f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
w("safetensors/f32_meta.safetensors", st([("w", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6)), ("b", "F32", [3], f32(0, 0, 1))],
                                          {"format": "herd", "model": "x.spec"}))
w("safetensors/dtypes.safetensors", st([("u", "U8", [3], b"\x01\x02\x03"), ("l", "I64", [2], struct.pack("<2q", 7, -8)),
                                        ("i", "I32", [1], struct.pack("<i", 5)), ("d", "F64", [], struct.pack("<d", 2.5)),
                                        ("e", "F32", [0, 4], b"")]))
w("safetensors/bad_f16.safetensors", st([("h", "F16", [2], b"\x00\x3c\x00\x40")]))
w("safetensors/bad_overlap.safetensors", struct.pack("<Q", 96) + json.dumps(
    {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
     "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode().ljust(96) + bytes(12))
w("safetensors/bad_truncated.safetensors", st([("w", "F32", [4], f32(1, 2, 3, 4))])[:-5])
w("safetensors/bad_header_len.safetensors", struct.pack("<Q", 1 << 40) + b"{}")

# ---- JSON (the safetensors header parser) ----
w("json/header.json", b'{"__metadata__":{"format":"herd"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}')
w("json/values.json", b'[null,true,false,0,-1,1.5e-3,9223372036854775807,1e308,"a\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\",[],{}]')
w("json/nested.json", b'{"a":[{"b":[[[{"c":[1,2,{"d":null}]}]]]}],"a":"duplicate"}')
w("json/utf8.json", '"héllo — ✓ 😀"'.encode())
w("json/bad_trailing_comma.json", b'[1,2,]')
w("json/bad_escape.json", b'"\\x41"')
w("json/bad_lone_surrogate.json", b'"\\ud800"')
w("json/bad_deep.json", b"[" * 100 + b"]" * 100)
w("json/bad_number.json", b"[01, 1., -]")

# ---- command lines (NUL-separated arguments after `herd train`) ----
args = [["model.spec"], ["model.spec", "--epochs", "3", "--lr=0.01", "--quiet"],
        ["--data", "fashion-mnist", "m.spec", "--batch", "64", "--seed", "18446744073709551615", "-n", "2"],
        ["m.spec", "--val-split", "0.2", "--save", "out.safetensors", "--workers=4"],
        ["--help"], ["m.spec", "--batch", "0"], ["m.spec", "--lr", "nan"], ["m.spec", "--quiet=1"],
        ["m.spec", "--epochs"], ["a.spec", "b.spec"], ["m.spec", "--seed", "-1"], ["m.spec", "--unknown"],
        [], ["m.spec", "-x"], ["m.spec", "--data", ""]]
for i, a in enumerate(args):
    w(f"cli/args{i:02d}", b"\0".join(s.encode() for s in a))
PY

# ---- checkpoints and weights of the fuzz target's model (fuzz_bodies.c: CKPT_SPEC), trained
# for real so that every tensor and metadata key is the genuine article ----
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
printf 'input 2x4x4\nconv 2 3 pad=1\nbatchnorm relu\nflatten\ndense 3\n' >"$TMPD/m.spec"
python3 - "$TMPD/data" <<'PY'
import os, struct, sys
d = sys.argv[1]
os.makedirs(d)
for split, n in (("train", 8), ("t10k", 4)):
    with open(f"{d}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">BBBBIIII", 0, 0, 8, 4, n, 2, 4, 4) + bytes((i * 13) % 256 for i in range(n * 32)))
    with open(f"{d}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(i % 3 for i in range(n)))
PY
"$HERD" train "$TMPD/m.spec" --data "$TMPD/data" --epochs 1 --batch 4 --optimizer adam --threads 1 \
    --checkpoint-dir "$TMPD/ck" --checkpoint-every 1 --keep-checkpoints 0 --save "$TMPD/weights.safetensors" \
    --progress none --quiet >/dev/null
cp "$TMPD/ck/ckpt-0000000002.safetensors" "$OUT/checkpoint/ckpt_adam.safetensors"
cp "$TMPD/weights.safetensors" "$OUT/checkpoint/weights_only.safetensors"
"$HERD" train "$TMPD/m.spec" --data "$TMPD/data" --epochs 1 --batch 4 --optimizer sgd --threads 1 \
    --checkpoint-dir "$TMPD/ck_sgd" --progress none --quiet >/dev/null
cp "$TMPD/ck_sgd/"ckpt-*.safetensors "$OUT/checkpoint/ckpt_sgd_wrong_optimizer.safetensors"
echo "make_corpus.sh: $(find "$OUT" -type f | wc -l) files in $OUT"
