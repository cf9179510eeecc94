/* eng_text: turns a request's generated token bytes into the text a client
 * sees, piece by piece while streaming: stop strings are searched in the
 * decoded text (across token boundaries; the stop string itself is never
 * returned), text that might be the start of a stop string or of a UTF-8
 * character is held back until the next token decides it, and invalid UTF-8
 * is replaced with U+FFFD. */
#ifndef ENG_TEXT_H
#define ENG_TEXT_H

#include "tok.h"

#include <stdbool.h>
#include <stddef.h>

#define ENG_MAX_STOP_STRINGS 4

typedef struct eng_text {
    char *raw; /* every byte pushed so far */
    size_t len, cap;
    size_t emitted; /* bytes of raw already returned */
    char *stops[ENG_MAX_STOP_STRINGS];
    int n_stops;
    bool stopped; /* a stop string was found; nothing more is returned */
} eng_text_t;

/* Starts an empty text with copies of the n (<= ENG_MAX_STOP_STRINGS)
 * non-empty stop strings. */
void eng_text_init(eng_text_t *t, const char *const *stops, int n);
void eng_text_free(eng_text_t *t);

/* Appends bytes[0..len) (one token's bytes) and appends to out the text
 * that is now final. Returns true when a stop string was found: then
 * the text before it has been returned and the request should end. */
bool eng_text_push(eng_text_t *t, const char *bytes, size_t len, tok_buf_t *out);

/* The request ended: appends whatever was held back (unless stopped). */
void eng_text_finish(eng_text_t *t, tok_buf_t *out);

#endif
