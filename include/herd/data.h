/* herd data: datasets behind one interface (length, get(i)); readers for IDX, CIFAR-10,
 * CSV, NumPy .npy, TFRecord, image folders, SQL queries, Parquet and herd shards; the sampler;
 * stats; the loader (prefetch threads, cache, augmentation). */
#ifndef HERD_DATA_H
#define HERD_DATA_H

#include <stdint.h>

#include "herd/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct herd_dataset herd_dataset;

/* ---- samples are typed tensors ----
 * A dataset describes one sample by two descriptors (data NULL): x, the sample as the source
 * stores it, and y, its target. x is u8 for 8-bit image sources (IDX, CIFAR-10, u8 shards,
 * decoded PNG/JPEG, u8 NPY; value k means k/255) and f32 for the rest, with natural dims:
 * images (C,H,W), feature rows (F), NPY the file's per-sample shape (see herd_npy_open). y is
 * an i32 class label (ndim 0) for every reader today; the loader and herd_dataset_batch move
 * y by bytes, whatever its dtype and dims (per-position labels (T), f32 targets).
 * get() writes a sample in these stored dtypes; the model's f32 input is made in one place,
 * herd_dataset_to_f32, when a batch is formed (herd_dataset_batch, the loader), so a cache or a
 * writer (shards) can keep the stored bytes.
 * A "channel" (stats, normalisation) is dim 0 of x: the C of an image, each feature of an (F)
 * row (so a row's features are normalised one by one); a scalar x is one channel. */
typedef struct herd_dataset_ops {
    /* One sample: x in ds->x's dtype and dims (herd_tensor_bytes(&ds->x) bytes), y likewise
     * in ds->y's. Errors name the source and sample. */
    herd_status (*get)(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err);
    /* Releases ds->impl only; herd_dataset_close then frees ds itself. */
    void (*close)(herd_dataset *ds);
    /* Optional: count samples as get() wrote them into the model's f32 input (out may be x,
     * converted in place). NULL: herd_samples_to_f32 by x's dtype. Views that change values
     * (normalisation) set it; views that only select samples pass it on. */
    void (*to_f32)(const herd_dataset *ds, const void *x, int64_t count, float *out);
    /* Optional: get() for the window win = {top, left, height, width} of a (C,H,W) sample only:
     * those pixels as get() writes them, bit for bit, the rest of x unspecified; for readers
     * that can make part of a sample for less (a JPEG decoded in part). The loader uses it when
     * random_resized_crop will read only the window and the sample is not being cached. */
    herd_status (*get_window)(const herd_dataset *ds, int64_t i, const int win[4], void *x, void *y, herd_error *err);
} herd_dataset_ops;

/* ---- several input fields ----
 * A sample may have further input fields after x (categorical columns, token ids beside dense
 * features): more[0..n_more). get() writes the fields one after the other (x first), each in its
 * stored dtype; in a batch each becomes 4-byte values, one after the other per sample (u8/f32
 * fields as the model's f32 input, i32 fields copied as int32 ids), and they feed the model's
 * inputs in order. x may itself be i32 (a text source's token ids). */
#define HERD_MAX_FIELDS 8
/* In an i32 field: no id. The unused slots of a bag of fewer ids than its field holds (cat=COL:L
 * columns, ids + offsets): embedding_bag skips them, as nn.EmbeddingBag(ids, offsets) sees only
 * a bag's own ids; other layers refuse them as any id outside their table. */
#define HERD_NO_ID (-1)

struct herd_dataset {
    const herd_dataset_ops *ops;
    int64_t n;           /* number of samples */
    herd_tensor x, y;    /* one sample's stored dtype and dims (data NULL) */
    int n_more;          /* input fields after x (0 for single-input sources) */
    herd_tensor more[HERD_MAX_FIELDS - 1];
    char note[512];      /* what the reader found worth saying ("user: 2972 values, ids 0..2971"), or "" */
    int num_classes;     /* labels are in [0, num_classes) */
    char source[512];    /* what was opened, for messages */
    void *impl;          /* reader-specific */
};

/* An in-memory dataset of x (N, sample dims...) and y (N, target dims...), N = x.dims[0] =
 * y.dims[0]: takes ownership of x.data and y.data (malloc'd), also on failure. The sample
 * descriptors are x and y without their first dim. */
herd_status herd_dataset_from_memory(herd_dataset **out, herd_tensor x, herd_tensor y, int num_classes,
                                     const char *source, herd_error *err);
/* The same with n_x input fields xs[0..n_x) (each (N, field dims...)), owned likewise. */
herd_status herd_dataset_from_memory_fields(herd_dataset **out, const herd_tensor *xs, int n_x, herd_tensor y,
                                            int num_classes, const char *source, herd_error *err);

