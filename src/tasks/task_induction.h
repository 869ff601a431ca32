/* task_induction.h: the synthetic induction task (PAPER.md, "The induction task"):
 * short template stories over a fixed word vocabulary with one or two characters whose
 * names are two tokens from a pool of name syllables, each mentioned several times. The
 * metric is the accuracy of predicting a name's SECOND token at every mention after its
 * first: the first token is a guess, the second can be copied from earlier in the story.
 *
 * Tokens (docs/tasks.md): 0 end of story, then the words, then INDUCTION_SYLLABLES
 * name syllables; names are (first, second) syllable pairs. */
#ifndef MTP_TASK_INDUCTION_H
#define MTP_TASK_INDUCTION_H

#include <stdint.h>

#include "core/util.h" /* mtp_token */

#include "core/rng.h"

#define INDUCTION_SYLLABLES 40
#define INDUCTION_MAX_TOKENS 256
#define INDUCTION_TEST_STORIES 1000

int mtp_induction_vocab(void);            /* vocab_size of the task */
const char *mtp_induction_word(int tok);  /* a token's text */

typedef struct {
    mtp_token tok[INDUCTION_MAX_TOKENS];
    int n;
    int scored[INDUCTION_MAX_TOKENS]; /* positions p whose NEXT token (a name's second) is scored */
    int n_scored;
} mtp_story;

/* A random story. Test stories use names built only from syllable pairs that training
 * stories never use (half of the pairs are held out), so the test measures copying,
 * not memorised names. */
void mtp_story_draw(mtp_story *s, mtp_rng *rng, int test);
/* Story i of the fixed test set. */
void mtp_story_test(mtp_story *s, int i);

#endif
