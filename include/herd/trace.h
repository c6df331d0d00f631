/* herd trace: a timeline of one process (forward/backward per layer, data loading,
 * optimizer, each gradient bucket's exchange) in Chrome's trace-event format, which
 * chrome://tracing and Perfetto open. Events go to a buffer sized once; when it is full
 * later events are dropped and counted, never allocated. */
#ifndef HERD_TRACE_H
#define HERD_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "herd/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct herd_trace herd_trace;

/* Track ids within a process: compute and communication on separate rows, so overlap shows. */
enum { HERD_TRACE_COMPUTE = 0, HERD_TRACE_COMM = 1 };

herd_status herd_trace_create(herd_trace **out, size_t max_events, herd_error *err);
void herd_trace_destroy(herd_trace *t);
/* Times are herd_now() seconds; the first event recorded after herd_trace_start is 0 ms. */
void herd_trace_start(herd_trace *t, double t0);
/* A complete event [begin, end]; name and cat must outlive the trace (string literals, layer names). */
void herd_trace_add(herd_trace *t, const char *name, const char *cat, int track, double begin, double end);
/* This process's events as JSON objects separated by commas (no brackets), for process id pid,
 * plus a name for its row. *out is malloc'd. */
herd_status herd_trace_json(const herd_trace *t, int pid, char **out, size_t *len, herd_error *err);
size_t herd_trace_dropped(const herd_trace *t);

#ifdef __cplusplus
}
#endif
#endif
