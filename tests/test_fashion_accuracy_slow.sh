# The issue's bar: the example CNN reaches at least 0.905 test accuracy on the full
# Fashion-MNIST after 5 epochs (Adam 1e-3, batch 32, the spec's defaults, seed 0).
. "$(dirname "$0")/cli_lib.sh"
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "SKIP: Debian's dataset-fashion-mnist is not installed"
    echo "0 passed, 0 failed (skipped)"
    exit 77
fi
expect_exit 0 "train 5 epochs" -- "$HERD" train "$SRC/examples/fashion_cnn.spec" --data fashion-mnist --epochs 5 \
    --log-json "$TMP/log.json"
cat "$TMP/out"
acc=$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$TMP/out")
/usr/bin/python3 -c "import sys; sys.exit(0 if float('$acc') >= 0.905 else 1)" && pass || fail "test accuracy $acc < 0.905"
summary
