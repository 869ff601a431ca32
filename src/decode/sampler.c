/* sampler.c: see sampler.h. top-k and top-p select and sort only what they keep (a
 * histogram of the probabilities, then a partial quicksort), never the whole vocabulary;
 * tests/oracle/sampler_ref.c is the full sort they must equal bit for bit. */
#include "decode/sampler.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/ops.h"

int mtp_argmax(const float *logits, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (logits[j] > logits[best]) best = j;
    return best;
}

/* The order of top-k and top-p: probability descending, then id ascending. The
 * probabilities are softmax outputs, >= 0, and for those the order of the bits of |p| as
 * unsigned integers is the order of the values (-0 and +0 alike); so one 64-bit key per
 * entry, larger first, is the whole order, and it is total (ids differ). (A NaN, from
 * non-finite logits, gets some place in it; the full sort's order is then undefined.) */
static inline uint32_t prob_bits(float p) {
    uint32_t b;
    memcpy(&b, &p, sizeof b);
    return b & 0x7FFFFFFFu;
}

static inline uint64_t order_key(mtp_prob_id e) {
    return (uint64_t)prob_bits(e.p) << 32 | (uint32_t)~(uint32_t)e.id;
}

static inline void swap_ids(mtp_prob_id *a, mtp_prob_id *b) {
    mtp_prob_id t = *a;
    *a = *b;
    *b = t;
}

/* Sorts a (n) in the order; returns the comparisons made. */
static size_t insertion_sort(mtp_prob_id *a, int n) {
    size_t work = 0;
    for (int i = 1; i < n; i++) {
        mtp_prob_id e = a[i];
        uint64_t k = order_key(e);
        int j = i;
        while (j > 0 && (work++, order_key(a[j - 1]) < k)) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = e;
    }
    return work;
}

/* Partitions a (n, n >= 3) around the median of three entries at random places (any
 * pivot gives the same result; fixed ones, first, middle and last, are slow on the
 * interleaved runs of a few tied values): returns its position p, with a[0, p) before it
 * in the order and a(p, n) after. */
static int partition(mtp_prob_id *a, int n, mtp_rng *r) {
    int x = (int)mtp_rng_below(r, (uint64_t)n), y = (int)mtp_rng_below(r, (uint64_t)n),
        z = (int)mtp_rng_below(r, (uint64_t)n);
    uint64_t kx = order_key(a[x]), ky = order_key(a[y]), kz = order_key(a[z]);
    int med = (kx > ky) == (ky > kz) ? y : (ky > kx) == (kx > kz) ? x : z;
    swap_ids(&a[0], &a[med]);
    uint64_t pk = order_key(a[0]);
    int i = 0, j = n;
    for (;;) {
        do i++; while (i < n && order_key(a[i]) > pk);
        do j--; while (order_key(a[j]) < pk); /* stops at a[0] at the latest */
        if (i >= j) break;
        swap_ids(&a[i], &a[j]);
    }
    swap_ids(&a[0], &a[j]);
    return j;
}

/* Partial quicksort (Martinez 2004): a[0, m) becomes the first m of a (n) in the order,
 * sorted; the rest follows in no order. Expected O(n + m log m); it recurses into the
 * smaller side only, so the depth is O(log n). Returns the work: the entries partitioned
 * plus the comparisons of the insertion sorts, the tests' measure of it. */
static size_t first_sorted(mtp_prob_id *a, int n, int m, mtp_rng *r) {
    size_t work = 0;
    if (m > n) m = n;
    while (m > 0 && n > 16) {
        int p = partition(a, n, r);
        work += (size_t)n;
        if (p >= m) { /* a[0, m) lies before the pivot */
            n = p;
        } else if (p + 1 >= m) { /* all of a[0, p) and the pivot: sort the left side */
            n = m = p;
        } else if (p < n - p - 1) { /* both sides: the smaller one by recursion */
            work += first_sorted(a, p, p, r);
            a += p + 1, n -= p + 1, m -= p + 1;
        } else {
            work += first_sorted(a + p + 1, n - p - 1, m - p - 1, r);
            n = m = p;
        }
    }
    if (m > 0) work += insertion_sort(a, n);
    return work;
}

/* The histogram of the probabilities by the top 11 bits of |p| (exponent, 3 bits of
 * mantissa): a bucket spans a factor of 2^(1/8) and lies wholly before or after another
 * in the order, so the entries of the buckets above one are the first entries. */
enum { BUCKET_SHIFT = 20, N_BUCKETS = 1 << (31 - BUCKET_SHIFT) };

static inline int bucket_of(float p) { return (int)(prob_bits(p) >> BUCKET_SHIFT); }

