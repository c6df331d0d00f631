/* Resolves a --data argument (a dataset name, a query URL, a file or a directory) to
 * train/test datasets, so the CLI and tests share one notion of where data lives. */
#include "herd/data.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SYSTEM_DATASETS "/usr/share/datasets"
#define PATH_CAP 4096

typedef struct named_dataset {
    const char *name;
    const char *debian_package;
} named_dataset;

static const named_dataset named_datasets[] = {
    {"fashion-mnist", "dataset-fashion-mnist"},
    {"mnist", "dataset-mnist"},
};

static const char *const idx_train[2] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"};
static const char *const idx_test[2] = {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
static const char *const cifar_train[5] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                           "data_batch_4.bin", "data_batch_5.bin"};
static const char *const cifar_test[1] = {"test_batch.bin"};

#define IDX_LIST                                                                                                       \
    "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "                        \
    "t10k-labels-idx1-ubyte[.gz]"
#define CIFAR_LIST "data_batch_1.bin .. data_batch_5.bin, test_batch.bin"

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static herd_status join(char *out, const char *dir, const char *name, const char *suffix, herd_error *err) {
    int k = snprintf(out, PATH_CAP, "%s/%s%s", dir, name, suffix);
    if (k < 0 || k >= PATH_CAP) return herd_fail(err, HERD_EARG, "%s: path too long", dir);
    return HERD_OK;
}

/* IDX files are found under their canonical name, plain or with .gz. */
static int find_idx(char *out, const char *dir, const char *name) {
    if (join(out, dir, name, "", NULL) == HERD_OK && is_file(out)) return 1;
    if (join(out, dir, name, ".gz", NULL) == HERD_OK && is_file(out)) return 1;
    return 0;
}

static int has_any_idx(const char *dir) {
    char p[PATH_CAP];
    for (int i = 0; i < 2; i++)
        if (find_idx(p, dir, idx_train[i]) || find_idx(p, dir, idx_test[i])) return 1;
    return 0;
}

static int has_any_cifar(const char *dir) {
    char p[PATH_CAP];
    for (int i = 0; i < 5; i++)
        if (join(p, dir, cifar_train[i], "", NULL) == HERD_OK && is_file(p)) return 1;
    return join(p, dir, cifar_test[0], "", NULL) == HERD_OK && is_file(p);
}

static herd_status open_idx_pair(const char *dir, const char *const names[2], herd_dataset **out, herd_error *err) {
    char images[PATH_CAP], labels[PATH_CAP];
    if (!find_idx(images, dir, names[0])) return herd_fail(err, HERD_EIO, "%s: missing %s[.gz]", dir, names[0]);
    if (!find_idx(labels, dir, names[1])) return herd_fail(err, HERD_EIO, "%s: missing %s[.gz]", dir, names[1]);
    return herd_idx_open(out, images, labels, err);
}

static herd_status open_cifar_set(const char *dir, const char *const *names, int n, herd_dataset **out,
                                  herd_error *err) {
    char paths[5][PATH_CAP];
    const char *ptrs[5];
    for (int i = 0; i < n; i++) {
        herd_status st = join(paths[i], dir, names[i], "", err);
        if (st != HERD_OK) return st;
        if (!is_file(paths[i]))
            return herd_fail(err, HERD_EIO, "%s: missing %s (CIFAR-10 binary directory)", dir, names[i]);
        ptrs[i] = paths[i];
    }
    return herd_cifar10_open(out, ptrs, n, err);
}

/* Opens whichever of train/test the caller wants; on failure neither is left open. */
static herd_status open_dir(const char *dir, int cifar, herd_dataset **train, herd_dataset **test, herd_error *err) {
    herd_dataset *tr = NULL, *te = NULL;
    herd_status st = HERD_OK;
    if (train) {
        st = cifar ? open_cifar_set(dir, cifar_train, 5, &tr, err) : open_idx_pair(dir, idx_train, &tr, err);
        if (st != HERD_OK) goto fail;
    }
    if (test) {
        st = cifar ? open_cifar_set(dir, cifar_test, 1, &te, err) : open_idx_pair(dir, idx_test, &te, err);
        if (st != HERD_OK) goto fail;
    }
    if (train) *train = tr;
    if (test) *test = te;
    return HERD_OK;
fail:
    herd_dataset_close(tr);
    herd_dataset_close(te);
    return st;
}

