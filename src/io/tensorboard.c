/* TensorBoard event files: each Event proto framed as a TFRecord (u64 length, masked
 * CRC32C of the length, data, masked CRC32C of the data), all little-endian. */
#include "herd/tensorboard.h"
#include "io/crc32c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/pb_wire.h"

/* event.proto / summary.proto field numbers */
enum { EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_SUMMARY = 5 };
enum { SUMMARY_VALUE = 1, VALUE_TAG = 1, VALUE_SIMPLE = 2 };

struct herd_tb_writer {
    FILE *f;
    char *path;
};

/* TFRecord framing's masked CRC32C, shared with the TFRecord reader. */
static uint32_t masked_crc(const uint8_t *p, size_t n) { return herd_crc32c_mask(herd_crc32c(0, p, n)); }

static void le(uint8_t *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static herd_status write_record(herd_tb_writer *w, const pb_writer *ev, herd_error *err) {
    if (ev->failed) return herd_fail(err, HERD_ENOMEM, "%s: out of memory building an event", w->path);
    uint8_t head[12], tail[4];
    le(head, ev->len, 8);
    le(head + 8, masked_crc(head, 8), 4);
    le(tail, masked_crc(ev->buf, ev->len), 4);
    if (fwrite(head, 1, 12, w->f) != 12 || fwrite(ev->buf, 1, ev->len, w->f) != ev->len ||
        fwrite(tail, 1, 4, w->f) != 4)
        return herd_fail(err, HERD_EIO, "%s: write failed: %s", w->path, strerror(errno));
    return HERD_OK;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

herd_status herd_tb_open(herd_tb_writer **out, const char *dir, herd_error *err) {
    *out = NULL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return herd_fail(err, HERD_EIO, "%s: cannot create the TensorBoard directory: %s", dir, strerror(errno));
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *p = host; *p; p++)
        if (*p == '/') *p = '_';
    herd_tb_writer *w = calloc(1, sizeof *w);
    size_t len = strlen(dir) + strlen(host) + 96;
    if (!w || !(w->path = malloc(len))) {
        free(w);
        return herd_fail(err, HERD_ENOMEM, "%s: out of memory", dir);
    }
    snprintf(w->path, len, "%s/events.out.tfevents.%lld.%s.%ld", dir, (long long)time(NULL), host, (long)getpid());
    w->f = fopen(w->path, "wbx"); /* never append to another writer's file */
    if (!w->f) {
        herd_status st = herd_fail(err, HERD_EIO, "%s: cannot create: %s", w->path, strerror(errno));
        free(w->path);
        free(w);
        return st;
    }
    pb_writer ev = {0};
    herdi_pb_put_double(&ev, EVENT_WALL_TIME, now_seconds());
    herdi_pb_put_string(&ev, EVENT_FILE_VERSION, "brain.Event:2");
    herd_status st = write_record(w, &ev, err);
    herdi_pb_writer_free(&ev);
    if (st == HERD_OK) st = herd_tb_flush(w, err);
    if (st != HERD_OK) {
        herd_tb_close(w, NULL);
        return st;
    }
    *out = w;
    return HERD_OK;
}

herd_status herd_tb_scalar(herd_tb_writer *w, const char *tag, int64_t step, float value, double wall_time,
                           herd_error *err) {
    pb_writer v = {0}, summary = {0}, ev = {0};
    herdi_pb_put_string(&v, VALUE_TAG, tag);
    herdi_pb_put_float(&v, VALUE_SIMPLE, value);
    herdi_pb_put_message(&summary, SUMMARY_VALUE, &v);
    herdi_pb_put_double(&ev, EVENT_WALL_TIME, wall_time > 0 ? wall_time : now_seconds());
    herdi_pb_put_varint(&ev, EVENT_STEP, (uint64_t)step);
    herdi_pb_put_message(&ev, EVENT_SUMMARY, &summary);
    herd_status st = write_record(w, &ev, err);
    herdi_pb_writer_free(&ev);
    return st;
}

herd_status herd_tb_flush(herd_tb_writer *w, herd_error *err) {
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        return herd_fail(err, HERD_EIO, "%s: flush failed: %s", w->path, strerror(errno));
    return HERD_OK;
}

const char *herd_tb_path(const herd_tb_writer *w) { return w->path; }

herd_status herd_tb_close(herd_tb_writer *w, herd_error *err) {
    if (!w) return HERD_OK;
    herd_status st = herd_tb_flush(w, err);
    if (fclose(w->f) != 0 && st == HERD_OK)
        st = herd_fail(err, HERD_EIO, "%s: close failed: %s", w->path, strerror(errno));
    free(w->path);
    free(w);
    return st;
}
