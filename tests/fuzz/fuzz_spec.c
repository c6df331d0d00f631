/* libFuzzer entry for the model spec parser (herd_model_parse, then herd_model_prepare); the body, shared with the
 * CTest replay of the corpus and regressions, is fuzz_spec in fuzz_bodies.c. */
#include "fuzz_bodies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_spec(data, size); }