static herd_status open_named(const named_dataset *nd, herd_dataset **train, herd_dataset **test, herd_error *err) {
    char dir[PATH_CAP];
    const char *env = getenv("HERD_DATA_DIR");
    herd_status st;
    if (env && *env) {
        /* HERD_DATA_DIR may be a root holding <name>/ (like /usr/share/datasets) or the
         * dataset directory itself; accept both so either habit works. */
        st = join(dir, env, nd->name, "", err);
        if (st != HERD_OK) return st;
        if (is_dir(dir) && has_any_idx(dir)) return open_dir(dir, 0, train, test, err);
        if (has_any_idx(env)) return open_dir(env, 0, train, test, err);
        return herd_fail(err, HERD_EIO,
                         "%s: HERD_DATA_DIR holds no %s IDX files (looked in %s and %s for " IDX_LIST ")", env,
                         nd->name, dir, env);
    }
    st = join(dir, SYSTEM_DATASETS, nd->name, "", err);
    if (st != HERD_OK) return st;
    if (!is_dir(dir))
        return herd_fail(err, HERD_EIO, "%s: not found; install the Debian package %s or set HERD_DATA_DIR", dir,
                         nd->debian_package);
    return open_dir(dir, 0, train, test, err);
}

/* cat=COLS, hash=N or seed=S of a table source into t: 1, or -1 when p is none of them (or a bad
 * number). cat points into p. */
static int table_param(char *p, herd_table_options *t) {
    char *end;
    if (!strncmp(p, "cat=", 4) && p[4]) {
        t->cat = p + 4;
        return 1;
    }
    if (!strncmp(p, "target=", 7) && p[7]) {
        t->target = p + 7;
        return 1;
    }
    int hash = !strncmp(p, "hash=", 5), seed = !strncmp(p, "seed=", 5);
    if (!hash && !seed) return -1;
    errno = 0;
    unsigned long long v = strtoull(p + 5, &end, 10);
    if (!p[5] || *end || errno || p[5] == '-' || (hash && (v < 1 || v > INT32_MAX))) return -1;
    if (hash) t->hash_rows = (int64_t)v;
    else t->hash_seed = v;
    return 1;
}

/* ---- sources named by a prefix: SQL queries ---- */

/* Splits "...?[label=COL&]...query=SQL" into the part before '?', the label and the SQL
 * (the rest of the string, verbatim); other parameters stay in conn for libpq. */
static herd_status split_query(const char *spec, char *conn, char *label, char *cat, herd_table_options *t,
                               herd_error *err, const char **sql) {
    const char *q = strchr(spec, '?');
    const char *at = q ? strstr(q, "query=") : NULL;
    while (at && at[-1] != '?' && at[-1] != '&') at = strstr(at + 1, "query=");
    if (!at) return herd_fail(err, HERD_EARG, "%s: no query= parameter (it comes last: ...?query=SELECT ...)", spec);
    *sql = at + 6;
    label[0] = cat[0] = 0;
    memset(t, 0, sizeof *t);
    size_t n = (size_t)(q - spec);
    if (n >= PATH_CAP) return herd_fail(err, HERD_EARG, "%.200s: connection part too long", spec);
    memcpy(conn, spec, n);
    conn[n] = 0;
    /* parameters between '?' and query=: label= is ours, the rest go to libpq */
    char sep = '?';
    for (const char *p = q + 1; p < at - 1;) {
        const char *end = memchr(p, '&', (size_t)(at - 1 - p));
        if (!end) end = at - 1;
        size_t len = (size_t)(end - p);
        char param[PATH_CAP];
        if (len < sizeof param) memcpy(param, p, len), param[len] = 0;
        if (len > 6 && strncmp(p, "label=", 6) == 0) {
            if (len - 6 >= 128) return herd_fail(err, HERD_EARG, "%.200s: label name too long", spec);
            memcpy(label, p + 6, len - 6);
            label[len - 6] = 0;
        } else if (len < sizeof param && (!strncmp(param, "cat=", 4) || !strncmp(param, "hash=", 5) ||
                                          !strncmp(param, "seed=", 5) || !strncmp(param, "target=", 7))) {
            if (table_param(param, t) < 0)
                return herd_fail(err, HERD_EARG, "%.200s: '%s' (cat=COLS, hash=N in 1..%d, seed=S, target=COL)", spec, param,
                                 INT32_MAX);
            if (t->cat == param + 4) { /* keep the names past this function */
                snprintf(cat, PATH_CAP, "%s", param + 4);
                t->cat = cat;
            }
            if (t->target == param + 7) { /* the target column is read where the label would be */
                if (len - 7 >= 128) return herd_fail(err, HERD_EARG, "%.200s: target name too long", spec);
                memcpy(label, param + 7, len - 7 + 1); /* checked above: under 128 bytes */
                t->target = label;
            }
        } else if (len) {
            size_t k = strlen(conn);
            if (k + 1 + len >= PATH_CAP) return herd_fail(err, HERD_EARG, "%.200s: connection part too long", spec);
            conn[k] = sep;
            memcpy(conn + k + 1, p, len);
            conn[k + 1 + len] = 0;
            sep = '&';
        }
        p = end + 1;
    }
    if (!**sql) return herd_fail(err, HERD_EARG, "%s: empty query", spec);
    return HERD_OK;
}

