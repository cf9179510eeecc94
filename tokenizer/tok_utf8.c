/* tok_utf8: validation and lossy repair of UTF-8 input. Invalid bytes become
 * U+FFFD per "maximal subpart" (Unicode ch. 3, WHATWG Encoding), the rule that
 * node's Buffer.toString and Rust's from_utf8_lossy follow. */
#include "tok_utf8.h"

#include <string.h>

/* Returns the length (1..4) of the valid sequence at s[0..n), or 0 when
 * invalid; *sub receives the length of the maximal invalid subpart (>= 1). */
static size_t seq_len(const unsigned char *s, size_t n, size_t *sub)
{
    unsigned c = s[0];
    *sub = 1;
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n)
            return 0;
        unsigned b = s[i];
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xbf;
        if (b < l || b > h)
            return 0;
        *sub = i + 1;
    }
    return need;
}

size_t tok_utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0, sub;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = seq_len(s + i, n - i, &sub);
        if (!l)
            return i;
        i += l;
    }
    return n;
}

size_t tok_utf8_repair(const unsigned char *s, size_t n, unsigned char *out)
{
    size_t i = 0, o = 0, sub;
    while (i < n) {
        size_t l = seq_len(s + i, n - i, &sub);
        if (l) {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        } else {
            out[o++] = 0xef;
            out[o++] = 0xbf;
            out[o++] = 0xbd;
            i += sub;
        }
    }
    return o;
}
