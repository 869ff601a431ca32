/* json.h: the one writer of the JSON that mtp emits: metrics.jsonl, every `--json` line
 * (eval, generate, task, bench), experiment results and the training options kept in a
 * state file. Built on cJSON. A number that is not finite is written as null: JSON has
 * no NaN or infinity, and text such as `-nan` breaks every reader of the file.
 * Not a parser: reading stays with cJSON_Parse. */
#ifndef MTP_JSON_H
#define MTP_JSON_H

#include <cjson/cJSON.h>
#include <stdio.h>

/* A number item, or a null item when v is NaN or infinite. */
cJSON *mtp_json_number(double v);
/* obj[name] = v (null when not finite). */
void mtp_json_add_number(cJSON *obj, const char *name, double v);
/* obj[name] = [v[0], .., v[n-1]], each as mtp_json_number. */
void mtp_json_add_numbers(cJSON *obj, const char *name, const double *v, int n);
void mtp_json_add_floats(cJSON *obj, const char *name, const float *v, int n);
void mtp_json_add_ints(cJSON *obj, const char *name, const int *v, int n);

/* j as one line of text without a newline, malloc'd (free it with free()). */
char *mtp_json_text(const cJSON *j);
/* Writes j as one line plus '\n' and flushes; -1 if the write failed. */
int mtp_json_write_line(FILE *f, const cJSON *j);

#endif