static herd_status open_sqlite(const char *spec, const herd_image_options *opt, herd_dataset **train,
                                herd_dataset **test, herd_error *err) {
    (void)opt;
    char conn[PATH_CAP], label[128], cat[PATH_CAP];
    const char *sql;
    herd_table_options t;
    herd_status st = split_query(spec, conn, label, cat, &t, err, &sql);
    if (st != HERD_OK) return st;
    if (test && !train) return herd_fail(err, HERD_EARG, "%s: SQL sources have no test split", conn);
    t.label = label[0] ? label : NULL;
    return train ? herd_sqlite_open_with(train, conn + strlen("sqlite:"), sql, &t, err) : HERD_OK;
}

static herd_status open_postgres(const char *spec, const herd_image_options *opt, herd_dataset **train,
                                herd_dataset **test, herd_error *err) {
    (void)opt;
    char conn[PATH_CAP], label[128], cat[PATH_CAP];
    const char *sql;
    herd_table_options t;
    herd_status st = split_query(spec, conn, label, cat, &t, err, &sql);
    if (st != HERD_OK) return st;
    if (test && !train) return herd_fail(err, HERD_EARG, "%s: SQL sources have no test split", conn);
    t.label = label[0] ? label : NULL;
    return train ? herd_postgres_open_with(train, conn, sql, &t, err) : HERD_OK;
}

static int test_counterpart(const char *spec, char *out);

/* "parquet:DIR_OR_GLOB?features=a,b&label=y&image=col&shape=CxHxW&bags=c:L&cache_mb=N" (or
 * target=v instead of label=). */
static herd_status parquet_params(const char *spec, char *path, char *params, herd_parquet_options *o,
                                  herd_error *err) {
    const char *body = spec + strlen("parquet:"), *q = strchr(body, '?');
    size_t n = q ? (size_t)(q - body) : strlen(body);
    memset(o, 0, sizeof *o);
    if (n == 0) return herd_fail(err, HERD_EARG, "%s: no directory or files after parquet:", spec);
    if (n >= PATH_CAP || (q && strlen(q) >= PATH_CAP)) return herd_fail(err, HERD_EARG, "%.200s: too long", spec);
    memcpy(path, body, n);
    path[n] = 0;
    params[0] = 0;
    if (q) memcpy(params, q + 1, strlen(q + 1) + 1);
    for (char *p = q ? params : NULL; p && *p;) {
        char *amp = strchr(p, '&');
        if (amp) *amp = 0;
        char *v = strchr(p, '=');
        if (v) *v++ = 0;
        long long mb = 0;
        char end = 0;
        if (!v || !*v) return herd_fail(err, HERD_EARG, "%s: option '%s' has no value", spec, p);
        if (strcmp(p, "features") == 0) o->features = v;
        else if (strcmp(p, "label") == 0) o->label = v;
        else if (strcmp(p, "target") == 0) o->target = v;
        else if (strcmp(p, "image") == 0) o->image = v;
        else if (strcmp(p, "bags") == 0) o->bags = v;
        else if (strcmp(p, "shape") == 0) {
            if (sscanf(v, "%dx%dx%d%c", &o->c, &o->h, &o->w, &end) != 3 || o->c <= 0 || o->h <= 0 || o->w <= 0 ||
                (int64_t)o->c * o->h * o->w > INT32_MAX)
                return herd_fail(err, HERD_EARG, "%s: shape=%s is not CxHxW (positive sizes)", spec, v);
        } else if (strcmp(p, "cache_mb") == 0) {
            if (sscanf(v, "%lld%c", &mb, &end) != 1 || mb <= 0 || mb > (1LL << 30))
                return herd_fail(err, HERD_EARG, "%s: cache_mb=%s is not a size in MiB", spec, v);
            o->cache_bytes = (size_t)mb << 20;
        } else
            return herd_fail(err, HERD_EARG, "%s: unknown option '%s' (features=, label=, target=, image=, shape=, bags=, cache_mb=)",
                             spec, p);
        p = amp ? amp + 1 : NULL;
    }
    return HERD_OK;
}

/* A Parquet directory or glob; when its last name holds "train", the same with "test" is the
 * test split if it exists. The test split gets the train split's shape. */
static herd_status open_parquet(const char *spec, const herd_image_options *opt, herd_dataset **train,
                                herd_dataset **test, herd_error *err) {
    char path[PATH_CAP], params[PATH_CAP], test_path[PATH_CAP];
    herd_parquet_options o;
    herd_status st = parquet_params(spec, path, params, &o, err);
    if (st != HERD_OK) return st;
    if (o.c <= 0 && opt && opt->c > 0 && opt->h > 0 && opt->w > 0 && o.image) /* the model's input shape */
        o.c = opt->c, o.h = opt->h, o.w = opt->w;
    glob_t g;
    int has_test = test_counterpart(path, test_path) && !strchr(path, ',') && glob(test_path, 0, NULL, &g) == 0;
    if (has_test) globfree(&g);
    herd_dataset *tr = NULL, *te = NULL;
    if (train && (st = herd_parquet_open(&tr, path, &o, err)) != HERD_OK) return st;
    if (test && has_test && (st = herd_parquet_open(&te, test_path, &o, err)) != HERD_OK) {
        herd_dataset_close(tr);
        return st;
    }
    if (train) *train = tr;
    if (test) *test = te;
    return HERD_OK;
}

