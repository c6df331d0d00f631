/* The Parquet dataset: a directory (or glob) of Parquet files as Spark writes them, with
 * Hive-style partition directories as columns. Open maps every file, reads its footer and the
 * label column; get() finds the row group holding the sample and decodes only the projected
 * columns of that row group into a bounded cache shared by the loader's threads. */
#include "herd/data.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/image_decode.h"
#include "data/mapped_read.h"
#include "data/parquet_column.h"
#include "data/parquet_meta.h"
#include "io/input_file.h"

#define MAX_FILES 1000000
#define MAX_DEPTH 32
#define MAX_COLUMNS 4096
#define DEFAULT_CACHE ((size_t)256 << 20)
#define ROWGROUP_CAP ((size_t)1 << 31) /* decoded bytes of one row group's projected columns */

typedef struct pq_file {
    char *path;
    uint8_t *map;
    size_t size;
    pq_meta meta;
    char **part_keys, **part_vals; /* partition directories (key=value) on its path */
    int nparts;
} pq_file;

/* A projected column: a leaf of the schema (its index in each file) or a partition key. */
typedef struct pq_col {
    char name[256];
    int part;      /* partition key index, or -1 */
    int *leaf;     /* per file, when not a partition key */
    int64_t width; /* values per sample */
    int64_t at;    /* first value in the sample */
    int bytes;     /* a byte-array image column */
    int64_t bag;   /* bags=COL:L: L, the column an i32 (L) field of ids after x's values; 0: not a bag */
    size_t bag_at; /* a bag's first byte in the sample */
} pq_col;

typedef struct pq_group {
    int file, rg;
    int64_t first, rows;
} pq_group;

enum { SLOT_EMPTY = 0, SLOT_LOADING, SLOT_READY };

typedef struct pq_impl {
    pq_file *files;
    int nfiles;
    pq_col *cols;
    int ncols;
    pq_group *groups;
    int ngroups;
    void *targets;      /* n: i32 class ids, or f32 values with target= (4 bytes each) */
    int float_target;
    int u8;             /* x is u8 */
    int c, h, w;        /* image shape when an image column is read */
    size_t sample_bytes;
    /* the row-group cache */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t **data;     /* ngroups: decoded samples of the group, or NULL */
    int *state;
    uint64_t *used;     /* last use, for LRU */
    uint64_t clock;
    size_t cached, budget;
} pq_impl;

/* ---- files and partitions ---- */

typedef struct path_list {
    char **v;
    int n, cap;
} path_list;

static int hidden(const char *name) { return name[0] == '_' || name[0] == '.'; }

static herd_status list_push(path_list *l, const char *p, herd_error *err) {
    if (l->n >= MAX_FILES) return herd_fail(err, HERD_EARG, "%s: more than %d files", p, MAX_FILES);
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **g = realloc(l->v, (size_t)cap * sizeof *g);
        if (!g) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", p);
        l->v = g, l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(p))) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", p);
    l->n++;
    return HERD_OK;
}

