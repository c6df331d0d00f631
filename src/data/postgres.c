/* PostgreSQL query reader through libpq: a read-only transaction, a server-side cursor
 * fetched 1000 rows at a time (so libpq never buffers the whole result), rows appended to
 * a float32 table (numeric feature columns and an integer label column chosen by name). */
#include "herd/data.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/row_table.h"

#define FETCH_ROWS "1000"

/* libpq prints notices to stderr by default; a library does not print. */
static void pg_quiet(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

/* The connection string for messages, with a URI's password replaced by ***. */
static void pg_source(const char *conninfo, char *out, size_t cap) {
    const char *scheme = strstr(conninfo, "://");
    if (!scheme) {
        snprintf(out, cap, "%s", strstr(conninfo, "password") ? "postgresql (password hidden)" : conninfo);
        return;
    }
    const char *user = scheme + 3, *at = strchr(user, '@'), *slash = strchr(user, '/');
    const char *colon = at ? memchr(user, ':', (size_t)(at - user)) : NULL;
    if (at && (!slash || at < slash) && colon)
        snprintf(out, cap, "%.*s:***%s", (int)(colon - conninfo), conninfo, at);
    else
        snprintf(out, cap, "%s", conninfo);
}

/* First line of a libpq message, without the trailing newline. */
static herd_status pg_fail(herd_error *err, herd_status st, const char *source, const char *what, const char *msg) {
    if (!msg || !*msg) msg = "unknown error";
    size_t n = strcspn(msg, "\n");
    return herd_fail(err, st, "%s: %s: %.*s", source, what, (int)n, msg);
}

/* Runs sql and checks its status; on failure the server's primary message. */
static herd_status pg_exec(PGconn *c, const char *sql, ExecStatusType want, PGresult **res, const char *source,
                           const char *what, herd_error *err) {
    *res = PQexec(c, sql);
    if (*res && PQresultStatus(*res) == want) return HERD_OK;
    herd_status st;
    if (!*res) {
        st = pg_fail(err, HERD_EIO, source, what, PQerrorMessage(c));
    } else {
        const char *sev = PQresultErrorField(*res, PG_DIAG_SEVERITY);
        const char *primary = PQresultErrorField(*res, PG_DIAG_MESSAGE_PRIMARY);
        char msg[900];
        snprintf(msg, sizeof msg, "%s%s%s", sev ? sev : "", sev ? ": " : "",
                 primary ? primary : PQresultErrorMessage(*res));
        st = pg_fail(err, HERD_EARG, source, what, msg);
    }
    PQclear(*res);
    *res = NULL;
    return st;
}

herd_status herd_postgres_open(herd_dataset **out, const char *conninfo, const char *query,
                               const char *label_column, herd_error *err) {
    PGconn *c = NULL;
    PGresult *res = NULL;
    char *declare = NULL, source[512];
    row_table t;
    row_table_init(&t, 1);
    herd_status st;
    int label_at = -1, ncols = 0;
    *out = NULL;
    if (!label_column || !*label_column) label_column = "label";
    pg_source(conninfo, source, sizeof source);
    c = PQconnectdb(conninfo);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        st = pg_fail(err, HERD_EIO, source, "cannot connect", c ? PQerrorMessage(c) : "out of memory");
        goto done;
    }
    PQsetNoticeProcessor(c, pg_quiet, NULL);
    if ((st = pg_exec(c, "BEGIN TRANSACTION READ ONLY", PGRES_COMMAND_OK, &res, source, "begin", err)) != HERD_OK)
        goto done;
    PQclear(res);
    static const char prefix[] = "DECLARE herd_rows NO SCROLL CURSOR FOR ";
    size_t qlen = strlen(query);
    if (!(declare = malloc(sizeof prefix + qlen))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", source);
        goto done;
    }
    memcpy(declare, prefix, sizeof prefix - 1);
    memcpy(declare + sizeof prefix - 1, query, qlen + 1);
    if ((st = pg_exec(c, declare, PGRES_COMMAND_OK, &res, source, "query", err)) != HERD_OK) goto done;
    PQclear(res);
    for (int first = 1;; first = 0) {
        if ((st = pg_exec(c, "FETCH FORWARD " FETCH_ROWS " FROM herd_rows", PGRES_TUPLES_OK, &res, source, "query",
                          err)) != HERD_OK)
            goto done;
        if (first) {
            ncols = PQnfields(res);
            for (int i = 0; i < ncols; i++)
                if (strcmp(PQfname(res, i), label_column) == 0) label_at = i;
            if (label_at < 0) {
                st = herd_fail(err, HERD_EFORMAT, "%s: query returns no column named '%s'", source, label_column);
                goto done;
            }
            if (ncols < 2) {
                st = herd_fail(err, HERD_EFORMAT, "%s: query returns only the label column, no features", source);
                goto done;
            }
            row_table_init(&t, ncols - 1);
        }
        int rows = PQntuples(res);
        if (rows == 0) break;
        for (int r = 0; r < rows; r++) {
            long long row = (long long)t.n + 1;
            int32_t label = 0;
            float *x = row_table_push(&t, 0);
            if (!x) {
                st = herd_fail(err, HERD_ENOMEM, "%s: out of memory at row %lld", source, row);
                goto done;
            }
            for (int i = 0, f = 0; i < ncols; i++) {
                const char *v = PQgetvalue(res, r, i);
                if (PQgetisnull(res, r, i)) {
                    st = herd_fail(err, HERD_EFORMAT, "%s: row %lld column '%s' is NULL", source, row, PQfname(res, i));
                    goto done;
                }
                if (i == label_at ? !row_parse_label(v, &label) : !row_parse_feature(v, &x[f++])) {
                    st = herd_fail(err, HERD_EFORMAT, "%s: row %lld column '%s': '%.40s' is not %s", source, row,
                                   PQfname(res, i), v, i == label_at ? "a class id (an integer >= 0)" : "a finite number");
                    goto done;
                }
            }
            t.y[t.n - 1] = label;
            if (label > t.max_label) t.max_label = label;
        }
        PQclear(res);
        res = NULL;
    }
    PQclear(res);
    res = NULL;
    /* Ending the read-only transaction closes the cursor; a failure here loses nothing. */
    if (pg_exec(c, "COMMIT", PGRES_COMMAND_OK, &res, source, "commit", NULL) == HERD_OK) PQclear(res);
    res = NULL;
    st = row_table_finish(&t, out, source, err);
done:
    PQclear(res);
    free(declare);
    row_table_free(&t);
    PQfinish(c);
    return st;
}
