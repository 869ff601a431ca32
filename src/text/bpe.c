/* bpe.c: placeholder for byte-level BPE from tokenizer.json, which is being written
 * separately; until it lands, such files are refused with a clear message. */
#include "core/util.h"
#include "text/tokenizer_impl.h"

int mtp_bpe_load(mtp_tokenizer *t, const char *json, size_t n, const char *what, mtp_err *err) {
    (void)t, (void)json, (void)n;
    return mtp_fail(err, "%s: tokenizer.json support is not built yet", what);
}
