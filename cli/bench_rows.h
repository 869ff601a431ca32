/* bench_rows.h: `mtp bench rows` (bench_rows.c). */
#ifndef MTP_CLI_BENCH_ROWS_H
#define MTP_CLI_BENCH_ROWS_H

int bench_rows(int argc, char **argv);

#endif
