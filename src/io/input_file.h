/* Opening a file herd reads (specs, weights, ONNX, data files): a regular file only. A FIFO
 * would block open() until some writer came (herd would hang), a device such as /dev/zero
 * never ends, and a directory fails on its first read with an unclear message. */
#ifndef HERD_IO_INPUT_FILE_H
#define HERD_IO_INPUT_FILE_H

#include <stdio.h>
#include <sys/stat.h>

#include "herd/core.h"

/* Opens path read-only (close-on-exec) without blocking on a FIFO, and checks it is a
 * regular file: "PATH: cannot open: REASON" or "PATH: not a regular file (a directory)" (a
 * FIFO, a device, a socket) as HERD_EIO. On success *fd is a blocking descriptor and *sb
 * (when not NULL) the file's status. */
herd_status herdi_input_open(const char *path, int *fd, struct stat *sb, herd_error *err);
/* herdi_input_open as a stdio stream ("rb") */
herd_status herdi_input_fopen(const char *path, FILE **f, herd_error *err);

#endif
