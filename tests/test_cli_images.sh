# herd convert of a JPEG folder: a shape is required (--shape or --model, never the first
# image's), u8 by default, byte-identical for any --threads and with --model, u8 records equal
# to the f32 conversion rounded (the same pixels as decoding the folder), a killed conversion
# resumed with --resume equal to a clean one; bad input: a corrupt JPEG among many stops the
# run naming it, or is left out with --skip-bad; an empty file; a 20000x20000 JPEG within the
# decode cap (DCT reduction); a JPEG declaring more pixels than its bytes can hold, or a zero
# width. The folder and its shards train to the same weights, augmented too, for any loader
# threads and prefetch depth.
. "$(dirname "$0")/cli_lib.sh"
BIG=${HERD_TEST_BIN_DIR:?}/big_jpeg
/usr/bin/python3 -c "import PIL" 2>/dev/null || { echo "SKIP: python3-pil is not installed"; echo "0 passed, 0 failed (skipped)"; exit 77; }
/usr/bin/python3 - "$TMP/jpg" <<'PY'
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
r = np.random.default_rng(1)
for k, cls in enumerate(("cat", "dog")):
    os.makedirs(f"{root}/{cls}")
    for i in range(24):
        w, h = int(r.integers(40, 120)), int(r.integers(40, 120))
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 255 // w), (yy * 255 // h), np.full((h, w), 60 + 100 * k)], -1)
        img = np.clip(img + r.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(f"{root}/{cls}/{i:03d}.jpg", quality=90)
PY
cat >"$TMP/m.spec" <<'SPEC'
input 3x32x32
conv 4 3 pad=1
relu
flatten
dense 2
SPEC

expect_exit 1 "no shape" -- "$HERD" convert "$TMP/jpg" "$TMP/o0"
expect_err_line "no shape message" "image folder without a sample shape to decode its images to: give --shape CxHxW or --model SPEC"
[ ! -e "$TMP/o0/train-00000-of-00001.herd" ] && pass || fail "a shard was written without a shape"

expect_exit 0 "convert u8, 2 threads" -- "$HERD" convert "$TMP/jpg" "$TMP/u2" --shape 3x32x32 --shards 3 --threads 2
expect_out "convert summary" "wrote 48 train records \(u8 3x32x32, 2 classes\)"
expect_exit 0 "convert u8, 1 thread" -- "$HERD" convert "$TMP/jpg" "$TMP/u1" --shape 3x32x32 --shards 3 --threads 1
expect_exit 0 "convert --model" -- "$HERD" convert "$TMP/jpg" "$TMP/um" --model "$TMP/m.spec" --shards 3
expect_exit 0 "convert f32" -- "$HERD" convert "$TMP/jpg" "$TMP/f" --shape 3x32x32 --dtype f32
for k in 0 1 2; do
    s=train-0000$k-of-00003.herd
    cmp -s "$TMP/u1/$s" "$TMP/u2/$s" && pass || fail "$s: --threads 2 differs from --threads 1"
    cmp -s "$TMP/u1/$s" "$TMP/um/$s" && pass || fail "$s: --model differs from --shape"
done
# u8 by default (header dtype 1, 3072 bytes a record), and each u8 record is the f32 record rounded
/usr/bin/python3 - "$TMP" <<'PY' && pass || fail "u8 shards are not the folder's pixels"
import struct, sys
import numpy as np
t = sys.argv[1]
def records(path):
    b = open(path, "rb").read()
    dtype, n = struct.unpack_from("<IQ", b, 12)
    out = []
    for r in range(n):
        off, ln = struct.unpack_from("<QI", b, 64 + 24 * r)
        out.append(np.frombuffer(b, np.uint8 if dtype == 1 else np.float32, ln if dtype == 1 else ln // 4, off))
    return dtype, out
u = []
for k in range(3):
    d, rs = records(f"{t}/u1/train-0000{k}-of-00003.herd")
    assert d == 1, f"shard {k}: dtype {d}, expected u8 (1)"
    u += rs
d, f = records(f"{t}/f/train-00000-of-00001.herd")
assert d == 2 and len(f) == len(u) == 48, (d, len(f), len(u))
worst = max(int(np.abs(a.astype(int) - np.rint(b * 255).astype(int)).max()) for a, b in zip(u, f))
assert worst == 0, f"u8 record differs from round(f32 * 255) by {worst}"
print("u8 == round(f32 * 255) on 48 records")
PY

# a conversion killed before its 3rd shard is renamed, then resumed, equals a clean one
HERD_TEST_FAULT=crash:shard.before_rename:3 "$HERD" convert "$TMP/jpg" "$TMP/r" --shape 3x32x32 --shards 4 >/dev/null 2>&1
n=$(ls "$TMP/r"/train-*.herd 2>/dev/null | wc -l)
[ "$n" = 2 ] && pass || fail "after the crash: $n complete shards, expected 2"
ls "$TMP/r"/*.tmp.* >/dev/null 2>&1 && pass || fail "the crash left no temp file (the fault point did not fire?)"
expect_exit 0 "resume" -- "$HERD" convert "$TMP/jpg" "$TMP/r" --shape 3x32x32 --shards 4 --resume
[ "$(grep -c '^herd: kept ' "$TMP/out")" = 2 ] && pass || fail "resume kept $(grep -c '^herd: kept ' "$TMP/out") shards, expected 2"
ls "$TMP/r"/*.tmp.* >/dev/null 2>&1 && fail "resume left the stale temp file" || pass
expect_exit 0 "clean 4 shards" -- "$HERD" convert "$TMP/jpg" "$TMP/c4" --shape 3x32x32 --shards 4
for k in 0 1 2 3; do
    cmp -s "$TMP/r/train-0000$k-of-00004.herd" "$TMP/c4/train-0000$k-of-00004.herd" && pass || fail "resumed shard $k differs"
done

# the round trip, through training: the JPEG folder and its u8 shards train to the same weights
# (the same pixels, in the same order), plain and with random_resized_crop + flip + jitter +
# ImageNet normalisation, whatever the loader's threads and prefetch depth
RUN=(--epochs 2 --batch 8 --seed 5 --threads 1 --progress none)
AUG=(--augment rrc,flip,jitter=0.4 --normalize imagenet)
expect_exit 0 "train on the folder" -- "$HERD" train "$TMP/m.spec" --data "$TMP/jpg" "${RUN[@]}" --save "$TMP/wj.st"
expect_exit 0 "train on its shards" -- "$HERD" train "$TMP/m.spec" --data "$TMP/u2" "${RUN[@]}" --save "$TMP/ws.st"
cmp -s "$TMP/wj.st" "$TMP/ws.st" && pass || fail "u8 shards train differently from their JPEG folder"
expect_exit 0 "augmented, folder, prefetch 0" -- "$HERD" train "$TMP/m.spec" --data "$TMP/jpg" "${RUN[@]}" "${AUG[@]}" \
    --prefetch 0 --save "$TMP/aj.st"
for lt in "1 1" "3 2" "5 3"; do
    set -- $lt
    expect_exit 0 "augmented, shards, prefetch $1 x $2 threads" -- "$HERD" train "$TMP/m.spec" --data "$TMP/u2" \
        "${RUN[@]}" "${AUG[@]}" --prefetch "$1" --loader-threads "$2" --save "$TMP/as.st"
    cmp -s "$TMP/aj.st" "$TMP/as.st" && pass || fail "augmented: shards at prefetch $1 x $2 threads differ from the folder at prefetch 0"
done
cmp -s "$TMP/aj.st" "$TMP/wj.st" && fail "augmentation changed nothing" || pass

# a corrupt JPEG among the others: named, stops the run; --skip-bad leaves it out
cp -r "$TMP/jpg" "$TMP/bad"
head -c 700 "$TMP/jpg/dog/007.jpg" >"$TMP/bad/dog/007.jpg"
expect_exit 1 "corrupt JPEG stops" -- "$HERD" convert "$TMP/bad" "$TMP/b1" --shape 3x32x32 --threads 2
expect_err_line "corrupt JPEG named" "bad/dog/007.jpg: bad JPEG"
expect_exit 0 "--skip-bad" -- "$HERD" convert "$TMP/bad" "$TMP/b2" --shape 3x32x32 --threads 2 --skip-bad
grep -q "skipped (--skip-bad): .*bad/dog/007.jpg: bad JPEG" "$TMP/err" && pass || fail "skipped JPEG not named: $(cat "$TMP/err")"
expect_out "47 records written" "wrote 47 train records"
expect_out "left out counted" "left out 1 samples"
expect_exit 0 "stats of a shard with a sample left out" -- "$HERD" stats "$TMP/b2"
expect_out "47 samples read back" "47"
# an empty file
: >"$TMP/bad/dog/007.jpg"
expect_exit 1 "empty JPEG" -- "$HERD" convert "$TMP/bad" "$TMP/b3" --shape 3x32x32
expect_err_line "empty file named" "bad/dog/007.jpg: empty file"

# a JPEG declaring a zero width: corrupt, named
cp "$TMP/jpg/cat/001.jpg" "$TMP/bad/dog/007.jpg"
/usr/bin/python3 - "$TMP/bad/dog/007.jpg" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.index(b"\xff\xc0")  # baseline SOF0: length, precision, height, width
struct.pack_into(">H", b, i + 7, 0)
open(sys.argv[1], "wb").write(b)
PY
expect_exit 1 "zero-width JPEG" -- "$HERD" convert "$TMP/bad" "$TMP/b4" --shape 3x32x32
expect_err_line "zero-width JPEG named" "bad/dog/007.jpg: "

# a 20000x20000 JPEG decodes (reduced in the DCT) within the cap, in little memory
mkdir -p "$TMP/huge/a"
"$BIG" "$TMP/huge/a/big.jpg" 20000 20000 && pass || fail "big_jpeg failed"
expect_exit 0 "20000x20000 JPEG" -- /usr/bin/python3 -c "
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:]).returncode
print('maxrss_kb=%d' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(rc)" "$HERD" convert "$TMP/huge" "$TMP/ho" --shape 3x64x64
rss=$(sed -n 's/^maxrss_kb=//p' "$TMP/err")
[ -n "$rss" ] && [ "$rss" -lt 400000 ] && pass || fail "20000x20000 JPEG: peak RSS ${rss} KB (expected < 400 MB)"
# a JPEG header declaring 60000x60000 pixels in a few hundred bytes is corrupt, named
mkdir -p "$TMP/lie/a"
/usr/bin/python3 - "$TMP/jpg/cat/000.jpg" "$TMP/lie/a/lie.jpg" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.index(b"\xff\xc0")  # baseline SOF0: length, precision, height, width
struct.pack_into(">HH", b, i + 5, 60000, 60000)
open(sys.argv[2], "wb").write(b)
PY
expect_exit 1 "declared 60000x60000" -- "$HERD" convert "$TMP/lie" "$TMP/lo" --shape 3x32x32
expect_err_line "declared size named" "lie/a/lie.jpg: image of 60000x60000 pixels cannot come from"
summary
