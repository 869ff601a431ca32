/* meta.h: Meta's released checkpoints as a source for mtp_convert: a folder holding
 * consolidated.pth (or a lone consolidated.00.pth) and params.json, or the .pth file itself
 * with params.json beside it; tokenizer.model in the folder or its parent (docs/formats.md,
 * "Meta's checkpoints"). */
#ifndef MTP_META_H
#define MTP_META_H

#include "core/config.h"
#include "formats/pth.h"
#include "model/params.h"

typedef struct {
    mtp_config cfg;
    mtp_pth pth;
    char tokenizer[4200]; /* tokenizer.model found beside the checkpoint; "": none */
} mtp_meta;

/* Whether path names such a checkpoint (a directory, or a file ending in .pth). */
int mtp_meta_is_checkpoint(const char *path);
/* Opens the checkpoint, reads params.json (vocab_size -1 is taken from the embedding's rows;
 * no n_future_tokens: 1; no max_seq_len: 4096, Llama 2's context) and checks that the
 * tensors are exactly the config's (Llama's rope.freqs buffer, if present, is ignored). */
int mtp_meta_open(mtp_meta *c, const char *path, mtp_err *err);
void mtp_meta_close(mtp_meta *c);

#endif
