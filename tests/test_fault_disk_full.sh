#!/usr/bin/env bash
# Disk full while herd writes a checkpoint or --save: on a small tmpfs the write fails with
# exit 1 and one line naming the file and "No space left on device"; the previous checkpoint
# (or weights file) is left intact and loadable, and no half-written temp file stays behind.
source "$(dirname "$0")/cli_lib.sh"

if [ "$(id -u)" != 0 ]; then
    echo "skipped: mounting a small tmpfs (the full disk) needs root"
    exit 77
fi
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || {
    echo "skipped: needs dataset-fashion-mnist"
    exit 77
}
FULL=$TMP/full
mkdir -p "$FULL"
if ! mount -t tmpfs -o size=256k tmpfs "$FULL" 2>"$TMP/mount.err"; then
    echo "skipped: cannot mount a tmpfs here: $(head -c 200 "$TMP/mount.err")"
    exit 77
fi
trap 'umount "$FULL" 2>/dev/null; rm -rf "$TMP"' EXIT

cd "$TMP"
make_subset sub 128 32
# 784*16+16 weights, Adam's two moments: a checkpoint of ~151 KB; one fits in 256 KB, two do not
printf 'input 1x28x28\nflatten\ndense 16\n' >d16.spec
T=(--data sub --batch 16 --threads 1 --progress none --quiet)

# (1) the checkpoint at step 2 fits, the one at step 4 does not
expect_exit 1 "checkpoint on a full disk" -- "$HERD" train d16.spec "${T[@]}" --epochs 1 \
    --checkpoint-dir "$FULL/ck" --checkpoint-every 2 --keep-checkpoints 1
expect_err_line "checkpoint on a full disk" "No space left on device"
expect_err_line "error names the checkpoint file" "$FULL/ck/ckpt-0000000004.safetensors"
left=$(ls "$FULL/ck")
if [ "$left" = "ckpt-0000000002.safetensors" ]; then pass; else fail "after ENOSPC the directory holds: $left"; fi

# the previous checkpoint is complete: every tensor reads back with its shape...
/usr/bin/python3 - "$FULL/ck/ckpt-0000000002.safetensors" >"$TMP/py.out" 2>&1 <<'PY'
import json, os, struct, sys
sys.path.insert(0, os.environ["HERD_SOURCE_DIR"] + "/tests")
from spec_torch import read_safetensors
t = read_safetensors(sys.argv[1])
raw = open(sys.argv[1], "rb").read()
meta = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]
assert t["dense1.weight"].shape == (16, 784) and t["optimizer.m"].shape == t["optimizer.v"].shape == (784 * 16 + 16,)
assert meta["format"] == "herd-checkpoint-1" and meta["global_step"] == "2", meta
print("ok", sorted(t))
PY
if grep -q "^ok" "$TMP/py.out"; then pass; else fail "checkpoint after ENOSPC unreadable: $(tail -3 "$TMP/py.out")"; fi
# ...and herd resumes from it (on a disk with room) and finishes the epoch
cp -r "$FULL/ck" "$TMP/ck_copy"
expect_exit 0 "resume from the checkpoint left by ENOSPC" -- "$HERD" train d16.spec "${T[@]}" --epochs 1 \
    --resume "$TMP/ck_copy"
if [ -f "$TMP/ck_copy/ckpt-0000000008.safetensors" ]; then pass; else fail "resume did not reach step 8: $(ls "$TMP/ck_copy")"; fi

# (2) --save onto a full disk keeps the old weights file
rm -rf "$FULL/ck"
expect_exit 0 "first --save" -- "$HERD" train d16.spec "${T[@]}" --epochs 1 --save "$FULL/w.safetensors" --optimizer sgd
cp "$FULL/w.safetensors" "$TMP/w_before.safetensors"
dd if=/dev/zero of="$FULL/filler" bs=4k 2>/dev/null # fill the disk up to ENOSPC
expect_exit 1 "--save on a full disk" -- "$HERD" train d16.spec "${T[@]}" --epochs 1 --save "$FULL/w.safetensors" \
    --optimizer sgd --seed 5