static void list_free(path_list *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

/* Every non-hidden regular file under dir (hidden directories are not entered). */
static herd_status walk(const char *dir, int depth, path_list *out, herd_error *err) {
    if (depth > MAX_DEPTH) return herd_fail(err, HERD_EARG, "%s: directories nested deeper than %d", dir, MAX_DEPTH);
    DIR *d = opendir(dir);
    if (!d) return herd_fail(err, HERD_EIO, "%s: cannot read the directory: %s", dir, strerror(errno));
    herd_status st = HERD_OK;
    struct dirent *e;
    char p[4096];
    while (st == HERD_OK && (e = readdir(d))) {
        if (hidden(e->d_name)) continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) {
            st = herd_fail(err, HERD_EARG, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        struct stat sb;
        if (stat(p, &sb) != 0) continue; /* a dangling link */
        if (S_ISDIR(sb.st_mode)) st = walk(p, depth + 1, out, err);
        else if (S_ISREG(sb.st_mode)) st = list_push(out, p, err);
    }
    closedir(d);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* root: a directory or a glob; the files in strcmp order. *base: the directory partition
 * components are read below (root itself, or a glob's directory part before any wildcard). */
static herd_status find_files(const char *root, path_list *out, char *base, size_t base_cap, herd_error *err) {
    struct stat sb;
    herd_status st = HERD_OK;
    memset(out, 0, sizeof *out);
    if (strlen(root) >= base_cap) return herd_fail(err, HERD_EARG, "%.200s: path too long", root);
    if (stat(root, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        strcpy(base, root);
        st = walk(root, 0, out, err);
    } else {
        size_t wild = strcspn(root, "*?[");
        memcpy(base, root, wild);
        base[wild] = 0;
        char *slash = strrchr(base, '/');
        if (slash) *slash = 0;
        else strcpy(base, ".");
        glob_t g;
        int rc = glob(root, 0, NULL, &g);
        if (rc == GLOB_NOMATCH) return herd_fail(err, HERD_EIO, "%s: no such file or directory", root);
        if (rc != 0) return herd_fail(err, HERD_EIO, "%s: cannot expand the pattern", root);
        for (size_t i = 0; i < g.gl_pathc && st == HERD_OK; i++) {
            const char *name = strrchr(g.gl_pathv[i], '/');
            if (hidden(name ? name + 1 : g.gl_pathv[i])) continue;
            if (stat(g.gl_pathv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) st = walk(g.gl_pathv[i], 0, out, err);
            else st = list_push(out, g.gl_pathv[i], err);
        }
        globfree(&g);
    }
    if (st == HERD_OK && out->n == 0) st = herd_fail(err, HERD_EIO, "%s: no Parquet files (hidden and _ names are skipped)", root);
    if (st != HERD_OK) {
        list_free(out);
        return st;
    }
    qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return HERD_OK;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Hive escapes special characters of partition values as %XX. */
static char *unescape(const char *s, size_t n) {
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return out;
}

/* key=value directories between base and the file name. */
static herd_status read_partitions(pq_file *f, const char *base, herd_error *err) {
    size_t bl = strlen(base);
    const char *p = strncmp(f->path, base, bl) == 0 ? f->path + bl : f->path;
    const char *name = strrchr(p, '/');
    while (p < name) {
        while (*p == '/') p++;
        const char *end = strchr(p, '/');
        if (!end || end > name) break;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && eq > p) {
            char **k = realloc(f->part_keys, (size_t)(f->nparts + 1) * sizeof *k);
            if (k) f->part_keys = k;
            char **v = realloc(f->part_vals, (size_t)(f->nparts + 1) * sizeof *v);
            if (v) f->part_vals = v;
            if (!k || !v) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", f->path);
            f->part_keys[f->nparts] = unescape(p, (size_t)(eq - p));
            f->part_vals[f->nparts] = unescape(eq + 1, (size_t)(end - eq - 1));
            f->nparts++;
            if (!f->part_keys[f->nparts - 1] || !f->part_vals[f->nparts - 1])
                return herd_fail(err, HERD_ENOMEM, "%s: out of memory", f->path);
        }
        p = end;
    }
    return HERD_OK;
}

static herd_status map_file(pq_file *f, herd_error *err) {
    int fd;
    struct stat sb;
    herd_status st = herdi_input_open(f->path, &fd, &sb, err);
    if (st) return st;
    f->size = (size_t)sb.st_size;
    if (f->size < 12) {
        close(fd);
        return herd_fail(err, HERD_EFORMAT, "%s: %zu bytes is too short for a Parquet file (magic, footer, magic)",
                         f->path, f->size);
    }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return herd_fail(err, HERD_EIO, "%s: cannot map: %s", f->path, strerror(errno));
    f->map = m;
    return HERD_OK;
}

/* Drops the pages of a decoded range from this process (they stay in the page cache): memory
 * follows the row groups in flight, not the bytes of the files read so far. */
static void release_range(const pq_file *f, uint64_t start, uint64_t len) {
    long page = sysconf(_SC_PAGESIZE);
    uint64_t a = (start + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page, b = (start + len) / (uint64_t)page * (uint64_t)page;
    if (b > a) madvise(f->map + a, (size_t)(b - a), MADV_DONTNEED);
}

/* ---- columns ---- */

/* The leaf a column name means in f: its dotted path, or a top-level field with one leaf
 * (a list's element). -1 when absent. */
static int find_leaf(const pq_meta *m, const char *name) {
    for (int i = 0; i < m->nleaves; i++)
        if (strcmp(m->leaves[i].path, name) == 0) return i;
    for (int i = 0; i < m->nleaves; i++)
        if (m->leaves[i].top_leaves == 1 && strcmp(m->leaves[i].top, name) == 0) return i;
    return -1;
}

static void column_names(const pq_impl *im, char *buf, size_t cap) {
    const pq_file *f = &im->files[0];
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < f->meta.nleaves && o + 1 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "",
                              f->meta.leaves[i].top_leaves == 1 ? f->meta.leaves[i].top : f->meta.leaves[i].path);
    for (int i = 0; i < f->nparts && o + 1 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, ", %s (partition)", f->part_keys[i]);
}

/* Resolves col->name in every file: the same leaf type in each, or a partition key of each. */
static herd_status resolve(pq_impl *im, pq_col *col, herd_error *err) {
    col->part = -1;
    for (int k = 0; k < im->files[0].nparts; k++)
        if (strcmp(im->files[0].part_keys[k], col->name) == 0) col->part = k;
    if (col->part >= 0) {
        col->width = 1;
        return HERD_OK;
    }
    if (!(col->leaf = calloc((size_t)im->nfiles, sizeof *col->leaf)))
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", im->files[0].path);
    for (int f = 0; f < im->nfiles; f++) {
        const pq_meta *m = &im->files[f].meta;
        int li = find_leaf(m, col->name);
        if (li < 0) {
            char names[1024];
            column_names(im, names, sizeof names);
            return herd_fail(err, HERD_EARG, "%s: no column '%s' (columns: %s)", im->files[f].path, col->name, names);
        }
        const pq_leaf *l = &m->leaves[li], *l0 = &im->files[0].meta.leaves[col->leaf[0]];
        if (l->max_rep > 1)
            return herd_fail(err, HERD_EUNSUPPORTED, "%s: column '%s' is a list of lists (herd reads flat columns "
                             "and one-level lists)", im->files[f].path, col->name);
        if (col->bag && l->physical != PQ_INT32 && l->physical != PQ_INT64)
            return herd_fail(err, HERD_EARG, "%s: column '%s' holds %s%s, not integer ids (bags= reads a list of "
                             "int32 or int64, or one integer a row)", im->files[f].path, col->name,
                             l->max_rep ? "a list of " : "", herdi_pq_physical_name(l->physical));
        if (f > 0 && (l->physical != l0->physical || l->as != l0->as || l->max_rep != l0->max_rep))
            return herd_fail(err, HERD_EFORMAT, "%s: column '%s' is %s%s here but %s%s in %s", im->files[f].path,
                             col->name, l->max_rep ? "a list of " : "", herdi_pq_physical_name(l->physical),
                             l0->max_rep ? "a list of " : "", herdi_pq_physical_name(l0->physical), im->files[0].path);
        col->leaf[f] = li;
    }
    return HERD_OK;
}

static const pq_leaf *col_leaf(const pq_impl *im, const pq_col *col, int file) {
    return &im->files[file].meta.leaves[col->leaf[file]];
}

static void chunk_what(const pq_impl *im, const pq_group *g, const char *col, char *buf, size_t cap) {
    snprintf(buf, cap, "%.3000s: row group %d, column '%.200s'", im->files[g->file].path, g->rg, col);
}

/* A partition value as a number (a feature or a label), or an error naming the directory. */
static herd_status part_number(const pq_impl *im, int file, int k, double *v, herd_error *err) {
    const char *s = im->files[file].part_vals[k];
    char *end;
    *v = strtod(s, &end);
    if (!*s || *end || !isfinite(*v))
        return herd_fail(err, HERD_EFORMAT, "%s: partition %s=%s is not a number", im->files[file].path,
                         im->files[file].part_keys[k], s);
    return HERD_OK;
}

/* The list length of a column: row 0 of the first row group with rows. */
static herd_status probe_width(pq_impl *im, pq_col *col, herd_error *err) {
    for (int gi = 0; gi < im->ngroups; gi++) {
        const pq_group *g = &im->groups[gi];
        if (g->rows == 0) continue;
        const pq_leaf *l = col_leaf(im, col, g->file);
        if (l->max_rep == 0) {
            col->width = 1;
            return HERD_OK;
        }
        pq_sink sink = {.kind = PQ_SINK_WIDTH};
        char what[3300];
        chunk_what(im, g, col->name, what, sizeof what);
        const pq_chunk *ch = &im->files[g->file].meta.rgs[g->rg].chunks[col->leaf[g->file]];
        herd_status st = herdi_pq_column_read(im->files[g->file].map, l, ch, g->rows, &sink, what, err);
        release_range(&im->files[g->file], ch->start, ch->len);
        if (st != HERD_OK) return st;
        if (sink.found_width <= 0)
            return herd_fail(err, HERD_EFORMAT, "%s: row 0 is an empty or null list", what);
        col->width = sink.found_width;
        return HERD_OK;
    }
    col->width = 1;
    return HERD_OK;
}

/* ---- labels ---- */

typedef struct text_labels {
    char **text; /* per sample, until mapped to ids */
    int64_t base;
} text_labels;

static herd_status collect_text(void *ctx, int64_t row, const uint8_t *v, size_t len, herd_error *err) {
    text_labels *t = ctx;
    char *s = malloc(len + 1);
    if (!s) return herd_fail(err, HERD_ENOMEM, "out of memory for a label");
    if (len) memcpy(s, v, len);
    s[len] = 0;
    free(t->text[t->base + row]);
    t->text[t->base + row] = s;
    return HERD_OK;
}

static int cmp_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Text labels become ids in sorted order of their distinct values. */
static herd_status map_text(pq_impl *im, int64_t n, char **text, int *classes, herd_error *err) {
    char **sorted = herd_malloc_array((size_t)n, sizeof *sorted);
    if (!sorted) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", im->files[0].path);
    memcpy(sorted, text, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_text);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[k - 1]) != 0) sorted[k++] = sorted[i];
    if (k > INT32_MAX) {
        free(sorted);
        return herd_fail(err, HERD_EFORMAT, "%s: too many distinct labels", im->files[0].path);
    }
    for (int64_t i = 0; i < n; i++) {
        char **hit = bsearch(&text[i], sorted, (size_t)k, sizeof *sorted, cmp_text);
        ((int32_t *)im->targets)[i] = (int32_t)(hit - sorted);
    }
    *classes = (int)k;
    free(sorted);
    return HERD_OK;
}

/* Target i from value v: a class id (an integer >= 0; *max follows the largest) or, with
 * float_target, a finite float. what and row name it in messages. */
static herd_status store_target(pq_impl *im, int64_t i, double v, int32_t *max, const char *what, int64_t row,
                                herd_error *err) {
    if (im->float_target) {
        if (!isfinite(v) || fabs(v) > FLT_MAX)
            return herd_fail(err, HERD_EFORMAT, "%s: row %lld: target %g is not a finite float", what, (long long)row, v);
        ((float *)im->targets)[i] = (float)v;
        return HERD_OK;
    }
    if (!(v >= 0 && v < INT32_MAX && v == floor(v)))
        return herd_fail(err, HERD_EFORMAT, "%s: row %lld: label %g is not a class id (an integer >= 0)", what,
                         (long long)row, v);
    ((int32_t *)im->targets)[i] = (int32_t)v;
    if ((int32_t)v > *max) *max = (int32_t)v;
    return HERD_OK;
}

/* Every sample's label (or target) from col: a number column, text mapped to ids, or a
 * partition value. */
static herd_status read_labels(pq_impl *im, pq_col *col, int *classes, herd_error *err) {
    int64_t n = im->groups[im->ngroups - 1].first + im->groups[im->ngroups - 1].rows;
    int text = col->part < 0 && !herdi_pq_leaf_numeric(col_leaf(im, col, 0));
    for (int f = 0; col->part >= 0 && f < im->nfiles; f++) { /* partition values: text unless all are numbers */
        double x;
        if (part_number(im, f, col->part, &x, NULL) != HERD_OK) text = 1;
    }
    if (text && im->float_target)
        return herd_fail(err, HERD_EARG, "%s: target column '%s' holds text (target= reads numbers; label= maps text "
                         "to class ids)", im->files[0].path, col->name);
    double *v = NULL;
    text_labels tl = {NULL, 0};
    herd_status st = HERD_OK;
    if (!(im->targets = herd_malloc_array((size_t)n + 1, 4)))
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld labels", im->files[0].path, (long long)n);
    if (text && !(tl.text = herd_calloc_array((size_t)n + 1, sizeof *tl.text)))
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld labels", im->files[0].path, (long long)n);
    int32_t max = 1;
    for (int gi = 0; gi < im->ngroups && st == HERD_OK; gi++) {
        const pq_group *g = &im->groups[gi];
        if (g->rows == 0) continue;
        char what[3300];
        chunk_what(im, g, col->name, what, sizeof what);
        if (col->part >= 0 && text) continue;
        if (col->part >= 0) {
            double x;
            if ((st = part_number(im, g->file, col->part, &x, err)) != HERD_OK) break;
            for (int64_t r = 0; r < g->rows && st == HERD_OK; r++)
                st = store_target(im, g->first + r, x, &max, im->files[g->file].path, r, err);
            continue;
        }
        const pq_leaf *l = col_leaf(im, col, g->file);
        const pq_chunk *ch = &im->files[g->file].meta.rgs[g->rg].chunks[col->leaf[g->file]];
        if (l->max_rep > 0) {
            st = herd_fail(err, HERD_EFORMAT, "%s: the label is a list (expected one value a row)", what);
            break;
        }
        pq_sink sink = {.kind = PQ_SINK_F64, .width = 1};
        if (text) {
            tl.base = g->first;
            sink = (pq_sink){.kind = PQ_SINK_BYTES, .width = 1, .bytes = collect_text, .ctx = &tl};
        } else {
            double *g2 = realloc(v, (size_t)g->rows * sizeof *v + 1);
            if (!g2) {
                st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", what);
                break;
            }
            v = g2;
            sink.base = (uint8_t *)v, sink.stride = sizeof *v;
        }
        st = herdi_pq_column_read(im->files[g->file].map, l, ch, g->rows, &sink, what, err);
        release_range(&im->files[g->file], ch->start, ch->len);
        for (int64_t r = 0; r < g->rows && st == HERD_OK && !text; r++)
            st = store_target(im, g->first + r, v[r], &max, what, r, err);
    }
    free(v);
    *classes = im->float_target ? 0 : max + 1;
    if (text) {
        tl.base = 0;
        if (st == HERD_OK && col->part >= 0) /* text partition values: one per file */
            for (int gi = 0; gi < im->ngroups && st == HERD_OK; gi++)
                for (int64_t r = 0; r < im->groups[gi].rows && st == HERD_OK; r++)
                    st = collect_text(&tl, im->groups[gi].first + r,
                                      (const uint8_t *)im->files[im->groups[gi].file].part_vals[col->part],
                                      strlen(im->files[im->groups[gi].file].part_vals[col->part]), err);
        if (st == HERD_OK) st = map_text(im, n, tl.text, classes, err);
        if (*classes < 2) *classes = 2;
        for (int64_t i = 0; i < n; i++) free(tl.text[i]);
        free(tl.text);
    }
    return st;
}

/* ---- decoding a row group ---- */

typedef struct image_ctx {
    const pq_impl *im;
    uint8_t *base;
    const char *what;
} image_ctx;

static herd_status put_image(void *ctx, int64_t row, const uint8_t *v, size_t len, herd_error *err) {
    const image_ctx *ic = ctx;
    const pq_impl *im = ic->im;
    uint8_t *out = ic->base + (size_t)row * im->sample_bytes;
    if (herd_image_is_encoded(v, len)) {
        char what[3400];
        snprintf(what, sizeof what, "%s: row %lld", ic->what, (long long)row);
        return herd_image_decode_to_u8(v, len, what, im->c, im->h, im->w, out, err);
    }
    if (len != im->sample_bytes)
        return herd_fail(err, HERD_EFORMAT, "%s: row %lld: %zu bytes are neither %dx%dx%d raw pixels nor a PNG/JPEG "
                         "image", ic->what, (long long)row, len, im->c, im->h, im->w);
    memcpy(out, v, len);
    return HERD_OK;
}

static herd_status decode_group(const pq_impl *im, const pq_group *g, uint8_t *out, herd_error *err) {
    herd_status st = HERD_OK;
    size_t es = im->u8 ? 1 : 4;
    for (int c = 0; c < im->ncols && st == HERD_OK; c++) {
        const pq_col *col = &im->cols[c];
        uint8_t *base = out + (size_t)col->at * es;
        if (col->part >= 0) {
            double x;
            if ((st = part_number(im, g->file, col->part, &x, err)) != HERD_OK) break;
            for (int64_t r = 0; r < g->rows; r++) {
                if (im->u8) base[(size_t)r * im->sample_bytes] = (uint8_t)x;
                else memcpy(base + (size_t)r * im->sample_bytes, &(float){(float)x}, 4);
            }
            continue;
        }
        char what[3300];
        chunk_what(im, g, col->name, what, sizeof what);
        const pq_file *f = &im->files[g->file];
        const pq_chunk *ch = &f->meta.rgs[g->rg].chunks[col->leaf[g->file]];
        image_ctx ic = {im, out, what};
        pq_sink sink = {.kind = im->u8 ? PQ_SINK_U8 : PQ_SINK_F32, .base = base, .stride = im->sample_bytes,
                        .width = col->width};
        if (col->bytes) sink = (pq_sink){.kind = PQ_SINK_BYTES, .width = 1, .bytes = put_image, .ctx = &ic};
        if (col->bag) sink = (pq_sink){.kind = PQ_SINK_BAG, .base = out + col->bag_at, .stride = im->sample_bytes,
                                       .width = col->bag};
        st = herdi_pq_column_read(f->map, &f->meta.leaves[col->leaf[g->file]], ch, g->rows, &sink, what, err);
        release_range(f, ch->start, ch->len);
    }
    return st;
}

/* decode_group under the SIGBUS guard (a file shrinking under its mapping becomes an error,
 * and the group's slot is released as for any failure): gi and out ride in the guard's get()
 * arguments. */
static herd_status decode_guarded(const herd_dataset *ds, int64_t gi, void *out, void *unused, herd_error *err) {
    (void)unused;
    const pq_impl *im = ds->impl;
    return decode_group(im, &im->groups[gi], out, err);
}

/* The decoded samples of group gi, decoding them when they are not cached; the cache lock is
 * held on return with *data valid until it is released. */
static herd_status acquire(const herd_dataset *ds, int gi, uint8_t **data, herd_error *err) {
    pq_impl *im = ds->impl;
    pthread_mutex_lock(&im->mu);
    while (im->state[gi] == SLOT_LOADING) pthread_cond_wait(&im->cv, &im->mu);
    if (im->state[gi] == SLOT_READY) {
        im->used[gi] = ++im->clock;
        *data = im->data[gi];
        return HERD_OK;
    }
    const pq_group *g = &im->groups[gi];
    size_t bytes = (size_t)g->rows * im->sample_bytes;
    /* make room: least recently used groups go first; the one being loaded always fits */
    while (im->cached + bytes > im->budget) {
        int lru = -1;
        for (int k = 0; k < im->ngroups; k++)
            if (im->state[k] == SLOT_READY && (lru < 0 || im->used[k] < im->used[lru])) lru = k;
        if (lru < 0) break;
        free(im->data[lru]);
        im->data[lru] = NULL;
        im->state[lru] = SLOT_EMPTY;
        im->cached -= (size_t)im->groups[lru].rows * im->sample_bytes;
    }
    im->state[gi] = SLOT_LOADING;
    im->cached += bytes;
    pthread_mutex_unlock(&im->mu);
    uint8_t *buf = malloc(bytes ? bytes : 1);
    herd_status st = buf ? herdi_mapped_get_guarded(im->files[g->file].path, decode_guarded, ds, gi, buf, NULL, err)
                         : herd_fail(err, HERD_ENOMEM, "%s: row group %d: out of memory for %zu bytes",
                                     im->files[g->file].path, g->rg, bytes);
    pthread_mutex_lock(&im->mu);
    if (st != HERD_OK) {
        free(buf);
        im->state[gi] = SLOT_EMPTY;
        im->cached -= bytes;
        pthread_cond_broadcast(&im->cv);
        pthread_mutex_unlock(&im->mu);
        return st;
    }
    im->data[gi] = buf;
    im->state[gi] = SLOT_READY;
    im->used[gi] = ++im->clock;
    pthread_cond_broadcast(&im->cv);
    *data = buf;
    return HERD_OK;
}

static int group_of(const pq_impl *im, int64_t i) {
    int lo = 0, hi = im->ngroups - 1;
    while (lo < hi) { /* the last group with first <= i */
        int mid = lo + (hi - lo + 1) / 2;
        if (im->groups[mid].first <= i) lo = mid;
        else hi = mid - 1;
    }
    while (lo < im->ngroups - 1 && im->groups[lo].rows == 0) lo++;
    return lo;
}

static herd_status pq_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    pq_impl *im = ds->impl;
    if (i < 0 || i >= ds->n)
        return herd_fail(err, HERD_EARG, "%s: sample %lld out of range [0, %lld)", ds->source, (long long)i,
                         (long long)ds->n);
    int gi = group_of(im, i);
    uint8_t *data;
    herd_status st = acquire(ds, gi, &data, err);
    if (st != HERD_OK) return st;
    memcpy(x, data + (size_t)(i - im->groups[gi].first) * im->sample_bytes, im->sample_bytes);
    pthread_mutex_unlock(&im->mu);
    memcpy(y, (const char *)im->targets + (size_t)i * 4, 4);
    return HERD_OK;
}

static void impl_free(pq_impl *im) {
    if (!im) return;
    for (int i = 0; i < im->nfiles; i++) {
        pq_file *f = &im->files[i];
        if (f->map) munmap(f->map, f->size);
        herdi_pq_meta_free(&f->meta);
        for (int k = 0; k < f->nparts; k++) free(f->part_keys[k]), free(f->part_vals[k]);
        free(f->part_keys), free(f->part_vals), free(f->path);
    }
    free(im->files);
    for (int c = 0; c < im->ncols; c++) free(im->cols[c].leaf);
    free(im->cols);
    if (im->data)
        for (int g = 0; g < im->ngroups; g++) free(im->data[g]);
    free(im->data), free(im->state), free(im->used);
    free(im->groups);
    free(im->targets);
    pthread_mutex_destroy(&im->mu);
    pthread_cond_destroy(&im->cv);
    free(im);
}

static void pq_close(herd_dataset *ds) {
    impl_free(ds->impl);
    ds->impl = NULL;
}

static const herd_dataset_ops pq_ops = {pq_get, pq_close, NULL, NULL};

/* ---- open ---- */

static herd_status add_col(pq_impl *im, const char *name, size_t len, int64_t bag, herd_error *err) {
    if (len == 0 || len >= sizeof im->cols[0].name)
        return herd_fail(err, HERD_EARG, "%s: bad column name '%.*s'", im->files[0].path, (int)len, name);
    if (im->ncols >= MAX_COLUMNS) return herd_fail(err, HERD_EARG, "%s: more than %d columns", im->files[0].path, MAX_COLUMNS);
    pq_col *g = realloc(im->cols, (size_t)(im->ncols + 1) * sizeof *g);
    if (!g) return herd_fail(err, HERD_ENOMEM, "%s: out of memory", im->files[0].path);
    im->cols = g;
    pq_col *c = &im->cols[im->ncols++];
    memset(c, 0, sizeof *c);
    memcpy(c->name, name, len);
    c->name[len] = 0;
    c->bag = bag;
    return resolve(im, c, err);
}

/* 1 when bags= (COL:L,...) names the column */
static int bag_named(const char *bags, const char *name) {
    size_t n = strlen(name);
    for (const char *p = bags; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
        if (strncmp(p, name, n) == 0 && p[n] == ':') return 1;
    return 0;
}

/* The projection: features= columns, image=, or every numeric column of file 0 but the label
 * and the bags; then the bags= columns. */
static herd_status project(pq_impl *im, const herd_parquet_options *o, const char *label, herd_error *err) {
    herd_status st = HERD_OK;
    if (o->image && o->features)
        return herd_fail(err, HERD_EARG, "%s: give image= or features=, not both", im->files[0].path);
    if (o->image && o->bags)
        return herd_fail(err, HERD_EARG, "%s: give image= or bags=, not both", im->files[0].path);
    if (o->image) return add_col(im, o->image, strlen(o->image), 0, err);
    if (o->features) {
        for (const char *p = o->features; *p && st == HERD_OK;) {
            size_t len = strcspn(p, ",");
            st = add_col(im, p, len, 0, err);
            p += len + (p[len] == ',');
        }
    }
    for (const char *p = o->bags; p && *p && st == HERD_OK;) { /* COL:L,... after the features */
        size_t len = strcspn(p, ","), name = strcspn(p, ":");
        char *end;
        long long L = name < len ? strtoll(p + name + 1, &end, 10) : 0;
        if (name >= len || L < 1 || L > 65536 || end != p + len)
            return herd_fail(err, HERD_EARG, "%s: bags=%s: '%.*s' is not COL:L (a column and its most ids a row, 1..65536)",
                             im->files[0].path, o->bags, (int)len, p);
        st = add_col(im, p, name, L, err);
        p += len + (p[len] == ',');
    }
    if (o->features || st != HERD_OK) return st;
    const pq_meta *m = &im->files[0].meta;
    for (int i = 0; i < m->nleaves && st == HERD_OK; i++) {
        const pq_leaf *l = &m->leaves[i];
        const char *name = l->top_leaves == 1 ? l->top : l->path;
        if (strcmp(name, label) == 0 || !herdi_pq_leaf_numeric(l) || l->max_rep > 1 || bag_named(o->bags, name)) continue;
        st = add_col(im, name, strlen(name), 0, err);
    }
    if (st == HERD_OK && im->ncols == 0)
        return herd_fail(err, HERD_EARG, "%s: no numeric column besides the label '%s' (name them with features= "
                         "or image=)", im->files[0].path, label);
    return st;
}

/* Sample layout and dtype from the projected columns. */
static herd_status layout(pq_impl *im, const herd_parquet_options *o, herd_dataset *ds, herd_error *err) {
    herd_status st;
    int all_u8 = 1;
    int64_t total = 0;
    int nbags = 0;
    for (int c = 0; c < im->ncols; c++) {
        pq_col *col = &im->cols[c];
        if (col->bag) {
            nbags++;
            continue;
        }
        if (col->part >= 0) {
            all_u8 = 0;
            col->width = 1;
        } else {
            const pq_leaf *l = col_leaf(im, col, 0);
            if (!herdi_pq_leaf_numeric(l)) {
                if (!o->image || l->max_rep > 0)
                    return herd_fail(err, HERD_EARG, "%s: column '%s' holds %s, not numbers (image= reads bytes as "
                                     "an image)", im->files[0].path, col->name,
                                     l->as == PQ_AS_STRING ? "text" : "bytes");
                col->bytes = 1;
            } else {
                if (!herdi_pq_leaf_u8(l)) all_u8 = 0;
                if ((st = probe_width(im, col, err)) != HERD_OK) return st;
            }
        }
        col->at = total;
        total += col->bytes ? 0 : col->width;
        if (total > INT32_MAX) return herd_fail(err, HERD_EFORMAT, "%s: samples of more than 2^31 values", im->files[0].path);
    }
    int shape = im->c > 0 && im->h > 0 && im->w > 0;
    int64_t want = shape ? (int64_t)im->c * im->h * im->w : 0;
    if (o->image && !shape)
        return herd_fail(err, HERD_EARG, "%s: image=%s needs the image's shape (shape=CxHxW)", im->files[0].path,
                         o->image);
    if (im->cols[0].bytes) {
        im->u8 = 1;
        total = want;
    } else {
        im->u8 = all_u8;
        if (shape && total != want)
            return herd_fail(err, HERD_ESHAPE, "%s: the columns hold %lld values a row, the shape %dx%dx%d needs %lld",
                             im->files[0].path, (long long)total, im->c, im->h, im->w, (long long)want);
    }
    if (total == 0) im->u8 = 0; /* only bags */
    im->sample_bytes = (size_t)total * (im->u8 ? 1 : 4);
    if (shape) ds->x = herd_tensor_make(im->u8 ? HERD_U8 : HERD_F32, 3, (int64_t[]){im->c, im->h, im->w}, NULL);
    else ds->x = herd_tensor_make(im->u8 ? HERD_U8 : HERD_F32, 1, &total, NULL);
    /* the bags: i32 (L) fields after x, in the order named; the first is x when no column is a feature */
    if (nbags + (total > 0) > HERD_MAX_FIELDS)
        return herd_fail(err, HERD_EARG, "%s: %d bags and %s: more than herd's %d input fields", im->files[0].path,
                         nbags, total > 0 ? "features" : "no features", HERD_MAX_FIELDS);
    for (int c = 0; c < im->ncols; c++) {
        pq_col *col = &im->cols[c];
        if (!col->bag) continue;
        herd_tensor f = herd_tensor_make(HERD_I32, 1, &col->bag, NULL);
        if (im->sample_bytes == 0) ds->x = f;
        else ds->more[ds->n_more++] = f;
        col->bag_at = im->sample_bytes;
        im->sample_bytes += (size_t)col->bag * 4;
    }
    return HERD_OK;
}

herd_status herd_parquet_open(herd_dataset **out, const char *root, const herd_parquet_options *opt, herd_error *err) {
    herd_parquet_options o = {0};
    if (opt) o = *opt;
    if (o.label && o.target) {
        return herd_fail(err, HERD_EARG, "%s: give label= (class ids) or target= (float values), not both", root);
    }
    const char *label = o.target ? o.target : o.label ? o.label : "label";
    pq_impl *im = calloc(1, sizeof *im);
    herd_dataset *ds = calloc(1, sizeof *ds);
    path_list files = {0};
    char base[4096];
    herd_status st;
    *out = NULL;
    if (!im || !ds) {
        free(im), free(ds);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", root);
    }
    pthread_mutex_init(&im->mu, NULL);
    pthread_cond_init(&im->cv, NULL);
    if ((st = find_files(root, &files, base, sizeof base, err)) != HERD_OK) goto fail;
    if (!(im->files = calloc((size_t)files.n, sizeof *im->files))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", root);
        goto fail;
    }
    int64_t ngroups = 0;
    for (int i = 0; i < files.n; i++) {
        pq_file *f = &im->files[i];
        f->path = files.v[i], files.v[i] = NULL;
        im->nfiles = i + 1; /* owned by im from here, also when this file fails */
        if ((st = map_file(f, err)) != HERD_OK || (st = herdi_pq_meta_read(&f->meta, f->map, f->size, f->path, err)) != HERD_OK ||
            (st = read_partitions(f, base, err)) != HERD_OK)
            goto fail;
        /* the footer stays in memory as parsed; its pages need not */
        release_range(f, 0, f->size);
        if (f->nparts != im->files[0].nparts) {
            st = herd_fail(err, HERD_EFORMAT, "%s: %d partition directories (key=value), %s has %d", f->path, f->nparts,
                           im->files[0].path, im->files[0].nparts);
            goto fail;
        }
        for (int k = 0; k < f->nparts; k++)
            if (strcmp(f->part_keys[k], im->files[0].part_keys[k]) != 0) {
                st = herd_fail(err, HERD_EFORMAT, "%s: partition key '%s' where %s has '%s'", f->path, f->part_keys[k],
                               im->files[0].path, im->files[0].part_keys[k]);
                goto fail;
            }
        ngroups += f->meta.nrg;
    }
    if (ngroups > INT32_MAX || !(im->groups = herd_calloc_array((size_t)ngroups + 1, sizeof *im->groups))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld row groups", root, (long long)ngroups);
        goto fail;
    }
    int64_t n = 0;
    for (int i = 0; i < im->nfiles; i++)
        for (int g = 0; g < im->files[i].meta.nrg; g++) {
            im->groups[im->ngroups++] = (pq_group){i, g, n, im->files[i].meta.rgs[g].num_rows};
            n += im->files[i].meta.rgs[g].num_rows; /* each file's sum was checked against its num_rows */
        }
    if (n == 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s: no rows", root);
        goto fail;
    }
    im->c = o.c, im->h = o.h, im->w = o.w;
    im->float_target = o.target != NULL;
    if ((st = project(im, &o, label, err)) != HERD_OK || (st = layout(im, &o, ds, err)) != HERD_OK) goto fail;
    for (int gi = 0; gi < im->ngroups; gi++) {
        size_t bytes;
        if (!herd_mul_size((size_t)im->groups[gi].rows, im->sample_bytes, &bytes) || bytes > ROWGROUP_CAP) {
            st = herd_fail(err, HERD_EFORMAT, "%s: row group %d: %lld rows of %zu bytes exceed herd's %zu bytes a row "
                           "group", im->files[im->groups[gi].file].path, im->groups[gi].rg,
                           (long long)im->groups[gi].rows, im->sample_bytes, ROWGROUP_CAP);
            goto fail;
        }
    }
    pq_col lab;
    memset(&lab, 0, sizeof lab);
    if (strlen(label) >= sizeof lab.name) {
        st = herd_fail(err, HERD_EARG, "%s: label name too long", root);
        goto fail;
    }
    strcpy(lab.name, label);
    int classes = 2;
    st = resolve(im, &lab, err);
    if (st == HERD_OK) st = read_labels(im, &lab, &classes, err);
    free(lab.leaf);
    if (st != HERD_OK) goto fail;
    im->data = calloc((size_t)im->ngroups, sizeof *im->data);
    im->state = calloc((size_t)im->ngroups, sizeof *im->state);
    im->used = calloc((size_t)im->ngroups, sizeof *im->used);
    if (!im->data || !im->state || !im->used) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", root);
        goto fail;
    }
    im->budget = o.cache_bytes ? o.cache_bytes : DEFAULT_CACHE;
    ds->ops = &pq_ops;
    ds->n = n;
    ds->y = herd_tensor_make(im->float_target ? HERD_F32 : HERD_I32, 0, NULL, NULL);
    ds->num_classes = classes;
    snprintf(ds->source, sizeof ds->source, "%s", root);
    ds->impl = im;
    list_free(&files);
    *out = ds;
    return HERD_OK;
fail:
    list_free(&files);
    impl_free(im);
    free(ds);
    return st;
}
