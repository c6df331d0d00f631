/* herd stats: per-channel mean/std/min/max and class counts of a --data source, as a
 * map-reduce over MPI ranks (-n N) that prints the same numbers for any rank count. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "dist/comm.h"
#include "herd/data.h"

int cmd_stats(int argc, char **argv) {
    const char *split = "train", *shape_s = NULL;
    int workers = 1, threads = 0;
    cli_option opts[] = {
        {"--split", OPT_STR, &split, 0, 0, "NAME", "train (default) or test", 0},
        {"--shape", OPT_STR, &shape_s, 0, 0, "CxHxW", "decode image sources to this shape (default: the first image's)", 0},
        {"--threads", OPT_INT, &threads, 1, 1024, "N", "accepted for the launcher; stats reads with one thread per rank", 0},
        {"--workers", OPT_INT, &workers, 1, 4096, "N", "-n N: map the records over N local ranks (herd runs mpirun)", 0},
        {0},
    };
    static const cli_command cmd = {"stats", "herd stats SRC [--split train|test] [-n N]",
                                    "Print per-channel mean, std, min, max and class counts of a --data source.", 1,
                                    NULL};
    const char *pos[1];
    int r = cli_parse(argc, argv, 2, opts, &cmd, pos);
    if (r) return r == 1 ? 0 : r;
    static const char *const splits[] = {"train", "test", NULL};
    int want = cli_choice("--split", split, splits);
    if (want < 0) return 2;
    herd_image_options shape = {0};
    if (shape_s && (sscanf(shape_s, "%dx%dx%d", &shape.c, &shape.h, &shape.w) != 3 || shape.c <= 0 || shape.h <= 0 ||
                    shape.w <= 0)) {
        cli_error("--shape expects CxHxW (e.g. 1x28x28), found '%s'", shape_s);
        return 2;
    }
    if (cli_launch_local(argc, argv, workers, &r)) return r;
    herd_comm *comm = NULL;
    herd_dataset *ds = NULL;
    herd_data_stats s = {0};
    herd_error err = {0};
    int rc = 1;
    if (herd_comm_open(&comm, 60, &err)) {
        cli_error("%s", err.msg);
        return 1;
    }
    int rank = herd_comm_rank(comm), world = herd_comm_size(comm);
    if (herd_data_open_with(pos[0], shape_s ? &shape : NULL, want == 0 ? &ds : NULL, want == 1 ? &ds : NULL, &err))
        goto fail;
    if (!ds) {
        herd_fail(&err, HERD_EIO, "%s: no %s split found", pos[0], split);
        goto fail;
    }
    if (herd_data_stats_compute(&s, ds, rank, world, cli_comm_sum, comm, &err)) goto fail;
    if (rank == 0) {
        char xs[96];
        printf("source: %s\nsamples: %lld\nshape: %s (%s)\n", ds->source, (long long)s.count,
               herd_tensor_shape_str(&ds->x, xs, sizeof xs), herd_dtype_name(ds->x.dtype));
        for (int c = 0; c < s.channels; c++)
            printf("channel %d: mean %.9g std %.9g min %.9g max %.9g\n", c, s.mean[c], s.std[c], s.min[c], s.max[c]);
        printf("classes:");
        for (int k = 0; k < s.num_classes; k++) printf(" %d:%lld", k, (long long)s.class_count[k]);
        printf("\n");
    }
    rc = 0;
fail:
    if (rc) cli_error(world > 1 ? "rank %d: %s" : "%.0d%s", world > 1 ? rank : 0, err.msg);
    cli_bound_shutdown(rank, world);
    if (rc && world > 1) herd_comm_abort(comm, rc);
    herd_data_stats_free(&s);
    herd_dataset_close(ds);
    herd_comm_close(comm);
    return rc;
}