expect_err_line "--save on a full disk" "No space left on device"
expect_err_line "error names the weights file" "$FULL/w.safetensors"
if cmp -s "$FULL/w.safetensors" "$TMP/w_before.safetensors"; then pass; else fail "--save on a full disk changed the old file"; fi
left=$(ls "$FULL")
if [ "$left" = "$(printf 'filler\nw.safetensors')" ]; then pass; else fail "temp file left behind: $left"; fi
expect_exit 0 "old weights still load" -- "$HERD" eval d16.spec --data sub --weights "$FULL/w.safetensors" --threads 1

# (3) one rule for every output: a log that cannot be written stops the run, one line naming it, exit 1
expect_exit 1 "--log-json on a full disk" -- "$HERD" train d16.spec "${T[@]}" --epochs 2 --log-json "$FULL/log.json"
expect_err_line "--log-json on a full disk" "$FULL/log.json: cannot write the JSON log: No space left on device"
expect_exit 1 "--tensorboard on a full disk" -- "$HERD" train d16.spec "${T[@]}" --epochs 2 --tensorboard "$FULL/tb"
expect_err_line "--tensorboard on a full disk" "No space left on device"
expect_err_line "the error names the event file" "$FULL/tb/"

# (4) every other command that replaces a file: export, predict --out, import, convert over an
# existing output fail on the full disk with one line, and the files they would replace stay
rm -rf "$FULL/filler" "$FULL/log.json" "$FULL/tb" "$FULL/w.safetensors"
make_subset sub2 16 8
cp "$TMP/w_before.safetensors" w.safetensors
OUTS=(m.onnx p.npy m.spec m.safetensors sh/train-00000-of-00001.herd sh/test-00000-of-00001.herd)
expect_exit 0 "export" -- "$HERD" export d16.spec --weights w.safetensors --onnx "$FULL/m.onnx"
expect_exit 0 "predict --out" -- "$HERD" predict d16.spec --weights w.safetensors --data sub --out "$FULL/p.npy" --threads 1
expect_exit 0 "import" -- "$HERD" import "$FULL/m.onnx" --spec-out "$FULL/m.spec" --weights-out "$FULL/m.safetensors"
expect_exit 0 "convert" -- "$HERD" convert sub2 "$FULL/sh" --shards 1 --threads 1
(cd "$FULL" && md5sum "${OUTS[@]}") >"$TMP/outs.md5" || fail "outputs missing: $(ls -R "$FULL")"
dd if=/dev/zero of="$FULL/filler" bs=4k 2>/dev/null
for c in export predict import convert; do
    case $c in
    export) expect_exit 1 "export on a full disk" -- "$HERD" export d16.spec --weights w.safetensors --onnx "$FULL/m.onnx" ;;
    predict) expect_exit 1 "predict on a full disk" -- "$HERD" predict d16.spec --weights w.safetensors --data sub \
        --out "$FULL/p.npy" --threads 1 ;;
    import) # another model, and room for its spec but not its weights: the spec must not change
        printf 'input 1x28x28\nflatten\ndense 8\n' >d8.spec
        "$HERD" export d8.spec --seed 1 --onnx "$TMP/m8.onnx" >/dev/null || fail "export of d8.spec"
        rm "$FULL/filler"
        dd if=/dev/zero of="$FULL/filler" bs=4k count=$(($(df -k --output=avail "$FULL" | tail -1) / 4 - 2)) 2>/dev/null
        expect_exit 1 "import on a full disk" -- "$HERD" import "$TMP/m8.onnx" --spec-out "$FULL/m.spec" \
            --weights-out "$FULL/m.safetensors" ;;
    convert) expect_exit 1 "convert on a full disk" -- "$HERD" convert sub2 "$FULL/sh" --shards 1 --threads 1 ;;
    esac
    expect_err_line "$c on a full disk" "No space left on device"
done
(cd "$FULL" && md5sum -c --quiet "$TMP/outs.md5") && pass || fail "a failed write on the full disk changed an earlier output"
left=$(cd "$FULL" && ls -A . sh | tr '\n' ' ')
[ "$left" = ".: filler m.onnx m.safetensors m.spec p.npy sh  sh: test-00000-of-00001.herd train-00000-of-00001.herd " ] && pass ||
    fail "temp files left behind: $left"

summary
