/* What the pool needs to know from the rest of the library (private to libherd). */
#ifndef HERD_CORE_POOL_H
#define HERD_CORE_POOL_H

#include "herd/core.h"

/* Threads of this process outside the pool that want a core right now: the data loader's threads
 * while they load a batch ahead (+1 when one starts on a part, -1 when it is done). While any
 * do, a pool thread that runs out of work sleeps after a short spin and leaves its core to them;
 * otherwise it spins long enough to bridge a step's serial gaps (pool.c says why). */
void herdi_pool_others_busy(int delta);

/* Brackets a stretch of many jobs with short serial gaps between them (a model's forward and
 * backward: +1 at its start, -1 at its end; brackets nest): inside one, a pool thread out of
 * work spins long enough to bridge the gaps instead of sleeping after 0.1 ms. Outside, the short
 * spin keeps a program that calls the pool now and then (a test, an embedder's loop) from
 * burning a core. NULL p: nothing. */
void herdi_pool_hot(herd_pool *p, int delta);

#endif
