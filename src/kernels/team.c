/* team.c: see team.h.
 *
 * Each thread owns a contiguous run of the job's tasks and takes them one by one from its
 * own counter (a cache line only it writes while all goes well); a thread out of work takes
 * from the others' counters. So a helper the system has not scheduled (a loaded machine)
 * costs time, not a wait: the caller does its tasks. A counter packs the job's number with
 * the run's next task and end, so a helper that wakes late finds its old job's runs empty
 * and touches nothing else of it. Helper threads started on first use wait for the next job
 * by spinning on its number for a while (a decoding step's jobs come microseconds apart),
 * then sleep on a condition variable, so an idle process costs no CPU. */
#include "kernels/team.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "kernels/backend.h"

enum { MAX_THREADS = 64, MAX_TASKS = 0xFFFF };
/* A helper spins this long for the next job before it sleeps. The caller waiting for a
 * helper's last tasks spins, giving way to any thread waiting for its core from
 * YIELD_NS on, and from NAP_NS on sleeps in naps of NAP_NS / 10 (a helper the system
 * stopped mid-task may wait for that core). A nap lasts 50 us or more (the timer's
 * slack), so napping early cost 1B decoding 7-17% of its speed. */
enum { IDLE_SPIN_NS = 200 * 1000, YIELD_NS = 50 * 1000, NAP_NS = 2 * 1000 * 1000 };

typedef struct {
    _Alignas(64) _Atomic uint64_t run; /* job number << 32 | next task << 16 | end */
} run_slot;

static struct {
    pthread_mutex_t busy; /* held by the thread whose job the team runs */
    pthread_mutex_t sleep_mu;
    pthread_cond_t wake;
    _Alignas(64) _Atomic uint64_t job; /* the job's number << 8 | its threads, bumped once its runs are set */
    atomic_int sleepers;          /* helpers asleep on wake */
    _Alignas(64) atomic_int finished; /* tasks of the job done */
    int helpers;     /* helper threads started: numbers 1..helpers */
    mtp_team_fn *fn; /* of the job */
    void *ctx;
    run_slot slot[MAX_THREADS];
} team = {.busy = PTHREAD_MUTEX_INITIALIZER, .sleep_mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static _Thread_local int my_number = -1; /* in a job: this thread's number in it */

static void relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static uint64_t run_word(unsigned job, int next, int end) {
    return (uint64_t)job << 32 | (uint64_t)next << 16 | (uint64_t)end;
}

/* Takes the next task of run m of job j: its number, or -1 when the run is empty or the
 * job is over. */
static int take(int m, unsigned j) {
    uint64_t w = atomic_load_explicit(&team.slot[m].run, memory_order_acquire);
    for (;;) {
        int next = (int)(w >> 16 & 0xFFFF), end = (int)(w & 0xFFFF);
        if ((unsigned)(w >> 32) != j || next >= end) return -1;
        if (atomic_compare_exchange_weak_explicit(&team.slot[m].run, &w, run_word(j, next + 1, end),
                                                  memory_order_acq_rel, memory_order_acquire))
            return next;
    }
}

/* Thread k's part of job `job` (as team.job holds it): its own run, then what is left of
 * the others'. */
static void work(int k, uint64_t job) {
    int done = 0, threads = (int)(job & 0xFF);
    unsigned j = (unsigned)(job >> 8);
    if (k >= threads) return; /* a job on fewer threads than there are helpers */
    my_number = k;
    for (int i = 0; i < threads; i++) {
        int m = (k + i) % threads;
        for (int t; (t = take(m, j)) >= 0; done++) team.fn(team.ctx, t);
    }
    my_number = -1;
    if (done) atomic_fetch_add_explicit(&team.finished, done, memory_order_release);
}

/* The next job's number after `seen`: spin, then sleep until it comes. */
static uint64_t wait_for_job(uint64_t seen) {
    long long start = now_ns();
    for (int spins = 1;; spins++) {
        uint64_t j = atomic_load_explicit(&team.job, memory_order_acquire);
        if (j != seen) return j;
        relax();
        if (spins % 256 == 0 && now_ns() - start > IDLE_SPIN_NS) break;
    }
    pthread_mutex_lock(&team.sleep_mu);
    atomic_fetch_add(&team.sleepers, 1); /* seq_cst: the caller sees it, or this sees the job */
    while (atomic_load(&team.job) == seen) pthread_cond_wait(&team.wake, &team.sleep_mu);
    atomic_fetch_sub(&team.sleepers, 1);
    pthread_mutex_unlock(&team.sleep_mu);
    return atomic_load_explicit(&team.job, memory_order_acquire);
}

static void *helper_main(void *arg) {
    int k = (int)(intptr_t)arg;
    for (uint64_t seen = 0;;) {
        seen = wait_for_job(seen);
        work(k, seen);
    }
    return NULL;
}

/* Starts helpers up to `threads` - 1; returns how many threads the team has for a job. */
static int grow(int threads) {
    while (team.helpers + 1 < threads) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int bad = pthread_create(&t, &a, helper_main, (void *)(intptr_t)(team.helpers + 1));
        pthread_attr_destroy(&a);
        if (bad) break; /* run with the threads there are */
        team.helpers++;
    }
    return team.helpers + 1 < threads ? team.helpers + 1 : threads;
}

/* Until all n tasks are done: spin, yield, then nap. */
static void wait_finished(int n) {
    long long start = now_ns();
    for (int spins = 1; atomic_load_explicit(&team.finished, memory_order_acquire) < n; spins++) {
        relax();
        if (spins % 256) continue;
        long long waited = now_ns() - start;
        if (waited > NAP_NS)
            nanosleep(&(struct timespec){0, NAP_NS / 10}, NULL);
        else if (waited > YIELD_NS)
            sched_yield();
    }
}

void mtp_team_run(int n, mtp_team_fn *fn, void *ctx, int threads) {
    threads = threads < n ? threads : n;
    threads = threads < MAX_THREADS ? threads : MAX_THREADS;
    if (threads <= 1 || n > MAX_TASKS || my_number >= 0 || pthread_mutex_trylock(&team.busy)) {
        for (int t = 0; t < n; t++) fn(ctx, t);
        return;
    }
    threads = grow(threads);
    unsigned j = (unsigned)(atomic_load_explicit(&team.job, memory_order_relaxed) >> 8) + 1;
    uint64_t job = (uint64_t)j << 8 | (uint64_t)threads;
    team.fn = fn, team.ctx = ctx;
    atomic_store_explicit(&team.finished, 0, memory_order_relaxed);
    for (int k = 0; k < threads; k++) /* the runs: the same split for the same n and threads */
        atomic_store_explicit(&team.slot[k].run,
                              run_word(j, (int)((long long)n * k / threads), (int)((long long)n * (k + 1) / threads)),
                              memory_order_release);
    atomic_store(&team.job, job); /* seq_cst: see wait_for_job */
    if (atomic_load(&team.sleepers)) {
        pthread_mutex_lock(&team.sleep_mu);
        pthread_cond_broadcast(&team.wake);
        pthread_mutex_unlock(&team.sleep_mu);
    }
    work(0, job);
    wait_finished(n);
    pthread_mutex_unlock(&team.busy);
}

int mtp_team_thread(void) { return my_number >= 0 ? my_number : mtp_backend_thread(); }
