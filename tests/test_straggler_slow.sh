# --straggler-report: with one rank slowed by HERD_TEST_DELAY (it sleeps 30 ms after every
# step), the first two reports name it and its busy time exceeds the other rank's by the
# delay (+-20%); the run ends with the per-rank table; without the delay no rank's excess
# comes near it.
. "$(dirname "$0")/cli_lib.sh"
require_mpi "straggler report"
/usr/bin/python3 - "$TMP" <<'PY'
import sys
import numpy as np
rng = np.random.default_rng(1)
x = rng.normal(size=(2000, 32)).astype(np.float32)
np.save(sys.argv[1] + "/train_x.npy", x)
np.save(sys.argv[1] + "/train_y.npy", (x[:, 0] > 0).astype(np.int64))
PY
printf 'input 32\ndense 64 relu\ndense 2\n' >"$TMP/m.spec"
RUN=(--data "$TMP/train_x.npy" -n 2 --batch 100 --epochs 1 --threads 1 --progress none --straggler-report 5)
HERD_TEST_DELAY=1:30 expect_exit 0 "a slow rank" -- "$HERD" train "$TMP/m.spec" "${RUN[@]}"
/usr/bin/python3 - "$TMP/err" <<'PY' && pass || fail "straggler reports: $(grep -c straggler "$TMP/err") lines: $(head -c 600 "$TMP/err")"
import re, sys
lines = [l for l in open(sys.argv[1]) if "straggler report" in l]
assert len(lines) == 4, lines  # 20 steps, a report every 5
for l in lines[:2]:
    m = re.search(r"rank (\d+) is the slowest, busy ([0-9.]+) s .* median ([0-9.]+) s", l)
    assert m and m.group(1) == "1", l
    excess = float(m.group(2)) - float(m.group(3))
    assert abs(excess - 5 * 0.030) <= 0.2 * 5 * 0.030, (excess, l)
PY
grep -q "per-rank time over the run" "$TMP/err" && [ "$(grep -c '  rank [01] ' "$TMP/err")" = 2 ] && pass ||
    fail "per-rank table: $(tail -c 400 "$TMP/err")"
expect_exit 0 "no slow rank" -- "$HERD" train "$TMP/m.spec" "${RUN[@]}"
/usr/bin/python3 - "$TMP/err" <<'PY' && pass || fail "reports without a delay: $(grep straggler "$TMP/err" | head -c 600)"
import re, sys
for l in open(sys.argv[1]):
    m = re.search(r"busy ([0-9.]+) s .* median ([0-9.]+) s", l)
    if m:
        assert float(m.group(1)) - float(m.group(2)) < 0.5 * 5 * 0.030, l
PY
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
