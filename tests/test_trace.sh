# --trace: one Chrome/Perfetto timeline with a row per rank, every layer's forward and
# backward, data loading, the optimizer, and each gradient bucket's exchange on its own
# track; plus the end-of-run summary (time per phase, images/s, peak memory).
. "$(dirname "$0")/cli_lib.sh"
require_mpi "trace tests"
make_subset "$TMP/d" 640 200
SPEC=$SRC/examples/fashion_cnn.spec
expect_exit 0 "train -n 2 --trace" -- "$HERD" train "$SPEC" --data "$TMP/d" --epochs 1 --batch 64 --threads 1 -n 2 \
    --bucket-mb 0.2 --trace "$TMP/trace.json" --progress none
expect_out "summary: phases" "data +[0-9.]+%  compute +[0-9.]+%  gradient exchange +[0-9.]+%  optimizer +[0-9.]+%"
expect_out "summary: memory" "peak memory [0-9.]+ MiB"
/usr/bin/python3 - "$TMP/trace.json" <<'PY' && pass || fail "trace content"
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
x = [e for e in events if e["ph"] == "X"]
assert {e["pid"] for e in x} == {0, 1}, "one row per rank"
for pid in (0, 1):
    mine = [e for e in x if e["pid"] == pid]
    for cat in ("forward", "backward", "data", "optimizer", "comm"):
        assert any(e["cat"] == cat for e in mine), (pid, cat)
    layers = {e["name"] for e in mine if e["cat"] == "backward"}
    assert {"conv1", "conv2", "conv3", "dense1", "dense2"} <= layers, layers
    assert all(e["tid"] == 1 for e in mine if e["cat"] == "comm"), "exchange on its own track"
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in mine)
    # buckets start while backward is still running: some exchange begins before a later layer's
    # backward of the same step (no optimizer event in between), so the overlap shows
    ev = sorted((e["ts"], e["cat"]) for e in mine if e["cat"] in ("backward", "comm", "optimizer"))
    overlap = any(cat == "comm" and any(c2 == "backward" for _, c2 in
                  __import__("itertools").takewhile(lambda t: t[1] != "optimizer", ev[i + 1:]))
                  for i, (_, cat) in enumerate(ev))
    assert overlap, "no exchange starts before backward ends"
print(f"{len(x)} events checked")
PY
expect_exit 1 "unwritable trace path" -- "$HERD" train "$SPEC" --data "$TMP/d" --epochs 1 --quiet --trace "$TMP/no/t.json"
expect_err_line "unwritable trace path" "$TMP/no/t.json"
summary
