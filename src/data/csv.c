/* CSV reader (RFC 4180): a header row, numeric feature columns and an integer label column
 * chosen by name; the whole file is read once and parsed in place into a float32 table. */
#include "herd/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "data/category.h"
#include "data/row_table.h"
#include "io/input_file.h"

typedef struct csv_parser {
    const char *path;
    char *p, *end; /* unread text; *end == 0 */
    long line;     /* line of p */
} csv_parser;

/* Reads one field at p, unescaping a quoted one in place and NUL-terminating it. *last is
 * set when the field ends its record (newline or end of file). */
static herd_status csv_field(csv_parser *cp, char **field, int *last, herd_error *err) {
    char *p = cp->p, *out = p;
    *field = p;
    if (*p == '"') {
        long start_line = cp->line;
        p++;
        for (;;) {
            if (p == cp->end)
                return herd_fail(err, HERD_EFORMAT, "%s:%ld: quoted field never closed", cp->path, start_line);
            if (*p == '"') {
                if (p + 1 < cp->end && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            if (*p == '\n') cp->line++;
            *out++ = *p++;
        }
        if (p < cp->end && *p != ',' && *p != '\n' && !(*p == '\r' && p + 1 < cp->end && p[1] == '\n'))
            return herd_fail(err, HERD_EFORMAT, "%s:%ld: text after a closing quote", cp->path, cp->line);
    } else {
        while (p < cp->end && *p != ',' && *p != '\n' && *p != '\r') {
            if (*p == '"')
                return herd_fail(err, HERD_EFORMAT, "%s:%ld: quote inside an unquoted field", cp->path, cp->line);
            p++;
        }
        if (p < cp->end && *p == '\r' && !(p + 1 < cp->end && p[1] == '\n'))
            return herd_fail(err, HERD_EFORMAT, "%s:%ld: carriage return not followed by a newline", cp->path,
                             cp->line);
        out = p;
    }
    *last = 1;
    if (p < cp->end && *p == ',') {
        *last = 0;
        p++;
    } else if (p < cp->end) {
        p += *p == '\r' ? 2 : 1;
        cp->line++;
    }
    *out = 0; /* the separator (or a consumed quote) was at or after out, so this never hits unread text */
    cp->p = p;
    return HERD_OK;
}

/* Nothing but line ends left: a blank trailing line (or several) ends the file. */
static int csv_at_end(const csv_parser *cp) {
    for (const char *q = cp->p; q < cp->end; q++)
        if (*q != '\n' && *q != '\r') return 0;
    return 1;
}

/* Names and values in messages: at most cap-1 bytes, control characters (a newline inside
 * quotes) shown as spaces so that the message stays one line. */
static const char *printable(const char *s, char *buf, size_t cap) {
    size_t n = 0;
    for (; s[n] && n + 1 < cap; n++) buf[n] = (unsigned char)s[n] < 0x20 ? ' ' : s[n];
    buf[n] = 0;
    return buf;
}

static herd_status read_file(const char *path, char **text, size_t *len, herd_error *err) {
    struct stat sb;
    int fd;
    *text = NULL;
    herd_status st = herdi_input_open(path, &fd, &sb, err);
    if (st) return st;
    FILE *f = sb.st_size == 0 || (unsigned long long)sb.st_size >= (size_t)-1 ? NULL : fdopen(fd, "rb");
    if (!f) {
        close(fd);
        if (sb.st_size == 0) return herd_fail(err, HERD_EFORMAT, "%s: empty file (expected a header row)", path);
        return herd_fail(err, HERD_ENOMEM, "%s: too large", path);
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        fclose(f);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld bytes", path, (long long)sb.st_size);
    }
    size_t got = fread(buf, 1, (size_t)sb.st_size, f);
    fclose(f);
    if (got != (size_t)sb.st_size) {
        free(buf);
        return herd_fail(err, HERD_EIO, "%s: short read (file changed?)", path);
    }
    buf[got] = 0;
    *text = buf;
    *len = got;
    return HERD_OK;
}

herd_status herd_csv_open(herd_dataset **out, const char *path, const char *label_column, herd_error *err) {
    herd_table_options opt = {.label = label_column};
    return herd_csv_open_with(out, path, &opt, err);
}

herd_status herd_csv_open_with(herd_dataset **out, const char *path, const herd_table_options *opt, herd_error *err) {
    char *text = NULL, **names = NULL, **fields = NULL, nbuf[101], vbuf[41], where[4200];
    int *role = NULL;
    size_t len = 0;
    row_table t;
    herdi_row_table_init(&t, 1);
    *out = NULL;
    const char *label_column = opt->target ? opt->target : opt->label && *opt->label ? opt->label : "label";
    categories cats;
    herd_status st = herdi_categories_init(&cats, opt->cat, opt->hash_rows, opt->hash_seed, path, err);
    if (st != HERD_OK) return st;
    st = read_file(path, &text, &len, err);
    if (st != HERD_OK) {
        herdi_categories_free(&cats);
        return st;
    }
    csv_parser cp = {path, text, text + len, 1};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) cp.p += 3; /* spreadsheets write a UTF-8 BOM */

    size_t ncols = 0, cap = 0;
    int last = 0, label_at = -1;
    while (!last) {
        if (ncols == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = herd_malloc_array(cap, sizeof *names);
            if (!grown) {
                st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for the header", path);
                goto fail;
            }
            if (ncols) memcpy(grown, names, ncols * sizeof *names);
            free(names);
            names = grown;
        }
        if ((st = csv_field(&cp, &names[ncols], &last, err)) != HERD_OK) goto fail;
        if (strcmp(names[ncols], label_column) == 0) {
            if (label_at >= 0) {
                st = herd_fail(err, HERD_EFORMAT, "%s:1: label column '%s' appears twice", path,
                               printable(label_column, nbuf, sizeof nbuf));
                goto fail;
            }
            label_at = (int)ncols;
        }
        if (++ncols > 1000000) {
            st = herd_fail(err, HERD_EFORMAT, "%s:1: more than 1000000 columns", path);
            goto fail;
        }
    }
    if (label_at < 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s:1: no label column '%s' in the header", path,
                       printable(label_column, nbuf, sizeof nbuf));
        goto fail;
    }
    if (ncols < 2) {
        st = herd_fail(err, HERD_EFORMAT, "%s:1: header has only the label column, no features", path);
        goto fail;
    }
    snprintf(where, sizeof where, "%s:1", path);
    if ((st = herdi_row_table_columns(&t, &cats, (const char *const *)names, (int)ncols, label_at, opt->target != NULL, &role,
                                where, err)))
        goto fail;
    if (!(fields = herd_malloc_array(ncols, sizeof *fields))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %zu columns", path, ncols);
        goto fail;
    }
    while (!csv_at_end(&cp)) {
        long line = cp.line;
        float *row = herdi_row_table_push(&t, 0);
        if (!row) {
            st = herd_fail(err, HERD_ENOMEM, "%s:%ld: out of memory for %lld rows", path, line, (long long)t.n);
            goto fail;
        }
        /* the whole record first, so that a short row is reported as ragged, not as a bad value */
        size_t col = 0;
        last = 0;
        while (!last) {
            char *field;
            if ((st = csv_field(&cp, &field, &last, err)) != HERD_OK) goto fail;
            if (col < ncols) fields[col] = field;
            col++;
        }
        if (col != ncols) {
            st = herd_fail(err, HERD_EFORMAT, "%s:%ld: %zu field%s, header has %zu", path, line, col,
                           col == 1 ? "" : "s", ncols);
            goto fail;
        }
        int32_t *ids = cats.n ? herdi_row_table_cats(&t) : NULL;
        for (size_t k = 0, f = 0; k < ncols; k++) {
            if (role[k] >= 0) {
                snprintf(where, sizeof where, "%s:%ld", path, line);
                if ((st = herdi_categories_put(&cats, role[k], fields[k], strlen(fields[k]), ids, where, err))) goto fail;
            } else if ((int)k == label_at) {
                if (!herdi_row_table_target(&t, fields[k])) {
                    st = herd_fail(err, HERD_EFORMAT, "%s:%ld: label '%s' is not %s", path, line,
                                   printable(fields[k], vbuf, sizeof vbuf), herdi_row_target_what(&t));
                    goto fail;
                }
            } else if (!herdi_row_parse_feature(fields[k], &row[f++])) {
                st = herd_fail(err, HERD_EFORMAT, "%s:%ld: column '%s': '%s' is not a finite number", path, line,
                               printable(names[k], nbuf, sizeof nbuf), printable(fields[k], vbuf, sizeof vbuf));
                goto fail;
            }
        }
    }
    char note[512];
    herdi_categories_describe(&cats, note, sizeof note);
    free(fields);
    free(names);
    free(text);
    free(role);
    herdi_categories_free(&cats);
    return herdi_row_table_finish(&t, out, path, note, err);
fail:
    herdi_row_table_free(&t);
    free(fields);
    free(names);
    free(text);
    free(role);
    herdi_categories_free(&cats);
    return st;
}
