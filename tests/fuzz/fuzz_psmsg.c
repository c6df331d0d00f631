/* libFuzzer entry for the messages a parameter server receives (herdi_ps_decode in
 * src/dist/param_server.c); the body, shared with the CTest replay of the corpus and
 * regressions, is fuzz_psmsg in fuzz_bodies.c. */
#include "fuzz_bodies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_psmsg(data, size); }
