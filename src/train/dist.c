/* dist.c: see dist.h. Every MPI call of mtp is here. Messages are point-to-point
 * (Isend/Irecv of at most BUCKET floats, so no count exceeds an int), and every sum over
 * ranks is written out below in rank order. */
#include "train/dist.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#if MTP_HAVE_MPI
#include <mpi.h>
#endif

enum { BUCKET = 1 << 20 }; /* floats per message; the reduce-scatter's buffer is size x this */

void mtp_dist_slice(const mtp_dist *d, int r, size_t *lo, size_t *hi) {
    /* equal shares, cut at multiples of 16 floats (64 bytes: whole vectors and lines) */
    *lo = r == 0 ? 0 : d->total / (size_t)d->size * (size_t)r / 16 * 16;
    *hi = r == d->size - 1 ? d->total : d->total / (size_t)d->size * (size_t)(r + 1) / 16 * 16;
}

#if MTP_HAVE_MPI

/* FNV-1a over bytes, for comparing ranks' copies. */
static uint64_t hash_bytes(const void *x, size_t n) {
    const unsigned char *p = x;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* mpirun (Open MPI), srun --mpi=pmix and PMI-2 launchers each leave one of these. */
static int launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static void finalize(void) { MPI_Finalize(); }

void mtp_dist_init(mtp_dist *d, size_t total) {
    memset(d, 0, sizeof *d);
    d->size = 1;
    d->total = total;
    const char *chk = getenv("MTP_TEST_DIST_CHECK");
    d->check = chk && *chk == '1';
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && launched()) {
        int provided;
        MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        atexit(finalize);
        inited = 1;
    }
    if (inited) {
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    }
    mtp_dist_slice(d, d->rank, &d->lo, &d->hi);
}

int mtp_train_rank(void) {
    int inited = 0, rank = 0;
    MPI_Initialized(&inited);
    if (inited) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

int mtp_dist_agree(const mtp_dist *d, int rc, mtp_err *err) {
    if (d->size == 1) return rc;
    int mine = rc ? d->rank : d->size, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == d->size) return 0;
    MPI_Bcast(err->msg, (int)sizeof err->msg, MPI_CHAR, first, MPI_COMM_WORLD);
    return -1;
}

int mtp_dist_differs(mtp_dist *d, const void *x, size_t n) {
    if (d->size == 1) return -1;
    uint64_t h = hash_bytes(x, n), *all = xmalloc((size_t)d->size * sizeof *all);
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    int r = 1;
    while (r < d->size && all[r] == all[0]) r++;
    free(all);
    return r < d->size ? r : -1;
}

/* A growing list of pending requests; wait() finishes them and counts the time. */
typedef struct {
    MPI_Request *q;
    int n, cap;
} reqs;

static void post(reqs *rq, int send, float *x, size_t n, int peer, mtp_dist *d) {
    if (rq->n == rq->cap) {
        rq->cap = rq->cap ? 2 * rq->cap : 64;
        rq->q = xrealloc(rq->q, (size_t)rq->cap * sizeof *rq->q);
    }
    if (send) {
        MPI_Isend(x, (int)n, MPI_FLOAT, peer, 0, MPI_COMM_WORLD, &rq->q[rq->n++]);
        d->sent += (double)n * sizeof(float);
    } else {
        MPI_Irecv(x, (int)n, MPI_FLOAT, peer, 0, MPI_COMM_WORLD, &rq->q[rq->n++]);
    }
}

static void wait_all(reqs *rq) {
    MPI_Waitall(rq->n, rq->q, MPI_STATUSES_IGNORE);
    rq->n = 0;
}

/* [lo, hi) of rank r's slice restricted to bucket j, as an offset and a length. */
static size_t bucket(const mtp_dist *d, int r, size_t j, size_t *off) {
    size_t lo, hi;
    mtp_dist_slice(d, r, &lo, &hi);
    *off = lo + j * BUCKET;
    return *off < hi ? (hi - *off < BUCKET ? hi - *off : BUCKET) : 0;
}

void mtp_dist_bcast(mtp_dist *d, float *x, size_t n) {
    if (d->size == 1) return;
    double t0 = mtp_now();
    for (size_t i = 0; i < n; i += BUCKET)
        MPI_Bcast(x + i, (int)(n - i < BUCKET ? n - i : BUCKET), MPI_FLOAT, 0, MPI_COMM_WORLD);
    d->wait_s += mtp_now() - t0;
}

