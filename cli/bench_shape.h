/* bench_shape.h: `mtp bench decode --shape` (bench_shape.c), and what `mtp bench rows`
 * (bench_rows.c) shares with it. */
#ifndef MTP_CLI_BENCH_SHAPE_H
#define MTP_CLI_BENCH_SHAPE_H

#include "mtp.h"

int bench_shape(const char *shape, mtp_wtype t, int ntok, int plen, int context);
/* the config of a named shape ("1b", "7b"); 0, or a usage error's exit code */
int bench_shape_config(mtp_config *c, const char *shape);
/* this machine's read bandwidth now, GB/s (1 GiB summed on all threads, median of 5) */
double bench_read_bandwidth(void);

#endif
