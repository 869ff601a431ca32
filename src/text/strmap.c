/* strmap.c: see strmap.h. The table is kept at most half full, so probes stay short. */
#include "text/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

uint32_t mtp_fnv(const char *s, size_t n) {
    uint32_t h = MTP_FNV_INIT;
    for (size_t i = 0; i < n; i++) h = mtp_fnv_step(h, (uint8_t)s[i]);
    return h;
}

void mtp_strmap_init(mtp_strmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < 2 * expected + 2) cap *= 2;
    m->slots = xcalloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    m->count = 0;
}

void mtp_strmap_free(mtp_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

static mtp_strmap_slot *probe(const mtp_strmap *m, const char *key, size_t n, uint32_t hash) {
    for (size_t i = hash & m->mask;; i = (i + 1) & m->mask) {
        mtp_strmap_slot *s = &m->slots[i];
        if (!s->key) return s;
        if (s->hash == hash && s->len == n && !memcmp(s->key, key, n)) return s;
    }
}

const mtp_strmap_slot *mtp_strmap_find(const mtp_strmap *m, const char *key, size_t n, uint32_t hash) {
    if (!m->slots) return NULL;
    const mtp_strmap_slot *s = probe(m, key, n, hash);
    return s->key ? s : NULL;
}

static void grow(mtp_strmap *m) {
    mtp_strmap old = *m;
    mtp_strmap_init(m, (old.mask + 1));
    for (size_t i = 0; i <= old.mask; i++)
        if (old.slots[i].key) *probe(m, old.slots[i].key, old.slots[i].len, old.slots[i].hash) = old.slots[i];
    m->count = old.count;
    free(old.slots);
}

mtp_strmap_slot *mtp_strmap_upsert(mtp_strmap *m, const char *key, size_t n, int32_t value, int *added) {
    MTP_ASSERT(n <= UINT32_MAX);
    if (!m->slots) mtp_strmap_init(m, 8);
    if (2 * (m->count + 1) > m->mask + 1) grow(m);
    uint32_t h = mtp_fnv(key, n);
    mtp_strmap_slot *s = probe(m, key, n, h);
    *added = !s->key;
    if (*added) {
        /* a key of length 0 still needs a non-NULL pointer to mark the slot used */
        s->key = key ? key : "";
        s->len = (uint32_t)n;
        s->hash = h;
        s->value = value;
        m->count++;
    }
    return s;
}

int mtp_strmap_add(mtp_strmap *m, const char *key, size_t n, int32_t value) {
    int added;
    mtp_strmap_upsert(m, key, n, value, &added);
    return added ? 0 : -1;
}
