/* Data parallel training of models with embedding tables: the row-sparse gradients of the
 * step's groups (every rank's batch share, or the fixed micro-groups of --deterministic) are
 * made one global gradient on every rank. Each group's duplicates are summed locally (its
 * coalesced rows); then either every group's ids and values are gathered by every rank, or
 * each rank scatters its rows into a dense ROWS x DIM copy that is summed across ranks,
 * whichever moves fewer bytes at the step's measured density (touched rows over the table's);
 * the choice is said in the note when it changes. Gathered rows are summed id by id in group
 * order, so with --deterministic the tables come out bit-identical on 1, 2 or 4 ranks (the
 * dense sum is taken only without it). Uses only the strategy's public gather and reduce. */
#ifndef HERD_SPARSE_EXCHANGE_H
#define HERD_SPARSE_EXCHANGE_H

#include "dist/strategy.h"

typedef struct herd_sparse_exchange herd_sparse_exchange;

/* For model m trained under s; *out = NULL when there is nothing to exchange (no table, or one
 * process computing the batch as one part). A strategy other than data parallel is refused
 * with one line. */
herd_status herd_sparse_exchange_create(herd_sparse_exchange **out, herd_strategy *s, herd_model *m, herd_error *err);
void herd_sparse_exchange_destroy(herd_sparse_exchange *x);
/* After this rank's part g (herd_strategy_part_rows' order) ran its backward over count samples
 * (0: the group was empty; its rows are none): keeps the group's summed rows. */
herd_status herd_sparse_exchange_group_done(herd_sparse_exchange *x, int g, int count, herd_error *err);
/* After the last group, on every rank alike: sg[0..n) (n = the model's tables) become the
 * global gradients (distinct ids ascending, their sums), held by x until the next step. */
herd_status herd_sparse_exchange_finish(herd_sparse_exchange *x, herd_sparse_grad *sg, int n, herd_error *err);
/* "table 'bag.weight': 5107 of 1000000 rows a step (0.51%): gather of ids and values (2.7 MB
 * vs 520 MB dense)" when the last step's choice differs from the one before, else "". */
const char *herd_sparse_exchange_note(const herd_sparse_exchange *x);

/* Buffers that grow (contents dropped), shared with embedding_shard.c: *p holds at least n
 * elements of size bytes; ids and vals at least n rows (of dim floats). 1, or 0 out of memory. */
int herdi_sparse_reserve(void **p, size_t *cap, size_t n, size_t size);
int herdi_sparse_reserve_rows(int32_t **ids, float **vals, int64_t *cap, int64_t n, int64_t dim);

#endif
