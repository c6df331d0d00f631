# Sourced by the Parquet tests and bench/loader: installs the independent Parquet writer the
# test data comes from (Apache Arrow's Rust Parquet writer compiled to WebAssembly, npm package
# parquet-wasm, fed Arrow tables by Apache Arrow's JavaScript library, npm package apache-arrow)
# into a cache directory outside the repository, once, and defines parquet_write, which runs
# tests/parquet/write.cjs with node. Exit 77 (skip, said why) when node or npm are missing.
PARQUET_WASM_VERSION=0.8.0
APACHE_ARROW_VERSION=21.2.0
HERD_NPM_CACHE=${HERD_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herd-npm}
export HERD_NPM_MODULES=$HERD_NPM_CACHE/node_modules

npm_writer_ready() {
    [ -f "$HERD_NPM_MODULES/parquet-wasm/package.json" ] &&
        grep -q "\"version\": \"$PARQUET_WASM_VERSION\"" "$HERD_NPM_MODULES/parquet-wasm/package.json" &&
        [ -f "$HERD_NPM_MODULES/apache-arrow/package.json" ] &&
        grep -q "\"version\": \"$APACHE_ARROW_VERSION\"" "$HERD_NPM_MODULES/apache-arrow/package.json"
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "SKIP: node and npm are needed to write the Parquet test data (Debian: apt-get install nodejs npm)"
    echo "0 passed, 0 failed (skipped)"
    exit 77
fi
if ! npm_writer_ready; then
    mkdir -p "$HERD_NPM_CACHE"
    if ! npm install --prefix "$HERD_NPM_CACHE" --no-save --no-audit --no-fund --loglevel=error \
        "parquet-wasm@$PARQUET_WASM_VERSION" "apache-arrow@$APACHE_ARROW_VERSION" >"$HERD_NPM_CACHE/install.log" 2>&1; then
        echo "FAIL: npm install parquet-wasm@$PARQUET_WASM_VERSION apache-arrow@$APACHE_ARROW_VERSION into $HERD_NPM_CACHE failed:" >&2
        tail -5 "$HERD_NPM_CACHE/install.log" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

parquet_write() { node "$HERD_SOURCE_DIR/tests/parquet/write.cjs" "$@"; }