/* Input fields of a sample (1 + n_more) and field k (0 is x). */
int herd_dataset_field_count(const herd_dataset *ds);
const herd_tensor *herd_dataset_field(const herd_dataset *ds, int k);
/* Bytes get() writes for one sample's fields (their stored dtypes), and the 4-byte values the
 * sample takes in a batch (the sum of the fields' element counts). */
size_t herd_dataset_sample_bytes(const herd_dataset *ds);
int64_t herd_dataset_sample_slots(const herd_dataset *ds);
/* 1 when every field is u8, f32 or i32 (what a batch can hold). */
int herd_dataset_fields_ok(const herd_dataset *ds);

/* Sample i in the stored dtypes (what ops->get writes): for writers that keep them (shards). */
herd_status herd_dataset_get(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err);

/* 1 when samples of dtype t can become the model's f32 input (u8, f32). */
int herd_dtype_to_f32_ok(herd_dtype t);
/* The one conversion of stored samples to f32: u8 k -> (float)k / 255.0f (division, so 255 is
 * exactly 1.0f), f32 copied. n values; out may be x itself (converted in place). t must pass
 * herd_dtype_to_f32_ok. */
void herd_samples_to_f32(herd_dtype t, const void *x, size_t n, float *out);
/* count samples of ds as get() wrote them -> the model's input values (ops->to_f32, else
 * herd_samples_to_f32 per u8/f32 field, i32 fields copied): herd_dataset_sample_slots values a
 * sample; out may be x. */
void herd_dataset_to_f32(const herd_dataset *ds, const void *x, int64_t count, float *out);

/* Channels of a sample (dim 0 of x; 1 for a scalar) and the values per channel. */
void herd_dataset_channels(const herd_dataset *ds, int64_t *channels, int64_t *plane);

/* Whether samples described by x (one sample: a dataset's ds->x) fit a model input of
 * c x h x w: the same element count, the same C,H,W when x has 3 dims, a dtype the f32
 * conversion takes. Error (HERD_ESHAPE): one line naming source and both shapes
 * ("data/x.npy: samples are 1x28x28 but the model's input is 3x32x32"). */
herd_status herd_data_check_input(const herd_tensor *x, const char *source, int c, int h, int w, herd_error *err);

/* A view of samples [begin, end) of base (base must outlive it): used for --val-split. */
herd_status herd_dataset_slice(herd_dataset **out, herd_dataset *base, int64_t begin, int64_t end, herd_error *err);

/* Calls ops->close, then frees ds; NULL is a no-op. */
void herd_dataset_close(herd_dataset *ds);

/* Samples idx[0..B) as the model's input: x gets B * herd_dataset_sample_slots(ds) values (get()
 * writes each sample into its place, herd_dataset_to_f32 converts it there: nothing is
 * allocated), y B targets of herd_tensor_bytes(&ds->y) bytes each. */
herd_status herd_dataset_batch(const herd_dataset *ds, const int64_t *idx, int B, float *x, void *y,
                               herd_error *err);

/* Generic IDX file (http://yann.lecun.com/exdb/mnist/ format), gzip or plain (detected by
 * content, not name). Only unsigned-byte data (type 0x08) is accepted. On success *data is
 * malloc'd (product of dims bytes) and dims[0..*ndim) are filled (ndim <= 4). */
herd_status herd_idx_read(const char *path, uint8_t **data, int *ndim, int64_t dims[4], herd_error *err);

/* An IDX images file (N,H,W) or (N,C,H,W) plus an IDX labels file (N): u8 samples (1,H,W) or
 * (C,H,W). num_classes = max label + 1 (at least 2). */
herd_status herd_idx_open(herd_dataset **out, const char *images_path, const char *labels_path, herd_error *err);

/* CIFAR-10 binary batches: records of 1 label byte + 3072 bytes: u8 samples (3,32,32). */
herd_status herd_cifar10_open(herd_dataset **out, const char *const *paths, int npaths, herd_error *err);

/* What the table sources (CSV, SQLite, PostgreSQL) read from their columns. */
typedef struct herd_table_options {
    const char *label;  /* the label column (NULL: "label") */
    /* categorical columns, comma-separated (NULL: none): each value becomes an i32 id, and each
     * such column an i32 (1) field after the f32 (F) field of the numeric columns (first when
     * there are none), in the order named. Ids come from a vocabulary built in one pass (ids
     * 0..V-1 in order of first appearance in this source) or, with hash_rows > 0, from a hash of
     * (hash_seed, column, value) modulo hash_rows (the same ids in every source: use it when the
     * train and test sources are apart). The dataset's note gives the counts and collision rates. */
    const char *cat;
    int64_t hash_rows;
    uint64_t hash_seed;
    const char *target; /* instead of label: a number column read as an f32 target (ratings, regression): y f32,
                           num_classes 0 (as herd_parquet_options.target) */
} herd_table_options;

