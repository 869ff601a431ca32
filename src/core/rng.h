/* rng.h: a small seeded generator (splitmix64) for initialisation and data order.
 * The whole state is one uint64, so a checkpoint can store it exactly. */
#ifndef MTP_RNG_H
#define MTP_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t s;
} mtp_rng;

static inline uint64_t mtp_rng_u64(mtp_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 random bits */
static inline double mtp_rng_uniform(mtp_rng *r) { return (mtp_rng_u64(r) >> 11) * 0x1.0p-53; }

/* uniform integer in [0, n) */
static inline uint64_t mtp_rng_below(mtp_rng *r, uint64_t n) { return mtp_rng_u64(r) % n; }

/* standard normal (Box-Muller; one value per call keeps the state simple) */
static inline double mtp_rng_normal(mtp_rng *r) {
    double u1 = mtp_rng_uniform(r), u2 = mtp_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

#endif
