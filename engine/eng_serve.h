/* eng_serve: tollgate-engine's OpenAI-compatible HTTP server. One libevent
 * loop (evhttp) on the main thread accepts and answers; the scheduler steps
 * on its own worker thread (eng_worker) and wakes the loop after each step,
 * so a step never blocks accepting or answering other requests. */
#ifndef ENG_SERVE_H
#define ENG_SERVE_H

#include "eng_backend.h"
#include "tok.h"

typedef struct eng_serve_opts {
    const char *host;      /* listen address */
    int port;              /* 0: any free port */
    const char *port_file; /* NULL: none */
    const char *name;      /* model id reported by /v1/models */
    int max_batch_tokens;  /* scheduler token budget per step */
    int max_running;       /* admitted requests at most */
    int default_max_tokens;
    size_t max_body;
} eng_serve_opts_t;

/* Serves until SIGTERM/SIGINT. be, tok and chat are the caller's and must
 * outlive the call. Prints "listening on HOST:PORT" as the first stdout line.
 * Returns 0 after a clean stop, 1 when it could not start (message
 * printed). */
int eng_serve_run(const eng_serve_opts_t *o, eng_backend_t *be, const tok_tokenizer_t *tok,
                  const tok_chat_t *chat);

#endif
