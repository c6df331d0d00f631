/* Categorical columns of table sources (CSV, SQLite, PostgreSQL: cat=col1,col2): each value
 * becomes an id, by a vocabulary built in one pass (ids in order of first appearance) or by a
 * seeded hash into a given number of rows (hash=N, seed=S; the collision rate is reported).
 * A column named COL:L is a bag: up to L blank-separated values a row (tags, a user's items),
 * an i32 (L) field whose unused slots hold HERD_NO_ID, for embedding_bag. */
#ifndef HERD_DATA_CATEGORY_H
#define HERD_DATA_CATEGORY_H

#include <stdint.h>

#include "herd/data.h"

typedef struct category_column category_column;

struct categories {
    int n;                                   /* columns named by cat= */
    char names[HERD_MAX_FIELDS][128];
    int len[HERD_MAX_FIELDS];                /* ids a row: 1, or a bag's L */
    int bag[HERD_MAX_FIELDS];                /* named NAME:L */
    int at[HERD_MAX_FIELDS];                 /* where column k's ids start among a row's */
    int ids;                                 /* ids a row, all columns */
    category_column *col[HERD_MAX_FIELDS];
    int64_t hash_rows;                       /* 0: vocabulary */
    uint64_t seed;
};
typedef struct categories categories;

/* From a comma list of column names, each NAME or NAME:L for a bag (NULL or "": none); at most
 * HERD_MAX_FIELDS, no repeats. */
herd_status herdi_categories_init(categories *c, const char *list, int64_t hash_rows, uint64_t seed, const char *source,
                            herd_error *err);
void herdi_categories_free(categories *c);
/* Index of column `name` among the categorical ones, or -1. */
int herdi_categories_find(const categories *c, const char *name);
/* The id of value text (len bytes) in column k; -1 when memory runs out. */
int32_t herdi_categories_id(categories *c, int k, const char *text, size_t len);
/* Column k's ids of its value text (len bytes) at row[c->at[k]]: the value's id, or a bag's values'
 * ids in order, the rest of its L slots HERD_NO_ID. An empty bag, one of more than L values or no
 * memory is an error "WHERE: column 'NAME': ...". */
herd_status herdi_categories_put(categories *c, int k, const char *text, size_t len, int32_t *row, const char *where,
                           herd_error *err);
/* The role of each of a source's ncols columns in role[]: CAT_LABEL (label_at), CAT_FEATURE, or the
 * index of its categorical column; returns the number of feature columns, or -1 with an error
 * ("WHERE: no column named 'x' (cat=)") when a categorical column is missing or repeated, or the
 * source has nothing but its label. */
enum { CAT_FEATURE = -1, CAT_LABEL = -2 };
int herdi_categories_columns(const categories *c, const char *const *names, int ncols, int label_at, int *role,
                       const char *where, herd_error *err);
/* "user: 2972 values, ids 0..2971; item: ..." (vocabulary) or "user: 2972 values hashed into 4096 rows,
 * 12.3% collide" into buf. */
void herdi_categories_describe(const categories *c, char *buf, size_t size);

#endif
