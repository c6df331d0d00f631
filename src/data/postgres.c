/* PostgreSQL query reader through libpq: a read-only transaction, a server-side cursor
 * fetched 1000 rows at a time (so libpq never buffers the whole result), rows appended to
 * a float32 table (numeric feature columns and an integer label column chosen by name). */
#include "herd/data.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/category.h"
#include "data/row_table.h"

#define FETCH_ROWS "1000"
/* Bounds when the URL gives none: connecting (libpq's connect_timeout, seconds), and each
 * statement (the server's statement_timeout); the client waits PG_REPLY_GRACE_S longer for
 * the server's own timeout message before giving up on it. */
#define PG_CONNECT_TIMEOUT "10"
#define PG_STATEMENT_TIMEOUT_S 300
#define PG_STATEMENT_TIMEOUT "-c statement_timeout=300s" /* PG_STATEMENT_TIMEOUT_S */
#define PG_REPLY_GRACE_S 5

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

/* The value of a connection option as libpq resolved it ("" when unset). */
static void pg_option(PGconn *c, const char *key, char *out, size_t cap) {
    PQconninfoOption *opts = PQconninfo(c);
    out[0] = 0;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (o->val && !strcmp(o->keyword, key)) snprintf(out, cap, "%s", o->val);
    PQconninfoFree(opts);
}

/* The statement_timeout (seconds) the connection's `options` set, as -c statement_timeout=N or
 * --statement_timeout=N with PostgreSQL's units (ms when none); -1 when they set none. */
static double pg_statement_timeout(PGconn *c) {
    char opts[512];
    pg_option(c, "options", opts, sizeof opts);
    const char *at = strstr(opts, "statement_timeout=");
    if (!at) return -1;
    char *end;
    double v = strtod(at + strlen("statement_timeout="), &end);
    if (end == at + strlen("statement_timeout=") || !(v >= 0)) return -1;
    static const struct {
        const char *unit;
        double seconds;
    } units[] = {{"min", 60}, {"ms", 1e-3}, {"s", 1}, {"h", 3600}, {"d", 86400}};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
        if (!strncmp(end, units[u].unit, strlen(units[u].unit))) return v * units[u].seconds;
    return v * 1e-3;
}

/* PQexec with a bound: the server gets the statement_timeout (herd's default, or the URL's
 * options), and the client waits for the reply at most that long plus PG_REPLY_GRACE_S, so a
 * server that accepts and then never answers is an error too (bound <= 0: no client bound,
 * as the URL asked with statement_timeout=0). NULL with the message in c on failure. */
static PGresult *pg_exec_bounded(PGconn *c, const char *sql, double bound, const char *source, herd_error *err,
                                 int *timed_out) {
    *timed_out = 0;
    if (!PQsendQuery(c, sql)) return NULL;
    double deadline = herd_now() + bound;
    while (PQisBusy(c)) {
        int ms = -1;
        if (bound > 0) {
            double left = deadline - herd_now();
            if (left <= 0) {
                *timed_out = 1;
                herd_fail(err, HERD_EIO, "%s: no reply from the server within %.0f s (the statement_timeout plus "
                          "%d s); it accepted the connection but stopped answering", source, bound, PG_REPLY_GRACE_S);
                return NULL;
            }
            ms = (int)(left * 1000) + 1;
        }
        struct pollfd p = {PQsocket(c), POLLIN, 0};
        int r = poll(&p, 1, ms);
        if (r < 0 && errno != EINTR) return NULL;
        if (r > 0 && !PQconsumeInput(c)) return NULL;
    }
    PGresult *res = PQgetResult(c), *extra;
    while ((extra = PQgetResult(c))) PQclear(extra); /* one statement: nothing follows but the end */
    return res;
}

/* Runs sql and checks its status; on failure the server's primary message. */
static herd_status pg_exec(PGconn *c, const char *sql, ExecStatusType want, PGresult **res, double bound,
                           const char *source, const char *what, herd_error *err) {
    int timed_out;
    *res = pg_exec_bounded(c, sql, bound, source, err, &timed_out);
    if (timed_out) return HERD_EIO;
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
    herd_table_options opt = {.label = label_column};
    return herd_postgres_open_with(out, conninfo, query, &opt, err);
}

