/* eng_text: stop strings and UTF-8 hold-back over streamed token bytes.
 * Invariant: no stop string starts before `emitted`, because any tail of the
 * text that could begin one is held back until it no longer can. */
#include "eng_text.h"

#include "tok_utf8.h"

#include <stdlib.h>
#include <string.h>

void eng_text_init(eng_text_t *t, const char *const *stops, int n)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n && t->n_stops < ENG_MAX_STOP_STRINGS; i++)
        if (stops[i] && stops[i][0]) {
            t->stops[t->n_stops] = strdup(stops[i]);
            if (!t->stops[t->n_stops])
                abort();
            t->n_stops++;
        }
}

void eng_text_free(eng_text_t *t)
{
    free(t->raw);
    for (int i = 0; i < t->n_stops; i++)
        free(t->stops[i]);
    memset(t, 0, sizeof *t);
}

/* Appends raw[from..to) to out with invalid UTF-8 replaced by U+FFFD. */
static void put(const eng_text_t *t, size_t from, size_t to, tok_buf_t *out)
{
    if (to <= from)
        return;
    size_t n = to - from;
    unsigned char *tmp = malloc(3 * n);
    if (!tmp)
        abort();
    size_t m = tok_utf8_repair((const unsigned char *)t->raw + from, n, tmp);
    tok_buf_append(out, tmp, m);
    free(tmp);
}

/* Bytes at the end of raw[0..end) that start a UTF-8 character not yet
 * complete (a lead byte followed by fewer continuation bytes than it needs). */
static size_t incomplete_tail(const char *raw, size_t end)
{
    for (size_t back = 1; back <= 3 && back <= end; back++) {
        unsigned char c = (unsigned char)raw[end - back];
        if ((c & 0xc0) == 0x80)
            continue; /* continuation byte: look further back */
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

bool eng_text_push(eng_text_t *t, const char *bytes, size_t len, tok_buf_t *out)
{
    if (t->stopped)
        return true;
    if (t->len + len + 1 > t->cap) {
        t->cap = (t->len + len + 1) * 2;
        t->raw = realloc(t->raw, t->cap);
        if (!t->raw)
            abort();
    }
    memcpy(t->raw + t->len, bytes, len);
    t->len += len;
    t->raw[t->len] = '\0';

    /* The earliest stop string at or after emitted. */
    size_t best = (size_t)-1;
    for (int i = 0; i < t->n_stops; i++) {
        size_t sl = strlen(t->stops[i]);
        for (size_t p = t->emitted; p + sl <= t->len && p < best; p++)
            if (memcmp(t->raw + p, t->stops[i], sl) == 0) {
                best = p;
                break;
            }
    }
    if (best != (size_t)-1) {
        put(t, t->emitted, best, out);
        t->emitted = best;
        t->stopped = true;
        return true;
    }
    /* Hold back the longest tail that is a proper prefix of a stop string. */
    size_t hold = 0;
    for (int i = 0; i < t->n_stops; i++) {
        size_t sl = strlen(t->stops[i]);
        for (size_t k = sl - 1; k > hold; k--)
            if (k <= t->len - t->emitted && memcmp(t->raw + t->len - k, t->stops[i], k) == 0) {
                hold = k;
                break;
            }
    }
    size_t end = t->len - hold;
    end -= incomplete_tail(t->raw, end);
    if (end > t->emitted) {
        put(t, t->emitted, end, out);
        t->emitted = end;
    }
    return false;
}

void eng_text_finish(eng_text_t *t, tok_buf_t *out)
{
    if (t->stopped)
        return;
    put(t, t->emitted, t->len, out);
    t->emitted = t->len;
}
