"""herd's image scaling (decode, scale to cover the model's input with the aspect ratio kept,
center crop) against PIL's resize(BILINEAR) with the same box, on a set of photo-like PNGs
shrunk by 1.1x to 6x, enlarged, and passed unchanged. herd's pixels come back through
`herd convert --dtype f32` (float32 shard records). The bound: mean |herd*255 - PIL| <= 0.4
and max <= 1.5 levels of 255 (PIL rounds to 8 bits after each pass, herd keeps floats: the
rounding alone makes ~0.29). A plain 2-tap bilinear sample, herd's resize before antialiasing,
is checked to break the bound on the shrunk images, so the comparison can tell them apart."""
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from PIL import Image
except ImportError:
    print("SKIP: python3-numpy or python3-pil is not installed")
    sys.exit(77)

HERD = os.environ["HERD_BIN"]
MAD_BOUND, MAX_BOUND = 0.4, 1.5
FULL_MAD_BOUND = 2.5
failed = 0


def check(cond, what):
    global failed
    if not cond:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def photo(w, h, seed, gray=False):
    """Smooth gradients, soft blobs, hard-edged shapes, fine stripes (aliasing bait) and noise."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for k in range(3):
        a, b, c = r.uniform(-1, 1, 3)
        img[..., k] = 128 + 60 * (a * xx / w + b * yy / h) + 30 * np.sin(c * 6 * xx / w + k)
    for _ in range(6):
        cx, cy, rad = r.uniform(0, w), r.uniform(0, h), r.uniform(0.05, 0.3) * min(w, h)
        col = r.uniform(0, 255, 3)
        m = ((xx - cx) ** 2 + (yy - cy) ** 2) < rad ** 2
        img[m] = col
    x0, x1 = sorted(r.integers(0, w, 2))
    img[:, x0:x1][(xx[:, x0:x1].astype(int) // 2) % 2 == 1] = 255  # 2-px stripes
    img += r.normal(0, 8, img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if gray:
        return Image.fromarray(img[..., 0], "L")
    return Image.fromarray(img, "RGB")


def cover_box(iw, ih, w, h):
    """The source region herd's cover + center crop maps onto the output (docs/DATA.md)."""
    scale = max(h / ih, w / iw)
    rh, rw = max(int(ih * scale + 0.5), h), max(int(iw * scale + 0.5), w)
    oy, ox = (rh - h) // 2, (rw - w) // 2
    sx, sy = iw / rw, ih / rh
    return (ox * sx, oy * sy, (ox + w) * sx, (oy + h) * sy)


def plain_bilinear(src, box, w, h):
    """2 taps per axis at the output pixel's center, no filter footprint."""
    a = np.asarray(src, dtype=np.float64)
    ih, iw = a.shape[:2]
    x0, y0, x1, y1 = box
    sx = np.clip(x0 + (np.arange(w) + 0.5) * (x1 - x0) / w - 0.5, 0, iw - 1)
    sy = np.clip(y0 + (np.arange(h) + 0.5) * (y1 - y0) / h - 0.5, 0, ih - 1)
    xa, ya = np.floor(sx).astype(int), np.floor(sy).astype(int)
    xb, yb = np.minimum(xa + 1, iw - 1), np.minimum(ya + 1, ih - 1)
    fx, fy = (sx - xa)[None, :, None], (sy - ya)[:, None, None]
    top = a[ya][:, xa] * (1 - fx) + a[ya][:, xb] * fx
    bot = a[yb][:, xa] * (1 - fx) + a[yb][:, xb] * fx
    return top * (1 - fy) + bot * fy


def read_shard(path):
    b = open(path, "rb").read()
    assert b[:8] == b"HERDSHD1"
    dtype, count = struct.unpack_from("<IQ", b, 12)
    c, h, w = struct.unpack_from("<III", b, 24)
    out = []
    for r in range(count):
        off, ln = struct.unpack_from("<QI", b, 64 + 24 * r)
        out.append(np.frombuffer(b, np.float32, c * h * w, off).reshape(c, h, w))
    return dtype, out


def convert_f32(d, H, W, what):
    """herd convert of the folder d/src to f32 shards of 3xHxW: (dtype, records), or None after a
    failure (counted)"""
    r = subprocess.run([HERD, "convert", f"{d}/src", f"{d}/out", "--shape", f"3x{H}x{W}", "--dtype", "f32"],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"herd convert of {what} failed: {r.stderr.strip()}")
    return read_shard(f"{d}/out/train-00000-of-00001.herd") if r.returncode == 0 else None


