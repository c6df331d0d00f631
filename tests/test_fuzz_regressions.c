/* Replays every file under tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/
 * through the fuzz target bodies (fuzz_bodies.c), compiled without libFuzzer: inputs that
 * once crashed herd stay fixed, and the seed corpus stays valid input for each parser.
 * A finding aborts the test with the body's message; the file being replayed is the last
 * one printed. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fuzz_bodies.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs every file of dir through t; returns how many (0 if the folder does not exist). */
static int replay_dir(const fuzz_target *t, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL, "cannot open %s", path);
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
        CHECK(buf && fread(buf, 1, (size_t)size, f) == (size_t)size, "cannot read %s", path);
        fclose(f);
        printf("%s\n", path);
        fflush(stdout);
        /* the CLI body prints usage errors and help, as herd does: keep them out of the log */
        int quiet = strcmp(t->name, "cli") == 0, out = -1, errfd = -1;
        if (quiet) {
            out = dup(1), errfd = dup(2);
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            close(null);
            fuzz_report_fd = errfd;
        }
        int r = t->run(buf, (size_t)size);
        if (quiet) {
            fflush(stdout);
            fflush(stderr);
            dup2(out, 1);
            dup2(errfd, 2);
            close(out);
            close(errfd);
            fuzz_report_fd = 2;
        }
        CHECK(r == 0, "%s returned %d", path, r);
        free(buf);
        free(names[i]);
    }
    return n;
}

int main(void) {
    const char *src = getenv("HERD_SOURCE_DIR");
    if (!src) src = ".";
    for (const fuzz_target *t = fuzz_targets; t->name; t++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", src, t->name);
        int corpus = replay_dir(t, dir);
        snprintf(dir, sizeof dir, "%s/tests/fuzz/regressions/%s", src, t->name);
        int regressions = replay_dir(t, dir);
        CHECK(corpus > 0, "%s: no seed corpus in %s/tests/fuzz/corpus/%s", t->name, src, t->name);
        printf("%s: %d corpus and %d regression inputs replayed\n", t->name, corpus, regressions);
    }
    return check_summary();
}
