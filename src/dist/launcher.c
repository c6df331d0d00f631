/* The one answer to "was this process started by an MPI launcher?", for both communicator
 * builds and the CLI: OpenMPI's mpirun (OMPI_COMM_WORLD_SIZE), or a PMI/PMIx server such as
 * srun --mpi=pmix (PMI_SIZE, PMI_RANK, PMIX_RANK). */
#include <stdlib.h>

#include "dist/comm.h"

int herd_comm_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMI_RANK") || getenv("PMIX_RANK");
}
