/* A growing float32 table of labelled rows that the CSV and SQL readers fill row by row
 * and then hand over as an in-memory dataset; plus the text-to-number rules they share. */
#ifndef HERD_DATA_ROW_TABLE_H
#define HERD_DATA_ROW_TABLE_H

#include <stdint.h>

#include "herd/data.h"

typedef struct row_table {
    float *x;          /* n * features */
    int32_t *y;        /* n */
    int32_t *cat;      /* n * n_cat categorical ids (a bag column's L of them) */
    int64_t n, cap;    /* rows used, rows allocated */
    int features;      /* floats per row, >= 0 (>= 1 without categorical columns) */
    int n_cat;         /* ids a row, over the categorical columns */
    int n_cat_fields;  /* categorical columns: i32 (1) or, for a bag, (L) fields after the features */
    int cat_len[HERD_MAX_FIELDS];
    int y_f32;         /* targets are f32 values (ratings), stored as their bits in y; else i32 labels */
    int32_t max_label; /* -1 while empty */
} row_table;

void herdi_row_table_init(row_table *t, int features);
/* Sets t up for a source's ncols columns named names[] (label_at the label): *role (allocated,
 * the caller frees it) gets each column's role (herdi_categories_columns), t the feature count, the
 * categorical columns of c and the target type. Errors name `where`. */
struct categories;
herd_status herdi_row_table_columns(row_table *t, const struct categories *c, const char *const *names, int ncols,
                              int label_at, int target_f32, int **role, const char *where, herd_error *err);
/* The categorical ids of the row last pushed (n_cat of them, column k's at categories.at[k]). */
int32_t *herdi_row_table_cats(row_table *t);
/* Room for one more row: the caller writes `features` floats at the returned pointer.
 * NULL when memory (or size_t) runs out. */
float *herdi_row_table_push(row_table *t, int32_t label);
/* Hands x, the categorical columns and y to herd_dataset_from_memory_fields (an f32 (F) field when
 * there are features, then an i32 (1) field per categorical column, (L) per bag column; num_classes = max label + 1, at
 * least 2) and leaves t empty; zero rows is an error naming source. note (may be NULL) goes to the
 * dataset's note. */
herd_status herdi_row_table_finish(row_table *t, herd_dataset **out, const char *source, const char *note, herd_error *err);
void herdi_row_table_free(row_table *t);

/* s (NUL-terminated, surrounding blanks allowed) is a finite float32: 1, else 0. */
int herdi_row_parse_feature(const char *s, float *out);
/* s is a decimal integer in [0, INT32_MAX): 1, else 0. */
int herdi_row_parse_label(const char *s, int32_t *out);
/* The target of the row last pushed from s: a class id, or a finite f32 with y_f32; 1, else 0. */
int herdi_row_table_target(row_table *t, const char *s);
/* What a target must be, for messages: "a class id (an integer >= 0)" or "a finite number". */
const char *herdi_row_target_what(const row_table *t);

#endif
