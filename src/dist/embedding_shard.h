/* Embedding tables sharded across data-parallel ranks (--embedding-shard table|row|auto). Each
 * table's rows live on their owner: table-wise, the whole table on one rank (tables placed
 * largest first on the least loaded rank); row-wise, rank r holds rows [R r / N, R (r + 1) / N)
 * of every table of R rows. Only the owner keeps its rows and their optimizer state. A step:
 *   lookup (before each part's forward): the part's distinct ids go to their owners, the rows come
 *       back (two alltoallv); they are written into the first rows of the model's table, and the
 *       part's ids rewritten to those local rows, so the layers run unchanged on a table as small
 *       as the batch's distinct ids;
 *   group_done (after its backward): the part's summed gradient rows, renamed back to table ids;
 *   exchange (after the last part, while the dense buckets are in flight): every row's gradient
 *       to its owner (one alltoallv), summed there id by id in group order, so with
 *       --deterministic the result is the bits of one process computing the same groups;
 *   the owner's sparse optimizer then updates its rows (herd_embedding_shard_rows).
 * The bytes moved grow with the distinct ids of a batch, never with the table sizes; they are
 * counted. Evaluation looks rows up the same way (herd_evaluate through the strategy, which keeps
 * the shard: herd_strategy_shard), forward only, so no rank holds a whole table for it. Saving
 * and checkpoints: herd_embedding_shard_gather writes every table whole into the writer's (rank
 * 0's) model alone, the other ranks sending their rows, until the next lookup gives that memory
 * back. */
#ifndef HERD_EMBEDDING_SHARD_H
#define HERD_EMBEDDING_SHARD_H

#include "dist/strategy.h"

typedef struct herd_embedding_shard herd_embedding_shard;

typedef enum herd_shard_plan { HERD_SHARD_AUTO = 0, HERD_SHARD_TABLE, HERD_SHARD_ROW } herd_shard_plan;

/* "auto", "table", "row": 1, or 0 when name is none of them. */
int herd_shard_plan_parse(const char *name, herd_shard_plan *out);
const char *herd_shard_plan_name(herd_shard_plan plan);
/* The plan for m's tables on world ranks: lo_hi[(k * world + r) * 2 + {0,1}] = the rows [lo, hi) of
 * table k rank r holds; auto becomes table-wise when no rank then holds more than 5% over an even
 * share of the bytes, else row-wise; *chosen is the plan, why (for auto, else "") one line. */
herd_status herd_shard_plan_make(herd_model *m, int world, herd_shard_plan plan, herd_shard_plan *chosen,
                                 int64_t *lo_hi, char *why, size_t why_size, herd_error *err);

/* For model m under data-parallel strategy s (one process: world 1). HERD_EARG with one line
 * when the model has no table, the strategy is not data parallel, two tables read one input or a
 * table is too large to gather (2^31 floats). Tables whose init is still pending
 * (herd_model_tables_pending: a fresh model) are written here, each rank its own rows alone, so
 * no rank ever holds a whole table; tables already written (loaded weights) give each rank its
 * rows from the model's, the rest given back to the system at the first lookup. note: the plan
 * chosen and why (one line). */
herd_status herd_embedding_shard_create(herd_embedding_shard **out, herd_strategy *s, herd_model *m,
                                        herd_shard_plan plan, char *note, size_t note_size, herd_error *err);
void herd_embedding_shard_destroy(herd_embedding_shard *x);
/* Rows [*lo, *hi) of table k this rank holds. */
void herd_embedding_shard_range(const herd_embedding_shard *x, int k, int64_t *lo, int64_t *hi);
/* After the model's tables were written whole (a checkpoint loaded): takes this rank's rows again. */
void herd_embedding_shard_reload(herd_embedding_shard *x);
/* Before part g's forward, its count rows loaded (0: an empty part, which still takes part). */
herd_status herd_embedding_shard_lookup(herd_embedding_shard *x, int g, int count, herd_error *err);
/* After part g's backward over count rows: keeps its gradient rows. */
herd_status herd_embedding_shard_group_done(herd_embedding_shard *x, int g, int count, herd_error *err);
/* After the last part, on every rank: sg[k] becomes the gradient of the rows this rank holds
 * (ids relative to its first row, ascending) and *sq their squared norm summed over every rank. */
herd_status herd_embedding_shard_exchange(herd_embedding_shard *x, herd_sparse_grad *sg, int n, double *sq,
                                          herd_error *err);
/* This rank's rows of table k (hi - lo rows), which its optimizer updates. */
float *herd_embedding_shard_rows(herd_embedding_shard *x, int k);
/* Every table whole in the model's parameters, on rank root alone (root < 0: on every rank, an
 * allgatherv), the other ranks sending their rows and keeping only them; with mine_state (2 a
 * table: this rank's rows of its optimizer's m and v, hi - lo rows x state_dim[k] floats each,
 * NULL to skip) state, on the ranks that receive, whole arrays (rows_k x state_dim[k] floats) of
 * them too. root >= 0 moves at most 2^26 floats a message (herd_embedding_shard_set_piece). */
herd_status herd_embedding_shard_gather(herd_embedding_shard *x, int root, const float *const *mine_state,
                                        float **state, const int64_t *state_dim, herd_error *err);
/* The most floats a gather to one rank moves in one message (a row at least; tests: small pieces). */
void herd_embedding_shard_set_piece(herd_embedding_shard *x, int64_t floats);
/* Bytes this rank sent and received in lookups and gradient exchanges, and the steps counted. */
void herd_embedding_shard_bytes(const herd_embedding_shard *x, double *sent, double *received, int64_t *steps);

#endif