/* CSV with a header row (RFC 4180: quoted fields, "" escapes, CRLF). Every column but
 * label_column (NULL: "label") is a numeric feature, so samples are f32 (F); labels are
 * integers >= 0. Loaded into memory as float32. Errors name path:line and the column. */
herd_status herd_csv_open(herd_dataset **out, const char *path, const char *label_column, herd_error *err);
/* The same with categorical columns (opt: see herd_table_options). */
herd_status herd_csv_open_with(herd_dataset **out, const char *path, const herd_table_options *opt, herd_error *err);

/* NumPy .npy (format 1.0/2.0/3.0, C order, little-endian <f4 <f8 |u1 |i1 <i4 <i8) features
 * x_path of shape (N,C,H,W) -> samples (C,H,W), (N,H,W) -> (1,H,W), (N,F) -> (F) or (N,) ->
 * (1), and integer labels y_path of shape (N,) or (N,1). Features are mapped, not read: open
 * reads the headers and the labels only. uint8 (and bool) features are u8 samples (k/255 like
 * images); other dtypes are f32 samples, converted by get() as they are. */
herd_status herd_npy_open(herd_dataset **out, const char *x_path, const char *y_path, herd_error *err);
/* The same; ids = 1 reads integer features as i32 ids (token or categorical ids for an i32 model
 * input; values outside int32 are errors naming the sample), float features are refused. --data
 * says so with FILEx.npy?x=i32. */
herd_status herd_npy_open_ids(herd_dataset **out, const char *x_path, const char *y_path, int ids, herd_error *err);
/* Bags of ids as nn.EmbeddingBag(ids, offsets) takes them: x_path one flat 1-D integer array of
 * every bag's ids, offsets_path one offset a bag (bag i = ids[off[i], off[i+1]), the last to the
 * end), y_path one label a bag (NULL: unlabelled samples, each with class 0, for predicting). Samples are i32 (L) with L = len (0: the longest bag), a bag's
 * unused slots HERD_NO_ID. Offsets not starting at 0, decreasing, past the ids, an empty bag or
 * one over len are errors naming the offsets file and row; a negative id one naming the bag.
 * --data FILEx.npy?offsets=FILE.npy[&len=L]. */
herd_status herd_npy_open_bags(herd_dataset **out, const char *x_path, const char *offsets_path, const char *y_path,
                               int ids, int64_t len, herd_error *err);
/* Writes a C-order little-endian float32 array of shape dims[0..ndim) (ndim 1..8) as NPY
 * format 1.0, atomically (numpy.load reads it). */
herd_status herd_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *dims, herd_error *err);

/* What a reader of encoded or variable-size images produces. c, h, w: the model's input
 * (0: take them from the first sample, or fail when need_shape). Images are converted to c
 * channels (1 = luma 0.299R+0.587G+0.114B, 3 = RGB; gray is replicated), scaled so that they
 * cover h x w with the aspect ratio kept (a triangle filter as PIL's BILINEAR: antialiased when
 * shrinking, bilinear with half-pixel centers when enlarging), then center-cropped to h x w,
 * and rounded to u8 (as PIL's resize does); an image already h x w passes unchanged. Samples
 * are u8 (c,h,w): k/255 as the model's input. */
typedef struct herd_image_options {
    int c, h, w;
    const char *image_key; /* TFRecord feature names; NULL: "image" and "label" */
    const char *label_key;
    int need_shape;        /* 1: an image source without c, h, w is an error (never the first image's) */
    int labels_optional;   /* 1: an NPY source whose FILEy.npy is absent gives unlabelled samples (herd predict) */
} herd_image_options;

/* TFRecord files of tf.train.Example. Open reads every record once, checking both CRCs and
 * parsing the Example for its label and offset (an index of 32 bytes a record); get() decodes the
 * image. The image feature is a bytes_list of PNG/JPEG bytes or raw uint8 c*h*w bytes (shape
 * from int64 features height/width/channels when present): u8 samples (c,h,w); or a
 * float_list of c*h*w values: f32 samples, (c,h,w) with a model shape, (F) without. Record 0
 * decides which: a record of the other kind is an error. The label feature is an int64_list.
 * Errors name the file and the record index. */
herd_status herd_tfrecord_open(herd_dataset **out, const char *const *paths, int npaths,
                               const herd_image_options *opt, herd_error *err);

/* root/<class>/<file>.png|.jpg|.jpeg: classes sorted by name (strcmp) are ids 0..K-1, files
 * sorted within a class (like torchvision's ImageFolder); other files are ignored. Open lists
 * the files; get() decodes one (see herd_image_options for the conversion). Without a shape in
 * opt the first image's is taken, unless opt->need_shape. */