typedef struct url_source {
    const char *prefix;
    herd_status (*open)(const char *spec, const herd_image_options *opt, herd_dataset **train, herd_dataset **test,
                        herd_error *err);
} url_source;

static herd_status open_text(const char *spec, const herd_image_options *opt, herd_dataset **train,
                             herd_dataset **test, herd_error *err);

static herd_status open_lm(const char *spec, const herd_image_options *opt, herd_dataset **train,
                           herd_dataset **test, herd_error *err);
static herd_status open_criteo(const char *spec, const herd_image_options *opt, herd_dataset **train,
                               herd_dataset **test, herd_error *err);

static const url_source url_sources[] = {
    {"sqlite:", open_sqlite},
    {"criteo:", open_criteo},
    {"text:", open_text},
    {"lm:", open_lm},
    {"postgresql://", open_postgres},
    {"postgres://", open_postgres},
    {"parquet:", open_parquet},
};

/* ---- sources named by a file suffix: CSV, NPY, TFRecord ---- */

typedef struct file_params {
    const char *label, *image; /* NULL: the reader's default */
    int ids;                   /* x=i32: integer NPY features as i32 ids */
    const char *offsets;       /* offsets=FILE.npy: NPY bags (ids + offsets) */
    long long bag_len;         /* len=L with offsets= (0: the longest bag) */
    herd_table_options table;  /* CSV: cat=, hash=, seed= (label is the field above) */
} file_params;

typedef herd_status (*file_open_fn)(const char *path, const file_params *fp, const herd_image_options *opt,
                                    herd_dataset **out, herd_error *err);

static herd_status open_csv(const char *path, const file_params *fp, const herd_image_options *opt,
                            herd_dataset **out, herd_error *err) {
    (void)opt;
    herd_table_options t = fp->table;
    t.label = fp->label;
    return herd_csv_open_with(out, path, &t, err);
}

/* FILEx.npy / FILEX.npy -> FILEy.npy / FILEY.npy */
static int npy_labels_path(const char *x, char *y) {
    size_t n = strlen(x);
    if (n < 5 || n >= PATH_CAP || (x[n - 5] != 'x' && x[n - 5] != 'X')) return 0;
    memcpy(y, x, n + 1);
    y[n - 5] = x[n - 5] == 'x' ? 'y' : 'Y';
    return 1;
}

static herd_status open_npy(const char *path, const file_params *fp, const herd_image_options *opt,
                            herd_dataset **out, herd_error *err) {
    (void)opt;
    char y[PATH_CAP];
    if (!npy_labels_path(path, y))
        return herd_fail(err, HERD_EARG,
                         "%s: name the features FILEx.npy (or FILEX.npy) and put the labels in FILEy.npy beside it",
                         path);
    int unlabelled = opt && opt->labels_optional && stat(y, &(struct stat){0}) != 0 && errno == ENOENT;
    return herd_npy_open_bags(out, path, fp->offsets, unlabelled ? NULL : y, fp->ids, fp->bag_len, err);
}

/* A comma list of files or globs, each expanded (sorted) into one list of paths. */
static herd_status expand_shards(const char *spec, glob_t *g, herd_error *err) {
    char item[PATH_CAP];
    memset(g, 0, sizeof *g);
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        if (len >= PATH_CAP) {
            globfree(g);
            return herd_fail(err, HERD_EARG, "%.200s: path too long", spec);
        }
        memcpy(item, p, len);
        item[len] = 0;
        int rc = len ? glob(item, GLOB_NOCHECK | (g->gl_pathc ? GLOB_APPEND : 0), NULL, g) : 0;
        if (rc != 0) {
            globfree(g);
            return herd_fail(err, HERD_ENOMEM, "%s: cannot expand the pattern", item);
        }
        p += len + (p[len] == ',');
    }
    if (g->gl_pathc == 0 || g->gl_pathc > 1000000) {
        globfree(g);
        return herd_fail(err, HERD_EARG, "%s: no files", spec);
    }
    return HERD_OK;
}

/* "PREFIX:BODY[?PARAMS]" into body and params (each PATH_CAP bytes) */
static herd_status split_prefixed(const char *spec, const char *prefix, char *body, char *params, herd_error *err) {
    const char *b = spec + strlen(prefix), *q = strchr(b, '?');
    size_t n = q ? (size_t)(q - b) : strlen(b);
    if (n >= PATH_CAP || (q && strlen(q + 1) >= PATH_CAP)) return herd_fail(err, HERD_EARG, "%.200s: too long", spec);
    memcpy(body, b, n);
    body[n] = 0;
    snprintf(params, PATH_CAP, "%s", q ? q + 1 : "");
    return HERD_OK;
}

