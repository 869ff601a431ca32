/* dist.h: training over many processes (data parallel, ZeRO-1), the one place that knows
 * MPI. Under mpirun or srun every rank computes the gradient of its rows of the global
 * batch; the sum over ranks is done by the owner of each slice of the flat parameter
 * buffer, adding the ranks' parts in rank order 0..K-1 (never MPI's own reduction, whose
 * order is unspecified), so a rerun has the same bits. The owner updates its slice with
 * AdamW (it alone holds that slice's moments) and the updated slices are gathered on
 * every rank: all ranks hold the same weights by construction.
 *
 * A process not started by mpirun/srun, or a build without MPI (MTP_HAVE_MPI 0), is one
 * rank of one: every call below is then a no-op or a copy, and MPI is never started. */
#ifndef MTP_DIST_H
#define MTP_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "mtp.h"

typedef struct {
    int rank, size;
    size_t total;  /* floats in the flat parameter buffer */
    size_t lo, hi; /* this rank's slice [lo, hi) of it */
    int check;     /* MTP_TEST_DIST_CHECK=1: compare every rank's weights after each step */
    double wait_s; /* seconds spent in exchanges (posting and waiting) since init */
    double sent;   /* bytes this rank sent since init */
} mtp_dist;

/* Joins the ranks (starting MPI the first time, when launched by mpirun or srun) and
 * splits [0, total) into one slice per rank. */
void mtp_dist_init(mtp_dist *d, size_t total);
/* [lo, hi) of rank r's slice. */
void mtp_dist_slice(const mtp_dist *d, int r, size_t *lo, size_t *hi);

/* Every rank's rc agreed: 0 if all were 0; otherwise -1 on every rank, with the message
 * of the lowest rank that failed in *err (so each rank reports the same error). */
int mtp_dist_agree(const mtp_dist *d, int rc, mtp_err *err);
/* The lowest rank whose n bytes at x differ from rank 0's, or -1 if none does. */
int mtp_dist_differs(mtp_dist *d, const void *x, size_t n);

/* x (n) of rank 0 on every rank. */
void mtp_dist_bcast(mtp_dist *d, float *x, size_t n);
/* g (total) of every rank -> on each rank g[lo, hi) = sum of the ranks' g[lo, hi), added in
 * rank order; the rest of g is left as it was. */
void mtp_dist_reduce_scatter(mtp_dist *d, float *g);
/* Every rank's slice of x (total) to every rank. */
void mtp_dist_allgather(mtp_dist *d, float *x);
/* Every rank's n floats at x (n may differ between ranks), one after the other in rank
 * order, to full on rank 0 (the sum of the n's). */
void mtp_dist_gather(mtp_dist *d, const float *x, size_t n, float *full);
/* x (n) -> on every rank the sum of the ranks' x in rank order. */
void mtp_dist_sum(mtp_dist *d, double *x, int n);

#endif
