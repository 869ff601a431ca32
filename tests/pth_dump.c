/* pth_dump.c: test helper for tests/test_pth.py. Opens a PyTorch checkpoint with the
 * reader (src/formats/pth.h) and writes every tensor, gathered into row-major order, to a
 * safetensors file: in its own dtype (mtp_pth_gather), or as F32 (mtp_pth_to_f32) with
 * --f32. Each tensor's pages are let go after it is gathered, as a converter would.
 * A file the reader refuses: its one-line message on stderr, exit status 1.
 * usage: pth_dump IN.pth OUT.safetensors [--f32] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pth.h"

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "--f32") == 0)) {
        fprintf(stderr, "usage: pth_dump IN.pth OUT.safetensors [--f32]\n");
        return 2;
    }
    int f32 = argc == 4;
    mtp_pth p;
    mtp_err err;
    if (mtp_pth_open(&p, argv[1], &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    mtp_st_entry *e = xcalloc(p.n_tensors ? (size_t)p.n_tensors : 1, sizeof *e);
    for (int i = 0; i < p.n_tensors; i++) {
        const mtp_pth_tensor *t = &p.tensors[i];
        MTP_ASSERT(mtp_pth_find(&p, t->name) == t);
        size_t bytes = t->numel * (f32 ? sizeof(float) : mtp_pth_dtype_size(t->dtype));
        void *buf = xmalloc(bytes ? bytes : 1);
        if (f32) mtp_pth_to_f32(t, buf);
        else mtp_pth_gather(t, buf);
        mtp_pth_release(t);
        e[i].name = t->name;
        e[i].data = buf;
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof e[i].shape);
        e[i].dtype = f32 ? MTP_DT_F32 : t->dtype;
    }
    int rc = mtp_st_write(argv[2], e, p.n_tensors, NULL, 0, &err);
    if (rc != 0) fprintf(stderr, "%s\n", err.msg);
    for (int i = 0; i < p.n_tensors; i++) free((void *)e[i].data);
    free(e);
    mtp_pth_close(&p);
    return rc ? 1 : 0;
}
