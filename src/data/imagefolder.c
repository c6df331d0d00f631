/* Image folder reader (root/<class>/<image>.png|.jpg|.jpeg, as torchvision's ImageFolder):
 * open lists and sorts the files; get() reads and decodes one, so open stays cheap. */
#include "herd/data.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/image_decode.h"
#include "io/input_file.h"

typedef struct folder_impl {
    char **files;    /* n paths */
    int32_t *labels; /* n */
    /* n: per file, the stamp (file_stamp) it had when a decode last found all of it sound, 0 if
     * none has: a window of it then skips a JPEG's rows below the window (image_decode.h) */
    _Atomic uint64_t *sound;
    int64_t n, cap;
} folder_impl;

/* A file's size and modification time in one nonzero word: a file replaced or rewritten since
 * it was found sound is checked whole again. */
static uint64_t file_stamp(const struct stat *sb) {
    uint64_t t = (uint64_t)sb->st_mtim.tv_sec * 1000000000u + (uint64_t)sb->st_mtim.tv_nsec;
    return (((uint64_t)sb->st_size * 0x9E3779B97F4A7C15u) ^ t) | 1;
}

typedef struct name_list {
    char **names;
    size_t n, cap;
} name_list;

static void names_free(name_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

static int names_push(name_list *l, const char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **g = herd_malloc_array(cap, sizeof *g);
        if (!g) return 0;
        if (l->n) memcpy(g, l->names, l->n * sizeof *g);
        free(l->names);
        l->names = g;
        l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(s))) return 0;
    l->n++;
    return 1;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Sorted entries of dir: subdirectories (want_dirs) or image files. */
static herd_status list_dir(const char *dir, int want_dirs, name_list *out, herd_error *err) {
    DIR *d = opendir(dir);
    if (!d) return herd_fail(err, HERD_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!want_dirs && !is_image_name(e->d_name)) continue;
        int k = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (k < 0 || (size_t)k >= sizeof path || stat(path, &sb) != 0) continue;
        if (want_dirs ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)) continue;
        if (!names_push(out, want_dirs ? e->d_name : path)) {
            closedir(d);
            return herd_fail(err, HERD_ENOMEM, "%s: out of memory listing the directory", dir);
        }
    }
    closedir(d);
    if (out->n) qsort(out->names, out->n, sizeof *out->names, cmp_names);
    return HERD_OK;
}

static herd_status read_whole(const char *path, uint8_t **buf, size_t *len, uint64_t *stamp, herd_error *err) {
    struct stat sb;
    *buf = NULL;
    int fd;
    herd_status st = herdi_input_open(path, &fd, &sb, err);
    if (st) return st;
    FILE *f = sb.st_size > 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        close(fd);
        return sb.st_size > 0 ? herd_fail(err, HERD_ENOMEM, "%s: out of memory", path)
                              : herd_fail(err, HERD_EFORMAT, "%s: empty file", path);
    }
    *len = (size_t)sb.st_size;
    if (stamp) *stamp = file_stamp(&sb);
    *buf = malloc(*len);
    if (!*buf) {
        fclose(f);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory for %zu bytes", path, *len);
    }
    size_t got = fread(*buf, 1, *len, f);
    fclose(f);
    if (got != *len) {
        free(*buf);
        *buf = NULL;
        return herd_fail(err, HERD_EIO, "%s: short read (file changed?)", path);
    }
    return HERD_OK;
}

static herd_status load_image(const char *path, herd_image *img, herd_error *err) {
    uint8_t *buf;
    size_t len = 0;
    herd_status st = read_whole(path, &buf, &len, NULL, err);
    if (st != HERD_OK) return st;
    st = herd_image_decode(buf, len, path, img, err);
    free(buf);
    return st;
}

/* Sample i whole (win NULL) or the window win of it. */
static herd_status folder_read(const herd_dataset *ds, int64_t i, const int *win, void *x, void *y, herd_error *err) {
    const folder_impl *im = ds->impl;
    if (i < 0 || i >= ds->n)
        return herd_fail(err, HERD_EARG, "%s: sample %lld out of range [0, %lld)", ds->source, (long long)i,
                         (long long)ds->n);
    uint8_t *buf;
    size_t len = 0;
    uint64_t stamp = 0;
    herd_status st = read_whole(im->files[i], &buf, &len, &stamp, err);
    if (st != HERD_OK) return st;
    int c = (int)ds->x.dims[0], h = (int)ds->x.dims[1], w = (int)ds->x.dims[2];
    int sound = atomic_load_explicit(&im->sound[i], memory_order_relaxed) == stamp;
    st = win ? herd_image_decode_window_to_u8(buf, len, im->files[i], c, h, w, win, &sound, x, err)
             : herd_image_decode_to_u8(buf, len, im->files[i], c, h, w, x, err);
    free(buf);
    if (st == HERD_OK && (sound || !win)) atomic_store_explicit(&im->sound[i], stamp, memory_order_relaxed);
    memcpy(y, &im->labels[i], sizeof im->labels[i]);
    return st;
}

static herd_status folder_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    return folder_read(ds, i, NULL, x, y, err);
}

