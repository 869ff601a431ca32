/* task_induction.c: see task_induction.h. */
#include "tasks/task_induction.h"

#include <string.h>

#include "core/util.h"

/* The word vocabulary; token id = index + 1 (0 ends a story). */
static const char *const WORDS[] = {
    ".", ",", "once", "upon", "a", "time", "there", "was", "little", "girl", "boy", "named",
    "had", "friend", "liked", "to", "play", "with", "the", "ball", "dog", "cat", "toy", "in",
    "park", "garden", "one", "day", "went", "found", "big", "red", "said", "hello", "very",
    "happy", "sad", "then", "and", "ran", "home", "looked", "at", "tree", "sun", "gave",
    "smiled", "saw", "under", "they", "together", "after", "that", "wanted", "it", "too"};
enum { N_WORDS = sizeof WORDS / sizeof *WORDS, SYL0 = N_WORDS + 1 };

static const char *const SYLLABLES[INDUCTION_SYLLABLES] = {
    "ka", "lo", "mi", "ra", "ben", "tor", "sa", "vi", "zu", "pel", "do", "ni", "qua", "rex",
    "fi", "mo", "ta", "lu", "gor", "bri", "el", "ha", "jo", "ke", "li", "nu", "or", "pa", "ri",
    "su", "te", "wa", "xi", "yo", "ze", "ban", "cor", "dil", "fen", "gus"};

int mtp_induction_vocab(void) { return SYL0 + INDUCTION_SYLLABLES; }

const char *mtp_induction_word(int tok) {
    if (tok == 0) return "\n";
    if (tok < SYL0) return WORDS[tok - 1];
    return SYLLABLES[tok - SYL0];
}

static mtp_token word(const char *w) {
    for (int i = 0; i < N_WORDS; i++)
        if (!strcmp(WORDS[i], w)) return (mtp_token)(i + 1);
    MTP_ASSERT(!"unknown word");
    return 0;
}

typedef struct {
    mtp_token a, b; /* syllable tokens */
    int seen;
} name;

/* Appends the words of a template; 'A' and 'B' stand for the characters, '|'-separated
 * alternatives in braces pick one at random. */
static void say(mtp_story *s, const char *tmpl, name *nm, mtp_rng *rng) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", tmpl);
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        MTP_ASSERT(s->n + 2 < INDUCTION_MAX_TOKENS);
        if ((w[0] == 'A' || w[0] == 'B') && !w[1]) {
            name *n = &nm[w[0] - 'A'];
            if (n->seen) s->scored[s->n_scored++] = s->n; /* next token: the second syllable */
            s->tok[s->n++] = n->a;
            s->tok[s->n++] = n->b;
            n->seen = 1;
        } else if (w[0] == '{') {
            int alts = 1;
            for (char *c = w; *c; c++) alts += *c == '|';
            int pick = (int)mtp_rng_below(rng, alts);
            char *alt = w + 1;
            for (int k = 0; k < pick; k++) alt = strchr(alt, '|') + 1;
            char one[32];
            size_t len = strcspn(alt, "|}");
            snprintf(one, sizeof one, "%.*s", (int)len, alt);
            s->tok[s->n++] = word(one);
        } else {
            s->tok[s->n++] = word(w);
        }
    }
}

static const char *const BODY1[] = {
    "A liked to play with the {ball|dog|cat|toy} .", "one day A went to the {park|garden} .",
    "A found a {big|red} {ball|toy} in the {park|garden} .", "A was very {happy|sad} .",
    "A looked at the {tree|sun} .", "A saw a {dog|cat} under the tree .",
    "A wanted to play , too .", "then A ran home .", "A smiled at the {dog|cat} ."};
static const char *const BODY2[] = {
    "A said hello to B .", "B gave A a {ball|toy} .", "A and B went to the {park|garden} .",
    "B smiled at A .", "then A and B ran home together .", "B liked to play with A .",
    "after that B was very {happy|sad} ."};

void mtp_story_draw(mtp_story *s, mtp_rng *rng, int test) {
    memset(s, 0, sizeof *s);
    int chars = 1 + (int)mtp_rng_below(rng, 2);
    name nm[2];
    for (int c = 0; c < 2; c++) {
        /* training names: (a + b) even; test names: odd (pairs never seen in training) */
        int a, b;
        do {
            a = (int)mtp_rng_below(rng, INDUCTION_SYLLABLES);
            b = (int)mtp_rng_below(rng, INDUCTION_SYLLABLES);
        } while ((a + b) % 2 != test || (c == 1 && a == (int)nm[0].a - SYL0 && b == (int)nm[0].b - SYL0));
        nm[c] = (name){(mtp_token)(SYL0 + a), (mtp_token)(SYL0 + b), 0};
    }
    say(s, "once upon a time there was a little {girl|boy} named A .", nm, rng);
    if (chars == 2) say(s, "A had a friend named B .", nm, rng);
    int sentences = 4 + (int)mtp_rng_below(rng, 4);
    for (int k = 0; k < sentences; k++) {
        if (chars == 2 && mtp_rng_below(rng, 2))
            say(s, BODY2[mtp_rng_below(rng, sizeof BODY2 / sizeof *BODY2)], nm, rng);
        else
            say(s, BODY1[mtp_rng_below(rng, sizeof BODY1 / sizeof *BODY1)], nm, rng);
    }
    s->tok[s->n++] = 0;
}

void mtp_story_test(mtp_story *s, int i) {
    mtp_rng rng = {0x1D0C7E5700000000ull ^ (uint64_t)i};
    mtp_rng_u64(&rng);
    mtp_story_draw(s, &rng, 1);
}
