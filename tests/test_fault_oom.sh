#!/usr/bin/env bash
# Out of memory for the planned arena: herd plans every activation, gradient and workspace
# buffer up front, so a batch that does not fit fails before training starts, with exit 1
# and one line naming the spec, the batch and the planned size; never a crash or OOM kill.
source "$(dirname "$0")/cli_lib.sh"
cd "$TMP"

# Under HERD_SANITIZE the allocator returns NULL as libc would, but first prints a warning of
# its own ("AddressSanitizer failed to allocate ..."); herd's message must still be the one line.
expect_err_line_herd() {
    sed -i '/AddressSanitizer failed to allocate/d' "$TMP/err"
    expect_err_line "$@"
    expect_planned_size "$1"
}
# the message gives the planned size in bytes and MiB (the figures depend on the backend's plan)
expect_planned_size() {
    if grep -qE 'the planned [0-9]+ bytes \([0-9.]+ MiB\)' "$TMP/err"; then pass; else fail "$1: no planned size: $(cat "$TMP/err")"; fi
}

# 512 feature maps of 1024x1024 per sample, ~9.7 GB per sample: 2^49 bytes at batch 65536,
# 5 TB at batch 512 (more than any machine's RAM + swap, so the allocation itself fails)
printf 'input 3x1024x1024\nconv 512 3 pad=1 relu\ngap\ndense 10\n' >huge.spec
expect_exit 1 "summary, plan beyond any machine" -- "$HERD" summary huge.spec --batch 65536
expect_err_line_herd "summary, plan beyond any machine" "huge.spec: planning activations for batch 65536: arena: cannot allocate the planned"
expect_exit 1 "summary, plan beyond RAM" -- "$HERD" summary huge.spec --batch 512
expect_err_line_herd "summary, plan beyond RAM" "huge.spec: planning activations for batch 512: arena: cannot allocate the planned"

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    make_subset sub 64 16
    expect_exit 1 "train, plan beyond any machine" -- "$HERD" train huge.spec --data sub --batch 65536 --epochs 1 \
        --progress none
    expect_err_line_herd "train, plan beyond any machine" "huge.spec: planning activations for batch 65536: arena: cannot allocate"
fi

# A plan that fits the machine (6 GB, allocated lazily) but not a 1.5 GB address-space limit.
# AddressSanitizer reserves terabytes of shadow memory, so ulimit -v cannot apply to it.
printf 'input 3x256x256\nconv 64 3 pad=1 relu\nmaxpool 2\nconv 64 3 pad=1 relu\ngap\ndense 10\n' >big.spec
if [ "${HERD_SANITIZED:-0}" = 1 ]; then
    echo "ulimit -v part skipped: herd is built with AddressSanitizer"
else
    expect_exit 1 "summary under ulimit -v" -- bash -c 'ulimit -v 1500000 && exec "$0" summary big.spec --batch 64' "$HERD"
    expect_err_line "summary under ulimit -v" "big.spec: planning activations for batch 64: arena: cannot allocate the planned"
    expect_planned_size "summary under ulimit -v"
    expect_exit 0 "a batch that fits under the same limit" -- bash -c 'ulimit -v 1500000 && exec "$0" summary big.spec --batch 2' "$HERD"
fi
summary
