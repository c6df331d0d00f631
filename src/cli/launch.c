/* herd's convenience launcher for one machine: `herd train ... -n N` re-runs the same
 * command under `mpirun -np N`, so users never type mpirun for local workers. Across
 * machines users call mpirun/srun themselves; herd then only joins the job. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "dist/comm.h"

int cli_launch_local(int argc, char **argv, int workers, int *rc) {
    if (workers <= 1 || herd_comm_launched()) return 0;
    *rc = 1;
    int threads_per_rank = herd_cpu_count() / workers > 0 ? herd_cpu_count() / workers : 1;
    if (!herd_comm_has_mpi()) {
        cli_error("-n %d needs MPI, but this herd was built without it (install libopenmpi-dev openmpi-bin and "
                  "rebuild)", workers);
        return 1;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        cli_error("cannot find my own executable to launch workers: %s", strerror(errno));
        return 1;
    }
    self[len] = 0;
    char np[16], th[16];
    snprintf(np, sizeof np, "%d", workers);
    snprintf(th, sizeof th, "%d", threads_per_rank);
    char **args = calloc((size_t)argc + 16, sizeof *args);
    if (!args) return 1;
    int k = 0;
    args[k++] = "mpirun";
    args[k++] = "-np";
    args[k++] = np;
    args[k++] = "--oversubscribe"; /* more ranks than cores is the user's call, not an error */
    args[k++] = "--bind-to";
    args[k++] = "none"; /* herd pins nothing; binding every rank to one core would serialise threads */
    args[k++] = "--mca";
    args[k++] = "btl";
    args[k++] = "self,vader,tcp";
    args[k++] = self;
    int have_threads = 0, have_progress = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--workers")) {
            i++; /* the workers must not launch again */
            continue;
        }
        if (!strncmp(argv[i], "--workers=", 10)) continue;
        if (!strcmp(argv[i], "--threads") || !strncmp(argv[i], "--threads=", 10)) have_threads = 1;
        if (!strcmp(argv[i], "--progress") || !strncmp(argv[i], "--progress=", 11)) have_progress = 1;
        args[k++] = argv[i];
    }
    if (!have_threads) {
        args[k++] = "--threads";
        args[k++] = th;
    }
    /* mpirun gives ranks a pseudo-terminal, so decide bar or plain lines from our own stdout */
    if (!have_progress && !strcmp(argv[1], "train")) {
        args[k++] = "--progress";
        args[k++] = isatty(STDOUT_FILENO) ? "bar" : "plain";
    }
    args[k] = NULL;
    /* OpenMPI refuses to run as root unless told; the user asked for local workers, so we tell it here only */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    fflush(NULL);
    execvp("mpirun", args);
    cli_error("cannot run mpirun: %s (install openmpi-bin)", strerror(errno));
    free(args);
    return 1;
}
