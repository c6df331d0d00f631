/* Keras-style training progress: a live bar redrawn with '\r' on a terminal, or a
 * few plain lines per epoch (about every 10%) when the output is a log file. */
#ifndef HERD_CLI_PROGRESS_H
#define HERD_CLI_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct progress {
    FILE *out;
    int tty;               /* 1: redraw one line with '\r'; 0: plain lines only */
    double (*clock)(void); /* seconds; herd_now by default, replaceable by tests */
    int epoch, epochs;
    int64_t steps;         /* steps in this epoch; <= 0 if unknown (no bar, no ETA) */
    double epoch_start;
    double last_draw;      /* TTY: time of the last redraw, to cap it at ~10/s */
    int line_len;          /* TTY: length of the line on screen, to blank leftovers */
    int next_tenth;        /* plain: next tenth of the epoch (1..9) that gets a line */
} progress;

/* out is borrowed, not closed. */
void progress_init(progress *p, FILE *out, int tty);
/* Prints "Epoch i/N"; epoch is 1-based, steps is the number of steps this epoch. */
void progress_begin_epoch(progress *p, int epoch, int epochs, int64_t steps);
/* step = steps done so far in this epoch; loss/acc are running means (acc < 0: not shown).
 * On a TTY redraws at most every 0.1 s (and always at the last step); otherwise prints a
 * line when step crosses each tenth of the epoch (10%..90%). */
void progress_update(progress *p, int64_t step, double loss, double acc);
/* The epoch's summary line: time, images/s, loss, accuracy, and val_loss / val_accuracy
 * when >= 0 (likewise acc < 0 hides accuracy). */
void progress_end_epoch(progress *p, double loss, double acc, double val_loss, double val_acc, double seconds,
                        double images_per_second);

#endif
