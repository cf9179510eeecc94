/* tok_nfc: Unicode Normalization Form C (UAX #15) for tokenizers whose
 * normalizer is NFC: canonical decomposition (tables from the UCD, Hangul by
 * arithmetic), canonical ordering of combining marks, canonical composition
 * (Full_Composition_Exclusion respected). */
#include "tok_internal.h"
#include "tok_ucd.h"
#include "tok_utf8.h"

#include <stdlib.h>

enum {
    SBASE = 0xAC00,
    LBASE = 0x1100,
    VBASE = 0x1161,
    TBASE = 0x11A7,
    LCOUNT = 19,
    VCOUNT = 21,
    TCOUNT = 28,
    NCOUNT = VCOUNT * TCOUNT,
    SCOUNT = LCOUNT * NCOUNT
};

bool tok_nfc_is_trivial(const unsigned char *s, size_t n)
{
    /* Below U+0300 every character is a starter that NFC leaves alone; their
     * UTF-8 uses no byte >= 0xCC (U+0300 is CC 80). */
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0xcc)
            return false;
    return true;
}

typedef struct cps {
    uint32_t *v;
    size_t len, cap;
} cps_t;

static void cps_push(cps_t *c, uint32_t cp)
{
    if (c->len == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = tok_xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->len++] = cp;
}

static void decompose(uint32_t cp, cps_t *out)
{
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE;
        cps_push(out, LBASE + s / NCOUNT);
        cps_push(out, VBASE + (s % NCOUNT) / TCOUNT);
        if (s % TCOUNT)
            cps_push(out, TBASE + s % TCOUNT);
        return;
    }
    const uint32_t *d;
    size_t n = tok_ucd_decompose(cp, &d);
    if (!n) {
        cps_push(out, cp);
        return;
    }
    for (size_t i = 0; i < n; i++)
        cps_push(out, d[i]);
}

static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
        b < TBASE + TCOUNT)
        return a + (b - TBASE);
    return tok_ucd_compose(a, b);
}

void tok_nfc(const unsigned char *s, size_t n, tok_buf_t *out)
{
    cps_t c = {0};
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t cp = tok_utf8_next(s + i, n - i, &l);
        decompose(cp, &c);
        i += l;
    }
    /* Canonical ordering: a stable sort of each run of non-starters by class. */
    for (size_t i = 1; i < c.len; i++) {
        unsigned k = tok_ucd_ccc(c.v[i]);
        if (k == 0)
            continue;
        for (size_t j = i; j > 0; j--) {
            unsigned kp = tok_ucd_ccc(c.v[j - 1]);
            if (kp <= k)
                break;
            uint32_t tmp = c.v[j];
            c.v[j] = c.v[j - 1];
            c.v[j - 1] = tmp;
        }
    }
    /* Composition: a character joins the last starter unless blocked by a
     * character in between of class 0 or of a class >= its own. */
    size_t w = 0;
    long starter = -1;
    int prev = -1; /* class of the last kept character after the starter; -1: none */
    for (size_t i = 0; i < c.len; i++) {
        uint32_t cp = c.v[i];
        int k = (int)tok_ucd_ccc(cp);
        if (starter >= 0 && (prev == -1 || (prev != 0 && prev < k))) {
            uint32_t comp = compose(c.v[starter], cp);
            if (comp) {
                c.v[starter] = comp;
                continue;
            }
        }
        c.v[w++] = cp;
        if (k == 0) {
            starter = (long)w - 1;
            prev = -1;
        } else {
            prev = k;
        }
    }
    unsigned char *buf = tok_xmalloc(w * 4 + 1);
    size_t bl = 0;
    for (size_t i = 0; i < w; i++)
        bl += tok_utf8_put(buf + bl, c.v[i]);
    tok_buf_append(out, buf, bl);
    free(buf);
    free(c.v);
}
