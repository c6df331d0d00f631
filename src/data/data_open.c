/* Resolves a --data argument (a dataset name or a directory) to train/test datasets,
 * so the CLI and tests share one notion of where data lives. */
#include "herd/data.h"

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

herd_status herd_data_open(const char *spec, herd_dataset **train, herd_dataset **test, herd_error *err) {
    if (train) *train = NULL;
    if (test) *test = NULL;
    if (!spec || !*spec) return herd_fail(err, HERD_EARG, "(empty): no dataset given");
    for (size_t i = 0; i < sizeof named_datasets / sizeof named_datasets[0]; i++)
        if (strcmp(spec, named_datasets[i].name) == 0) return open_named(&named_datasets[i], train, test, err);
    if (is_dir(spec)) {
        if (has_any_idx(spec)) return open_dir(spec, 0, train, test, err);
        if (has_any_cifar(spec)) return open_dir(spec, 1, train, test, err);
        /* The CIFAR-10 tarball unpacks into this subdirectory. */
        char sub[PATH_CAP];
        if (join(sub, spec, "cifar-10-batches-bin", "", NULL) == HERD_OK && is_dir(sub) && has_any_cifar(sub))
            return open_dir(sub, 1, train, test, err);
        return herd_fail(err, HERD_EIO,
                         "%s: directory holds neither IDX files (" IDX_LIST ") nor CIFAR-10 binaries (" CIFAR_LIST ")",
                         spec);
    }
    return herd_fail(err, HERD_EARG,
                     "%s: not a dataset name (fashion-mnist, mnist) nor a directory with IDX files (" IDX_LIST
                     ") or CIFAR-10 binaries (" CIFAR_LIST ")",
                     spec);
}
