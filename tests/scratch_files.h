/* Tests that read files they write: a fresh directory under /tmp and text files in it. */
#ifndef HERD_TEST_SCRATCH_FILES_H
#define HERD_TEST_SCRATCH_FILES_H

#include <stdio.h>
#include <stdlib.h>

static char scratch_dir[64];

/* mkdtemp of /tmp/<prefix>_XXXXXX; 0 on failure */
static inline int scratch_init(const char *prefix) {
    snprintf(scratch_dir, sizeof scratch_dir, "/tmp/%s_XXXXXX", prefix);
    return mkdtemp(scratch_dir) != NULL;
}

/* Writes text to scratch_dir/name; its path into path (128 bytes). */
static inline void scratch_write(const char *name, const char *text, char *path) {
    snprintf(path, 128, "%s/%s", scratch_dir, name);
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static inline int scratch_remove(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", scratch_dir);
    return system(cmd);
}

#endif