static herd_status folder_get_window(const herd_dataset *ds, int64_t i, const int win[4], void *x, void *y,
                                     herd_error *err) {
    return folder_read(ds, i, win, x, y, err);
}

static void folder_free(folder_impl *im) {
    if (!im) return;
    for (int64_t i = 0; i < im->n; i++) free(im->files[i]);
    free(im->files);
    free(im->labels);
    free(im->sound);
    free(im);
}

static void folder_close(herd_dataset *ds) {
    folder_free(ds->impl);
    ds->impl = NULL;
}

static const herd_dataset_ops folder_ops = {folder_get, folder_close, NULL, folder_get_window};

/* Moves the class's files into im, labelled k. */
static int take_files(folder_impl *im, name_list *files, int32_t k) {
    if (im->n + (int64_t)files->n > im->cap) {
        int64_t cap = im->cap ? im->cap : 64;
        while (cap < im->n + (int64_t)files->n) cap *= 2;
        char **f = herd_malloc_array((size_t)cap, sizeof *f);
        int32_t *l = herd_malloc_array((size_t)cap, sizeof *l);
        if (!f || !l) {
            free(f);
            free(l);
            return 0;
        }
        if (im->n) {
            memcpy(f, im->files, (size_t)im->n * sizeof *f);
            memcpy(l, im->labels, (size_t)im->n * sizeof *l);
        }
        free(im->files);
        free(im->labels);
        im->files = f, im->labels = l, im->cap = cap;
    }
    for (size_t i = 0; i < files->n; i++) {
        im->files[im->n] = files->names[i];
        im->labels[im->n++] = k;
    }
    files->n = 0; /* the strings belong to im now */
    return 1;
}

herd_status herd_imagefolder_open(herd_dataset **out, const char *root, const herd_image_options *opt,
                                  herd_error *err) {
    name_list classes = {0}, files = {0};
    folder_impl *im = calloc(1, sizeof *im);
    herd_dataset *ds = calloc(1, sizeof *ds);
    herd_status st;
    *out = NULL;
    if (!im || !ds) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory", root);
        goto fail;
    }
    if ((st = list_dir(root, 1, &classes, err)) != HERD_OK) goto fail;
    if (classes.n == 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s: no class folders (expected %s/<class>/<image>.png|.jpg)", root, root);
        goto fail;
    }
    if (classes.n > INT32_MAX / 2) {
        st = herd_fail(err, HERD_EFORMAT, "%s: too many class folders", root);
        goto fail;
    }
    char dir[4096];
    for (size_t k = 0; k < classes.n; k++) {
        int len = snprintf(dir, sizeof dir, "%s/%s", root, classes.names[k]);
        if (len < 0 || (size_t)len >= sizeof dir) {
            st = herd_fail(err, HERD_EARG, "%s: path too long", root);
            goto fail;
        }
        if ((st = list_dir(dir, 0, &files, err)) != HERD_OK) goto fail;
        if (!take_files(im, &files, (int32_t)k)) {
            st = herd_fail(err, HERD_ENOMEM, "%s: out of memory listing images", dir);
            goto fail;
        }
        names_free(&files);
    }
    if (im->n == 0) {
        st = herd_fail(err, HERD_EFORMAT, "%s: no .png/.jpg/.jpeg images in its %zu class folders", root, classes.n);
        goto fail;
    }
    if (!(im->sound = herd_malloc_array((size_t)im->n, sizeof *im->sound))) {
        st = herd_fail(err, HERD_ENOMEM, "%s: out of memory for %lld files", root, (long long)im->n);
        goto fail;
    }
    for (int64_t i = 0; i < im->n; i++) atomic_init(&im->sound[i], 0);
    int c = opt ? opt->c : 0, h = opt ? opt->h : 0, w = opt ? opt->w : 0;
    if ((c <= 0 || h <= 0 || w <= 0) && opt && opt->need_shape) {
        st = herd_fail(err, HERD_EARG, "%s: image folder without a sample shape to decode its images to", root);
        goto fail;
    }
    if (c <= 0 || h <= 0 || w <= 0) { /* no model shape: the first image's */
        herd_image img;
        if ((st = load_image(im->files[0], &img, err)) != HERD_OK) goto fail;
        c = img.c, h = img.h, w = img.w;
        herd_image_free(&img);
    }
    if (c != 1 && c != 3) {
        st = herd_fail(err, HERD_EARG, "%s: images become 1 or 3 channels, not %d", root, c);
        goto fail;
    }
    ds->ops = &folder_ops;
    ds->n = im->n;
    ds->x = herd_tensor_make(HERD_U8, 3, (int64_t[]){c, h, w}, NULL);
    ds->y = herd_tensor_make(HERD_I32, 0, NULL, NULL);
    ds->num_classes = (int)classes.n < 2 ? 2 : (int)classes.n;
    snprintf(ds->source, sizeof ds->source, "%s", root);
    ds->impl = im;
    names_free(&classes);
    *out = ds;
    return HERD_OK;
fail:
    names_free(&classes);
    names_free(&files);
    folder_free(im);
    free(ds);
    return st;
}