herd_status herd_postgres_open_with(herd_dataset **out, const char *conninfo, const char *query,
                                    const herd_table_options *opt, herd_error *err) {
    PGconn *c = NULL;
    PGresult *res = NULL;
    char *declare = NULL, source[512];
    row_table t;
    herdi_row_table_init(&t, 1);
    herd_status st;
    int label_at = -1, ncols = 0, *role = NULL;
    const char **names = NULL;
    *out = NULL;
    const char *label_column = opt->target ? opt->target : opt->label && *opt->label ? opt->label : "label";
    pg_source(conninfo, source, sizeof source);
    categories cats;
    if ((st = herdi_categories_init(&cats, opt->cat, opt->hash_rows, opt->hash_seed, source, err))) return st;
    /* herd's defaults come before the URL, whose own connect_timeout and options win (libpq
     * expands dbname in place); PGCONNECT_TIMEOUT / PGOPTIONS in the environment win too */
    const char *keys[] = {"connect_timeout", "options", "dbname", NULL};
    const char *vals[] = {getenv("PGCONNECT_TIMEOUT") ? NULL : PG_CONNECT_TIMEOUT,
                          getenv("PGOPTIONS") ? NULL : PG_STATEMENT_TIMEOUT, conninfo, NULL};
    c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        const char *why = c ? PQerrorMessage(c) : "out of memory";
        char msg[600], limit[32];
        if (c && strstr(why, "timeout expired")) { /* libpq's words alone do not say which bound */
            pg_option(c, "connect_timeout", limit, sizeof limit);
            snprintf(msg, sizeof msg, "no answer within the connect_timeout of %s s (connect_timeout= in the URL "
                     "sets it): %.*s", limit, (int)strcspn(why, "\n"), why);
            why = msg;
        }
        st = pg_fail(err, HERD_EIO, source, "cannot connect", why);
        goto done;
    }
    /* the client's bound: the statement_timeout set (0: none, as asked), else herd's default, also
     * when the URL's own options set no statement_timeout (the server then enforces none) */
    double statement_s = pg_statement_timeout(c);
    double bound = statement_s == 0 ? 0 : (statement_s > 0 ? statement_s : PG_STATEMENT_TIMEOUT_S) + PG_REPLY_GRACE_S;
    PQsetNoticeProcessor(c, pg_quiet, NULL);
    if ((st = pg_exec(c, "BEGIN TRANSACTION READ ONLY", PGRES_COMMAND_OK, &res, bound, source, "begin", err)) != HERD_OK)
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
    if ((st = pg_exec(c, declare, PGRES_COMMAND_OK, &res, bound, source, "query", err)) != HERD_OK) goto done;
    PQclear(res);
    for (int first = 1;; first = 0) {
        if ((st = pg_exec(c, "FETCH FORWARD " FETCH_ROWS " FROM herd_rows", PGRES_TUPLES_OK, &res, bound, source, "query",
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
            if (!(names = herd_malloc_array((size_t)ncols, sizeof *names))) {
                st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", source);
                goto done;
            }
            for (int i = 0; i < ncols; i++) names[i] = PQfname(res, i);
            if ((st = herdi_row_table_columns(&t, &cats, names, ncols, label_at, opt->target != NULL, &role, source, err)))
                goto done;
        }
        int rows = PQntuples(res);
        if (rows == 0) break;
        for (int r = 0; r < rows; r++) {
            long long row = (long long)t.n + 1;
            float *x = herdi_row_table_push(&t, 0);
            if (!x) {
                st = herd_fail(err, HERD_ENOMEM, "%s: out of memory at row %lld", source, row);
                goto done;
            }
            int32_t *ids = cats.n ? herdi_row_table_cats(&t) : NULL;
            for (int i = 0, f = 0; i < ncols; i++) {
                const char *v = PQgetvalue(res, r, i);
                if (PQgetisnull(res, r, i)) {
                    st = herd_fail(err, HERD_EFORMAT, "%s: row %lld column '%s' is NULL", source, row, PQfname(res, i));
                    goto done;
                }
                if (role[i] >= 0) {
                    char where[600];
                    snprintf(where, sizeof where, "%s: row %lld", source, row);
                    if ((st = herdi_categories_put(&cats, role[i], v, (size_t)PQgetlength(res, r, i), ids, where, err))) goto done;
                    continue;
                }
                if (i == label_at ? !herdi_row_table_target(&t, v) : !herdi_row_parse_feature(v, &x[f++])) {
                    st = herd_fail(err, HERD_EFORMAT, "%s: row %lld column '%s': '%.40s' is not %s", source, row,
                                   PQfname(res, i), v, i == label_at ? herdi_row_target_what(&t) : "a finite number");
                    goto done;
                }
            }
        }
        PQclear(res);
        res = NULL;
    }
    PQclear(res);
    res = NULL;
    /* Ending the read-only transaction closes the cursor; a failure here loses nothing. */
    if (pg_exec(c, "COMMIT", PGRES_COMMAND_OK, &res, bound, source, "commit", NULL) == HERD_OK) PQclear(res);
    res = NULL;
    char note[512];
    herdi_categories_describe(&cats, note, sizeof note);
    st = herdi_row_table_finish(&t, out, source, note, err);
done:
    PQclear(res);
    free(declare);
    free(role);
    free(names);
    herdi_categories_free(&cats);
    herdi_row_table_free(&t);
    PQfinish(c);
    return st;
}