void mtp_dist_reduce_scatter(mtp_dist *d, float *g) {
    if (d->size == 1) return;
    int K = d->size, me = d->rank;
    float *in = falloc((size_t)K * BUCKET);
    const float **part = xmalloc((size_t)K * sizeof *part);
    reqs rq = {0};
    size_t max_len = 0;
    for (int r = 0; r < K; r++) {
        size_t lo, hi;
        mtp_dist_slice(d, r, &lo, &hi);
        if (hi - lo > max_len) max_len = hi - lo;
    }
    for (size_t j = 0; j * BUCKET < max_len; j++) {
        double t0 = mtp_now();
        size_t off, mine = bucket(d, me, j, &off);
        for (int r = 0; r < K; r++) {
            size_t roff, n = bucket(d, r, j, &roff);
            if (r != me && n) post(&rq, 1, g + roff, n, r, d);
            if (r != me && mine) post(&rq, 0, in + (size_t)r * BUCKET, mine, r, d);
            part[r] = r == me ? g + off : in + (size_t)r * BUCKET;
        }
        wait_all(&rq);
        d->wait_s += mtp_now() - t0;
        float *out = g + off;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < mine; i++) {
            float s = part[0][i];
            for (int r = 1; r < K; r++) s += part[r][i];
            out[i] = s;
        }
    }
    free(rq.q);
    free(part);
    free(in);
}

void mtp_dist_allgather(mtp_dist *d, float *x) {
    if (d->size == 1) return;
    double t0 = mtp_now();
    reqs rq = {0};
    for (int r = 0; r < d->size; r++) {
        if (r == d->rank) continue;
        size_t lo, hi;
        mtp_dist_slice(d, r, &lo, &hi);
        for (size_t i = d->lo; i < d->hi; i += BUCKET)
            post(&rq, 1, x + i, d->hi - i < BUCKET ? d->hi - i : BUCKET, r, d);
        for (size_t i = lo; i < hi; i += BUCKET) post(&rq, 0, x + i, hi - i < BUCKET ? hi - i : BUCKET, r, d);
    }
    wait_all(&rq);
    free(rq.q);
    d->wait_s += mtp_now() - t0;
}

void mtp_dist_gather(mtp_dist *d, const float *x, size_t n, float *full) {
    if (d->size == 1) {
        memcpy(full, x, n * sizeof(float));
        return;
    }
    double t0 = mtp_now();
    unsigned long long mine = n, *counts = d->rank == 0 ? xmalloc((size_t)d->size * sizeof *counts) : NULL;
    MPI_Gather(&mine, 1, MPI_UNSIGNED_LONG_LONG, counts, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
    reqs rq = {0};
    if (d->rank == 0) {
        memcpy(full, x, n * sizeof(float));
        size_t at = n;
        for (int r = 1; r < d->size; r++) {
            for (size_t i = 0; i < counts[r]; i += BUCKET)
                post(&rq, 0, full + at + i, counts[r] - i < BUCKET ? counts[r] - i : BUCKET, r, d);
            at += counts[r];
        }
    } else {
        for (size_t i = 0; i < n; i += BUCKET)
            post(&rq, 1, (float *)x + i, n - i < BUCKET ? n - i : BUCKET, 0, d);
    }
    wait_all(&rq);
    free(rq.q);
    free(counts);
    d->wait_s += mtp_now() - t0;
}

void mtp_dist_sum(mtp_dist *d, double *x, int n) {
    if (d->size == 1) return;
    double t0 = mtp_now(), *all = xmalloc((size_t)d->size * n * sizeof *all);
    MPI_Allgather(x, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
    for (int i = 0; i < n; i++) {
        double s = all[i];
        for (int r = 1; r < d->size; r++) s += all[(size_t)r * n + i];
        x[i] = s;
    }
    free(all);
    d->wait_s += mtp_now() - t0;
}

#else /* one process: every exchange is the identity */

void mtp_dist_init(mtp_dist *d, size_t total) {
    memset(d, 0, sizeof *d);
    d->size = 1;
    d->total = d->hi = total;
}
int mtp_train_rank(void) { return 0; }
int mtp_dist_agree(const mtp_dist *d, int rc, mtp_err *err) { return rc; }
int mtp_dist_differs(mtp_dist *d, const void *x, size_t n) { return -1; }
void mtp_dist_bcast(mtp_dist *d, float *x, size_t n) {}
void mtp_dist_reduce_scatter(mtp_dist *d, float *g) {}
void mtp_dist_allgather(mtp_dist *d, float *x) {}
void mtp_dist_gather(mtp_dist *d, const float *x, size_t n, float *full) { memcpy(full, x, n * sizeof(float)); }
void mtp_dist_sum(mtp_dist *d, double *x, int n) {}

#endif
