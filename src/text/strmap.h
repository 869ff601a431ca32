/* strmap.h: a hash map from byte strings to int32 values (open addressing, linear
 * probing). The keys are not copied: they must outlive the map (they point into the
 * tokenizer's own storage). The hash is FNV-1a, which can be extended one byte at a time,
 * so a caller walking forward through text (longest-prefix matching) hashes each byte once. */
#ifndef MTP_TEXT_STRMAP_H
#define MTP_TEXT_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *key;
    uint32_t len, hash;
    int32_t value;
} mtp_strmap_slot;

typedef struct {
    mtp_strmap_slot *slots; /* (mask + 1); key NULL: empty */
    size_t mask, count;
} mtp_strmap;

#define MTP_FNV_INIT 2166136261u
static inline uint32_t mtp_fnv_step(uint32_t h, uint8_t b) { return (h ^ b) * 16777619u; }
uint32_t mtp_fnv(const char *s, size_t n);

void mtp_strmap_init(mtp_strmap *m, size_t expected);
void mtp_strmap_free(mtp_strmap *m);
/* The slot holding key, or NULL. */
const mtp_strmap_slot *mtp_strmap_find(const mtp_strmap *m, const char *key, size_t n, uint32_t hash);
/* Inserts key -> value; returns 0, or -1 (and changes nothing) when key is present. */
int mtp_strmap_add(mtp_strmap *m, const char *key, size_t n, int32_t value);
/* The slot of key, inserting it with `value` when absent (*added says which). */
mtp_strmap_slot *mtp_strmap_upsert(mtp_strmap *m, const char *key, size_t n, int32_t value, int *added);

#endif
