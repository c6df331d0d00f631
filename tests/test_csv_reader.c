/* CSV reader: quoted fields (escaped quotes, commas and newlines inside), CRLF, a blank
 * trailing line, a chosen label column; and each kind of bad file with its one-line error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "sample_check.h"
#include "herd/data.h"

static char dir[64], path[256];

static void write_text(const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0) {
        perror(path);
        exit(2);
    }
    fclose(f);
}

/* Opening text must fail with a one-line message starting "path:" and containing want. */
static void expect_error(const char *text, const char *label, const char *want) {
    herd_dataset *ds = NULL;
    herd_error err = {0};
    write_text(text);
    herd_status st = herd_csv_open(&ds, path, label, &err);
    CHECK(st != HERD_OK && !ds, "accepted a bad file (%s)", want);
    CHECK(strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, want) && !strchr(err.msg, '\n'),
          "message '%s' should name %s and say '%s'", err.msg, path, want);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/herd_csv_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    snprintf(path, sizeof path, "%s/d.csv", dir);

    /* quotes, "" escapes, a comma and a newline inside quotes, CRLF, blank trailing line */
    write_text("\"x, \"\"one\"\"\",label,\"y\r\nwith newline\"\r\n"
               "1.5,0,-2\r\n"
               "\"3\",2,4e1\r\n"
               " 5 , 1 ,\"6\"\r\n"
               "\r\n");
    herd_dataset *ds = NULL;
    herd_error err = {0};
    herd_status st = herd_csv_open(&ds, path, NULL, &err);
    CHECK(st == HERD_OK, "good file: %s", err.msg);
    if (st == HERD_OK) {
        CHECK(ds->n == 3 && sample_is(ds, HERD_F32, "2") && ds->num_classes == 3, "n=%lld samples %s classes=%d",
              (long long)ds->n, sample_desc(ds), ds->num_classes);
        float x[2];
        int32_t y;
        const float want[3][2] = {{1.5f, -2}, {3, 40}, {5, 6}};
        const int32_t labels[3] = {0, 2, 1};
        for (int i = 0; i < 3; i++) {
            CHECK(get_f32(ds, i, x, &y, &err) == HERD_OK, "get %d: %s", i, err.msg);
            CHECK(x[0] == want[i][0] && x[1] == want[i][1] && y == labels[i], "row %d: %g %g %d", i, x[0], x[1], y);
        }
        CHECK(get_f32(ds, 3, x, &y, &err) == HERD_EARG, "index past the end");
    }
    herd_dataset_close(ds);

    /* the label column chosen by name; LF line ends, no trailing newline; a UTF-8 BOM */
    write_text("\xEF\xBB\xBF" "a,cls\n1,1\n2,0");
    st = herd_csv_open(&ds, path, "cls", &err);
    CHECK(st == HERD_OK && ds->n == 2 && sample_is(ds, HERD_F32, "1") && ds->num_classes == 2, "label=cls: %s",
          err.msg);
    herd_dataset_close(ds);

    expect_error("a,b,label\n1,2,0\n1,2\n", NULL, ":3: 2 fields, header has 3");
    expect_error("a,b,label\n1,2,0\n1,2,3,4\n", NULL, ":3: 4 fields, header has 3");
    expect_error("a,b,label\n1,2,0\n\n1,2,0\n", NULL, ":3: 1 field, header has 3");
    expect_error("a,\"quoted\nheader\",label\n1,2,0\n1,x,0\n", NULL, ":4: column 'quoted header': 'x'");
    expect_error("a,b,label\n1,2,0\n1,abc,0\n", NULL, ":3: column 'b': 'abc' is not a finite number");
    expect_error("a,b,label\n1,nan,0\n", NULL, ":2: column 'b': 'nan'");
    expect_error("a,b,label\n1,1e999,0\n", NULL, ":2: column 'b'");
    expect_error("a,b,label\n1,,0\n", NULL, ":2: column 'b': ''");
    expect_error("a,b\n1,2\n", NULL, ":1: no label column 'label'");
    expect_error("a,b,label\n1,2,0\n", "target", "no label column 'target'");
    expect_error("a,b,label\n1,2,-1\n", NULL, ":2: label '-1' is not a class id");
    expect_error("a,b,label\n1,2,1.5\n", NULL, ":2: label '1.5' is not a class id");
    expect_error("a,b,label\n1,2,\"0\n", NULL, ":2: quoted field never closed");
    expect_error("a,b,label\n1,\"2\"x,0\n", NULL, ":2: text after a closing quote");
    expect_error("a,b,label\n1,2\"3,0\n", NULL, ":2: quote inside an unquoted field");
    expect_error("a,b,label\n1,2\r0\n", NULL, ":2: carriage return");
    expect_error("a,b,label\n", NULL, "no data rows");
    expect_error("label\n1\n", NULL, "only the label column");
    expect_error("a,label,label\n1,2,3\n", NULL, "appears twice");
    expect_error("", NULL, "empty file");

    st = herd_csv_open(&ds, "/nonexistent/x.csv", NULL, &err);
    CHECK(st == HERD_EIO && strstr(err.msg, "/nonexistent/x.csv: cannot open"), "missing file: %s", err.msg);

    /* through --data: train.csv with test.csv beside it */
    char train[160], test[160];
    snprintf(train, sizeof train, "%s/train.csv", dir);
    snprintf(test, sizeof test, "%s/test.csv", dir);
    snprintf(path, sizeof path, "%s", train);
    write_text("f,label\n1,0\n2,1\n3,1\n");
    herd_dataset *tr = NULL, *te = NULL;
    st = herd_data_open(train, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && tr->n == 3 && !te, "train.csv alone: %s", err.msg);
    herd_dataset_close(tr);
    snprintf(path, sizeof path, "%s", test);
    write_text("f,label\n4,0\n");
    st = herd_data_open(train, &tr, &te, &err);
    CHECK(st == HERD_OK && tr && te && te->n == 1, "train.csv + test.csv: %s", err.msg);
    herd_dataset_close(tr);
    herd_dataset_close(te);
    snprintf(path, sizeof path, "%s?label=f", train);
    st = herd_data_open(path, &tr, NULL, &err);
    CHECK(st == HERD_OK && tr && tr->num_classes == 4, "?label=f: %s", err.msg);
    herd_dataset_close(tr);
    snprintf(path, sizeof path, "%s?colour=red", train);
    st = herd_data_open(path, &tr, NULL, &err);
    CHECK(st == HERD_EARG && strstr(err.msg, "unknown option 'colour=red'"), "unknown option: %s", err.msg);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
