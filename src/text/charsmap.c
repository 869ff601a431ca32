/* charsmap.c: see charsmap.h. A darts-clone unit packs, in 32 bits: a label (the byte
 * that leads to this node, bits 0-7, bit 31 set on leaf units so no byte matches them), a
 * has-leaf flag (bit 8) and the offset to the node's children (bits 10-31, shifted left by
 * 8 more when bit 9 is set); a leaf unit holds a value in bits 0-30. Children of node p sit
 * at p ^ offset ^ byte. */
#include "text/charsmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

enum { MAX_MATCHES = 32 }; /* SentencePiece's kMaxTrieResultsSize */

static uint32_t unit_label(uint32_t u) { return u & (0x80000000u | 0xFFu); }
static int unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t unit_value(uint32_t u) { return u & 0x7FFFFFFFu; }
static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

int mtp_charsmap_init(mtp_charsmap *m, const uint8_t *blob, size_t n, const char **why) {
    memset(m, 0, sizeof *m);
    if (n < 4) return *why = "precompiled_charsmap shorter than its header", -1;
    uint32_t trie = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 |
                    (uint32_t)blob[3] << 24;
    if (trie > n - 4 || trie % 4 || trie == 0) return *why = "precompiled_charsmap: bad trie size", -1;
    m->n_units = trie / 4;
    m->units = xmalloc(trie);
    for (size_t i = 0; i < m->n_units; i++) {
        const uint8_t *p = blob + 4 + 4 * i;
        m->units[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    m->n_strings = n - 4 - trie;
    /* the replacements are read as C strings: the last must end inside the blob */
    if (m->n_strings == 0 || blob[n - 1] != 0) {
        mtp_charsmap_free(m);
        return *why = "precompiled_charsmap: replacements do not end with NUL", -1;
    }
    m->strings = xmalloc(m->n_strings);
    memcpy(m->strings, blob + 4 + trie, m->n_strings);
    return 0;
}

void mtp_charsmap_free(mtp_charsmap *m) {
    free(m->units);
    free(m->strings);
    memset(m, 0, sizeof *m);
}

int mtp_charsmap_match(const mtp_charsmap *m, const uint8_t *s, size_t n, const char **out) {
    size_t pos = unit_offset(m->units[0]), best = 0, found = 0;
    uint32_t value = 0;
    for (size_t i = 0; i < n && found < MAX_MATCHES; i++) {
        pos ^= s[i];
        if (pos >= m->n_units) break; /* no such child (only a corrupt trie leaves its blocks) */
        uint32_t u = m->units[pos];
        if (unit_label(u) != s[i]) break;
        pos ^= unit_offset(u);
        if (pos >= m->n_units) return -1;
        if (unit_has_leaf(u)) {
            value = unit_value(m->units[pos]);
            best = i + 1;
            found++;
        }
    }
    if (!best) return 0;
    if (value >= m->n_strings) return -1;
    *out = m->strings + value;
    return (int)best;
}
