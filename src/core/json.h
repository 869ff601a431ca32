/* json.h: the one writer of the JSON that mtp emits: metrics.jsonl, every `--json` line
 * (eval, generate, task, bench), experiment results and the training options kept in a
 * state file. Built on cJSON. A number that is not finite is written as null: JSON has
 * no NaN or infinity, and text such as `-nan` breaks every reader of the file.
 * Not a parser: reading stays with cJSON_Parse. */
#ifndef MTP_JSON_H
#define MTP_JSON_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "mtp.h"

/* The functions are declared in mtp.h (the CLI writes its --json lines with them). */

#endif
