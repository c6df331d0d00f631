/* Test-only fault injection (as SQLite does), one grammar in HERD_TEST_FAULT:
 *   crash:NAME:K     the K-th pass through fault point NAME kills the process with SIGKILL, as
 *                    `kill -9` would at that moment; sigint:NAME:K raises SIGINT there once (as
 *                    Ctrl-C would), sigint2:NAME:K twice (Ctrl-C pressed again)
 *   kill|hang|stop:RANK:STEP  after the STEP-th step this process has run (counted from 1,
 *                    across epochs; a parameter server counts the updates it applied), world
 *                    rank RANK kills itself with SIGKILL, stops answering in its main thread
 *                    (its other threads go on), or stops as a whole with SIGSTOP
 * and HERD_TEST_DELAY="RANK:MS": a straggler, that rank sleeps MS milliseconds every step.
 * Without the variables a fault point costs one getenv. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "herd/core.h"

void herd_fault_point(const char *name) {
    const char *f = getenv("HERD_TEST_FAULT");
    char kind[8], want[64];
    int k = 1;
    if (!f || sscanf(f, "%7[a-z0-9]:%63[^:]:%d", kind, want, &k) < 2 || strcmp(want, name) != 0) return;
    int sig = !strcmp(kind, "crash") ? SIGKILL : !strcmp(kind, "sigint") || !strcmp(kind, "sigint2") ? SIGINT : 0;
    static int passes;
    if (!sig || ++passes != k) return;
    raise(sig);
    if (!strcmp(kind, "sigint2")) raise(sig);
}

void herd_fault_step(int rank, int64_t step) {
    const char *d = getenv("HERD_TEST_DELAY");
    int slow_rank, ms;
    if (d && sscanf(d, "%d:%d", &slow_rank, &ms) == 2 && slow_rank == rank && ms > 0) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    const char *f = getenv("HERD_TEST_FAULT");
    char kind[8];
    int at_rank;
    long long at;
    if (!f || sscanf(f, "%7[a-z]:%d:%lld", kind, &at_rank, &at) != 3 || at_rank != rank || step != at) return;
    fflush(NULL);
    if (!strcmp(kind, "kill")) raise(SIGKILL);
    if (!strcmp(kind, "stop")) raise(SIGSTOP);
    if (!strcmp(kind, "hang"))
        for (;;) pause();
}