herd_status herd_imagefolder_open(herd_dataset **out, const char *root, const herd_image_options *opt,
                                  herd_error *err);

/* SQL query results: every column but label_column (NULL: "label") is a numeric feature
 * (f32 (F) samples); the label column holds integers >= 0; NULLs are errors. Rows are streamed
 * (sqlite3_step; a server-side cursor fetched in chunks of 1000 for PostgreSQL) into one float32
 * array, so the result must fit in memory once, but never twice. conninfo is a libpq
 * connection string or URI. Server errors come back as one line naming the source. */
herd_status herd_sqlite_open(herd_dataset **out, const char *db_path, const char *query, const char *label_column,
                             herd_error *err);
herd_status herd_postgres_open(herd_dataset **out, const char *conninfo, const char *query,
                               const char *label_column, herd_error *err);
/* The same with categorical columns (opt: see herd_table_options; text of any column type). */
herd_status herd_sqlite_open_with(herd_dataset **out, const char *db_path, const char *query,
                                  const herd_table_options *opt, herd_error *err);
herd_status herd_postgres_open_with(herd_dataset **out, const char *conninfo, const char *query,
                                    const herd_table_options *opt, herd_error *err);

/* Parquet datasets as Spark, Hive or Arrow write them (docs/DATA.md). */
typedef struct herd_parquet_options {
    const char *features; /* comma list of columns: numbers or one-level lists of numbers, read into one
                             (F) row in that order; NULL: every numeric column of the first file but
                             the label (text and byte columns left out) */
    const char *label;    /* the class-id column: integers >= 0 (also whole-number floats, as Spark ML
                             writes labels), or text mapped to ids in sorted (strcmp) order; NULL:
                             "label" */
    const char *target;   /* instead of label: a number column read as an f32 target (regression,
                             binary), y f32 and num_classes 0 */
    const char *image;    /* instead of features: one column read as an image (C,H,W): a list of C*H*W
                             numbers (in C,H,W order), raw bytes of that length, or PNG/JPEG bytes */
    int c, h, w;          /* the sample shape (shape=CxHxW; 0: none): images need one (from here or the
                             model's input), features are reshaped to it when the counts agree */
    size_t cache_bytes;   /* decoded row groups kept in memory (0: 256 MiB); at least one is always */
    const char *bags;     /* "COL:L,...": each column (a list of int32/int64 ids, or one integer a row) an
                             i32 (L) field after x, 1 to L ids a row, the unused slots HERD_NO_ID, for
                             embedding_bag; x itself when no column is a feature; NULL: none */
} herd_parquet_options;

/* root: a directory (read recursively: Hive-style key=value/ directories become columns of their
 * files, names starting with '_' or '.' such as _SUCCESS, _temporary/ and .crc files are skipped)
 * or a glob of files and directories; every file is Parquet, taken in path (strcmp) order.
 * Open reads the footers and the label column; get() decodes the row group that holds the
 * sample (its projected columns only) into a bounded cache of row groups, memory-mapped. x is
 * u8 when the image is bytes or every feature column is UINT_8, else f32. Errors name the file,
 * row group, column and row. */
herd_status herd_parquet_open(herd_dataset **out, const char *root, const herd_parquet_options *opt,
                              herd_error *err);

/* ---- Criteo click logs (criteo:FILE[,FILE...]) ---- */
enum { HERD_CRITEO_DENSE = 13, HERD_CRITEO_SPARSE = 26, HERD_CRITEO_COLUMNS = 40 };
typedef struct herd_criteo_options {
    int64_t hash_rows; /* R: each categorical feature hashed into R rows (1 .. INT32_MAX / 26) */
    uint64_t seed;     /* the hash's seed */
} herd_criteo_options;
/* TSV files of lines "label \t I1..I13 \t C1..C26" (Criteo's Kaggle and Terabyte logs; any
 * feature may be empty when missing). Samples are two fields: x f32 (13), the counts as
 * log(1 + max(x, 0)) (missing 0, as the DLRM reference), and i32 (26) ids: feature k's
 * hexadecimal value hashed with (seed, k) into R rows and offset by k * R (herd_criteo_hash),
 * so all 26 index one table of 26 R rows; y an f32 0/1 target (bce), num_classes 0. Open reads
 * every line once and checks it (errors name FILE:LINE and the column), keeping 8 bytes a line;
 * get() reads its line again. */
herd_status herd_criteo_open(herd_dataset **out, const char *const *paths, int npaths, const herd_criteo_options *opt,
                             herd_error *err);
