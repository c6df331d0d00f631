# The C API as a user meets it: `cmake --install` into a prefix, build examples/embed.c with
# pkg-config alone, run it (it trains a small MLP on arrays in memory and predicts), and
# load the weights it saved with the herd command.
. "$(dirname "$0")/cli_lib.sh"
BUILD=${HERD_BUILD_DIR:?}
expect_exit 0 "cmake --install" -- cmake --install "$BUILD" --prefix "$TMP/prefix"
pc=$(find "$TMP/prefix" -name herd.pc | head -1)
[ -n "$pc" ] && pass || fail "herd.pc not installed"
[ -f "$TMP/prefix/include/herd/herd.h" ] && pass || fail "herd.h not installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
expect_exit 0 "pkg-config" -- pkg-config --cflags --libs herd
lib=$(find "$TMP/prefix" -name libherd.a | head -1)
others=$(nm -g --defined-only "$lib" | awk 'NF == 3 && $3 !~ /^herd_/ {print $3}' | head -5)
[ -n "$lib" ] && [ -z "$others" ] && pass || fail "the installed libherd.a exports names without the herd_ prefix: $others"
nm -g --defined-only "$lib" | grep -q " T herd_model_parse$" && pass || fail "herd_model_parse is not exported"
expect_exit 0 "compile embed.c" -- sh -c "cc -std=c11 -Wall -Wextra -Werror '$SRC/examples/embed.c' \$(pkg-config --cflags --libs herd) -o '$TMP/embed'"
[ "$(wc -l <"$SRC/examples/embed.c")" -lt 60 ] && pass || fail "examples/embed.c is not under 60 lines"
(cd "$TMP" && ./embed) >"$TMP/out" 2>"$TMP/err" && pass || fail "embed failed: $(cat "$TMP/out" "$TMP/err")"
expect_out "embed prints its accuracy" "^training accuracy: 0\.9[0-9]+|^training accuracy: 1\.000"
# distributed from C (include/herd/dist.h): the same program alone and on 2 MPI ranks
expect_exit 0 "compile embed_dist.c" -- sh -c "cc -std=c11 -Wall -Wextra -Werror '$SRC/examples/embed_dist.c' \$(pkg-config --cflags --libs herd) -o '$TMP/embed_dist'"
[ "$(wc -l <"$SRC/examples/embed_dist.c")" -lt 80 ] && pass || fail "examples/embed_dist.c is not under 80 lines"
(cd "$TMP" && ./embed_dist) >"$TMP/out" 2>"$TMP/err" && pass || fail "embed_dist alone: $(cat "$TMP/out" "$TMP/err")"
expect_out "embed_dist alone" "^training accuracy: (0\.9[0-9]+|1\.000) on 1 rank$"
if command -v mpirun >/dev/null; then
    # under ASan, OpenMPI's unloaded components leave allocations LeakSanitizer reports (see require_mpi)
    (cd "$TMP" && ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0" OMPI_ALLOW_RUN_AS_ROOT=1 \
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 ./embed_dist) >"$TMP/out" \
        2>"$TMP/err" && pass || fail "embed_dist on 2 ranks: $(cat "$TMP/out" "$TMP/err")"
    expect_out "embed_dist on 2 ranks" "^training accuracy: (0\.9[0-9]+|1\.000) on 2 ranks$"
    [ "$(grep -c accuracy "$TMP/out")" = 1 ] && pass || fail "embed_dist: only rank 0 prints: $(cat "$TMP/out")"
fi
printf 'input 2\ndense 32 relu\ndense 32 relu\ndense 2\n' >"$TMP/m.spec"
expect_exit 0 "herd summary of the installed command" -- "$TMP/prefix/bin/herd" summary "$TMP/m.spec"
summary
