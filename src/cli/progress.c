/* Keras-style progress display for `herd train`; the only output it makes goes to
 * the FILE it was given, and on a non-terminal it stays a handful of lines per epoch. */
#include "cli/progress.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "herd/core.h"

enum { BAR_WIDTH = 30, LINE_MAX = 256 };
static const double REDRAW_SECONDS = 0.1;

void progress_init(progress *p, FILE *out, int tty) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = tty;
    p->clock = herd_now;
}

void progress_begin_epoch(progress *p, int epoch, int epochs, int64_t steps) {
    p->epoch = epoch;
    p->epochs = epochs;
    p->steps = steps;
    p->epoch_start = p->clock();
    p->last_draw = -1e300;
    p->line_len = 0;
    p->next_tenth = 1;
    fprintf(p->out, "Epoch %d/%d\n", epoch, epochs);
    fflush(p->out);
}

/* snprintf into buf at *len, never past cap (a truncated line is still a line). */
static void append(char *buf, int *len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void append(char *buf, int *len, const char *fmt, ...) {
    if (*len >= LINE_MAX - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, (size_t)(LINE_MAX - *len), fmt, ap);
    va_end(ap);
    if (k > 0) *len = *len + k < LINE_MAX - 1 ? *len + k : LINE_MAX - 1;
}

/* "1234/1875" padded so the columns stay put while the count grows. */
static void append_count(const progress *p, char *buf, int *len, int64_t step) {
    if (p->steps > 0) {
        int w = snprintf(NULL, 0, "%" PRId64, p->steps);
        append(buf, len, "%*" PRId64 "/%" PRId64, w, step, p->steps);
    } else {
        append(buf, len, "%" PRId64 "/?", step);
    }
}

/* Keras' bar: '=' for done, '>' at the head while running, '.' for the rest. */
static void append_bar(const progress *p, char *buf, int *len, int64_t step) {
    if (p->steps <= 0) return;
    int64_t clamped = step < 0 ? 0 : step > p->steps ? p->steps : step;
    int filled = (int)(BAR_WIDTH * clamped / p->steps);
    char bar[BAR_WIDTH + 3];
    int k = 0;
    bar[k++] = '[';
    for (int i = 0; i < filled - 1; i++) bar[k++] = '=';
    if (filled > 0) bar[k++] = clamped < p->steps ? '>' : '=';
    while (k < BAR_WIDTH + 1) bar[k++] = '.';
    bar[k++] = ']';
    bar[k] = '\0';
    append(buf, len, " %s", bar);
}

/* m:ss, or h:mm:ss from an hour on. */
static void append_duration(char *buf, int *len, double seconds) {
    if (!(seconds >= 0.0) || seconds > 1e8) {
        append(buf, len, "-:--");
        return;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        append(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        append(buf, len, "%ld:%02ld", s / 60, s % 60);
}

static void append_metrics(char *buf, int *len, double loss, double acc, double val_loss, double val_acc) {
    append(buf, len, " - loss: %.4f", loss);
    if (acc >= 0.0) append(buf, len, " - accuracy: %.4f", acc);
    if (val_loss >= 0.0) append(buf, len, " - val_loss: %.4f", val_loss);
    if (val_acc >= 0.0) append(buf, len, " - val_accuracy: %.4f", val_acc);
}

/* "1234/1875 [===>....] - 12.3 step/s - ETA 0:52 - loss: 0.4312 - accuracy: 0.8421" */
static int format_running(const progress *p, char *buf, int64_t step, double now, double loss, double acc) {
    int len = 0;
    buf[0] = '\0';
    append_count(p, buf, &len, step);
    append_bar(p, buf, &len, step);
    double elapsed = now - p->epoch_start;
    double rate = elapsed > 0.0 && step > 0 ? (double)step / elapsed : 0.0;
    if (rate > 0.0) append(buf, &len, " - %.1f step/s", rate);
    if (p->steps > 0) {
        append(buf, &len, " - ETA ");
        append_duration(buf, &len, rate > 0.0 ? (double)(p->steps - step) / rate : -1.0);
    }
    append_metrics(buf, &len, loss, acc, -1.0, -1.0);
    return len;
}

/* Writes buf over the line on screen, blanking what the old line had beyond it. */
static void redraw(progress *p, const char *buf, int len) {
    int pad = p->line_len > len ? p->line_len - len : 0;
    fprintf(p->out, "\r%s%*s", buf, pad, "");
    p->line_len = len;
    fflush(p->out);
}

void progress_update(progress *p, int64_t step, double loss, double acc) {
    char buf[LINE_MAX];
    double now = p->clock();
    if (p->tty) {
        int last = p->steps > 0 && step >= p->steps;
        if (!last && now - p->last_draw < REDRAW_SECONDS) return;
        p->last_draw = now;
        redraw(p, buf, format_running(p, buf, step, now, loss, acc));
        return;
    }
    if (p->steps <= 0 || p->next_tenth > 9 || step * 10 < p->next_tenth * p->steps) return;
    /* one line even if an update jumps over several tenths */
    while (p->next_tenth <= 9 && step * 10 >= p->next_tenth * p->steps) p->next_tenth++;
    format_running(p, buf, step, now, loss, acc);
    fprintf(p->out, "%s\n", buf);
    fflush(p->out);
}

void progress_end_epoch(progress *p, double loss, double acc, double val_loss, double val_acc, double seconds,
                        double images_per_second) {
    char buf[LINE_MAX];
    int len = 0;
    buf[0] = '\0';
    if (p->steps > 0) {
        append_count(p, buf, &len, p->steps);
        if (p->tty) append_bar(p, buf, &len, p->steps);
        append(buf, &len, " - ");
    }
    append(buf, &len, "%.1fs", seconds);
    if (images_per_second > 0.0) append(buf, &len, " - %.0f images/s", images_per_second);
    append_metrics(buf, &len, loss, acc, val_loss, val_acc);
    if (p->tty)
        redraw(p, buf, len);
    else
        fputs(buf, p->out);
    fputc('\n', p->out);
    p->line_len = 0;
    fflush(p->out);
}
