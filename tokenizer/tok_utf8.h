/* tok_utf8: UTF-8 decoding and repair as the reference tokenizer sees text. */
#ifndef TOK_UTF8_H
#define TOK_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one code point of valid UTF-8 at s[0..n) (n >= 1); stores its byte
 * length in *len. The input must already be valid (see tok_utf8_valid). */
static inline uint32_t tok_utf8_next(const unsigned char *s, size_t n, size_t *len)
{
    unsigned c = s[0];
    if (c < 0x80 || n < 2) {
        *len = 1;
        return c;
    }
    if (c < 0xe0) {
        *len = 2;
        return ((c & 0x1fu) << 6) | (s[1] & 0x3fu);
    }
    if (c < 0xf0 || n < 4) {
        *len = 3;
        return ((c & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
    }
    *len = 4;
    return ((c & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
}

/* Encodes code point cp (<= 0x10FFFF) as UTF-8 at p (room for 4 bytes);
 * returns the number of bytes written. */
static inline size_t tok_utf8_put(unsigned char *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (unsigned char)(0xc0 | cp >> 6);
        p[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (unsigned char)(0xe0 | cp >> 12);
        p[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        p[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    p[0] = (unsigned char)(0xf0 | cp >> 18);
    p[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    p[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    p[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Returns the length of the longest valid UTF-8 prefix of s[0..n). */
size_t tok_utf8_valid_prefix(const unsigned char *s, size_t n);

/* Copies s[0..n) to out (capacity >= 3 * n bytes) replacing each maximal
 * invalid subpart with U+FFFD, exactly as WHATWG decoding and Rust's
 * String::from_utf8_lossy do (the way text reaches HF tokenizers).
 * Returns the number of bytes written. */
size_t tok_utf8_repair(const unsigned char *s, size_t n, unsigned char *out);

#endif
