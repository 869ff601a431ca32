/* fuzz_zip.c: libFuzzer target for the PyTorch checkpoint reader from the zip up: the
 * directory (formats/zip.c), the archive's data.pkl (formats/pickle.c) and every tensor's
 * checks against its storage (formats/pth.c), then each small accepted tensor gathered, so
 * a view the checks let through that reads outside the input is a sanitizer report.
 * Seeds: fuzz/corpus/zip/ (torch.save files). */
#include <stdint.h>
#include <stdlib.h>

#include "formats/pth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mtp_pth p;
    mtp_err err;
    if (mtp_pth_parse(&p, data, size, "fuzz.pth", &err) != 0) return 0;
    for (int i = 0; i < p.n_tensors; i++) {
        const mtp_pth_tensor *t = &p.tensors[i];
        if (t->numel > (1u << 20)) continue; /* bounded by the input's size, but keep runs fast */
        float *f = malloc(t->numel * sizeof *f + 1);
        mtp_pth_to_f32(t, f);
        mtp_pth_gather(t, f);
        free(f);
    }
    mtp_pth_close(&p);
    return 0;
}