/* One "key=value" of a '&'-separated parameter list, cut in place: the text, its value ("" without
 * '='), the value as an integer in (0, 2^30] (is_num) or as a number (is_real, f). */
typedef struct url_param {
    char *text;
    const char *v;
    long num;
    double f;
    int is_num, is_real;
} url_param;

/* The parameter at *cursor into u and *cursor past it; 0 at the end. */
static int next_param(char **cursor, url_param *u) {
    char *p = *cursor, *amp, *end;
    if (!*p) return 0;
    if ((amp = strchr(p, '&'))) *amp = 0;
    *cursor = amp ? amp + 1 : p + strlen(p);
    char *eq = strchr(p, '=');
    u->text = p, u->v = eq ? eq + 1 : "";
    u->num = strtol(u->v, &end, 10);
    u->is_num = eq && *u->v && !*end && u->num > 0 && u->num <= (1 << 30);
    u->f = strtod(u->v, &end);
    u->is_real = eq && *u->v && !*end;
    return 1;
}

/* "text:FILES[?tokenizer=byte|char|word&len=N&vocab=N&sep=LINE]": FILES a comma list of files or
 * globs, each one class (herd_text_open); train split only */
static herd_status open_text(const char *spec, const herd_image_options *opt, herd_dataset **train,
                             herd_dataset **test, herd_error *err) {
    (void)opt;
    char files[PATH_CAP], params[PATH_CAP];
    if (split_prefixed(spec, "text:", files, params, err)) return HERD_EARG;
    herd_text_options o = {HERD_TOKENIZE_BYTE, 256, 0, NULL};
    url_param u;
    for (char *cur = params; next_param(&cur, &u);) {
        const char *p = u.text;
        if (!strncmp(p, "tokenizer=", 10) && herd_text_tokenizer_parse(u.v, &o.tokenizer)) continue;
        if (!strncmp(p, "len=", 4) && u.is_num) o.len = (int)u.num;
        else if (!strncmp(p, "vocab=", 6) && u.is_num) o.vocab = (int)u.num;
        else if (!strncmp(p, "sep=", 4) && *u.v) o.separator = u.v;
        else
            return herd_fail(err, HERD_EARG, "%s: '%s' (text sources take tokenizer=byte|char|word, len=N, vocab=N, "
                             "sep=LINE)", spec, p);
    }
    if (test && !train) return herd_fail(err, HERD_EARG, "%s: text sources have no test split (use --val-split)", spec);
    if (!train) return HERD_OK;
    glob_t g;
    herd_status st = expand_shards(files, &g, err);
    if (st != HERD_OK) return st;
    st = herd_text_open(train, (const char *const *)g.gl_pathv, (int)g.gl_pathc, &o, err);
    globfree(&g);
    return st;
}

/* "lm:FILE.tok[?ctx=N&stride=N&val=F]": windows of a token file (herd_lm_open); ctx defaults to the
 * model's input (its ids a sample), val to 0.1 (the test split is the held-out tail) */
static herd_status open_lm(const char *spec, const herd_image_options *opt, herd_dataset **train,
                           herd_dataset **test, herd_error *err) {
    char path[PATH_CAP], params[PATH_CAP];
    if (split_prefixed(spec, "lm:", path, params, err)) return HERD_EARG;
    herd_lm_options o = {0, 0, 0.1};
    if (opt && opt->c > 0) o.ctx = opt->c * (opt->h > 0 ? opt->h : 1) * (opt->w > 0 ? opt->w : 1);
    url_param u;
    for (char *cur = params; next_param(&cur, &u);) {
        if (!strncmp(u.text, "ctx=", 4) && u.is_num) o.ctx = (int)u.num;
        else if (!strncmp(u.text, "stride=", 7) && u.is_num) o.stride = (int)u.num;
        else if (!strncmp(u.text, "val=", 4) && u.is_real && u.f >= 0 && u.f <= 0.5) o.val = u.f;
        else
            return herd_fail(err, HERD_EARG, "%s: '%s' (lm sources take ctx=N, stride=N, val=F with F in [0, 0.5])",
                             spec, u.text);
    }
    if (o.ctx <= 0)
        return herd_fail(err, HERD_EARG, "%s: no context length: give ctx=N or a model whose input is the ids of a "
                         "window", spec);
    return herd_lm_open(train, test, path, &o, err);
}

/* "criteo:FILES?hash=R[&seed=S]": FILES a comma list of TSV files or globs (herd_criteo_open), in
 * that order; train split only. R has no default: the model's table must be sized to 26 R rows. */