/* opt's hash_rows is in range; else one line naming source. */
herd_status herd_criteo_check_options(const herd_criteo_options *opt, const char *source, herd_error *err);
/* One line (n bytes, no newline; a trailing CR is dropped) into dense[13], ids[26] and *label
 * (each may be NULL: only checked); on a bad line HERD_EFORMAT and what is wrong in why (no file
 * or line: the caller adds them). */
herd_status herd_criteo_parse(const herd_criteo_options *opt, const char *line, size_t n, float *dense, int32_t *ids,
                              float *label, char *why, size_t why_size);
/* The id of categorical feature k (0..25): value (missing = 1: an empty column) hashed with
 * (opt->seed, k) modulo opt->hash_rows, plus k * opt->hash_rows. */
int32_t herd_criteo_hash(const herd_criteo_options *opt, int feature, int missing, uint64_t value);

/* ---- labelled text ---- */
typedef enum herd_text_tokenizer { HERD_TOKENIZE_BYTE = 0, HERD_TOKENIZE_CHAR, HERD_TOKENIZE_WORD } herd_text_tokenizer;
typedef struct herd_text_options {
    herd_text_tokenizer tokenizer; /* byte: id = byte + 1 (vocabulary 257); char: UTF-8 code point + 1, code
                                      points past the vocabulary all the last id (invalid UTF-8 is an error
                                      naming file:line); word: letters/digits runs, ASCII lowercased, hashed
                                      into 1..vocab-1 */
    int len;                       /* ids per document: truncated or padded with 0 (<= 0: 256) */
    int vocab;                     /* char, word: ids below this (<= 0: 4096 for char, 2^18 for word) */
    const char *separator;         /* a line equal to it ends a document (fortune files: "%"); NULL: one per line */
} herd_text_options;
/* "byte", "char", "word"; 0 if unknown. */
int herd_text_tokenizer_parse(const char *name, herd_text_tokenizer *out);
/* paths[0..npaths) (at least 2): file k is class k; every document is an i32 (len) sample of ids,
 * its label the file's index, the documents in a fixed shuffled order (so that --val-split, the
 * last samples, holds every class). Blank documents are skipped; one without a token is an error naming
 * file:line. The dataset's note gives the counts (documents, truncated, tokens per document). */
herd_status herd_text_open(herd_dataset **out, const char *const *paths, int npaths, const herd_text_options *opt,
                           herd_error *err);

/* ---- token files (.tok, docs/DATA.md): a text tokenized for language models ---- */
typedef struct herd_tokens_options {
    herd_text_tokenizer tokenizer; /* byte: id = byte (256 ids); char: UTF-8 code points (invalid UTF-8 is an
                                      error naming file:line); word: runs of letters, digits and non-ASCII
                                      bytes (case kept, at most 64 bytes a token), any other non-space byte
                                      alone */
    int vocab;                     /* char, word: at most this many ids, the most frequent tokens and a last
                                      id for all the others (0: every distinct token, no unknown id) */
    int threads;                   /* tokenizing threads (<= 1: the caller's); the file is the same for any */
} herd_tokens_options;
typedef struct herd_tokens_info {
    int64_t tokens, unknown; /* ids written; of them the unknown id */
    int vocab;
} herd_tokens_info;
/* Tokenizes paths[0..npaths) (one text, in order) into the token file dst, atomically. The text
 * is streamed in pieces of 4 MiB (char and word read it twice: counting, then ids): memory is
 * (threads + 1) pieces, their ids and the vocabulary, not the text. info (may be NULL) says what
 * was written. */
herd_status herd_tokens_write(const char *dst, const char *const *paths, int npaths, const herd_tokens_options *opt,
                              herd_tokens_info *info, herd_error *err);

typedef struct herd_tokens herd_tokens;
/* Maps a token file; checks its header and vocabulary (their CRCs, sizes, sorted entries) but
 * reads no id: open costs the vocabulary whatever the file's size. Errors name the file. */
herd_status herd_tokens_open(herd_tokens **out, const char *path, herd_error *err);
void herd_tokens_close(herd_tokens *t);
int64_t herd_tokens_count(const herd_tokens *t);
int herd_tokens_vocab(const herd_tokens *t);
herd_text_tokenizer herd_tokens_tokenizer(const herd_tokens *t);
const char *herd_tokens_path(const herd_tokens *t);
/* Ids [first, first + n) into out; an id outside the vocabulary is an error naming the file and
 * its position. Reads mapped pages: callers guard against a shrinking file (herd_lm_open's get). */
herd_status herd_tokens_read(const herd_tokens *t, int64_t first, int64_t n, int32_t *out, herd_error *err);
/* Text (len bytes) into at most cap ids as the file's tokenizer splits it; *n the ids. A token
 * outside the vocabulary is the unknown id when the file has one, else an error naming the token
 * and its byte offset. */
