/* SQLite reader: rows of REAL, INTEGER and numeric TEXT features with an integer label, the
 * label column by name, --data "sqlite:FILE?query=..."; and each kind of bad query or value. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "sample_check.h"
#include "herd/data.h"

static char dir[64], db[128];

static void expect_error(const char *query, const char *label, const char *want) {
    herd_dataset *ds = NULL;
    herd_error err = {0};
    char p[160];
    snprintf(p, sizeof p, "sqlite:%s: ", db);
    herd_status st = herd_sqlite_open(&ds, db, query, label, &err);
    CHECK(st != HERD_OK && !ds, "accepted '%s'", query);
    CHECK(strncmp(err.msg, p, strlen(p)) == 0 && strstr(err.msg, want) && !strchr(err.msg, '\n'),
          "'%s': message '%s' should say '%s'", query, err.msg, want);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_sqlite_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    snprintf(db, sizeof db, "%s/t.db", dir);
    sqlite3 *h;
    char *msg = NULL;
    if (sqlite3_open(db, &h) != SQLITE_OK ||
        sqlite3_exec(h,
                     "CREATE TABLE t(a REAL, b INTEGER, c TEXT, label INTEGER, note TEXT);"
                     "INSERT INTO t VALUES (0.5, 1, '2.5', 0, 'x'), (-1.25, 2, ' 3 ', 2, NULL), (4, 5, '6e-1', 1, 'y');"
                     "CREATE TABLE many(f REAL, label INTEGER);"
                     "WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < 2999)"
                     " INSERT INTO many SELECT i * 0.5, i % 3 FROM r;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "setup: %s\n", msg ? msg : "?");
        return 2;
    }
    sqlite3_close(h);
    herd_error err = {0};
    herd_dataset *ds = NULL;
    herd_status st = herd_sqlite_open(&ds, db, "SELECT a, b, c, label FROM t ORDER BY rowid", NULL, &err);
    CHECK(st == HERD_OK && ds->n == 3 && sample_is(ds, HERD_F32, "3") && ds->num_classes == 3,
          "good query: %s", err.msg);
    if (st == HERD_OK) {
        float x[3];
        int32_t y;
        CHECK(get_f32(ds, 1, x, &y, &err) == HERD_OK && x[0] == -1.25f && x[1] == 2 && x[2] == 3 && y == 2,
              "row 2: %g %g %g %d", x[0], x[1], x[2], y);
        CHECK(get_f32(ds, 2, x, &y, &err) == HERD_OK && x[2] == 0.6f && y == 1, "row 3");
    }
    herd_dataset_close(ds);
    st = herd_sqlite_open(&ds, db, "SELECT label AS cls, a FROM t", "cls", &err);
    CHECK(st == HERD_OK && sample_is(ds, HERD_F32, "1"), "label column by name: %s", err.msg);
    herd_dataset_close(ds);
    st = herd_sqlite_open(&ds, db, "SELECT f, label FROM many;", NULL, &err);
    CHECK(st == HERD_OK && ds->n == 3000, "3000 rows (table growth): %s", err.msg);
    if (st == HERD_OK) {
        float x;
        int32_t y;
        CHECK(get_f32(ds, 2999, &x, &y, &err) == HERD_OK && x == 1499.5f && y == 2, "last row");
    }
    herd_dataset_close(ds);

    expect_error("SELECT a, b FROM t", NULL, "query returns no column named 'label'");
    expect_error("SELECT a, label FROM t", "target", "no column named 'target'");
    expect_error("SELECT label FROM t", NULL, "only the label column");
    expect_error("SELECT a, note AS b, label FROM t ORDER BY rowid", NULL, "row 1 column 'b': 'x' is not a finite number");
    expect_error("SELECT note, label FROM t ORDER BY rowid", NULL, "row 1 column 'note': 'x'");
    expect_error("SELECT a, label, note FROM t WHERE note IS NULL", NULL, "row 1 column 'note' is NULL");
    expect_error("SELECT a, -label AS label FROM t ORDER BY rowid", NULL, "row 2 label '-2' is not a class id");
    expect_error("SELECT a, a AS label FROM t", NULL, "row 1 label '0.5' is not a class id");
    expect_error("SELECT a, x'00' AS b, label FROM t", NULL, "column 'b' is a blob");
    expect_error("SELECT a, label FROM t WHERE 0", NULL, "no data rows");
    expect_error("SELEC a FROM t", NULL, "query: near \"SELEC\": syntax error");
    expect_error("SELECT a, label FROM nope", NULL, "query: no such table: nope");
    expect_error("SELECT a, label FROM t; DELETE FROM t", NULL, "only one statement");
    expect_error("", NULL, "empty query");

    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.db", dir);
    st = herd_sqlite_open(&ds, missing, "SELECT 1", NULL, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, "none.db: cannot open: No such file"), "missing db: %s", err.msg);

    char spec[400];
    snprintf(spec, sizeof spec, "sqlite:%s?query=SELECT a, b, label FROM t WHERE a > 0", db);
    herd_dataset *tr = NULL, *te = NULL;
    st = herd_data_open(spec, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && tr->n == 2 && !te && strcmp(tr->source, (snprintf(missing, sizeof missing, "sqlite:%s", db), missing)) == 0,
          "--data sqlite: %s", err.msg);
    herd_dataset_close(tr);
    snprintf(spec, sizeof spec, "sqlite:%s?label=b&query=SELECT a, b FROM t", db);
    st = herd_data_open(spec, &tr, NULL, &err);
    CHECK(st == HERD_OK && tr && tr->num_classes == 6, "--data sqlite with label=: %s", err.msg);
    herd_dataset_close(tr);
    snprintf(spec, sizeof spec, "sqlite:%s", db);
    st = herd_data_open(spec, &tr, NULL, &err);
    CHECK(st == HERD_EARG && strstr(err.msg, "no query= parameter"), "no query: %s", err.msg);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
