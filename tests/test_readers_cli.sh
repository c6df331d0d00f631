# herd train end to end on each new kind of --data source (CSV, an NPY pair, TFRecord shards
# of PNG images, an image folder), each an easy synthetic problem that must be learnt well
# past chance; and a damaged file of each kind: exit 1 and one stderr line naming the file.
. "$(dirname "$0")/cli_lib.sh"
/usr/bin/python3 -c "import numpy" 2>/dev/null || { echo "SKIP: python3-numpy is not installed"; exit 77; }
D=$TMP/data
mkdir -p "$D"
/usr/bin/python3 - "$D" <<'PY'
import os, struct, sys, zlib
import numpy as np

d = sys.argv[1]
rng = np.random.default_rng(3)

# features: class 1 when a + b > c + d
def tabular(n):
    x = rng.random((n, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > x[:, 2] + x[:, 3]).astype(np.int64)

for split, n in (("train", 600), ("test", 200)):
    x, y = tabular(n)
    with open(f"{d}/{split}.csv", "w") as f:
        f.write('"f,1",f2,"f ""3""",f4,label\r\n')
        for r, l in zip(x, y):
            f.write(",".join(repr(float(v)) for v in r) + f",{l}\r\n")
    np.save(f"{d}/{split}_x.npy", x)
    np.save(f"{d}/{split}_y.npy", y)

# 8x8 gray images: class 1 when the bottom half is the brighter one
def image(label):
    px = rng.integers(0, 120, (8, 8))
    half = slice(4, 8) if label else slice(0, 4)
    px[half] += 100
    return px.astype(np.uint8)

def png(px):
    h, w = px.shape
    raw = b"".join(b"\x00" + px[y].tobytes() for y in range(h))
    chunk = lambda t, b: struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

CRC = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    CRC.append(c)

def masked_crc(b):
    c = 0xFFFFFFFF
    for x in b:
        c = CRC[(c ^ x) & 0xFF] ^ (c >> 8)
    c ^= 0xFFFFFFFF
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

def varint(v):
    out = b""
    while True:
        out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
        v >>= 7
        if not v:
            return out

def ld(field, b):
    return varint(field << 3 | 2) + varint(len(b)) + b

def example(img, label):
    feats = ld(1, ld(1, b"image") + ld(2, ld(1, ld(1, img))))  # bytes_list
    feats += ld(1, ld(1, b"label") + ld(2, ld(3, varint(1 << 3) + varint(label))))  # int64_list
    return ld(1, feats)

def tfrecord(path, records):
    with open(path, "wb") as f:
        for r in records:
            n = struct.pack("<Q", len(r))
            f.write(n + struct.pack("<I", masked_crc(n)) + r + struct.pack("<I", masked_crc(r)))

for split, n, shards in (("train", 600, 2), ("test", 200, 1)):
    labels = rng.integers(0, 2, n)
    recs = [example(png(image(int(l))), int(l)) for l in labels]
    for s in range(shards):
        tfrecord(f"{d}/{split}-{s:05d}.tfrecord", recs[s::shards])
    for i, l in enumerate(labels):
        os.makedirs(f"{d}/folder/{split}/{'bottom' if l else 'top'}", exist_ok=True)
        with open(f"{d}/folder/{split}/{'bottom' if l else 'top'}/{i:04d}.png", "wb") as f:
            f.write(png(image(int(l))))
PY
[ $? = 0 ] && pass || fail "making the data"
printf 'input 4\ndense 16 relu\ndense 2\n' >"$TMP/tab.spec"
printf 'input 1x8x8\nflatten\ndense 2\n' >"$TMP/img.spec"

# learns: test accuracy well past chance (0.5)
learns() {
    local what=$1 spec=$2 data=$3
    expect_exit 0 "$what" -- "$HERD" train "$spec" --data "$data" --epochs 8 --lr 0.01 --seed 1 --progress none \
        --save "$TMP/w.safetensors"
    local acc
    acc=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
    /usr/bin/python3 -c "import sys; sys.exit(0 if float('${acc:-0}') >= 0.85 else 1)" && pass ||
        fail "$what: test accuracy ${acc:-none} (want >= 0.85): $(head -c 300 "$TMP/out")"
}
learns "csv" "$TMP/tab.spec" "$D/train.csv"
learns "npy pair" "$TMP/tab.spec" "$D/train_x.npy"
learns "npy directory" "$TMP/tab.spec" "$D"
learns "tfrecord shards" "$TMP/img.spec" "$D/train-*.tfrecord"
acc=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
expect_exit 0 "eval on tfrecord" -- "$HERD" eval "$TMP/img.spec" --data "$D/train-*.tfrecord" --weights "$TMP/w.safetensors"
expect_out "eval reproduces the test accuracy" "^accuracy: $acc "
learns "image folder" "$TMP/img.spec" "$D/folder"

# damaged files: exit 1, one line naming the file (and line or record)
B=$TMP/bad
mkdir -p "$B/folder/train/a" "$B/folder/train/b"
head -n 20 "$D/train.csv" >"$B/train.csv"
printf '0.1,0.2,0.3,1\r\n' >>"$B/train.csv"
expect_exit 1 "ragged csv" -- "$HERD" train "$TMP/tab.spec" --data "$B/train.csv" --epochs 1
expect_err_line "ragged csv" "$B/train.csv:21: 4 fields, header has 5"
head -c 1000 "$D/train_x.npy" >"$B/cut_x.npy"
cp "$D/train_y.npy" "$B/cut_y.npy"
expect_exit 1 "truncated npy" -- "$HERD" train "$TMP/tab.spec" --data "$B/cut_x.npy" --epochs 1
expect_err_line "truncated npy" "$B/cut_x.npy: shape (600, 4) of <f4 needs 9600 bytes of data"
cp "$D/train-00001.tfrecord" "$B/train-1.tfrecord"
printf '\x55' | dd of="$B/train-1.tfrecord" bs=1 seek=2000 conv=notrunc 2>/dev/null
expect_exit 1 "damaged tfrecord" -- "$HERD" train "$TMP/img.spec" --data "$B/train-1.tfrecord" --epochs 1
expect_err_line "damaged tfrecord" "$B/train-1.tfrecord: record "
grep -qE "record [0-9]+: (data|length) CRC mismatch" "$TMP/err" && pass || fail "tfrecord error: $(cat "$TMP/err")"
cp "$D"/folder/train/top/00*.png "$B/folder/train/a/" 2>/dev/null
cp "$D"/folder/train/bottom/00*.png "$B/folder/train/b/" 2>/dev/null
bad_png=$(ls "$B"/folder/train/b/*.png | head -n 1)
head -c 60 "$D/folder/train/top/$(ls "$D/folder/train/top" | head -n 1)" >"$bad_png"
expect_exit 1 "damaged png" -- "$HERD" train "$TMP/img.spec" --data "$B/folder" --epochs 1 --progress none
expect_err_line "damaged png" "$bad_png: bad PNG"
summary
