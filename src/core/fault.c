/* Test-only fault injection (as SQLite does): HERD_TEST_FAULT="crash:NAME:K" makes the K-th
 * pass through fault point NAME kill the process with SIGKILL, as `kill -9` would at that
 * moment. Without the variable a fault point costs one getenv. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herd/core.h"

void herd_fault_point(const char *name) {
    const char *f = getenv("HERD_TEST_FAULT");
    if (!f || strncmp(f, "crash:", 6) != 0) return;
    char want[64];
    int k = 1;
    if (sscanf(f + 6, "%63[^:]:%d", want, &k) < 1 || strcmp(want, name) != 0) return;
    static int passes;
    if (++passes == k) raise(SIGKILL);
}
