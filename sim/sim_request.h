/* sim_request: validation of an OpenAI request body (chat or legacy
 * completions) into what the simulator needs: model, streaming flags, the
 * completion cap and the prompt's tokens. Bad input gives an error message
 * and the offending parameter, never a crash. */
#ifndef SIM_REQUEST_H
#define SIM_REQUEST_H

#include "sim_tokens.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum { SIM_KIND_CHAT = 0, SIM_KIND_COMPLETIONS } sim_kind_t;

typedef struct sim_request {
    sim_kind_t kind;
    char model[256]; /* "model" (at most 255 bytes, longer is refused) */
    bool stream;
    bool has_stream_options;
    bool include_usage;
    char stream_options_json[256]; /* compact copy of stream_options, "" if absent */
    long long max_tokens;          /* -1 when absent; min of max_tokens and max_completion_tokens */
    sim_tokens_t tokens;           /* the prompt, tokenized (owned) */
} sim_request_t;

/* Parses and validates body (len bytes, need not be NUL-terminated) as a
 * request of the given kind. On success returns 0 and fills *out (release
 * with sim_request_free). On bad input returns -1, writes a message to err
 * and points *param at the offending field name (a static string, or NULL). */
int sim_request_parse(const char *body, size_t len, sim_kind_t kind, sim_request_t *out, char *err,
                      size_t errlen, const char **param);

void sim_request_free(sim_request_t *r);

#endif
