/* libFuzzer entry for the text tokenizer (herd convert --tokenizer); the body, shared with the
 * CTest replay of the corpus and regressions, is fuzz_tokenize in fuzz_bodies.c. */
#include "fuzz_bodies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_tokenize(data, size); }
