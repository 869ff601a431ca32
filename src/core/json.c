/* json.c: see json.h. */
#include "core/json.h"

#include <math.h>
#include <stdlib.h>

#include "core/util.h"

cJSON *mtp_json_number(double v) {
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

void mtp_json_add_number(cJSON *obj, const char *name, double v) {
    cJSON_AddItemToObject(obj, name, mtp_json_number(v));
}

void mtp_json_add_numbers(cJSON *obj, const char *name, const double *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(obj, name);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, mtp_json_number(v[i]));
}

void mtp_json_add_floats(cJSON *obj, const char *name, const float *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(obj, name);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, mtp_json_number(v[i]));
}

void mtp_json_add_ints(cJSON *obj, const char *name, const int *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(obj, name);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
}

char *mtp_json_text(const cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    MTP_ASSERT(s != NULL); /* cJSON fails only when out of memory */
    char *out = xstrdup(s);
    cJSON_free(s);
    return out;
}

int mtp_json_write_line(FILE *f, const cJSON *j) {
    char *s = mtp_json_text(j);
    int bad = fputs(s, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0;
    free(s);
    return bad ? -1 : 0;
}