herd_status herd_tokens_encode(const herd_tokens *t, const char *text, size_t len, int32_t *ids, int64_t cap,
                               int64_t *n, herd_error *err);
/* The text of id (word tokens followed by a space) into buf (NUL-terminated, cut to size);
 * its length, 0 for an id outside the vocabulary. */
size_t herd_tokens_decode(const herd_tokens *t, int32_t id, char *buf, size_t size);

/* A language-model source over a token file: samples are windows of ctx ids, x = ids [s, s+ctx)
 * and y = ids [s+1, s+ctx+1) (i32 (ctx) each, the next id at every position), num_classes the
 * vocabulary. The last fraction `val` of the ids is held out: train windows start at 0, stride,
 * 2*stride ... within the first part, validation (test split) windows tile the held-out tail.
 * The trainer's seeded sampler draws the windows of each batch, and every rank takes its rows of
 * it. Either output may be NULL. */
typedef struct herd_lm_options {
    int ctx;    /* positions a window (the model's input) */
    int stride; /* between train windows (<= 0: ctx; 1: every window) */
    double val; /* held-out fraction of the ids, in [0, 0.5] */
} herd_lm_options;
herd_status herd_lm_open(herd_dataset **train, herd_dataset **val, const char *path, const herd_lm_options *opt,
                         herd_error *err);

/* ---- herd's shard format (.herd, docs/DATA.md): header, index, records ready to train ---- */
enum { HERD_SHARD_U8 = 1, HERD_SHARD_F32 = 2 };

/* How herd_shard_write / herd_shards_write store and stream records. All zeros: auto dtype,
 * the caller's thread, fail on the first bad sample, overwrite. */
typedef struct herd_shard_write_options {
    int dtype;    /* HERD_SHARD_U8: round(x*255) (the stored bytes of u8 samples); HERD_SHARD_F32: the
                     model's f32 input; 0 (auto): u8 for u8 samples and when every value of the shard is
                     exactly k/255, else f32 */
    int threads;  /* samples read (decoded) in parallel by this many threads (<= 1: the caller's) */
    int resume;   /* herd_shards_write: a shard already at its final path with the expected shape and
                     records (up to skipped ones) is kept, not rewritten */
    int skip_bad; /* a sample whose read fails is left out (and reported) instead of failing the write */
    /* called in record order, in the caller's thread, for each sample left out by skip_bad */
    void (*on_skip)(void *ctx, const herd_error *why);
    /* called after each shard is written (kept = 1 when resume kept it) */
    void (*on_shard)(void *ctx, const char *path, int64_t records, int kept);
    void *ctx;
} herd_shard_write_options;

/* Writes samples [begin, end) of ds to one shard file, atomically (path.tmp.<pid>, fsync,
 * rename). Records hold the model's f32 input (herd_dataset_to_f32) or, for u8 samples with no
 * view that changes values, the stored bytes. The shape field holds x's dims padded with 1s to
 * 3 ((F) is stored F x 1 x 1; more than 3 dims are refused). Records are streamed into the file
 * as they are read, a bounded window at a time, then the index and header are written: memory
 * is the window plus 24 bytes a record, not the shard. opt NULL: all defaults. *written (may be
 * NULL): records written. */
herd_status herd_shard_write(const char *path, const herd_dataset *ds, int64_t begin, int64_t end,
                             const herd_shard_write_options *opt, int64_t *written, herd_error *err);
/* dir/<split>-00000-of-0000N.herd ... (dir is created): shard k holds the contiguous range
 * [n*k/N, n*(k+1)/N) of ds, so the shards in name order are ds in its order. Samples of
 * several fields, i32 ids or targets other than an i32 class label are written as version 2
 * records (docs/DATA.md: the stored fields, then the target; opt->dtype does not apply). Each shard is
 * complete or absent after a crash, so opt->resume continues an interrupted conversion. */
herd_status herd_shards_write(const herd_dataset *ds, const char *dir, const char *split, int nshards,
                              const herd_shard_write_options *opt, herd_error *err);
/* Shard files, concatenated in the given order. Each is memory-mapped; open checks every
 * header (magic, version, CRC) and index (CRC, offsets, lengths, labels) but reads no record,
 * so it costs the index only. get() checks the record's CRC32C: errors name the file and the
 * record. Version 1 samples are (C,H,W) as stored: u8 when every shard is u8, else f32 (u8
 * records of a mixed set converted by herd_samples_to_f32); version 2 shards (samples of
 * several fields, i32 ids or targets other than an i32 label) give the fields and target they
 * were written from. All shards must share the sample shape (and fields); num_classes is the
 * largest of theirs. */
herd_status herd_shards_open(herd_dataset **out, const char *const *paths, int npaths, herd_error *err);

