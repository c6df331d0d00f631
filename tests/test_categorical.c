/* Categorical columns of CSV and SQLite sources (cat=, hash=, seed=): vocabulary ids in order of
 * first appearance, hashed ids in range and the same in two files, one i32 (1) field per column
 * after the numeric features, the note's counts and collision rate, and the refusals (a column
 * that does not exist, a train/test pair numbered apart). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "herd/data.h"
#include "scratch_files.h"


/* sample i's fields as batch values: the f32 features, then the ids */
static void row(herd_dataset *ds, int64_t i, float *v, int32_t *label) {
    herd_error err = {0};
    CHECK(herd_dataset_batch(ds, &i, 1, v, label, &err) == HERD_OK, "%s", err.msg);
}

static int32_t id_at(const float *v, int k) {
    int32_t x;
    memcpy(&x, v + k, 4);
    return x;
}

int main(void) {
    if (!scratch_init("herd_cat")) return 2;
    char train[128], test[128], spec[512];
    scratch_write("train.csv", "user,x,item,label\nann,0.5,tea,1\nbob,1.5,tea,0\nann,2,coffee,1\n\"c,d\",3,tea,0\n", train);
    scratch_write("test.csv", "user,x,item,label\nbob,1,coffee,1\nzed,2,tea,0\n", test);
    herd_error err = {0};
    herd_dataset *ds = NULL, *te = NULL;
    herd_table_options opt = {.cat = "user,item"};
    CHECK(herd_csv_open_with(&ds, train, &opt, &err) == HERD_OK, "%s", err.msg);
    if (ds) {
        CHECK(herd_dataset_field_count(ds) == 3 && ds->x.dtype == HERD_F32 && herd_tensor_numel(&ds->x) == 1 &&
              ds->more[0].dtype == HERD_I32 && ds->more[1].dtype == HERD_I32, "fields: %d", herd_dataset_field_count(ds));
        float v[3];
        int32_t y;
        int32_t want_user[4] = {0, 1, 0, 2}, want_item[4] = {0, 0, 1, 0};
        for (int i = 0; i < 4; i++) {
            row(ds, i, v, &y);
            CHECK(id_at(v, 1) == want_user[i] && id_at(v, 2) == want_item[i], "row %d: user %d item %d", i, id_at(v, 1),
                  id_at(v, 2));
        }
        row(ds, 2, v, &y);
        CHECK(v[0] == 2.0f && y == 1, "row 2: x %g label %d", v[0], y);
        CHECK(!strcmp(ds->note, "user: 3 values, ids 0..2; item: 2 values, ids 0..1"), "note: %s", ds->note);
        herd_dataset_close(ds);
    }
    /* only categorical columns: the first is x */
    scratch_write("ids.csv", "a,label,b\nx,0,p\ny,1,q\n", spec);
    opt.cat = "b,a";
    CHECK(herd_csv_open_with(&ds, spec, &opt, &err) == HERD_OK, "%s", err.msg);
    if (ds) {
        float v[2];
        int32_t y;
        row(ds, 1, v, &y);
        CHECK(herd_dataset_field_count(ds) == 2 && ds->x.dtype == HERD_I32 && id_at(v, 0) == 1 && id_at(v, 1) == 1,
              "ids only: %d fields, %d %d", herd_dataset_field_count(ds), id_at(v, 0), id_at(v, 1));
        herd_dataset_close(ds);
    }
    /* hashed: the same value gets the same id in both files, within the rows */
    snprintf(spec, sizeof spec, "%s?cat=user,item&hash=16&seed=3", train);
    CHECK(herd_data_open(spec, &ds, &te, &err) == HERD_OK && te, "hash pair: %s", err.msg);
    if (ds && te) {
        float a[3], b[3];
        int32_t y;
        row(ds, 1, a, &y); /* bob, tea */
        row(te, 0, b, &y); /* bob, coffee */
        CHECK(id_at(a, 1) == id_at(b, 1) && id_at(a, 1) >= 0 && id_at(a, 1) < 16, "bob: %d vs %d", id_at(a, 1), id_at(b, 1));
        row(ds, 2, a, &y); /* coffee */
        CHECK(id_at(a, 2) == id_at(b, 2), "coffee: %d vs %d", id_at(a, 2), id_at(b, 2));
        CHECK(strstr(ds->note, "user: 3 values hashed into 16 rows") && strstr(ds->note, "collide"), "note: %s", ds->note);
    }
    herd_dataset_close(ds), herd_dataset_close(te);
    ds = te = NULL;
    /* target=COL: f32 values, not classes */
    char rt[128];
    scratch_write("r.csv", "u,rating\nann,4.5\nbob,1\n", rt);
    snprintf(spec, sizeof spec, "%s?cat=u&target=rating", rt);
    CHECK(herd_data_open(spec, &ds, NULL, &err) == HERD_OK && ds && ds->y.dtype == HERD_F32 && ds->num_classes == 0,
          "target=: %s", err.msg);
    if (ds) {
        float v[1], yv;
        int64_t i = 0;
        CHECK(herd_dataset_batch(ds, &i, 1, v, &yv, &err) == HERD_OK && yv == 4.5f, "target value %g", yv);
        herd_dataset_close(ds);
        ds = NULL;
    }
    /* refusals: one line naming the file */
    snprintf(spec, sizeof spec, "%s?cat=user,zz", train);
    CHECK(herd_data_open(spec, &ds, NULL, &err) != HERD_OK && strstr(err.msg, "train.csv:1: no column named 'zz' (cat=)"),
          "missing column: %s", err.msg);
    snprintf(spec, sizeof spec, "%s?cat=user", train);
    CHECK(herd_data_open(spec, &ds, &te, &err) == HERD_EARG && strstr(err.msg, "add hash=N"), "pair: %s", err.msg);
    snprintf(spec, sizeof spec, "%s?cat=user&hash=0", train);
    CHECK(herd_data_open(spec, &ds, NULL, &err) == HERD_EARG, "hash=0: %s", err.msg);
    /* SQLite: integer and text values alike */
    char db[128];
    snprintf(db, sizeof db, "%s/r.db", scratch_dir);
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK ||
        sqlite3_exec(h, "CREATE TABLE r(s INTEGER, d TEXT, y INTEGER);"
                        "INSERT INTO r VALUES (7, 'a', 1), (9, 'b', 2), (7, 'b', 3);", NULL, NULL, NULL) != SQLITE_OK)
        return 2;
    sqlite3_close(h);
    snprintf(spec, sizeof spec, "sqlite:%s?label=y&cat=s,d&query=SELECT s, d, y FROM r ORDER BY rowid", db);
    CHECK(herd_data_open(spec, &ds, NULL, &err) == HERD_OK, "sqlite: %s", err.msg);
    if (ds) {
        float v[2];
        int32_t y;
        row(ds, 2, v, &y);
        CHECK(herd_dataset_field_count(ds) == 2 && id_at(v, 0) == 0 && id_at(v, 1) == 1 && y == 3,
              "sqlite row 2: %d %d %d", id_at(v, 0), id_at(v, 1), y);
        CHECK(!strcmp(ds->note, "s: 2 values, ids 0..1; d: 2 values, ids 0..1"), "sqlite note: %s", ds->note);
        herd_dataset_close(ds);
        ds = NULL;
    }
    snprintf(spec, sizeof spec, "sqlite:%s?label=y&cat=q&query=SELECT s, d, y FROM r", db);
    CHECK(herd_data_open(spec, &ds, NULL, &err) != HERD_OK && strstr(err.msg, "no column named 'q' (cat=)"),
          "sqlite missing: %s", err.msg);
    /* bag columns (cat=COL:L): up to L blank-separated values a row, an i32 (L) field, unused slots HERD_NO_ID */
    scratch_write("bags.csv", "user,tags,label\nann,red blue,1\nbob,  blue\t green red ,0\nann,red,1\n", spec);
    opt = (herd_table_options){.cat = "user,tags:3"};
    CHECK(herd_csv_open_with(&ds, spec, &opt, &err) == HERD_OK, "bags: %s", err.msg);
    if (ds) {
        CHECK(herd_dataset_field_count(ds) == 2 && herd_tensor_numel(&ds->x) == 1 && herd_tensor_numel(&ds->more[0]) == 3,
              "bag fields: %d", herd_dataset_field_count(ds));
        int32_t want[3][4] = {{0, 0, 1, HERD_NO_ID}, {1, 1, 2, 0}, {0, 0, HERD_NO_ID, HERD_NO_ID}}, y;
        for (int i = 0; i < 3; i++) {
            float v[4];
            row(ds, i, v, &y);
            for (int k = 0; k < 4; k++) CHECK(id_at(v, k) == want[i][k], "bag row %d slot %d: %d", i, k, id_at(v, k));
        }
        CHECK(!strcmp(ds->note, "user: 2 values, ids 0..1; tags: 3 values, ids 0..2"), "bag note: %s", ds->note);
        herd_dataset_close(ds);
        ds = NULL;
    }
    char bad[128];
    scratch_write("empty_bag.csv", "tags,label\na b,1\n \t,0\n", bad);
    opt.cat = "tags:4";
    CHECK(herd_csv_open_with(&ds, bad, &opt, &err) == HERD_EFORMAT && strstr(err.msg, "empty_bag.csv:3: column 'tags': an empty bag"),
          "empty bag: %s", err.msg);
    opt.cat = "tags:1";
    CHECK(herd_csv_open_with(&ds, bad, &opt, &err) == HERD_EFORMAT &&
          strstr(err.msg, "empty_bag.csv:2: column 'tags': more than the bag's 1 values (cat=tags:1)"), "long bag: %s", err.msg);
    opt.cat = "tags:0";
    CHECK(herd_csv_open_with(&ds, bad, &opt, &err) == HERD_EARG && strstr(err.msg, "NAME:L with L in 1..65536"), "L 0: %s",
          err.msg);
    snprintf(spec, sizeof spec, "sqlite:%s?label=y&cat=d:2&query=SELECT d || ' ' || s AS d, y FROM r ORDER BY rowid", db);
    CHECK(herd_data_open(spec, &ds, NULL, &err) == HERD_OK, "sqlite bags: %s", err.msg);
    if (ds) {
        float v[2];
        int32_t y;
        row(ds, 2, v, &y);
        CHECK(id_at(v, 0) == 2 && id_at(v, 1) == 1, "sqlite bag row 2: %d %d", id_at(v, 0), id_at(v, 1));
        herd_dataset_close(ds);
        ds = NULL;
    }
    snprintf(spec, sizeof spec, "sqlite:%s?label=y&cat=d:1&query=SELECT d || ' ' || s AS d, y FROM r ORDER BY rowid", db);
    CHECK(herd_data_open(spec, &ds, NULL, &err) == HERD_EFORMAT && strstr(err.msg, "r.db: row 1: column 'd': more than"),
          "sqlite long bag: %s", err.msg);
    if (scratch_remove()) return 2;
    return check_summary();
}
