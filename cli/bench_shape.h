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
/* bytes of weights a pass reads: the trunk, the first `heads` future heads, the unembedding */
double bench_pass_bytes(const mtp_model *m, int heads);
/* prints the cost of a pass of 1, 2, 4, 8 and 16 rows (trunk, head 1, keys and values of
 * heads 2..heads) after `prefix` cached positions against a plain step, and of the draft
 * pass; with bw > 0 (GB/s) the plain step's share of it too. 0, or an exit code. */
int bench_pass_costs(const mtp_model *m, int heads, int prefix, double bw);

#endif