/* ---- statistics (herd stats, --normalize auto) ---- */
typedef struct herd_data_stats {
    int channels, num_classes;
    int64_t count;              /* samples */
    double *mean, *std;         /* per channel (population std) */
    double *min, *max;          /* per channel */
    int64_t *class_count;       /* num_classes */
} herd_data_stats;

/* Sums n doubles in place across the callers of a map-reduce (e.g. MPI ranks). */
typedef herd_status (*herd_sum_fn)(void *ctx, double *buf, int n, herd_error *err);

/* Per-channel (dim 0 of x, see above) mean/std/min/max of the model's f32 input
 * (herd_dataset_to_f32) and class counts of ds (y must be an i32 label). This caller (part `part` of `parts`)
 * maps a contiguous share of a fixed set of blocks of records; sum (NULL with parts == 1)
 * adds up the per-block partials, which every caller then combines in block order, so the
 * numbers are bit-identical whatever `parts` is. Free with herd_data_stats_free. */
herd_status herd_data_stats_compute(herd_data_stats *out, const herd_dataset *ds, int part, int parts, herd_sum_fn sum,
                                    void *sum_ctx, herd_error *err);
void herd_data_stats_free(herd_data_stats *s);

/* x = (x - mean[c]) / std[c] over n samples of c planes of `plane` values, as herd normalises
 * everywhere: in float, (x - (float)mean) * (float)(1 / std), a std of 0 dividing by 1. */
void herd_normalize_samples(float *x, int64_t n, int c, int64_t plane, const double *mean, const double *std);

/* A view of base whose f32 samples are herd_normalize_samples'd as `channels` planes of
 * numel(x) / channels values (the model's input channels; base must outlive it; mean and
 * std, `channels` values each, are copied). get() still gives base's stored samples: the
 * normalisation is the view's to_f32, so a cache keeps the stored dtype. */
herd_status herd_dataset_normalize(herd_dataset **out, herd_dataset *base, int channels, const double *mean,
                                   const double *std, herd_error *err);

/* ---- the loader: batches of an epoch prepared ahead in background threads ---- */
typedef struct herd_loader herd_loader;
enum { HERD_AUGMENT_CROP = 1, HERD_AUGMENT_FLIP = 2, HERD_AUGMENT_RRC = 4 };

typedef struct herd_loader_config {
    int prefetch;       /* batches prepared ahead by background threads; 0 = load in the caller's thread */
    int threads;        /* background threads when prefetch > 0 (0 = 1) */
    size_t cache_bytes; /* decoded samples kept in memory in their stored dtype (u8 images: a
                           quarter of f32), index included (0 = no cache); the first samples
                           loaded stay until the budget is spent (no eviction) */
    int augment;        /* HERD_AUGMENT_RRC (random_resized_crop) | HERD_AUGMENT_CROP (random crop, zero
                           padding 4) | HERD_AUGMENT_FLIP (horizontal), applied in that order; x must
                           be (C,H,W) (also for colour jitter) */
    uint64_t seed;      /* augmentation draws depend on (seed, epoch, sample index) only */
    /* random_resized_crop's area fraction and aspect-ratio ranges; zeros: torchvision's defaults
     * (0.08, 1) and (3/4, 4/3). The crop is scaled back to the sample's h x w (antialiased). */
    float rrc_scale[2], rrc_ratio[2];
    /* colour jitter strengths, 0 = off (torchvision's ColorJitter: factors uniform in
     * [max(0, 1 - s), 1 + s], in a random order), after the flip, on pixels in [0, 1] */
    float brightness, contrast, saturation;
    /* applied last to every sample: (x - mean[k]) / std[k] (herd_normalize_samples); NULL:
     * none. One value per channel (herd_dataset_channels); the caller keeps them alive */
    const double *mean, *std;
} herd_loader_config;

/* This caller's rows [*lo, *hi) of a global batch of B samples (e.g. an MPI rank's share). */
typedef void (*herd_rows_fn)(void *ctx, int B, int *lo, int *hi);

/* A loader over ds (which must outlive it) for batches of up to `batch` samples; rows NULL =
 * every row. The batches are identical for any prefetch and thread count. */
herd_status herd_loader_create(herd_loader **out, const herd_dataset *ds, int batch, const herd_loader_config *cfg,
                               herd_rows_fn rows, void *rows_ctx, herd_error *err);
/* Starts epoch `epoch` over order[0..n) (copied) in batches of `batch`, from step first_step:
 * background threads begin preparing steps first_step .. first_step + prefetch. */
herd_status herd_loader_start_epoch(herd_loader *l, int64_t epoch, const int64_t *order, int64_t n, int batch,
                                    int64_t first_step, herd_error *err);
