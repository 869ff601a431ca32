/* fuzz_pickle.c: libFuzzer target for the restricted pickle interpreter
 * (formats/pickle.c) alone: any bytes as a data.pkl. It must end in a state dict or a
 * message, never a crash, a leak or a read past the input. Seeds: fuzz/corpus/pickle/
 * (data.pkl records torch.save wrote). */
#include <stdint.h>

#include "formats/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mtp_pk_state_dict sd;
    mtp_err err;
    if (mtp_pickle_state_dict(&sd, data, size, "fuzz.pkl", &err) == 0) mtp_pk_state_dict_free(&sd);
    return 0;
}
