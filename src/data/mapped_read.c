/* The SIGBUS guard around reads of mapped data files (see mapped_read.h). The handler is
 * installed once, on first use; a fault in a thread that is inside a guarded read jumps back
 * to it, any other fault goes to the handler that was there before. */
#define _POSIX_C_SOURCE 200809L
#include "data/mapped_read.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

static _Thread_local sigjmp_buf *guard; /* the innermost guarded read of this thread, or NULL */
static struct sigaction previous;
static int installed;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *info, void *uc) {
    if (guard) siglongjmp(*guard, 1);
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) previous.sa_sigaction(sig, info, uc);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
    } else { /* default action: returning re-runs the faulting access, which now ends the process */
        signal(SIGBUS, SIG_DFL);
    }
}

static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER; /* not blocked in the handler: no mask to restore after the jump */
    sigemptyset(&sa.sa_mask);
    installed = sigaction(SIGBUS, &sa, &previous) == 0;
}

herd_status herdi_mapped_get_guarded(const char *path,
                               herd_status (*get)(const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err),
                               const herd_dataset *ds, int64_t i, void *x, void *y, herd_error *err) {
    pthread_once(&install_once, install);
    if (!installed) return get(ds, i, x, y, err);
    sigjmp_buf here;
    sigjmp_buf *volatile outer = guard;
    if (sigsetjmp(here, 0)) {
        guard = outer;
        return herd_fail(err, HERD_EIO, "%s: the file shrank or its storage failed while it was being read (SIGBUS on "
                         "a mapped page); was it replaced or truncated during the run?", path);
    }
    guard = &here;
    herd_status st = get(ds, i, x, y, err);
    guard = outer;
    return st;
}