static herd_status open_criteo(const char *spec, const herd_image_options *opt, herd_dataset **train,
                               herd_dataset **test, herd_error *err) {
    (void)opt;
    char files[PATH_CAP], params[PATH_CAP];
    if (split_prefixed(spec, "criteo:", files, params, err)) return HERD_EARG;
    if (!files[0]) return herd_fail(err, HERD_EARG, "%s: no files after criteo:", spec);
    herd_criteo_options o = {-1, 0};
    url_param u;
    for (char *cur = params; next_param(&cur, &u);) {
        int is_hash = !strncmp(u.text, "hash=", 5), is_seed = !strncmp(u.text, "seed=", 5);
        char *end = NULL;
        errno = 0;
        long long v = (is_hash || is_seed) && *u.v && *u.v != '-' ? strtoll(u.v, &end, 10) : -1;
        if (v < 0 || *end || errno)
            return herd_fail(err, HERD_EARG, "%s: '%s' (criteo sources take hash=R, seed=S)", spec, u.text);
        if (is_hash) o.hash_rows = v;
        else o.seed = (uint64_t)v;
    }
    if (o.hash_rows < 0)
        return herd_fail(err, HERD_EARG, "%s: no hash=R (rows of each categorical feature's range: the model's table "
                         "has 26 R rows)", spec);
    if (test && !train) return herd_fail(err, HERD_EARG, "%s: criteo sources have no test split (use --val-split)", spec);
    if (!train) return HERD_OK;
    glob_t g;
    herd_status st = herd_criteo_check_options(&o, files, err);
    if (st || (st = expand_shards(files, &g, err))) return st;
    st = herd_criteo_open(train, (const char *const *)g.gl_pathv, (int)g.gl_pathc, &o, err);
    globfree(&g);
    return st;
}

static herd_status open_tfrecord(const char *path, const file_params *fp, const herd_image_options *opt,
                                 herd_dataset **out, herd_error *err) {
    glob_t g;
    herd_status st = expand_shards(path, &g, err);
    if (st != HERD_OK) return st;
    herd_image_options o = {.image_key = fp->image, .label_key = fp->label};
    if (opt) o.c = opt->c, o.h = opt->h, o.w = opt->w, o.need_shape = opt->need_shape;
    st = herd_tfrecord_open(out, (const char *const *)g.gl_pathv, (int)g.gl_pathc, &o, err);
    globfree(&g);
    return st;
}

static herd_status open_herd_shards(const char *path, const file_params *fp, const herd_image_options *opt,
                                    herd_dataset **out, herd_error *err) {
    (void)fp, (void)opt;
    glob_t g;
    herd_status st = expand_shards(path, &g, err);
    if (st != HERD_OK) return st;
    st = herd_shards_open(out, (const char *const *)g.gl_pathv, (int)g.gl_pathc, err);
    globfree(&g);
    return st;
}

/* Does the test counterpart exist? (each of a comma list; globs must match something) */
static int file_source_exists(const char *spec, file_open_fn fn) {
    char item[PATH_CAP], y[PATH_CAP];
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= PATH_CAP) return 0;
        memcpy(item, p, len);
        item[len] = 0;
        glob_t g;
        int found = glob(item, 0, NULL, &g) == 0 && g.gl_pathc > 0;
        globfree(&g);
        if (!found) return 0;
        if (fn == open_npy && (!npy_labels_path(item, y) || !is_file(y))) return 0;
        p += len + (p[len] == ',');
    }
    return 1;
}

/* The same spec with the last "train" in each file name (after the last '/') made "test";
 * 0 when no name holds "train". */
static int test_counterpart(const char *spec, char *out) {
    size_t o = 0;
    int swapped = 0;
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        const char *base = p, *hit = NULL;
        for (const char *q = p; q < p + len; q++)
            if (*q == '/') base = q + 1;
        for (const char *q = base; q + 5 <= p + len; q++)
            if (strncmp(q, "train", 5) == 0) hit = q;
        size_t need = len - (hit ? 1 : 0) + 1;
        if (o + need >= PATH_CAP) return 0;
        if (hit) {
            memcpy(out + o, p, (size_t)(hit - p));
            o += (size_t)(hit - p);
            memcpy(out + o, "test", 4);
            o += 4;
            memcpy(out + o, hit + 5, (size_t)(p + len - hit - 5));
            o += (size_t)(p + len - hit - 5);
            swapped = 1;
        } else {
            memcpy(out + o, p, len);
            o += len;
        }
        if (p[len] == ',') out[o++] = ',';
        p += len + (p[len] == ',');
    }
    out[o] = 0;
    return swapped;
}

typedef struct file_source {
    const char *suffix;
    file_open_fn open;
} file_source;

static const file_source file_sources[] = {
    {".csv", open_csv},
    {".npy", open_npy},
    {".tfrecord", open_tfrecord},
    {".tfrecords", open_tfrecord},
    {".herd", open_herd_shards},
};

