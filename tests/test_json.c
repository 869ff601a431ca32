/* test_json.c: the JSON writer (src/json.c): NaN and infinities become null, finite
 * numbers round-trip exactly, and a line is one line that cJSON parses back. Also the
 * training options, which go through the same writer into every state file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/json.h"
#include "train/train.h"


/* the checks name themselves: the message is the location that matters */
static void check(int ok, const char *what) { CHECK(ok, "%s", what); }

int main(void) {
    /* the items themselves, not only their printed text (cJSON prints null too) */
    double odd[4] = {NAN, -NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 4; i++) {
        cJSON *x = mtp_json_number(odd[i]);
        check(cJSON_IsNull(x), "mtp_json_number(non-finite) is a null item");
        cJSON_Delete(x);
    }
    cJSON *one = mtp_json_number(-2.5);
    check(cJSON_IsNumber(one) && one->valuedouble == -2.5, "mtp_json_number(-2.5)");
    cJSON_Delete(one);

    cJSON *j = cJSON_CreateObject();
    mtp_json_add_number(j, "a", NAN);
    mtp_json_add_number(j, "b", -NAN);
    mtp_json_add_number(j, "c", INFINITY);
    mtp_json_add_number(j, "d", -INFINITY);
    mtp_json_add_number(j, "third", 1.0 / 3.0);
    double v[3] = {1.5, NAN, -INFINITY};
    float fv[2] = {INFINITY, 0.25f};
    mtp_json_add_numbers(j, "doubles", v, 3);
    mtp_json_add_floats(j, "floats", fv, 2);
    char *s = mtp_json_text(j);
    cJSON_Delete(j);
    printf("%s\n", s);
    check(!strstr(s, "nan") && !strstr(s, "inf") && !strchr(s, '\n'), "no nan/inf text, one line");
    cJSON *back = cJSON_Parse(s);
    check(back != NULL, "the line parses");
    const char *nulls[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        check(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(back, nulls[i])), nulls[i]);
    const cJSON *third = cJSON_GetObjectItemCaseSensitive(back, "third");
    check(cJSON_IsNumber(third) && third->valuedouble == 1.0 / 3.0, "finite numbers round-trip");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(back, "doubles");
    check(cJSON_GetArraySize(d) == 3 && cJSON_GetArrayItem(d, 0)->valuedouble == 1.5 &&
              cJSON_IsNull(cJSON_GetArrayItem(d, 1)) && cJSON_IsNull(cJSON_GetArrayItem(d, 2)),
          "arrays: non-finite entries are null");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(back, "floats");
    check(cJSON_IsNull(cJSON_GetArrayItem(f, 0)) && cJSON_GetArrayItem(f, 1)->valuedouble == 0.25,
          "float arrays");
    cJSON_Delete(back);
    free(s);

    /* a line through a FILE */
    FILE *tf = tmpfile();
    cJSON *k = cJSON_CreateObject();
    mtp_json_add_number(k, "x", NAN);
    check(tf && mtp_json_write_line(tf, k) == 0, "write_line");
    cJSON_Delete(k);
    char buf[64] = "";
    if (tf) {
        rewind(tf);
        check(fgets(buf, sizeof buf, tf) && !strcmp(buf, "{\"x\":null}\n"), "write_line text");
        fclose(tf);
    }

    /* the training options stored in a state file: a NaN weight is written as null,
     * and reading it back refuses the options instead of inventing a number */
    mtp_train_opts o, r;
    mtp_train_opts_default(&o);
    o.head_weight[1] = NAN;
    char *oj = mtp_train_opts_to_json(&o);
    cJSON *oback = cJSON_Parse(oj);
    check(!strstr(oj, "nan") && oback != NULL, "training options: valid JSON");
    cJSON_Delete(oback);
    mtp_err err;
    mtp_train_opts_default(&r);
    check(mtp_train_opts_from_json(&r, oj, "opts", &err) != 0, "training options: a null weight is refused");
    free(oj);

    return check_finish();
}
