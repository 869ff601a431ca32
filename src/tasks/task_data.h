/* task_data.h: the synthetic tasks as token streams, ready to be written as shards:
 * training samples back to back (never a test sample), and the fixed test set. */
#ifndef MTP_TASK_DATA_H
#define MTP_TASK_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h" /* mtp_token */

typedef enum { MTP_TASK_POLY, MTP_TASK_INDUCTION } mtp_task;

/* vocab_size of the task's tokens (what its shards are written for) */
int mtp_task_vocab(mtp_task task);

/* n tokens of training samples drawn from seed (malloc'd; the last sample may be cut);
 * poly samples with `pause` pause tokens (0 for induction). */
mtp_token *mtp_task_train_tokens(mtp_task task, uint64_t seed, int pause, size_t n);
/* The first `per_m` test expressions of every m (poly) or the first `per_m` test stories
 * (induction), back to back; *n receives the count (malloc'd). */
mtp_token *mtp_task_test_tokens(mtp_task task, int per_m, int pause, size_t *n);

#endif