/* Train (and, when wanted and present, test) of one kind of source; the test split gets the
 * train split's sample shape so that both fit one model. */
static herd_status open_pair(file_open_fn fn, const char *train_spec, const char *test_spec, const file_params *fp,
                             const herd_image_options *opt, herd_dataset **train, herd_dataset **test,
                             herd_error *err) {
    herd_dataset *tr = NULL, *te = NULL;
    herd_status st = HERD_OK;
    herd_image_options o = {0};
    if (opt) o = *opt;
    if (test && test_spec && fp->table.cat && !fp->table.hash_rows)
        return herd_fail(err, HERD_EARG, "%s: cat= builds each source's own vocabulary, so %s and %s would number "
                         "their values apart: add hash=N (ids from a seeded hash, the same in both)", train_spec,
                         train_spec, test_spec);
    if (test && test_spec && fp->offsets)
        return herd_fail(err, HERD_EARG, "%s: offsets= belongs to one file of ids, not to %s too: name the files "
                         "without 'train' and hold out with --val-split", train_spec, test_spec);
    if (train) {
        if ((st = fn(train_spec, fp, &o, &tr, err)) != HERD_OK) goto fail;
        if ((o.c <= 0 || o.h <= 0 || o.w <= 0) && tr->x.ndim == 3)
            o.c = (int)tr->x.dims[0], o.h = (int)tr->x.dims[1], o.w = (int)tr->x.dims[2];
    }
    if (test && test_spec && (st = fn(test_spec, fp, &o, &te, err)) != HERD_OK) goto fail;
    if (train) *train = tr;
    if (test) *test = te;
    return HERD_OK;
fail:
    herd_dataset_close(tr);
    herd_dataset_close(te);
    return st;
}

/* "PATH?label=y&image=img": the options a file source takes after its name. */
static herd_status split_file_params(const char *spec, char *path, char *params, file_params *fp, herd_error *err) {
    const char *q = strrchr(spec, '?');
    size_t n = strlen(spec);
    if (n >= PATH_CAP) return herd_fail(err, HERD_EARG, "%.200s: path too long", spec);
    memcpy(path, spec, n + 1);
    fp->label = fp->image = NULL;
    fp->ids = 0;
    fp->offsets = NULL, fp->bag_len = 0;
    memset(&fp->table, 0, sizeof fp->table);
    if (!q || !strchr(q, '=')) return HERD_OK; /* a '?' glob, not options */
    path[q - spec] = 0;
    memcpy(params, q + 1, strlen(q + 1) + 1);
    for (char *p = params; p && *p;) {
        char *amp = strchr(p, '&');
        if (amp) *amp = 0;
        if (strncmp(p, "label=", 6) == 0 && p[6])
            fp->label = p + 6;
        else if (strncmp(p, "image=", 6) == 0 && p[6])
            fp->image = p + 6;
        else if (strcmp(p, "x=i32") == 0)
            fp->ids = 1;
        else if (strncmp(p, "offsets=", 8) == 0 && p[8])
            fp->offsets = p + 8;
        else if (strncmp(p, "len=", 4) == 0 && p[4] >= '1' && p[4] <= '9' && strlen(p + 4) < 9)
            fp->bag_len = atoll(p + 4);
        else if (table_param(p, &fp->table) < 0)
            return herd_fail(err, HERD_EARG, "%s: unknown option '%s' (label=NAME, image=NAME, x=i32, offsets=FILE, len=L, cat=COLS, hash=N, "
                             "seed=S, target=COL)", spec, p);
        p = amp ? amp + 1 : NULL;
    }
    return HERD_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static const file_source *find_file_source(const char *path) {
    for (size_t i = 0; i < sizeof file_sources / sizeof file_sources[0]; i++)
        if (ends_with(path, file_sources[i].suffix)) return &file_sources[i];
    return NULL;
}

static herd_status open_file_source(const file_source *fs, const char *path, const file_params *fp,
                                    const herd_image_options *opt, herd_dataset **train, herd_dataset **test,
                                    herd_error *err) {
    char test_spec[PATH_CAP];
    int has_test = test_counterpart(path, test_spec) && file_source_exists(test_spec, fs->open);
    return open_pair(fs->open, path, has_test ? test_spec : NULL, fp, opt, train, test, err);
}

/* ---- directories of NPY pairs and image folders ---- */

static herd_status open_folder(const char *root, const file_params *fp, const herd_image_options *opt,
                               herd_dataset **out, herd_error *err) {
    (void)fp;
    return herd_imagefolder_open(out, root, opt, err);
}

/* A subdirectory holding an image: class folders directly under dir. */
static int has_class_folder(const char *dir) {
    static const char *const patterns[] = {"*/*.png", "*/*.jpg", "*/*.jpeg", "*/*.PNG", "*/*.JPG", "*/*.JPEG"};
    char pat[PATH_CAP];
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        glob_t g;
        if (join(pat, dir, patterns[i], "", NULL) != HERD_OK) return 0;
        int found = glob(pat, 0, NULL, &g) == 0 && g.gl_pathc > 0;
        globfree(&g);
        if (found) return 1;
    }
    return 0;
}

