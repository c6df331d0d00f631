# Parameter-server convergence: 1 server + 2 workers with staleness 2 train the example CNN
# to at least 0.90 test accuracy on Fashion-MNIST within 6 epochs.
. "$(dirname "$0")/cli_lib.sh"
if ! command -v mpirun >/dev/null || [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "SKIP: needs mpirun (openmpi-bin) and dataset-fashion-mnist"
    echo "0 passed, 0 failed (skipped)"
    exit 77
fi
expect_exit 0 "ps 1 server + 2 workers, K=2, 6 epochs" -- "$HERD" train "$SRC/examples/fashion_cnn.spec" \
    --data fashion-mnist --epochs 6 -n 3 --strategy ps --servers 1 --staleness 2 --threads 1 --test-each-epoch \
    --log-json "$TMP/log.json" --progress none
cat "$TMP/out"
best=$(/usr/bin/python3 -c "
import json; rows = [json.loads(l) for l in open('$TMP/log.json')]
print(max(r['test_accuracy'] for r in rows))")
/usr/bin/python3 -c "import sys; sys.exit(0 if $best >= 0.90 else 1)" && pass || fail "best test accuracy $best < 0.90"
summary