/* Says which epoch comes after the current one (order copied): once every step of the current
 * epoch is being loaded, the background threads load the next epoch's first step too, and
 * herd_loader_start_epoch with the same epoch, order and batch from step 0 finds it ready (the
 * batches are the same either way). No effect with --prefetch 0 or once that loading began. */
herd_status herd_loader_plan_epoch(herd_loader *l, int64_t epoch, const int64_t *order, int64_t n, int batch,
                                   herd_error *err);
/* Rows [first, first + count) (positions in the global batch, within this caller's rows) of
 * batch `step` into x (count samples as the model's f32 input) and y (count targets of
 * herd_tensor_bytes(&ds->y) bytes). Steps are asked in order; asking step k lets the
 * threads reuse the buffers of the steps before k. A sample's read error comes back here. */
herd_status herd_loader_rows(herd_loader *l, int64_t step, int first, int count, float *x, void *y,
                             herd_error *err);
/* herd_loader_rows, except that where the loader holds the rows as the model's f32 input
 * (augmentation or normalisation active) *view points at them and x is left alone: valid until
 * a later step is asked for. Elsewhere *view is NULL and the rows were written into x. */
herd_status herd_loader_rows_view(herd_loader *l, int64_t step, int first, int count, float *x, const float **view,
                                  void *y, herd_error *err);
/* Bytes the sample cache allocated (<= cache_bytes) and samples it holds. */
size_t herd_loader_cache_bytes(const herd_loader *l);
int64_t herd_loader_cached_samples(const herd_loader *l);
/* Stops the threads and frees; NULL is a no-op. */
void herd_loader_destroy(herd_loader *l);

/* Resolves --data (docs/DATA.md), trying in order:
 *  - "fashion-mnist" or "mnist" (Debian's dataset packages under /usr/share/datasets/<name>;
 *    when $HERD_DATA_DIR is set, $HERD_DATA_DIR/<name> or else $HERD_DATA_DIR itself);
 *  - "sqlite:FILE.db?[label=COL&]query=SELECT ..." and
 *    "postgresql://user@host:port/db?[label=COL&][libpq params&]query=SELECT ..." (also
 *    postgres://): query= must be the last parameter and the rest of the string is the SQL,
 *    verbatim; train split only;
 *  - "criteo:FILE[,FILE...]?hash=R[&seed=S]" (herd_criteo_open); train split only;
 *  - "parquet:DIR_OR_GLOB[?features=a,b&label=y|target=v&image=col&shape=CxHxW&cache_mb=N]"
 *    (herd_parquet_open; the model's input shape serves image= without shape=); when the last
 *    name holds "train", the same with "test" is the test split if it exists;
 *  - a file source, optionally followed by "?key=value&...": label=COL (CSV), image=NAME and
 *    label=NAME (TFRecord):
 *      FILE.csv;
 *      FILEx.npy or FILEX.npy (features) with the labels in FILEy.npy / FILEY.npy beside it;
 *      FILE.tfrecord, a glob (data/train-*.tfrecord) or a comma list of .tfrecord shards;
 *    when the file name holds "train", the same spec with the last "train" of each name
 *    replaced by "test" is the test split if that file exists (train.csv -> test.csv,
 *    train_x.npy -> test_x.npy, train-*.tfrecord -> test-*.tfrecord);
 *  - a directory holding IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
 *    t10k-*), CIFAR-10 binaries (data_batch_1..5.bin, test_batch.bin), train_x.npy +
 *    train_y.npy (and test_x.npy + test_y.npy), or an image folder: train/ and test/
 *    subdirectories of class folders, or class folders directly (train split only);
 *  - herd shards: FILE.herd, a glob or comma list of them, or a directory of *.herd files
 *    (train-*.herd, with test-*.herd as the test split; else every *.herd is the train split).
 * opt (may be NULL) gives the model's input shape for image sources. Either output may be
 * NULL when not wanted; on failure neither is left open. */
herd_status herd_data_open_with(const char *spec, const herd_image_options *opt, herd_dataset **train,
                                herd_dataset **test, herd_error *err);
/* herd_data_open_with(spec, NULL, ...) */
herd_status herd_data_open(const char *spec, herd_dataset **train, herd_dataset **test, herd_error *err);

/* Seeded shuffling sampler: the order of epoch e is a pure function of (seed, e). */
typedef struct herd_sampler {
    int64_t n;
    uint64_t seed;
    int shuffle;
    int64_t *perm; /* n indices of the current epoch */
    int64_t epoch;
} herd_sampler;

herd_status herd_sampler_init(herd_sampler *s, int64_t n, uint64_t seed, int shuffle, herd_error *err);
/* Computes the order of epoch e into s->perm. */
void herd_sampler_set_epoch(herd_sampler *s, int64_t epoch);
void herd_sampler_free(herd_sampler *s);

#ifdef __cplusplus
}
#endif
#endif
