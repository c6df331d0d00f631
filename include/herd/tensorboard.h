/* herd TensorBoard: scalar summaries in TensorBoard's event-file format (TFRecord-framed
 * Event protos), readable by TensorBoard and tf.compat.v1.train.summary_iterator. */
#ifndef HERD_TENSORBOARD_H
#define HERD_TENSORBOARD_H

#include <stdint.h>

#include "herd/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct herd_tb_writer herd_tb_writer;

/* Creates dir (one level) if needed and a new file DIR/events.out.tfevents.<unix time>.
 * <hostname>.<pid> in it, starting with the file_version "brain.Event:2" event. */
herd_status herd_tb_open(herd_tb_writer **out, const char *dir, herd_error *err);
/* Appends Event{wall_time, step, summary{value{tag, simple_value}}}; wall_time in seconds
 * since the epoch, 0 = now. Buffered: call herd_tb_flush to make it visible. */
herd_status herd_tb_scalar(herd_tb_writer *w, const char *tag, int64_t step, float value, double wall_time,
                           herd_error *err);
/* Writes buffered events to the file and syncs it. */
herd_status herd_tb_flush(herd_tb_writer *w, herd_error *err);
/* The event file's path. */
const char *herd_tb_path(const herd_tb_writer *w);
/* Flushes and closes; w may be NULL. Returns the first error of the flush or close. */
herd_status herd_tb_close(herd_tb_writer *w, herd_error *err);

#ifdef __cplusplus
}
#endif
#endif
