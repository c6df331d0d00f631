# PostgreSQL reader against a real server: a throw-away cluster (initdb as an unprivileged
# user) on a unix socket in a temp dir, a table of an easy 3-class problem, one epoch of
# `herd train` through a server-side cursor, and the server's error for a bad query.
. "$(dirname "$0")/cli_lib.sh"
PGBIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PGBIN/initdb" ]; then
    echo "SKIP: PostgreSQL 15 server binaries not found in $PGBIN (Debian package postgresql)"
    exit 77
fi
# initdb refuses to run as root: run the server as 'nobody' then
AS=()
if [ "$(id -u)" = 0 ]; then
    if ! id nobody >/dev/null 2>&1 || ! command -v runuser >/dev/null; then
        echo "SKIP: running as root without a 'nobody' user or runuser to start PostgreSQL"
        exit 77
    fi
    AS=(runuser -u nobody --)
fi
chmod 755 "$TMP"
mkdir -p "$TMP/pg" "$TMP/sock"
[ ${#AS[@]} -gt 0 ] && chown nobody "$TMP/pg" "$TMP/sock"
PORT=$((20000 + $$ % 20000))
stop_server() {
    "${AS[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$TMP"
}
trap stop_server EXIT
if ! "${AS[@]}" "$PGBIN/initdb" -D "$TMP/pg/data" -U herd --auth=trust >"$TMP/initdb.log" 2>&1; then
    echo "SKIP: initdb failed: $(tail -n 3 "$TMP/initdb.log" | tr '\n' ' ')"
    exit 77
fi
if ! "${AS[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/log" -w -t 60 \
    -o "-k $TMP/sock -p $PORT -c listen_addresses=''" start >/dev/null 2>&1; then
    echo "SKIP: the PostgreSQL server did not start: $(tail -n 3 "$TMP/pg/log" | tr '\n' ' ')"
    exit 77
fi
PSQL=(/usr/bin/psql -X -q -v ON_ERROR_STOP=1 -h "$TMP/sock" -p "$PORT" -U herd -d postgres)
"${PSQL[@]}" >/dev/null <<'SQL' && pass || fail "creating the table"
SELECT setseed(0.25);
CREATE TABLE pts AS
  SELECT a, b, c, d, (CASE WHEN a >= b AND a >= c THEN 0 WHEN b >= c THEN 1 ELSE 2 END) AS label
  FROM (SELECT random() AS a, random() AS b, random() AS c, random() AS d FROM generate_series(1, 3000)) s;
SQL
printf 'input 4\ndense 3\n' >"$TMP/m.spec"
URI="postgresql://herd@/postgres?host=$TMP/sock&port=$PORT"

# 3000 rows is three cursor fetches; one epoch of a linear model on an easy problem
expect_exit 0 "train on postgresql" -- "$HERD" train "$TMP/m.spec" --data "$URI&query=SELECT a, b, c, d, label FROM pts" \
    --epochs 1 --batch 16 --lr 0.05 --progress plain --log-json "$TMP/log.json"
expect_out "source named" "^herd: training .*m.spec on postgresql://herd@/postgres\?host=.* \(3000 train, batch 16"
expect_out "one epoch" "Epoch 1/1"
grep -q "test accuracy" "$TMP/out" && fail "a query source has no test split" || pass
/usr/bin/python3 - "$TMP/log.json" <<'PY' && pass || fail "accuracy after one epoch: $(cat "$TMP/log.json")"
import json, sys
row = json.loads(open(sys.argv[1]).readline())
sys.exit(0 if row["accuracy"] > 0.6 else 1)  # chance is 1/3
PY

# the label column by name, in another position
expect_exit 0 "label=" -- "$HERD" train "$TMP/m.spec" --data "postgresql://herd@/postgres?host=$TMP/sock&label=cls&port=$PORT&query=SELECT label AS cls, d, c, b, a FROM pts LIMIT 100" --epochs 1 --quiet

# categorical columns (cat=, ids of any column type by their text) beside a float feature, and f32 targets
printf 'input 1 name=d\ninput 1 dtype=i32 name=ca\ninput 1 dtype=i32 name=lb\nembedding 16 4 from=ca name=e1\nembedding 4 4 from=lb name=e2\ndot e1,e2 name=s\nconcat s,d\ndense 3\n' >"$TMP/cat.spec"
expect_exit 0 "cat=" -- "$HERD" train "$TMP/cat.spec" --data "$URI&cat=ca,lb&query=SELECT d, (a * 10)::int AS ca, label::text AS lb, label FROM pts LIMIT 500" --epochs 1
expect_out "cat= note" "ca: 11 values, ids 0..10; lb: 3 values, ids 0..2"
expect_exit 1 "cat= missing column" -- "$HERD" train "$TMP/cat.spec" --data "$URI&cat=zz&query=SELECT d, label FROM pts" --epochs 1
expect_err_line "cat= missing column" "no column named 'zz' (cat=)"
printf 'input 4\ndense 1\nloss mse\n' >"$TMP/r.spec"
expect_exit 0 "target=COL" -- "$HERD" train "$TMP/r.spec" --data "$URI&target=y&query=SELECT a, b, c, d, a + b AS y FROM pts LIMIT 200" --epochs 1 --quiet

# the server's message, one line
expect_exit 1 "bad column" -- "$HERD" train "$TMP/m.spec" --data "$URI&query=SELECT nope, label FROM pts" --epochs 1
expect_err_line "bad column" 'query: ERROR: column "nope" does not exist'
expect_exit 1 "bad syntax" -- "$HERD" train "$TMP/m.spec" --data "$URI&query=SELEC a FROM pts" --epochs 1
expect_err_line "bad syntax" 'ERROR: syntax error at or near "SELEC"'
expect_exit 1 "NULL value" -- "$HERD" train "$TMP/m.spec" --data "$URI&query=SELECT a, b, NULL::real AS c, d, label FROM pts" --epochs 1
expect_err_line "NULL value" "row 1 column 'c' is NULL"
expect_exit 1 "no label" -- "$HERD" train "$TMP/m.spec" --data "$URI&query=SELECT a, b, c, d FROM pts" --epochs 1
expect_err_line "no label" "query returns no column named 'label'"
expect_exit 1 "read-only" -- "$HERD" train "$TMP/m.spec" --data "$URI&query=DELETE FROM pts RETURNING a, b, c, d, label" --epochs 1
expect_err_line "read-only" "ERROR:"
[ "$("${PSQL[@]}" -t -A -c 'SELECT count(*) FROM pts')" = 3000 ] && pass || fail "the query changed the table"
expect_exit 1 "wrong port" -- "$HERD" train "$TMP/m.spec" --data "postgresql://herd@/postgres?host=$TMP/sock&port=1&query=SELECT 1" --epochs 1
expect_err_line "wrong port" "cannot connect"
summary
