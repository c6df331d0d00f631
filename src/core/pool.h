/* What the pool needs to know from the rest of the library (private to libherd). */
#ifndef HERD_CORE_POOL_H
#define HERD_CORE_POOL_H

/* Threads of this process outside the pool that want a core right now: the data loader's threads
 * while they load a batch ahead (+1 when one starts on a part, -1 when it is done). While any
 * do, a pool thread that runs out of work sleeps after a short spin and leaves its core to them;
 * otherwise it spins long enough to bridge a step's serial gaps (pool.c says why). */
void herdi_pool_others_busy(int delta);

#endif
