/* The CLI's progress display in both modes, written to a memstream under a fake
 * clock. progress.c is CLI code, not part of libherd, so it is compiled in here. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli/progress.c"

static double fake_now;
static double fake_clock(void) { return fake_now; }

static int count_char(const char *s, char c) {
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

/* Runs one epoch of `steps` updates, one every `dt` seconds, and returns the text. */
static char *run_epoch(int tty, int64_t steps, double dt, double val_loss, double val_acc) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    progress p;
    progress_init(&p, f, tty);
    p.clock = fake_clock;
    fake_now = 0.0;
    progress_begin_epoch(&p, 2, 5, steps);
    for (int64_t s = 1; s <= steps; s++) {
        fake_now = (double)s * dt;
        progress_update(&p, s, 0.5 - 0.1 * (double)s / (double)steps, 0.8 + 0.1 * (double)s / (double)steps);
    }
    progress_end_epoch(&p, 0.4, 0.9, val_loss, val_acc, fake_now, 6400.0);
    fclose(f);
    return text;
}

static void test_plain(void) {
    char *t = run_epoch(0, 100, 0.01, 0.35, 0.875);
    CHECK(t != NULL, "memstream");
    if (!t) return;
    CHECK(strchr(t, '\r') == NULL, "plain mode has no carriage return:\n%s", t);
    CHECK(strchr(t, '\033') == NULL, "plain mode has no escape codes");
    CHECK(strncmp(t, "Epoch 2/5\n", 10) == 0, "starts with the epoch line: %.20s", t);
    CHECK(count_char(t, '\n') == 11, "epoch line + 9 tenths + summary = 11 lines, got %d:\n%s", count_char(t, '\n'), t);
    CHECK(strstr(t, " 10/100 ") != NULL && strstr(t, " 90/100 ") != NULL, "lines at 10%% and 90%%:\n%s", t);
    CHECK(strstr(t, "ETA") != NULL, "plain progress lines carry an ETA");
    CHECK(strstr(t, "loss: 0.4100") != NULL, "running loss at 90%%:\n%s", t);
    CHECK(strstr(t, "accuracy: 0.8900") != NULL, "running accuracy at 90%%");
    const char *last = strstr(t, "100/100");
    CHECK(last != NULL, "summary line with the step count:\n%s", t);
    if (last) {
        CHECK(strstr(last, "1.0s") != NULL, "summary has the epoch time: %s", last);
        CHECK(strstr(last, "6400 images/s") != NULL, "summary has images/s: %s", last);
        CHECK(strstr(last, "loss: 0.4000 - accuracy: 0.9000") != NULL, "summary has loss and accuracy: %s", last);
        CHECK(strstr(last, "val_loss: 0.3500 - val_accuracy: 0.8750") != NULL, "summary has val figures: %s", last);
        CHECK(strchr(last, '[') == NULL, "no bar in plain mode: %s", last);
    }
    free(t);

    t = run_epoch(0, 100, 0.01, -1.0, -1.0);
    CHECK(t && strstr(t, "val_") == NULL, "val figures hidden when negative:\n%s", t ? t : "");
    free(t);

    t = run_epoch(0, 7, 0.01, -1.0, -1.0); /* fewer steps than tenths: one line per step at most */
    CHECK(t && count_char(t, '\n') <= 1 + 7 + 1, "short epoch stays short:\n%s", t ? t : "");
    free(t);
    t = run_epoch(0, 100000, 0.0001, -1.0, -1.0); /* long epoch: still 11 lines */
    CHECK(t && count_char(t, '\n') == 11, "long epoch is 11 lines, got %d", t ? count_char(t, '\n') : -1);
    free(t);
}

static void test_plain_jump(void) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    progress p;
    progress_init(&p, f, 0);
    p.clock = fake_clock;
    progress_begin_epoch(&p, 1, 1, 1000);
    progress_update(&p, 50, 1.0, -1.0);  /* before 10%: nothing */
    progress_update(&p, 350, 1.0, -1.0); /* crosses 10..30%: one line */
    progress_update(&p, 399, 1.0, -1.0); /* still below 40%: nothing */
    fclose(f);
    CHECK(count_char(text, '\n') == 2, "a jump over three tenths prints one line:\n%s", text);
    CHECK(strstr(text, "accuracy") == NULL, "accuracy < 0 is not shown:\n%s", text);
    free(text);
}

static void test_tty(void) {
    char *t = run_epoch(1, 50, 0.01, 0.35, 0.875); /* 0.5 s in all: about 5 redraws */
    CHECK(t != NULL, "memstream");
    if (!t) return;
    CHECK(strncmp(t, "Epoch 2/5\n", 10) == 0, "starts with the epoch line");
    int redraws = count_char(t, '\r');
    CHECK(redraws >= 5 && redraws <= 8, "redraws capped at ~10/s: %d for 50 updates in 0.5 s", redraws);
    CHECK(strstr(t, "ETA") != NULL, "live line has an ETA:\n%s", t);
    CHECK(strstr(t, "step/s") != NULL, "live line has the rate");
    CHECK(strstr(t, "[==============================]") != NULL, "full bar at the end:\n%s", t);
    CHECK(strstr(t, "accuracy: ") != NULL, "live line has accuracy");
    const char *last = strrchr(t, '\r');
    CHECK(last && strstr(last, "val_loss: 0.3500 - val_accuracy: 0.8750") != NULL, "final line has val figures");
    CHECK(last && strstr(last, "6400 images/s") != NULL, "final line has images/s");
    CHECK(last && strstr(last, "ETA") == NULL, "final line drops the ETA");
    CHECK(t[strlen(t) - 1] == '\n', "epoch ends with a newline");
    free(t);
}

static void test_tty_line(void) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    progress p;
    progress_init(&p, f, 1);
    p.clock = fake_clock;
    fake_now = 0.0;
    progress_begin_epoch(&p, 1, 1, 600);
    fake_now = 300 * 0.2; /* 5 step/s, 300 left: ETA one minute */
    progress_update(&p, 300, 0.4312, 0.8421);
    fflush(f);
    const char *want = "\r300/600 [==============>...............] - 5.0 step/s - ETA 1:00 - loss: 0.4312 - "
                       "accuracy: 0.8421";
    CHECK(strstr(text, want) != NULL, "half-way line\n  got  %s\n  want %s", text, want);
    fake_now += 0.05;
    progress_update(&p, 301, 0.5, 0.5);
    fflush(f);
    CHECK(count_char(text, '\r') == 1, "no redraw within 0.1 s");
    fake_now += 0.1;
    progress_update(&p, 302, 0.5, -1.0); /* shorter line: old tail must be blanked */
    fflush(f);
    const char *second = strrchr(text, '\r');
    CHECK(count_char(text, '\r') == 2 && strlen(second) == strlen(strchr(text, '\r')) - strlen(second),
          "redraw pads to the old length:\n%s", text);
    fclose(f);
    free(text);

    text = NULL;
    f = open_memstream(&text, &size);
    progress_init(&p, f, 1);
    p.clock = fake_clock;
    fake_now = 0.0;
    progress_begin_epoch(&p, 1, 1, 100000);
    fake_now = 1.0;
    progress_update(&p, 1, 1.0, 0.1);
    fclose(f);
    CHECK(strstr(text, "ETA 27:46:39") != NULL, "hours in the ETA: %s", text);
    free(text);
}

int main(void) {
    test_plain();
    test_plain_jump();
    test_tty();
    test_tty_line();
    return check_summary();
}
