/* The bodies of herd's fuzz targets, one per parser. Each takes arbitrary bytes, runs them
 * through the parser the way herd uses it and returns 0; a crash, a sanitizer report or a
 * failed invariant (HERD_ASSERT-like abort) is the finding. The same bodies are linked
 * into the libFuzzer binaries (tests/fuzz/fuzz_<name>.c, -DHERD_FUZZ=ON) and into the
 * plain CTest test test_fuzz_regressions, which replays the corpus and regression files. */
#ifndef HERD_TEST_FUZZ_BODIES_H
#define HERD_TEST_FUZZ_BODIES_H

#include <stddef.h>
#include <stdint.h>

int fuzz_spec(const uint8_t *data, size_t size);
int fuzz_idx(const uint8_t *data, size_t size);
int fuzz_cifar(const uint8_t *data, size_t size);
int fuzz_json(const uint8_t *data, size_t size);
int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_checkpoint(const uint8_t *data, size_t size);
int fuzz_onnx(const uint8_t *data, size_t size);
int fuzz_csv(const uint8_t *data, size_t size);
int fuzz_npy(const uint8_t *data, size_t size);
int fuzz_tfrecord(const uint8_t *data, size_t size);
int fuzz_parquet(const uint8_t *data, size_t size);
int fuzz_image(const uint8_t *data, size_t size);
int fuzz_shard(const uint8_t *data, size_t size);
int fuzz_cli(const uint8_t *data, size_t size);
int fuzz_psmsg(const uint8_t *data, size_t size);
int fuzz_text(const uint8_t *data, size_t size);
int fuzz_tokens(const uint8_t *data, size_t size);
int fuzz_criteo(const uint8_t *data, size_t size);
int fuzz_tokenize(const uint8_t *data, size_t size);

typedef struct fuzz_target {
    const char *name; /* also the folder under tests/fuzz/corpus and tests/fuzz/regressions */
    int (*run)(const uint8_t *data, size_t size);
} fuzz_target;

/* Where a broken invariant is reported (default 2, stderr): the replay test points it at
 * its real stderr while the CLI body's usage messages go to /dev/null. */
extern int fuzz_report_fd;

/* Every target, NULL-terminated. */
extern const fuzz_target fuzz_targets[];

#endif
