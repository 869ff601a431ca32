/* zip.c: the stored-records zip reader declared in zip.h (the layout is PKWARE's APPNOTE:
 * end of central directory, optional ZIP64 locator and record, central entries, local
 * headers). Every read is checked against the buffer first; nothing is trusted to be
 * consistent, so a truncated or hostile file ends in a message, never a read past it. */
#include "formats/zip.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_Z64_LOCATOR 0x07064b50u
#define SIG_Z64_EOCD 0x06064b50u
#define EOCD_LEN 22
#define LOCATOR_LEN 20
#define Z64_EOCD_LEN 56
#define CENTRAL_LEN 46
#define LOCAL_LEN 30
#define U16_MAX 0xffffu
#define U32_MAX 0xffffffffu

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Where the central directory is and how many entries it holds. */
typedef struct {
    uint64_t count, cd_off, cd_size;
    size_t cd_limit; /* the central directory must end by here (the next record after it) */
} directory;

/* The end-of-central-directory record: the last signature whose comment ends the file
 * exactly (a comment may itself hold the signature's bytes, so the first hit found scanning
 * back is not enough). */
static int find_eocd(const uint8_t *d, size_t size, size_t *at) {
    if (size < EOCD_LEN) return -1;
    size_t lo = size - EOCD_LEN > U16_MAX ? size - EOCD_LEN - U16_MAX : 0;
    for (size_t i = size - EOCD_LEN + 1; i-- > lo;)
        if (rd32(d + i) == SIG_EOCD && i + EOCD_LEN + rd16(d + i + 20) == size) {
            *at = i;
            return 0;
        }
    return -1;
}

static int read_zip64(const uint8_t *d, size_t eocd, directory *dir, const char *path, mtp_err *err) {
    size_t loc = eocd - LOCATOR_LEN;
    if (rd32(d + loc + 4) != 0 || rd32(d + loc + 16) != 1)
        return mtp_fail(err, "%s: zip: a multi-disk archive (not supported)", path);
    uint64_t at = rd64(d + loc + 8);
    if (at > loc || loc - at < Z64_EOCD_LEN)
        return mtp_fail(err, "%s: zip: the ZIP64 end record (at %" PRIu64 ") lies outside the file", path, at);
    const uint8_t *z = d + at;
    uint64_t len = rd64(z + 4);
    if (rd32(z) != SIG_Z64_EOCD || len < Z64_EOCD_LEN - 12 || len > loc - at - 12)
        return mtp_fail(err, "%s: zip: no valid ZIP64 end record at %" PRIu64, path, at);
    if (rd32(z + 16) != 0 || rd32(z + 20) != 0 || rd64(z + 24) != rd64(z + 32))
        return mtp_fail(err, "%s: zip: a multi-disk archive (not supported)", path);
    dir->count = rd64(z + 32);
    dir->cd_size = rd64(z + 40);
    dir->cd_off = rd64(z + 48);
    dir->cd_limit = (size_t)at;
    return 0;
}

static int read_directory(const uint8_t *d, size_t size, directory *dir, const char *path, mtp_err *err) {
    size_t eocd;
    if (find_eocd(d, size, &eocd) != 0)
        return mtp_fail(err, "%s: zip: no end-of-central-directory record (not a zip file, or truncated)", path);
    const uint8_t *e = d + eocd;
    uint16_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_disk = rd16(e + 8), n = rd16(e + 10);
    uint32_t cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    /* torch's writer adds the ZIP64 structures when it needs them; take them whenever the
     * locator is there, since the 32-bit fields are then placeholders */
    if (eocd >= LOCATOR_LEN && rd32(d + eocd - LOCATOR_LEN) == SIG_Z64_LOCATOR) {
        if (read_zip64(d, eocd, dir, path, err) != 0) return -1;
    } else {
        if (n == U16_MAX || n_disk == U16_MAX || cd_size == U32_MAX || cd_off == U32_MAX)
            return mtp_fail(err, "%s: zip: the end record needs ZIP64 but there is no ZIP64 locator", path);
        if (disk != 0 || cd_disk != 0 || n_disk != n)
            return mtp_fail(err, "%s: zip: a multi-disk archive (not supported)", path);
        dir->count = n;
        dir->cd_size = cd_size;
        dir->cd_off = cd_off;
        dir->cd_limit = eocd;
    }
    if (dir->cd_off > dir->cd_limit || dir->cd_size > dir->cd_limit - dir->cd_off)
        return mtp_fail(err, "%s: zip: the central directory (%" PRIu64 " bytes at %" PRIu64 ") does not fit in the file",
                        path, dir->cd_size, dir->cd_off);
    if (dir->count > MTP_ZIP_MAX_ENTRIES || dir->count > dir->cd_size / CENTRAL_LEN)
        return mtp_fail(err, "%s: zip: %" PRIu64 " entries do not fit in a central directory of %" PRIu64 " bytes", path,
                        dir->count, dir->cd_size);
    return 0;
}

