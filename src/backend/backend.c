/* Backend lookup by name and the one place that sets the BLAS library's own thread count. */
#include "backend.h"

#include <string.h>

#include <cblas.h>

static const herd_backend *const backends[] = {&herd_backend_ref, &herd_backend_cpu};

const herd_backend *herd_backend_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, name) == 0) return backends[i];
    return NULL;
}

void herd_backend_set_threads(int threads) {
    /* The cpu backend parallelises over images/rows on herd's pool and calls sgemm
     * from inside each pool thread, so OpenBLAS must stay single-threaded whatever
     * `threads` is: its own threads would oversubscribe the cores (measured in
     * tests/helpers/bench_backend.c, see backend.h). */
    (void)threads;
    openblas_set_num_threads(1);
}
