/* text: sources: one class per file, documents between separator lines (or one per line), byte /
 * char / word tokens padded or truncated to len, every document kept once with its file's label,
 * and the bad inputs (invalid UTF-8 for char, a file without documents, unknown options) as one
 * line naming the file (and line). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "herd/data.h"
#include "scratch_files.h"


/* the sample whose first id is first (documents come shuffled), or -1 */
static int64_t find(herd_dataset *ds, int32_t first, int32_t *ids, int32_t *label) {
    herd_error err = {0};
    for (int64_t i = 0; i < ds->n; i++) {
        CHECK(herd_dataset_get(ds, i, ids, label, &err) == HERD_OK, "%s", err.msg);
        if (ids[0] == first) return i;
    }
    return -1;
}

int main(void) {
    if (!scratch_init("herd_text")) return 2;
    char a[128], b[128], c[128], e[128], spec[512];
    scratch_write("a.txt", "hello\n%\nZebra crossing\n%\n\n%\nab\n", a);
    scratch_write("b.txt", "\xc3\xa9t\xc3\xa9\n%\nyo\n", b);
    scratch_write("c.txt", "fine\n%\nbad \xff byte\n", c);
    scratch_write("e.txt", "\n%\n  \n", e);
    herd_error err = {0};
    herd_dataset *ds = NULL;
    const char *paths[2] = {a, b};
    herd_text_options o = {HERD_TOKENIZE_BYTE, 4, 0, "%"};
    CHECK(herd_text_open(&ds, paths, 2, &o, &err) == HERD_OK, "%s", err.msg);
    if (ds) {
        int32_t ids[4], y;
        CHECK(ds->n == 5 && ds->num_classes == 2 && ds->x.dtype == HERD_I32 && herd_tensor_numel(&ds->x) == 4,
              "byte: %lld documents", (long long)ds->n);
        CHECK(find(ds, 'h' + 1, ids, &y) >= 0 && y == 0 && ids[1] == 'e' + 1 && ids[3] == 'l' + 1, "hello: truncated to 4");
        CHECK(find(ds, 'a' + 1, ids, &y) >= 0 && y == 0 && ids[1] == 'b' + 1 && ids[2] == 0 && ids[3] == 0, "ab: padded");
        CHECK(find(ds, 0xc3 + 1, ids, &y) >= 0 && y == 1, "bytes of UTF-8");
        CHECK(strstr(ds->note, "5 documents in 2 classes") && strstr(ds->note, "3 truncated to 4"), "note: %s", ds->note);
        herd_dataset_close(ds);
    }
    o.tokenizer = HERD_TOKENIZE_CHAR, o.vocab = 300;
    CHECK(herd_text_open(&ds, paths, 2, &o, &err) == HERD_OK, "%s", err.msg);
    if (ds) {
        int32_t ids[4], y;
        CHECK(find(ds, 0xe9 + 1, ids, &y) >= 0 && y == 1 && ids[1] == 't' + 1 && ids[2] == 0xe9 + 1 && ids[3] == 0,
              "char: U+00E9 is one id");
        herd_dataset_close(ds);
    }
    o.tokenizer = HERD_TOKENIZE_WORD, o.vocab = 1000;
    CHECK(herd_text_open(&ds, paths, 2, &o, &err) == HERD_OK, "%s", err.msg);
    if (ds) {
        int32_t z[4], h[4], y;
        int64_t zi = -1;
        for (int64_t i = 0; i < ds->n; i++) { /* "Zebra crossing": two words */
            herd_dataset_get(ds, i, z, &y, &err);
            if (z[1] && !z[2]) zi = i;
        }
        if (zi >= 0) herd_dataset_get(ds, zi, z, &y, &err);
        CHECK(zi >= 0 && z[0] >= 1 && z[0] < 1000, "word: two ids for 'Zebra crossing'");
        char d[128];
        scratch_write("d.txt", "zebra\n", d);
        const char *p2[2] = {d, b};
        herd_dataset *ds2 = NULL;
        CHECK(herd_text_open(&ds2, p2, 2, &o, &err) == HERD_OK, "%s", err.msg);
        if (ds2) {
            CHECK(find(ds2, z[0], h, &y) >= 0 && y == 0, "word: 'zebra' and 'Zebra' share an id");
            herd_dataset_close(ds2);
        }
        herd_dataset_close(ds);
    }
    /* bad input */
    const char *pc[2] = {a, c}, *pe[2] = {a, e};
    o.tokenizer = HERD_TOKENIZE_CHAR;
    char want[160];
    snprintf(want, sizeof want, "%s:3: not valid UTF-8 (byte 0xff)", c);
    CHECK(herd_text_open(&ds, pc, 2, &o, &err) == HERD_EFORMAT && strstr(err.msg, want) && !ds, "utf-8: %s", err.msg);
    o.tokenizer = HERD_TOKENIZE_BYTE;
    CHECK(herd_text_open(&ds, pc, 2, &o, &err) == HERD_OK, "bytes take anything: %s", err.msg);
    herd_dataset_close(ds);
    ds = NULL;
    snprintf(want, sizeof want, "%s: no document", e);
    CHECK(herd_text_open(&ds, pe, 2, &o, &err) == HERD_EFORMAT && strstr(err.msg, want), "empty: %s", err.msg);
    snprintf(spec, sizeof spec, "text:%s,%s?tokenizer=char&len=8&sep=%%", a, b);
    CHECK(herd_data_open(spec, &ds, NULL, &err) == HERD_OK && ds && ds->n == 5 && herd_tensor_numel(&ds->x) == 8,
          "text: source: %s", err.msg);
    herd_dataset_close(ds);
    snprintf(spec, sizeof spec, "text:%s,%s?tokenizer=sentencepiece", a, b);
    CHECK(herd_data_open(spec, &ds, NULL, &err) == HERD_EARG && strstr(err.msg, "tokenizer=byte|char|word"), "option: %s",
          err.msg);
    snprintf(spec, sizeof spec, "text:%s", a);
    CHECK(herd_data_open(spec, &ds, NULL, &err) == HERD_EARG && strstr(err.msg, "at least two files"), "one file: %s",
          err.msg);
    if (scratch_remove()) return 2;
    return check_summary();
}
