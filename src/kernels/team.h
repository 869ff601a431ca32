/* team.h: a fork and join for decoding's many small jobs (team.c), cheaper than an OpenMP
 * parallel region where crossing between cores is slow. Measured on a 2-core Zen 5 virtual
 * machine: a cache line's round trip between the cores 0.5 us, an empty OpenMP
 * `parallel for` 3.3 us, its barrier 1.5 us; a plain step of the demo's model (dim 256,
 * 10 blocks) opened 14 regions in its ~240 us. A job here costs about one round trip: the
 * caller publishes it, the helpers take its tasks.
 *
 * Each thread starts on its own run of tasks, and a thread out of work takes what is left
 * of the others', so which thread runs a task depends on timing: a task must compute the
 * same whichever thread runs it (per-thread scratch by mtp_team_thread() only). */
#ifndef MTP_TEAM_H
#define MTP_TEAM_H

typedef void mtp_team_fn(void *ctx, int task);

/* fn(ctx, t) for every t in 0..n-1, each exactly once, returning when all are done: shared
 * out in contiguous runs over up to `threads` threads (the caller takes the first run), or
 * all run here in order where threads <= 1, when called from inside a job, or while
 * another thread's job holds the team. */
void mtp_team_run(int n, mtp_team_fn *fn, void *ctx, int threads);

/* The calling thread's number in the job it is running: 0..threads-1; outside a job,
 * mtp_backend_thread()'s (OpenMP's). */
int mtp_team_thread(void);

#endif