/* Takes the saturated 32-bit fields of a central entry from its zip64 extra field (id 1),
 * which holds, in this order, only those that are saturated. */
static int zip64_extra(const uint8_t *x, size_t len, uint64_t *usize, uint64_t *csize, uint64_t *lho,
                       int disk_saturated) {
    while (len >= 4) {
        uint16_t id = rd16(x), n = rd16(x + 2);
        if ((size_t)n > len - 4) return -1;
        if (id == 1) {
            const uint8_t *p = x + 4;
            size_t left = n;
            uint64_t *fields[3] = {usize, csize, lho};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != U32_MAX) continue;
                if (left < 8) return -1;
                *fields[i] = rd64(p);
                p += 8;
                left -= 8;
            }
            if (disk_saturated && (left < 4 || rd32(p) != 0)) return -1;
            return 0;
        }
        x += 4 + n;
        len -= 4 + (size_t)n;
    }
    return 0; /* no zip64 field: the caller finds any field still saturated */
}

/* Parses the central entry at d[*pos] (which must end by end) and its local header. */
static int read_entry(const uint8_t *d, size_t *pos, size_t end, const directory *dir, int idx,
                      mtp_zip_entry *out, size_t *lho_out, const char *path, mtp_err *err) {
    size_t at = *pos;
    const uint8_t *c = d + at;
    if (end - at < CENTRAL_LEN || rd32(c) != SIG_CENTRAL)
        return mtp_fail(err, "%s: zip: central directory entry %d is missing or damaged", path, idx);
    uint16_t flags = rd16(c + 8), method = rd16(c + 10), nlen = rd16(c + 28), xlen = rd16(c + 30),
             klen = rd16(c + 32), disk = rd16(c + 34);
    uint64_t csize = rd32(c + 20), usize = rd32(c + 24), lho = rd32(c + 42);
    if ((size_t)nlen + xlen + klen > end - at - CENTRAL_LEN)
        return mtp_fail(err, "%s: zip: a central directory entry runs past the directory", path);
    const char *name = (const char *)c + CENTRAL_LEN;
    if (nlen == 0 || memchr(name, 0, nlen))
        return mtp_fail(err, "%s: zip: a record has an empty name or one holding a NUL byte", path);
    out->name = xmalloc((size_t)nlen + 1);
    memcpy(out->name, name, nlen);
    out->name[nlen] = 0;
    *pos = at + CENTRAL_LEN + nlen + xlen + klen;
    if (zip64_extra(c + CENTRAL_LEN + nlen, xlen, &usize, &csize, &lho, disk == U16_MAX) != 0)
        return mtp_fail(err, "%s: zip: record '%s' has a damaged ZIP64 extra field", path, out->name);
    if (usize == U32_MAX || csize == U32_MAX || lho == U32_MAX || (disk != 0 && disk != U16_MAX))
        return mtp_fail(err, "%s: zip: record '%s' has saturated sizes but no ZIP64 field for them", path, out->name);
    if (flags & 1) return mtp_fail(err, "%s: zip: record '%s' is encrypted", path, out->name);
    if (method != 0)
        return mtp_fail(err, "%s: zip: record '%s' is compressed (method %u); torch.save writes stored records only",
                        path, out->name, method);
    if (csize != usize)
        return mtp_fail(err, "%s: zip: stored record '%s' has compressed size %" PRIu64 " != size %" PRIu64, path,
                        out->name, csize, usize);
    /* records lie before the central directory */
    uint64_t lim = dir->cd_off;
    if (lho > lim || lim - lho < LOCAL_LEN)
        return mtp_fail(err, "%s: zip: record '%s' has its header at %" PRIu64 ", outside the records", path, out->name,
                        lho);
    const uint8_t *l = d + lho;
    uint16_t lnlen = rd16(l + 26), lxlen = rd16(l + 28);
    if (rd32(l) != SIG_LOCAL || lnlen != nlen || lim - lho - LOCAL_LEN < (uint64_t)lnlen + lxlen ||
        memcmp(l + LOCAL_LEN, name, nlen) != 0)
        return mtp_fail(err, "%s: zip: record '%s' has no matching local header at %" PRIu64, path, out->name, lho);
    if (rd16(l + 8) != 0)
        return mtp_fail(err, "%s: zip: record '%s' is compressed in its local header", path, out->name);
    uint64_t data = lho + LOCAL_LEN + lnlen + lxlen;
    if (usize > lim - data)
        return mtp_fail(err, "%s: zip: record '%s' (%" PRIu64 " bytes at %" PRIu64 ") runs past the records", path,
                        out->name, usize, data);
    out->offset = (size_t)data;
    out->size = (size_t)usize;
    *lho_out = (size_t)lho;
    return 0;
}

