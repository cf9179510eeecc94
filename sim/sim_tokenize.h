/* sim_tokenize: the simulator's optional exact tokenization (--tokenizer).
 * With a DeepSeek tokenizer folder the prompt is rendered with its chat
 * template and encoded with its BPE, exactly as DeepSeek (and the gateway's
 * prefix index) count it, so the simulated cache hits fall on the same
 * 64-token block boundaries as the gateway's predictions. Without it the
 * 4-bytes-a-token rule of sim_tokens.h applies (the default). */
#ifndef SIM_TOKENIZE_H
#define SIM_TOKENIZE_H

#include <stddef.h>

#include "sim_request.h"
#include "tok.h"

typedef struct sim_tokenizer {
    tok_tokenizer_t *tok;
    tok_chat_t *chat; /* NULL when the folder has no tokenizer_config.json */
} sim_tokenizer_t;

/* Loads PATH: a folder with tokenizer.json (and tokenizer_config.json for
 * the chat template), or a tokenizer.json. Returns 0, or -1 with a message. */
int sim_tokenizer_load(sim_tokenizer_t *t, const char *path, char *err, size_t errlen);
void sim_tokenizer_free(sim_tokenizer_t *t);

/* Replaces the tokens of r (already validated from body) with the exact
 * ones: chat messages rendered with the template (generation prompt on) and
 * encoded; a completions prompt encoded (array elements one after another).
 * Returns 0, or -1 when the template cannot render these messages (e.g.
 * content as an array of parts): r keeps the 4-byte-rule tokens then. */
int sim_tokenizer_apply(const sim_tokenizer_t *t, const char *body, size_t len, sim_request_t *r);

#endif
