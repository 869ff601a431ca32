/* task_eval.h: scoring a model on the synthetic tasks' fixed test sets.
 * Poly: greedy decoding of the 5 answer tokens after '=' (and the pauses), exact match,
 * per m.
 * Induction: head 1's argmax at each scored position equals the name's second token. */
#ifndef MTP_TASK_EVAL_H
#define MTP_TASK_EVAL_H

#include "model/model.h"
#include "tasks/task_poly.h"

/* acc[m] for m = 1..m_max (acc[0] unused), over the first n_per_m test expressions,
 * each prompt ending with `pause` pause tokens (as the model was trained). */
int mtp_poly_eval(const mtp_model *m, int m_max, int n_per_m, int pause, double *acc,
                  mtp_err *err);
/* Accuracy on the second token of repeated names over the first n test stories. */
int mtp_induction_eval(const mtp_model *m, int n, double *acc, mtp_err *err);

#endif