typedef struct {
    size_t begin, end; /* local header to end of data */
    const char *name;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const mtp_zip_entry *const *)a)->name, (*(const mtp_zip_entry *const *)b)->name);
}

/* Two records sharing bytes, or one name twice, would let one file mean two things. Leaves
 * z->by_name sorted for mtp_zip_find. */
static int check_disjoint(mtp_zip *z, const size_t *lho, const char *path, mtp_err *err) {
    size_t n = (size_t)z->n;
    span *s = xmalloc((n ? n : 1) * sizeof *s);
    z->by_name = xmalloc((n ? n : 1) * sizeof *z->by_name);
    for (size_t i = 0; i < n; i++) {
        s[i] = (span){lho[i], z->entries[i].offset + z->entries[i].size, z->entries[i].name};
        z->by_name[i] = &z->entries[i];
    }
    qsort(s, n, sizeof *s, cmp_span);
    qsort(z->by_name, n, sizeof *z->by_name, cmp_name);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        if (s[i].begin < s[i - 1].end)
            rc = mtp_fail(err, "%s: zip: records '%s' and '%s' overlap", path, s[i - 1].name, s[i].name);
        else if (strcmp(z->by_name[i - 1]->name, z->by_name[i]->name) == 0)
            rc = mtp_fail(err, "%s: zip: record '%s' appears twice", path, z->by_name[i]->name);
    }
    free(s);
    return rc;
}

int mtp_zip_parse(mtp_zip *z, const uint8_t *data, size_t size, const char *path, mtp_err *err) {
    memset(z, 0, sizeof *z);
    directory dir = {0};
    if (read_directory(data, size, &dir, path, err) != 0) return -1;
    z->entries = xcalloc(dir.count ? (size_t)dir.count : 1, sizeof *z->entries);
    size_t *lho = xmalloc((dir.count ? (size_t)dir.count : 1) * sizeof *lho);
    size_t pos = (size_t)dir.cd_off, end = (size_t)(dir.cd_off + dir.cd_size);
    int rc = 0;
    while ((uint64_t)z->n < dir.count && rc == 0) {
        rc = read_entry(data, &pos, end, &dir, z->n, &z->entries[z->n], &lho[z->n], path, err);
        z->n++; /* counted even on failure, so its name is freed */
    }
    if (rc == 0 && pos != end)
        rc = mtp_fail(err, "%s: zip: the central directory holds %zu bytes after its %" PRIu64 " entries", path,
                      end - pos, dir.count);
    if (rc == 0) rc = check_disjoint(z, lho, path, err);
    free(lho);
    if (rc != 0) mtp_zip_free(z);
    return rc;
}

void mtp_zip_free(mtp_zip *z) {
    for (int i = 0; i < z->n; i++) free(z->entries[i].name);
    free(z->entries);
    free(z->by_name);
    memset(z, 0, sizeof *z);
}

const mtp_zip_entry *mtp_zip_find(const mtp_zip *z, const char *name) {
    mtp_zip_entry key = {.name = (char *)name};
    const mtp_zip_entry *k = &key, **hit = bsearch(&k, z->by_name, (size_t)z->n, sizeof *z->by_name, cmp_name);
    return hit ? *hit : NULL;
}
