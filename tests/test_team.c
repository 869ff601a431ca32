/* test_team.c: the decoding kernels' fork and join (kernels/team.h): every task runs
 * exactly once, on a thread numbered below the threads asked for, whatever the task and
 * thread counts; a job started from inside a job, or while another thread's job holds the
 * team, runs on its caller; many jobs in a row (helpers spinning, then asleep and woken). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "kernels/team.h"

enum { MAX_N = 3000 };

typedef struct {
    atomic_int runs[MAX_N];
    atomic_int bad_thread; /* tasks that saw a thread number out of range */
    int threads;
    atomic_int nested_here; /* inner tasks run on the thread of their outer task */
} counts;

static void count_task(void *ctx, int t) {
    counts *c = ctx;
    atomic_fetch_add(&c->runs[t], 1);
    int k = mtp_team_thread();
    if (k < 0 || k >= (c->threads > 1 ? c->threads : 1)) atomic_fetch_add(&c->bad_thread, 1);
}

/* n tasks on up to `threads`: how many did not run exactly once, or saw a thread number
 * out of range */
static int run_once(int n, int threads) {
    counts *c = calloc(1, sizeof *c);
    c->threads = threads;
    mtp_team_run(n, count_task, c, threads);
    int wrong = atomic_load(&c->bad_thread);
    for (int t = 0; t < n; t++) wrong += atomic_load(&c->runs[t]) != 1;
    free(c);
    return wrong;
}

static void check_once(int n, int threads) {
    int wrong = run_once(n, threads);
    CHECK(wrong == 0, "%d tasks of %d on %d threads ran other than once, or on a thread numbered out of range", wrong,
          n, threads);
}

static void inner_task(void *ctx, int t) {
    (void)t;
    counts *c = ctx;
    atomic_fetch_add(&c->nested_here, 1);
}

static void outer_task(void *ctx, int t) {
    counts *c = ctx;
    int before = mtp_team_thread();
    mtp_team_run(10, inner_task, c, 2); /* from inside a job: runs here, in order */
    if (mtp_team_thread() != before) atomic_fetch_add(&c->bad_thread, 1);
    atomic_fetch_add(&c->runs[t], 1);
}

static void *concurrent(void *arg) {
    int *wrong = arg;
    for (int i = 0; i < 200; i++) *wrong += run_once(1 + (i * 37) % 500, 2);
    return NULL;
}

int main(void) {
    check_threads(4);
    int ns[] = {1, 2, 3, 7, 64, 65, 999, MAX_N};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
        for (int threads = 1; threads <= 4; threads++) check_once(ns[i], threads);

    counts *c = calloc(1, sizeof *c);
    mtp_team_run(8, outer_task, c, 2);
    int wrong = 0;
    for (int t = 0; t < 8; t++) wrong += atomic_load(&c->runs[t]) != 1;
    CHECK(wrong == 0 && atomic_load(&c->nested_here) == 80 && atomic_load(&c->bad_thread) == 0,
          "a job inside a job: %d outer tasks wrong, %d inner runs of 80, %d thread numbers changed", wrong,
          atomic_load(&c->nested_here), atomic_load(&c->bad_thread));
    free(c);

    /* many jobs back to back, then after the helpers have gone to sleep */
    for (int i = 0; i < 2000; i++) check_once(1 + i % 40, 2);
    nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    check_once(100, 3);

    /* two threads starting jobs at once: one runs on the team, the other on its caller; on
     * fewer threads than the helpers started above (they must stay out) */
    pthread_t t;
    int wrong_here = 0, wrong_there = 0;
    CHECK(pthread_create(&t, NULL, concurrent, &wrong_there) == 0, "a second thread starts");
    concurrent(&wrong_here);
    pthread_join(t, NULL);
    CHECK(wrong_here == 0 && wrong_there == 0, "jobs from two threads at once: %d and %d tasks wrong", wrong_here,
          wrong_there);
    return check_finish();
}
