/* zip.h: the zip container as torch.save writes it (PyTorch's miniz writer): a directory
 * of stored (uncompressed) records, read from memory. It is not a general unzipper: a
 * compressed record, a multi-disk archive or an encrypted one is refused.
 * Sizes and offsets come from the central directory (torch leaves zeros in the local
 * headers and writes data descriptors); the local headers only say where each record's data
 * starts. ZIP64 (the end-of-central-directory locator and record, the zip64 extra field of
 * central entries) is read. Every record lies inside the part of the buffer before the
 * central directory, and no two records overlap. CRCs are not checked: checking them would
 * read every byte of a 27 GB checkpoint at open, which the mapping exists to avoid. */
#ifndef MTP_ZIP_H
#define MTP_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define MTP_ZIP_MAX_ENTRIES (1 << 20) /* more records than this are refused */

typedef struct {
    char *name;    /* NUL-free, as stored */
    size_t offset; /* of the record's data in the buffer */
    size_t size;   /* bytes of data */
} mtp_zip_entry;

typedef struct {
    mtp_zip_entry *entries; /* in central directory order */
    int n;
    const mtp_zip_entry **by_name; /* the entries sorted by name (for mtp_zip_find) */
} mtp_zip;

/* Parses the zip in data[0, size). On failure *z is left empty and err names path. */
int mtp_zip_parse(mtp_zip *z, const uint8_t *data, size_t size, const char *path, mtp_err *err);
void mtp_zip_free(mtp_zip *z);
const mtp_zip_entry *mtp_zip_find(const mtp_zip *z, const char *name); /* NULL if absent */

#endif
