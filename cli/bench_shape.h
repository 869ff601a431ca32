/* bench_shape.h: `mtp bench decode --shape` (bench_shape.c). */
#ifndef MTP_CLI_BENCH_SHAPE_H
#define MTP_CLI_BENCH_SHAPE_H

#include "mtp.h"

int bench_shape(const char *shape, mtp_wtype t, int ntok, int plen, int context);

#endif