/* Appends to idx[n..] the ids j (ascending) whose bucket is below hi; returns the new n. */
static int gather_below(mtp_prob_id *idx, int n, const float *probs, int V, int hi) {
    for (int j = 0; j < V; j++)
        if (bucket_of(probs[j]) < hi) idx[n++] = (mtp_prob_id){probs[j], j};
    return n;
}

/* top-k and top-p over the ids in order, without sorting them all. The histogram says in
 * which bucket B the first top_k entries or the mass top_p end (its mass is summed in
 * another order, so this is a guess); idx is filled with the entries of the buckets above
 * B, then those of B, then (only if the guess fell short) those below, and each region is
 * sorted only as far as the walk needs it: above B wholly (it is all needed, but for
 * rounding), B partially by a guess from its mean probability, doubling when short. The
 * walk adds the probabilities in the full sort's order, so it stops where the full sort
 * would; returns the kept count, idx[0, keep) holding them in order. */
static int nucleus(mtp_prob_id *idx, const float *probs, int V, int keep, double top_p,
                   size_t *work) {
    int count[N_BUCKETS] = {0};
    double mass[N_BUCKETS] = {0};
    for (int j = 0; j < V; j++) {
        int b = bucket_of(probs[j]);
        count[b]++;
        mass[b] += probs[j];
    }
    int B = N_BUCKETS - 1, above = 0;
    double mass_above = 0;
    while (B > 0 && above + count[B] < keep && mass_above + mass[B] < top_p)
        above += count[B], mass_above += mass[B], B--;
    int n_b = count[B], filled = above + n_b, sorted = 0, n = 0;
    for (int j = 0, a = 0, b = above; j < V; j++) { /* gather: above B, then B, in one pass */
        int k = bucket_of(probs[j]);
        if (k > B) idx[a++] = (mtp_prob_id){probs[j], j};
        else if (k == B) idx[b++] = (mtp_prob_id){probs[j], j};
    }
    double sum = 0;
    mtp_rng r = {1}; /* the pivots' */
    while (n < keep && sum < top_p) {
        if (n == sorted) {
            int end, m;
            if (sorted < above) { /* above B: all of it */
                end = above, m = above - sorted;
            } else if (sorted < above + n_b) { /* B: a guess, then doubling */
                double need = top_p - mass_above; /* > 0 */
                end = above + n_b;
                if (sorted > above) /* short: double it */
                    m = sorted - above;
                else if (need < mass[B]) /* its mean probability's share, and some */
                    m = (int)(need / mass[B] * n_b) + 2;
                else /* top_k ends in B, or mass[B] is 0 */
                    m = n_b;
                if (m < 16) m = 16;
            } else { /* below B, gathered now: rounding made the guess short */
                if (filled < V) filled = gather_below(idx, filled, probs, V, B);
                end = V, m = sorted > 64 ? sorted : 64;
            }
            if (m > end - sorted) m = end - sorted;
            if (m > keep - sorted) m = keep - sorted;
            *work += first_sorted(idx + sorted, end - sorted, m, &r);
            sorted += m;
        }
        sum += idx[n++].p;
    }
    return n;
}

size_t mtp_probs(float *probs, const float *logits, int V, const mtp_sampling *s,
                 mtp_prob_id *idx) {
    float mx = logits[mtp_argmax(logits, V)];
    for (int j = 0; j < V; j++) probs[j] = (logits[j] - mx) / s->temp;
    mtp_softmax(probs, V, 0); /* the largest is now 0 */
    int keep_k = s->top_k > 0 && s->top_k < V, keep_p = s->top_p > 0 && s->top_p < 1;
    if (!keep_k && !keep_p) return 0;
    size_t work = 0;
    int keep = nucleus(idx, probs, V, keep_k ? s->top_k : V, keep_p ? s->top_p : INFINITY, &work);
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += idx[i].p;
    memset(probs, 0, (size_t)V * sizeof *probs);
    for (int i = 0; i < keep; i++) probs[idx[i].id] = (float)(idx[i].p / kept);
    return work;
}

int mtp_draw(const float *probs, int V, double u) {
    double c = 0;
    int last = 0;
    for (int j = 0; j < V; j++) {
        if (probs[j] <= 0) continue;
        c += probs[j];
        last = j;
        if (u < c) return j;
    }
    return last; /* rounding: u beyond the accumulated mass */
}

int mtp_residual(float *p, const float *q, int V) {
    double sum = 0;
    for (int j = 0; j < V; j++) sum += p[j] > q[j] ? p[j] - q[j] : 0;
    if (sum <= 0) return 0;
    for (int j = 0; j < V; j++) p[j] = p[j] > q[j] ? (float)((p[j] - q[j]) / sum) : 0.0f;
    return 1;
}