static herd_status open_other_dir(const char *dir, const herd_image_options *opt, herd_dataset **train,
                                  herd_dataset **test, herd_error *err, int *handled) {
    char a[PATH_CAP], b[PATH_CAP];
    file_params fp = {0};
    herd_status st;
    *handled = 1;
    if ((st = join(a, dir, "train_x.npy", "", err)) != HERD_OK) return st;
    if (is_file(a)) {
        int has_test = join(b, dir, "test_x.npy", "", NULL) == HERD_OK && file_source_exists(b, open_npy);
        return open_pair(open_npy, a, has_test ? b : NULL, &fp, opt, train, test, err);
    }
    /* herd shards: train-*.herd (+ test-*.herd), else every *.herd is the train split */
    if ((st = join(a, dir, "train-*.herd", "", err)) != HERD_OK) return st;
    if (file_source_exists(a, open_herd_shards)) {
        int has_test = join(b, dir, "test-*.herd", "", NULL) == HERD_OK && file_source_exists(b, open_herd_shards);
        return open_pair(open_herd_shards, a, has_test ? b : NULL, &fp, opt, train, test, err);
    }
    if ((st = join(a, dir, "*.herd", "", err)) != HERD_OK) return st;
    if (file_source_exists(a, open_herd_shards)) return open_pair(open_herd_shards, a, NULL, &fp, opt, train, test, err);
    if ((st = join(a, dir, "train", "", err)) != HERD_OK) return st;
    if (is_dir(a)) {
        int has_test = join(b, dir, "test", "", NULL) == HERD_OK && is_dir(b);
        return open_pair(open_folder, a, has_test ? b : NULL, &fp, opt, train, test, err);
    }
    if (has_class_folder(dir)) return open_pair(open_folder, dir, NULL, &fp, opt, train, test, err);
    *handled = 0;
    return HERD_OK;
}

herd_status herd_data_open_with(const char *spec, const herd_image_options *opt, herd_dataset **train,
                                herd_dataset **test, herd_error *err) {
    if (train) *train = NULL;
    if (test) *test = NULL;
    if (!spec || !*spec) return herd_fail(err, HERD_EARG, "(empty): no dataset given");
    for (size_t i = 0; i < sizeof named_datasets / sizeof named_datasets[0]; i++)
        if (strcmp(spec, named_datasets[i].name) == 0) return open_named(&named_datasets[i], train, test, err);
    for (size_t i = 0; i < sizeof url_sources / sizeof url_sources[0]; i++)
        if (strncmp(spec, url_sources[i].prefix, strlen(url_sources[i].prefix)) == 0)
            return url_sources[i].open(spec, opt, train, test, err);
    char path[PATH_CAP], params[PATH_CAP];
    file_params fp;
    herd_status st = split_file_params(spec, path, params, &fp, err);
    if (st != HERD_OK) return st;
    const file_source *fs = find_file_source(path);
    if (fs) return open_file_source(fs, path, &fp, opt, train, test, err);
    if (is_dir(spec)) {
        if (has_any_idx(spec)) return open_dir(spec, 0, train, test, err);
        if (has_any_cifar(spec)) return open_dir(spec, 1, train, test, err);
        /* The CIFAR-10 tarball unpacks into this subdirectory. */
        char sub[PATH_CAP];
        if (join(sub, spec, "cifar-10-batches-bin", "", NULL) == HERD_OK && is_dir(sub) && has_any_cifar(sub))
            return open_dir(sub, 1, train, test, err);
        int handled;
        st = open_other_dir(spec, opt, train, test, err, &handled);
        if (handled) return st;
        return herd_fail(err, HERD_EIO,
                         "%s: directory holds neither IDX files (" IDX_LIST ") nor CIFAR-10 binaries (" CIFAR_LIST
                         ") nor train_x.npy nor *.herd shards nor image class folders",
                         spec);
    }
    return herd_fail(err, HERD_EARG,
                     "%s: not a dataset name (fashion-mnist, mnist), a sqlite:/postgresql:// query, parquet:DIR, a .csv, .npy or "
                     ".tfrecord file, .herd shards, nor a directory with IDX files (" IDX_LIST ") or CIFAR-10 binaries (" CIFAR_LIST
                     ") (see docs/DATA.md)",
                     spec);
}

herd_status herd_data_open(const char *spec, herd_dataset **train, herd_dataset **test, herd_error *err) {
    return herd_data_open_with(spec, NULL, train, test, err);
}