def main():
    # (w, h, gray): shrink 500x375 -> 224 (1.67x), 1344x1000 (6x), 333x500 portrait, 250x240
    # (1.07x), a 180x120 enlargement, an exact 224x224, a gray image replicated to RGB
    sizes = [(500, 375, 0), (1344, 1000, 0), (333, 500, 0), (250, 240, 0), (180, 120, 0), (224, 224, 0),
             (640, 480, 1)]
    W = H = 224
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(f"{d}/src/a")
        imgs = []
        for i, (w, h, gray) in enumerate(sizes):
            im = photo(w, h, i, gray)
            im.save(f"{d}/src/a/{i:02d}.png")
            imgs.append(im)
        got = convert_f32(d, H, W, "images")
        if got is None:
            return
        dtype, recs = got
        check(dtype == 2 and len(recs) == len(sizes), f"shard: dtype {dtype}, {len(recs)} records")
        for (w, h, gray), im, rec in zip(sizes, imgs, recs):
            box = cover_box(w, h, W, H)
            ref = np.asarray(im.convert("RGB").resize((W, H), Image.BILINEAR, box=box), dtype=np.float64)
            got = rec.transpose(1, 2, 0).astype(np.float64) * 255
            diff = np.abs(got - ref)
            mad, mx = diff.mean(), diff.max()
            print(f"{w}x{h}{' gray' if gray else ''} -> {W}x{H}: mean |herd - PIL| {mad:.3f}, max {mx:.3f} "
                  f"(levels of 255; bound {MAD_BOUND}, {MAX_BOUND})")
            check(mad <= MAD_BOUND and mx <= MAX_BOUND,
                  f"{w}x{h}: mean {mad:.3f} / max {mx:.3f} above the bound {MAD_BOUND} / {MAX_BOUND}")
            if w > 1.5 * W and h > 1.5 * H:
                plain = np.abs(plain_bilinear(im.convert("RGB"), box, W, H) - ref).mean()
                print(f"  plain bilinear (no antialiasing) would be {plain:.3f} from PIL")
                check(plain > MAD_BOUND, f"{w}x{h}: plain bilinear is within the bound ({plain:.3f}): the test "
                                         "cannot tell antialiasing apart")


def reduced_jpegs():
    """JPEGs large enough to be decoded reduced in the DCT (libjpeg-turbo's 1/2 or 1/4 scaling,
    the smallest whose image is still at least twice the output's cover) against PIL's draft() at that scale + resize with
    the same box: the same bound as the resize's own (mean <= 0.4, max <= 1.5 levels). Their
    difference from PIL's full decode + resize is printed and loosely bounded (mean <=
    FULL_MAD_BOUND: the DCT's reduction filters less than the full resize's wide triangle, so
    noise and stripes come out a little stronger, as with PIL's draft). A JPEG just too small to
    reduce (full decode) keeps the resize's bound against the full decode."""
    W = H = 224
    # (w, h, scale herd decodes at): 2000x1800 at 1/4 (500x450), 1344x1000 at 1/2 (672x500),
    # 960x900 at 1/2 (480x450), 640x480 and 500x460 in full (1/2 would be under twice 224)
    sizes = [(2000, 1800, 4), (1344, 1000, 2), (960, 900, 2), (640, 480, 1), (500, 460, 1)]
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(f"{d}/src/a")
        for i, (w, h, _) in enumerate(sizes):
            photo(w, h, 100 + i).save(f"{d}/src/a/{i:02d}.jpg", quality=90)
        got = convert_f32(d, H, W, "JPEGs")
        if got is None:
            return
        _, recs = got
        for i, ((w, h, k), rec) in enumerate(zip(sizes, recs)):
            got = rec.transpose(1, 2, 0).astype(np.float64) * 255
            full = Image.open(f"{d}/src/a/{i:02d}.jpg").convert("RGB")  # every pixel decoded
            ref_full = np.asarray(full.resize((W, H), Image.BILINEAR, box=cover_box(w, h, W, H)), dtype=np.float64)
            draft = Image.open(f"{d}/src/a/{i:02d}.jpg")
            draft.draft("RGB", (-(-w // k), -(-h // k)))  # the same DCT scale as herd's
            draft = draft.convert("RGB")
            dw, dh = draft.size
            check((dw, dh) == (-(-w // k), -(-h // k)), f"PIL's draft of {w}x{h} at 1/{k} is {dw}x{dh}")
            ref = np.asarray(draft.resize((W, H), Image.BILINEAR, box=cover_box(dw, dh, W, H)), dtype=np.float64)
            diff, off = np.abs(got - ref), np.abs(got - ref_full).mean()
            print(f"JPEG {w}x{h} decoded at 1/{k} ({dw}x{dh}) -> {W}x{H}: mean |herd - PIL| {diff.mean():.3f}, max "
                  f"{diff.max():.3f}; mean |herd - PIL full decode + resize| {off:.3f}")
            check(diff.mean() <= MAD_BOUND and diff.max() <= MAX_BOUND,
                  f"JPEG {w}x{h}: mean {diff.mean():.3f} / max {diff.max():.3f} above {MAD_BOUND} / {MAX_BOUND}")
            check(off <= FULL_MAD_BOUND, f"JPEG {w}x{h}: mean {off:.3f} from the full decode, above {FULL_MAD_BOUND}")

main()
reduced_jpegs()
print("PASS" if failed == 0 else f"{failed} FAILED")
sys.exit(1 if failed else 0)
