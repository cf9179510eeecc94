/* eng_serve_json: the server's response bodies in OpenAI's shapes
 * (chat.completion, chat.completion.chunk, text_completion, usage, errors),
 * written straight into libevent buffers. */
#ifndef ENG_SERVE_JSON_H
#define ENG_SERVE_JSON_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

/* What every object of one answer shares. */
typedef struct eng_answer {
    bool chat;
    const char *id;
    long long created;
    const char *model;
    int prompt_tokens, completion_tokens, cache_hits;
} eng_answer_t;

/* Appends s[0..len) as a JSON string literal (s is valid UTF-8). */
void eng_json_string(struct evbuffer *b, const char *s, size_t len);

/* OpenAI's error object; param and code may be NULL or "" (written null). */
void eng_json_error(struct evbuffer *b, const char *message, const char *type, const char *param,
                    const char *code);

/* The usage object with DeepSeek's cache fields. */
void eng_json_usage(struct evbuffer *b, const eng_answer_t *a);

/* The whole non-streamed body. */
void eng_json_full(struct evbuffer *b, const eng_answer_t *a, const char *text, size_t len,
                   const char *finish_reason);

/* One SSE event with a piece of text; role adds "role":"assistant" (chat);
 * with_usage_null adds "usage":null (include_usage was asked). */
void eng_json_event_text(struct evbuffer *b, const eng_answer_t *a, const char *text, size_t len,
                         bool role, bool with_usage_null);

/* The event carrying finish_reason (empty delta). */
void eng_json_event_finish(struct evbuffer *b, const eng_answer_t *a, const char *finish_reason,
                           bool with_usage_null);

/* The include_usage event: "choices": [] and the usage. */
void eng_json_event_usage(struct evbuffer *b, const eng_answer_t *a);

#endif
