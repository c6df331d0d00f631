/* SQLite query reader: sqlite3_step streams the rows of a read-only connection into a
 * float32 table (numeric feature columns and an integer label column chosen by name). */
#include "herd/data.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/category.h"
#include "data/row_table.h"
#include "io/input_file.h"

/* sqlite3_errmsg is one line already; the source is "sqlite:FILE". A damaged file is a
 * format error, a failing disk an I/O error, anything else the query's fault. */
static herd_status sql_fail(sqlite3 *db, const char *path, herd_status st, const char *what, herd_error *err) {
    int code = db ? sqlite3_errcode(db) & 0xFF : SQLITE_NOMEM;
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) st = HERD_EFORMAT;
    if (code == SQLITE_IOERR || code == SQLITE_CANTOPEN) st = HERD_EIO;
    if (code == SQLITE_NOMEM) st = HERD_ENOMEM;
    return herd_fail(err, st, "sqlite:%s: %s: %s", path, what, db ? sqlite3_errmsg(db) : "out of memory");
}

herd_status herd_sqlite_open(herd_dataset **out, const char *db_path, const char *query, const char *label_column,
                             herd_error *err) {
    herd_table_options opt = {.label = label_column};
    return herd_sqlite_open_with(out, db_path, query, &opt, err);
}

herd_status herd_sqlite_open_with(herd_dataset **out, const char *db_path, const char *query,
                                  const herd_table_options *opt, herd_error *err) {
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    row_table t;
    herdi_row_table_init(&t, 1);
    herd_status st = HERD_OK;
    int *role = NULL;
    const char **names = NULL;
    char source[512];
    snprintf(source, sizeof source, "sqlite:%.480s", db_path);
    *out = NULL;
    const char *label_column = opt->target ? opt->target : opt->label && *opt->label ? opt->label : "label";
    categories cats;
    if ((st = herdi_categories_init(&cats, opt->cat, opt->hash_rows, opt->hash_seed, source, err))) return st;
    int fd;
    if ((st = herdi_input_open(db_path, &fd, NULL, err))) goto done;
    close(fd);
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        st = sql_fail(db, db_path, HERD_EIO, "cannot open", err);
        goto done;
    }
    const char *tail = NULL;
    if (sqlite3_prepare_v2(db, query, -1, &stmt, &tail) != SQLITE_OK || !stmt) {
        st = stmt || sqlite3_errcode(db) != SQLITE_OK ? sql_fail(db, db_path, HERD_EARG, "query", err)
                                                      : herd_fail(err, HERD_EARG, "sqlite:%s: query: empty query", db_path);
        goto done;
    }
    while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == ';')) tail++;
    if (tail && *tail) {
        st = herd_fail(err, HERD_EARG, "sqlite:%s: query: only one statement is allowed", db_path);
        goto done;
    }
    int ncols = sqlite3_column_count(stmt), label_at = -1;
    for (int i = 0; i < ncols; i++)
        if (strcmp(sqlite3_column_name(stmt, i), label_column) == 0) label_at = i;
    if (label_at < 0) {
        st = herd_fail(err, HERD_EFORMAT, "sqlite:%s: query returns no column named '%s'", db_path, label_column);
        goto done;
    }
    if (ncols < 2) {
        st = herd_fail(err, HERD_EFORMAT, "sqlite:%s: query returns only the label column, no features", db_path);
        goto done;
    }
    if (!(names = herd_malloc_array((size_t)ncols, sizeof *names))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", source);
        goto done;
    }
    for (int i = 0; i < ncols; i++) names[i] = sqlite3_column_name(stmt, i);
    if ((st = herdi_row_table_columns(&t, &cats, names, ncols, label_at, opt->target != NULL, &role, source, err))) goto done;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        long long row = (long long)t.n + 1;
        float *x = herdi_row_table_push(&t, 0);
        if (!x) {
            st = herd_fail(err, HERD_ENOMEM, "sqlite:%s: out of memory at row %lld", db_path, row);
            goto done;
        }
        int32_t *ids = cats.n ? herdi_row_table_cats(&t) : NULL;
        for (int i = 0, f = 0; i < ncols; i++) {
            int type = sqlite3_column_type(stmt, i);
            const char *name = sqlite3_column_name(stmt, i);
            if (type == SQLITE_NULL || type == SQLITE_BLOB) {
                st = herd_fail(err, HERD_EFORMAT, "sqlite:%s: row %lld column '%s' is %s", db_path, row, name,
                               type == SQLITE_NULL ? "NULL" : "a blob");
                goto done;
            }
            if (role[i] >= 0) { /* its text (integers and reals too) is the category */
                const char *text = (const char *)sqlite3_column_text(stmt, i);
                char where[600];
                snprintf(where, sizeof where, "sqlite:%s: row %lld", db_path, row);
                if (!text) {
                    st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", where);
                    goto done;
                }
                if ((st = herdi_categories_put(&cats, role[i], text, (size_t)sqlite3_column_bytes(stmt, i), ids, where, err)))
                    goto done;
            } else if (i == label_at) {
                const char *text = (const char *)sqlite3_column_text(stmt, i);
                if (!text || !herdi_row_table_target(&t, text)) {
                    st = herd_fail(err, HERD_EFORMAT, "sqlite:%s: row %lld label '%.40s' is not %s", db_path, row,
                                   text ? text : "", herdi_row_target_what(&t));
                    goto done;
                }
            } else if (type == SQLITE_TEXT) {
                const char *text = (const char *)sqlite3_column_text(stmt, i);
                if (!text || !herdi_row_parse_feature(text, &x[f++])) {
                    st = herd_fail(err, HERD_EFORMAT, "sqlite:%s: row %lld column '%s': '%.40s' is not a finite number",
                                   db_path, row, name, text ? text : "");
                    goto done;
                }
            } else {
                double v = sqlite3_column_double(stmt, i);
                if (!isfinite(v) || fabs(v) > 3.4028234663852886e38) {
                    st = herd_fail(err, HERD_EFORMAT, "sqlite:%s: row %lld column '%s': %g is not a finite float",
                                   db_path, row, name, v);
                    goto done;
                }
                x[f++] = (float)v;
            }
        }
    }
    if (rc != SQLITE_DONE) {
        st = sql_fail(db, db_path, HERD_EARG, "query", err);
        goto done;
    }
    char note[512];
    herdi_categories_describe(&cats, note, sizeof note);
    st = herdi_row_table_finish(&t, out, source, note, err);
done:
    free(role);
    free(names);
    herdi_categories_free(&cats);
    herdi_row_table_free(&t);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return st;
}
