/* Trace timelines: events in a preallocated array, serialised as Chrome trace-event JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/trace.h"

typedef struct trace_event {
    const char *name, *cat;
    int track;
    double begin, end;
} trace_event;

struct herd_trace {
    trace_event *ev;
    size_t n, cap, dropped;
    double t0;
};

herd_status herd_trace_create(herd_trace **out, size_t max_events, herd_error *err) {
    herd_trace *t = calloc(1, sizeof *t);
    if (!t || !(t->ev = herd_malloc_array(max_events, sizeof *t->ev))) {
        free(t);
        return herd_fail(err, HERD_ENOMEM, "trace: cannot allocate %zu events", max_events);
    }
    t->cap = max_events;
    *out = t;
    return HERD_OK;
}

void herd_trace_destroy(herd_trace *t) {
    if (!t) return;
    free(t->ev);
    free(t);
}

void herd_trace_start(herd_trace *t, double t0) { t->t0 = t0; }

void herd_trace_add(herd_trace *t, const char *name, const char *cat, int track, double begin, double end) {
    if (!t) return;
    if (t->n == t->cap) {
        t->dropped++;
        return;
    }
    t->ev[t->n++] = (trace_event){name, cat, track, begin, end};
}

size_t herd_trace_dropped(const herd_trace *t) { return t->dropped; }

/* Names come from specs and strings in herd: escape what JSON needs anyway. */
static size_t put_escaped(char *dst, size_t room, const char *s) {
    size_t k = 0;
    for (; *s && k + 7 < room; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') dst[k++] = '\\', dst[k++] = (char)c;
        else if (c < 0x20) k += (size_t)snprintf(dst + k, room - k, "\\u%04x", c);
        else dst[k++] = (char)c;
    }
    dst[k] = 0;
    return k;
}

herd_status herd_trace_json(const herd_trace *t, int pid, char **out, size_t *len, herd_error *err) {
    size_t cap = 512 + t->n * 400, k = 0; /* an event is < 400 bytes: name <= 127, cat <= 63 */
    char *buf = malloc(cap);
    if (!buf) return herd_fail(err, HERD_ENOMEM, "trace: out of memory for %zu events", t->n);
    k += (size_t)snprintf(buf + k, cap - k,
                          "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}},"
                          "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"compute\"}},"
                          "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":1,\"args\":{\"name\":\"communication\"}}",
                          pid, pid, pid, pid);
    for (size_t i = 0; i < t->n; i++) {
        const trace_event *e = &t->ev[i];
        char name[128], cat[64];
        put_escaped(name, sizeof name, e->name);
        put_escaped(cat, sizeof cat, e->cat);
        k += (size_t)snprintf(buf + k, cap - k,
                              ",{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%.1f,\"dur\":%.1f,\"pid\":%d,"
                              "\"tid\":%d}",
                              name, cat, (e->begin - t->t0) * 1e6, (e->end - e->begin) * 1e6, pid, e->track);
    }
    *out = buf;
    *len = k;
    return HERD_OK;
}
