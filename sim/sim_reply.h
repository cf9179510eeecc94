/* sim_reply: writes the simulator's response bodies in OpenAI's exact
 * shapes (chat.completion, chat.completion.chunk, text_completion, errors)
 * with DeepSeek's usage fields, straight into libevent buffers. */
#ifndef SIM_REPLY_H
#define SIM_REPLY_H

#include "sim_request.h"
#include "sim_rng.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sim_usage {
    uint64_t prompt, hit, miss, completion, reasoning;
} sim_usage_t;

/* Everything needed to write one answer; the two generators advance as
 * words are written, so the stream and the whole body give the same text. */
typedef struct sim_answer {
    sim_kind_t kind;
    char id[64];
    long long created;
    char model[256];
    const char *fingerprint; /* the simulator's --name (validated: no quotes) */
    bool reasoner;           /* emits reasoning_content first */
    bool include_usage;      /* stream: chunks carry "usage":null, then the usage event */
    bool with_usage;         /* false for the no-usage fault */
    bool hide_cache;         /* --report-cache off: no cache-hit fields in the usage */
    const char *finish_reason;
    sim_usage_t usage;
    uint64_t n_reasoning, n_content; /* tokens of each part */
    sim_rng_t rng_reasoning, rng_content;
} sim_answer_t;

/* Appends s as a JSON string literal (quotes and escapes added). */
void sim_reply_json_string(struct evbuffer *b, const char *s);

/* Appends OpenAI's error object. param may be NULL (written as null). */
void sim_reply_error(struct evbuffer *b, const char *message, const char *type, const char *param,
                     const char *code);

/* Appends the usage object. */
void sim_reply_usage(struct evbuffer *b, const sim_answer_t *a);

/* Appends the whole non-streamed body (chat.completion or text_completion). */
void sim_reply_full(struct evbuffer *b, sim_answer_t *a);

/* Appends the SSE event for completion token i (0-based; reasoning tokens
 * come first). i == 0 also carries the assistant role. With no tokens at
 * all, call it with i == 0 to send the role with empty content. */
void sim_reply_event_token(struct evbuffer *b, sim_answer_t *a, uint64_t i);

/* Appends the event carrying finish_reason. */
void sim_reply_event_finish(struct evbuffer *b, const sim_answer_t *a);

/* Appends the include_usage event: "choices": [] and the usage. */
void sim_reply_event_usage(struct evbuffer *b, const sim_answer_t *a);

/* Appends "data: [DONE]". */
void sim_reply_event_done(struct evbuffer *b);

#endif
