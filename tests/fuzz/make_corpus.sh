#!/usr/bin/env bash
# Writes the seed corpora tests/fuzz/corpus/<target>/: a few small valid files of each
# format and a few broken ones, so that libFuzzer starts from inputs that reach deep into
# each parser. The files are checked in; rerun this after a format changes:
#   PYTHON=/usr/bin/python3 tests/fuzz/make_corpus.sh build/herd    (a python with PIL writes the JPEG seeds)
set -euo pipefail
cd "$(dirname "$0")/../.."
HERD=${1:-build/herd}
OUT=tests/fuzz/corpus
[ -x "$HERD" ] || { echo "make_corpus.sh: $HERD is not built (give the herd binary as argument)" >&2; exit 2; }
rm -rf "$OUT"
mkdir -p "$OUT"/{spec,idx,cifar,csv,npy,tfrecord,parquet,image,shard,json,safetensors,checkpoint,onnx,cli,psmsg}

# ---- model specs: the examples and test specs, plus small valid and invalid ones ----
for f in examples/*.spec tests/data/*.spec; do cp "$f" "$OUT/spec/$(basename "$f")"; done
printf 'input 1x8x8\nconv 4 3 pad=same relu name=a\nconv 4 3 pad=1\nadd a relu\nmaxpool 2\nbatchnorm\ngap\ndense 3\n' >"$OUT/spec/residual.spec"
printf 'input 784\ndense 16 gelu\ndropout 0.5\nleaky_relu 0.1\ndense 10 bias=0\nsoftmax\nloss mse\ntrain optimizer=sgd lr=0.1 batch=8 epochs=2\n' >"$OUT/spec/mlp_mse.spec"
printf 'input 3x5x7\nconv 2 3x5 stride=2x1 pad=1x2 tanh\navgpool 2 stride=1 pad=1\nflatten\ndense 4 sigmoid\n' >"$OUT/spec/rect.spec"
printf 'input 1x28x28\nconv 8 3\ndense 10\n' >"$OUT/spec/bad_dense_needs_flatten.spec"
printf 'input 60\ndense 40\nreshape 4x10\nloss xent ignore=-1\n' >"$OUT/spec/positions_ignore.spec"
printf 'input 12\ndense 1\nloss bce\n' >"$OUT/spec/bce.spec"
printf 'input 40\nreshape 5x8\nposemb std=0.5\ndense 24\nattention 2 causal=1\ndense 3\nloss mse\n' >"$OUT/spec/attention_mse.spec"
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

# ---- parameter-server messages: tag index, step window, version (2 bytes), dense floats, two
# table pieces (rows + 8 (row floats - 1)), restored state floats, then the message (fuzz_psmsg in
# fuzz_bodies.c). Dense 4, piece bytes 11 and 2: keys 4, 6, 8 (2 floats) and 10, 11 (1 float) ----
def psmsg(name, tag, slots, version, body, dense=4, p0=11, p1=2, state=0):
    w(f"psmsg/{name}", bytes([tag, slots]) + struct.pack("<H", version) + bytes([dense, p0, p1, state]) + body)
psmsg("pull", 0, 2, 5, struct.pack("<qqqq", 5, 0, 0, 2) + struct.pack("<qq", 4, 10))
psmsg("pull_full", 0, 0, 7, struct.pack("<qqqq", 9, 1, 1, 0))
psmsg("pull_bad_exact", 0, 2, 5, struct.pack("<qqqq", 5, 7, 0, 0))
psmsg("pull_bad_key", 0, 2, 5, struct.pack("<qqqq", 5, 0, 0, 1) + struct.pack("<q", 5))
psmsg("pull_keys_descend", 0, 2, 5, struct.pack("<qqqq", 5, 0, 0, 2) + struct.pack("<qq", 8, 6))
psmsg("push", 2, 2, 5, struct.pack("<qqq", 6, 32, 2) + struct.pack("<qq", 4, 11) + struct.pack("<7f", 0.5, -1, 2, 0, 1, 2, 3))
psmsg("push_async", 2, 0, 5, struct.pack("<qqq", 100, 16, 0) + struct.pack("<3f", 1, 2, 3), dense=3)
psmsg("push_window", 2, 1, 5, struct.pack("<qqq", 9, 16, 0) + struct.pack("<2f", 1, 2), dense=2)
psmsg("push_short", 2, 2, 5, struct.pack("<qqq", 5, 32, 1) + struct.pack("<q", 6) + struct.pack("<5f", 1, 2, 3, 4, 5))
psmsg("push_negative_samples", 2, 2, 5, struct.pack("<qqq", 5, -1, 0) + struct.pack("<f", 1), dense=1)
psmsg("done", 3, 2, 5, struct.pack("<q", 0))
psmsg("state", 4, 2, 5, struct.pack("<q", 5))
psmsg("restore", 6, 2, 0, struct.pack("<qq", 5, 4) + struct.pack("<3f", 1, 2, 3), state=3)
psmsg("restore_bad_steps", 6, 2, 0, struct.pack("<qq", 5, 6) + struct.pack("<3f", 1, 2, 3), state=3)
psmsg("unknown_tag", 7, 2, 5, struct.pack("<q", 0))
psmsg("params_tag", 1, 2, 5, 4, struct.pack("<4f", 1, 2, 3, 4))
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
# ---- CSV, NPY (2-byte length of the features file, then it, then the labels file), TFRecord
# of tf.train.Example (raw, float and PNG/JPEG images), PNG/JPEG images ($PYTHON, with PIL for
# the JPEGs) ----
"${PYTHON:-python3}" - "$OUT" <<'PY'
import io, struct, sys, zlib
out = sys.argv[1]
import os
for d in ("csv", "npy", "tfrecord", "image", "shard", "onnx"):
    os.makedirs(f"{out}/{d}", exist_ok=True)

def w(path, data):
    with open(f"{out}/{path}", "wb") as f:
        f.write(data)

w("csv/plain.csv", b"a,b,label\n0.5,1,0\n-2,3e-1,1\n4,5,2\n")
w("csv/quoted_crlf.csv", b'"x","label","y"\r\n"1.5",0,"2"\r\n"-0",1,"1e3"\r\n')
w("csv/bad_label.csv", b"a,label\n1,-1\n")
w("csv/ragged.csv", b"a,b,label\n1,2\n")

def npy(dtype, shape, payload):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (dtype, shape)
    hl = (10 + len(d) + 1 + 63) // 64 * 64 - 10
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", hl) + d.encode() + b" " * (hl - len(d) - 1) + b"\n" + payload
def pair(x, y):
    return struct.pack("<H", len(x)) + x + y
w("npy/u8_images.bin", pair(npy("|u1", "(3, 2, 2)", bytes(range(12))), npy("<i8", "(3,)", struct.pack("<3q", 0, 1, 2))))
w("npy/f4_features.bin", pair(npy("<f4", "(2, 3)", struct.pack("<6f", 1, 2, 3, 4, 5, 6)), npy("<i4", "(2, 1)", struct.pack("<2i", 1, 0))))
w("npy/f8_nchw.bin", pair(npy("<f8", "(1, 1, 2, 2)", struct.pack("<4d", .1, .2, .3, .4)), npy("|i1", "(1,)", b"\x00")))
w("npy/bad_count.bin", pair(npy("<f4", "(2,)", struct.pack("<2f", 1, 2)), npy("<i8", "(3,)", struct.pack("<3q", 0, 1, 2))))

sys.path.insert(0, "tests")
from crc32c import masked
def varint(n):
    b = b""
    while True:
        if n < 0x80:
            return b + bytes([n])
        b += bytes([(n & 0x7F) | 0x80]); n >>= 7
def ld(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload
def feature(kind, payload):  # kind 1 bytes_list, 2 float_list, 3 int64_list
    return ld(kind, payload)
def example(feats):
    fs = b"".join(ld(1, ld(1, k.encode()) + ld(2, v)) for k, v in feats.items())
    return ld(1, fs)
def record(data):
    n = struct.pack("<Q", len(data))
    return n + struct.pack("<I", masked(n)) + data + struct.pack("<I", masked(data))
def png(wd, ht, gray):
    raw = b"".join(b"\x00" + bytes((x * 40 + y * 7) % 256 for x in range(wd * (1 if gray else 3))) for y in range(ht))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", wd, ht, 8, 0 if gray else 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
def jpeg(wd, ht):  # PIL, where this python has it; else a PNG stands in (and a note says so)
    try:
        from PIL import Image
    except ImportError:
        print("make_corpus.sh: no PIL in this python: JPEG seeds replaced by PNGs", file=sys.stderr)
        return png(wd, ht, False)
    im = Image.new("RGB", (wd, ht))
    im.putdata([((x * 30) % 256, (y * 50) % 256, 128) for y in range(ht) for x in range(wd)])
    b = io.BytesIO(); im.save(b, "JPEG", quality=80); return b.getvalue()
lab = lambda v: feature(3, ld(1, varint(v)))
raw = example({"image": feature(1, ld(1, bytes(range(16)))), "label": lab(1)})
flt = example({"image": feature(2, ld(1, struct.pack("<16f", *[i / 16 for i in range(16)]))), "label": lab(0)})
pngx = example({"image": feature(1, ld(1, png(5, 3, False))), "label": lab(2)})
jpgx = example({"image": feature(1, ld(1, jpeg(6, 4))), "label": lab(3)})
w("tfrecord/raw_u8.tfrecord", record(raw) + record(raw))
w("tfrecord/floats.tfrecord", record(flt))
w("tfrecord/png.tfrecord", record(pngx))
w("tfrecord/jpeg.tfrecord", record(jpgx) + record(pngx))
w("tfrecord/bad_crc.tfrecord", record(raw)[:-1] + b"\x00")
w("image/rgb.png", png(5, 3, False))
w("image/gray.png", png(4, 6, True))
w("image/rgb.jpg", jpeg(9, 7))
w("image/truncated.png", png(5, 3, False)[:40])
PY

# ---- herd shards (herd convert of the IDX set above) and ONNX files (herd export of small specs) ----
"$HERD" convert "$TMPD/data" "$TMPD/sh" --shards 1 >/dev/null
cp "$TMPD/sh/train-00000-of-00001.herd" "$OUT/shard/u8.herd"
head -c 200 "$TMPD/sh/train-00000-of-00001.herd" >"$OUT/shard/truncated.herd"
# version 2 (several fields, an f32 target): three lines of the Criteo generator
"$(dirname "$HERD")/criteo_synth" 3 5 "$TMPD/c.tsv" 2>/dev/null
"$HERD" convert "criteo:$TMPD/c.tsv" "$TMPD/c" --hash-rows 7 >/dev/null
cp "$TMPD/c/train-00000-of-00001.herd" "$OUT/shard/fields.herd"
head -c 150 "$TMPD/c/train-00000-of-00001.herd" >"$OUT/shard/fields_truncated.herd"
printf 'input 1x4x4\nconv 2 3 pad=1 relu\nmaxpool 2\nflatten\ndense 3\n' >"$TMPD/a.spec"
printf 'input 2x4x4\nconv 2 3 pad=1 name=c1\nbatchnorm\nrelu\nconv 2 3 pad=1\nadd c1\ngap\ndense 3\n' >"$TMPD/b.spec"
printf 'input 5\ndense 4 gelu\ndense 3 tanh\ndense 2\n' >"$TMPD/c.spec"
for s in a b c; do "$HERD" export "$TMPD/$s.spec" --onnx "$OUT/onnx/$s.onnx" >/dev/null; done
"$HERD" import "$OUT/onnx/a.onnx" --weights-out "$TMPD/a.st" --spec-out "$TMPD/a2.spec" >/dev/null
python3 - "$TMPD/a.st" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
h["__metadata__"] = dict(h.get("__metadata__", {}), input_mean="0.5", input_std="0.25")
t = json.dumps(h).encode(); t += b" " * (-len(t) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])
PY
"$HERD" export "$TMPD/a.spec" --weights "$TMPD/a.st" --onnx "$OUT/onnx/an_normalized.onnx" >/dev/null
cp tests/data/torch_small.onnx "$OUT/onnx/torch_small.onnx"
cp tests/data/torch_convnext.onnx "$OUT/onnx/torch_convnext.onnx" # a ConvNeXt stage from PyTorch 1.13 at opset 14 (layer norm as its formula)
for s in concat_graph ceil_pool mobile gpt_variant convnext_block; do "$HERD" export "tests/data/$s.spec" --seed 1 --onnx "$OUT/onnx/$s.onnx" >/dev/null; done
# ---- Criteo TSV: byte 0 picks the hash rows, then lines of the synthetic generator, good and bad ----
mkdir -p "$OUT/criteo"
python3 - "$OUT/criteo" "$(dirname "$HERD")/criteo_synth" <<'PY'
import os, subprocess, sys
out, synth = sys.argv[1], sys.argv[2]
good = subprocess.run([synth, "6", "3"], check=True, capture_output=True).stdout
lines = good.split(b"\n")
seeds = {
    "good": b"\x07" + good,
    "crlf_no_final_newline": b"\x0b" + good.replace(b"\n", b"\r\n").rstrip(b"\r\n"),
    "missing_everything": b"\x05" + b"1" + b"\t" * 39 + b"\n",
    "bad_hex": b"\x07" + lines[0].replace(lines[0].split(b"\t")[20], b"zz12") + b"\n",
    "short_row": b"\x07" + b"\t".join(lines[1].split(b"\t")[:30]) + b"\n",
    "long_row": b"\x07" + lines[1] + b"\t7\n",
    "hash_zero": b"\x00" + good,
    "negative_counts": b"\x03" + b"0\t-1\t-22" + b"\t" * 11 + b"\t".join([b"ab"] * 26) + b"\n",
}
for name, data in seeds.items():
    open(os.path.join(out, name), "wb").write(data)
PY
# ---- Parquet: small files from the independent writer (npm parquet-wasm; needs node and npm) ----
(HERD_SOURCE_DIR=$PWD; . tests/parquet/npm_writer.sh && parquet_write corpus "$OUT/parquet")
echo "make_corpus.sh: $(find "$OUT" -type f | wc -l) files in $OUT"
