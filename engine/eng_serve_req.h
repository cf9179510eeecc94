/* eng_serve_req: reads an OpenAI chat/completions request body into what
 * the engine runs: the prompt's token ids (chat template + tokenizer, a
 * prompt string, or a token id array), sampling parameters, stop strings
 * and token ids, max_tokens. Every bad field is an OpenAI error (400, the
 * field named in param); a prompt that does not fit the model's context or
 * the KV cache is 400 context_length_exceeded. */
#ifndef ENG_SERVE_REQ_H
#define ENG_SERVE_REQ_H

#include "eng_sched.h"
#include "eng_text.h"
#include "tok.h"

#include <stdbool.h>

/* Defaults and limits a request is checked against. */
typedef struct eng_serve_limits {
    int context;        /* model max_position_embeddings */
    int kv_tokens;      /* whole KV cache, in tokens */
    int default_max;    /* max_tokens when the request gives none */
    int eos_id;         /* model eos (-1: none), always a stop token */
    int n_allowed;      /* ids the tokenizer can decode */
} eng_serve_limits_t;

typedef struct eng_serve_req {
    bool chat, stream, include_usage;
    char model[128];
    tok_ids_t ids; /* the prompt */
    eng_req_params_t params;
    char *stops[ENG_MAX_STOP_STRINGS];
    int n_stops;
} eng_serve_req_t;

/* An OpenAI error: status, message, type, param (may be ""), code (may be ""). */
typedef struct eng_serve_err {
    int status;
    char message[400];
    char type[40];
    char param[40];
    char code[40];
} eng_serve_err_t;

/* Parses body[0..len) of /v1/chat/completions (chat) or /v1/completions.
 * chat_tpl is needed for chat. Returns 0 with *out filled (release with
 * eng_serve_req_free), or -1 with *e. */
int eng_serve_req_parse(const char *body, size_t len, bool chat, const tok_tokenizer_t *tok,
                        const tok_chat_t *chat_tpl, const eng_serve_limits_t *lim,
                        eng_serve_req_t *out, eng_serve_err_t *e);

void eng_serve_req_free(eng_serve_req_t *r);

#endif
