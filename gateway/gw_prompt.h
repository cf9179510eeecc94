/* gw_prompt: how many tokens a request's prompt has, before it is sent.
 * With the model's tokenizer (config `tokenizer =`) the count is exact: the
 * chat template rendered and encoded as the provider will. Without one it is
 * an estimate (4 bytes a token plus 4 a message), marked as such wherever it
 * is used: exact counts drop providers whose context window is too small,
 * estimates never do. */
#ifndef GW_PROMPT_H
#define GW_PROMPT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok.h"

typedef struct gw_tokenizer {
    char path[512];         /* the folder or tokenizer.json it came from */
    tok_tokenizer_t *tok;
    tok_chat_t *chat;       /* NULL when the folder has no usable chat template */
} gw_tokenizer_t;

/* Loads PATH (a tokenizer.json, or a folder holding tokenizer.json and
 * optionally tokenizer_config.json with the chat template). Returns 0, or -1
 * with the reason in err. */
int gw_tokenizer_load(gw_tokenizer_t *t, const char *path, char *err, size_t errlen);
void gw_tokenizer_free(gw_tokenizer_t *t);

typedef struct gw_prompt_count {
    int64_t tokens;
    bool exact; /* false: an estimate */
} gw_prompt_count_t;

/* Counts the prompt of a validated request body (`messages` for chat, or
 * `prompt` for completions: a string, or an array of strings or of token ids).
 * t may be NULL (estimate). Never fails: a template that cannot render falls
 * back to the estimate. */
gw_prompt_count_t gw_prompt_count(const gw_tokenizer_t *t, const cJSON *body, bool chat);

/* The chained 64-token block hashes of a prompt (tok_block_hashes): hash k
 * covers every token of blocks 0..k. Owned; zero-initialise, release with
 * gw_prompt_blocks_free. */
typedef struct gw_prompt_blocks {
    uint64_t *hash;
    size_t n;
} gw_prompt_blocks_t;

void gw_prompt_blocks_free(gw_prompt_blocks_t *b);

/* As gw_prompt_count; when the count is exact and max_blocks > 0, also the
 * block hashes of the prompt's tokens (at most max_blocks, the first ones)
 * into *blocks, which must be empty. A prompt under 64 tokens, an estimate, a
 * completions batch (an array of several strings) or max_blocks == 0 leaves
 * blocks->n = 0. Never fails. */
gw_prompt_count_t gw_prompt_count_blocks(const gw_tokenizer_t *t, const cJSON *body, bool chat,
                                         size_t max_blocks, gw_prompt_blocks_t *blocks);

#endif
