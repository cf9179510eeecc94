/* tok_pretok: native C versions of the pre-tokenizer Split regexes of the
 * DeepSeek V3, GPT-2, Llama 3 and Qwen2 tokenizers, with the match semantics
 * of Oniguruma (which HF tokenizers uses): leftmost match, alternatives tried
 * in order, greedy quantifiers with backtracking. \s is White_Space. */
#include "tok_internal.h"
#include "tok_ucd.h"
#include "tok_utf8.h"

#include <string.h>

/* The regex sources exactly as they appear in tokenizer.json (JSON-decoded). */
static const char RE_DIGITS3[] = "\\p{N}{1,3}";
static const char RE_CJK[] = "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-"
                             "\xe3\x83\xbf]+";
static const char RE_DS3_WORDS[] =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
    "\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                               "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Regex sources are compared with CR and LF written as the escapes \r and
 * \n: tokenizer.json files spell them either way (DeepSeek V3 as raw
 * characters, Llama 3 as escapes), and both mean the same to the regex. */
int tok_split_kind_of(const char *raw)
{
    char regex[512];
    size_t o = 0;
    for (const char *p = raw; *p; p++) {
        if (o + 3 >= sizeof regex)
            return -1;
        if (*p == '\r' || *p == '\n') {
            regex[o++] = '\\';
            regex[o++] = *p == '\r' ? 'r' : 'n';
        } else {
            regex[o++] = *p;
        }
    }
    regex[o] = '\0';
    if (strcmp(regex, RE_GPT2) == 0)
        return TOK_SPLIT_GPT2;
    if (strcmp(regex, RE_LLAMA3) == 0)
        return TOK_SPLIT_LLAMA3;
    if (strcmp(regex, RE_QWEN2) == 0)
        return TOK_SPLIT_QWEN2;
    if (strcmp(regex, RE_DIGITS3) == 0)
        return TOK_SPLIT_DIGITS3;
    if (strcmp(regex, RE_CJK) == 0)
        return TOK_SPLIT_CJK;
    if (strcmp(regex, RE_DS3_WORDS) == 0)
        return TOK_SPLIT_DS3_WORDS;
    return -1;
}

/* Class byte of the code point at s[i] (ASCII fast path); *len its length. */
static inline unsigned cls_at(const unsigned char *s, size_t n, size_t i, uint32_t *cp, size_t *len)
{
    *cp = tok_utf8_next(s + i, n - i, len);
    return tok_ucd_class(*cp);
}

static inline int is_lm(unsigned c)
{
    c &= 7u;
    return c == TOK_UCD_L || c == TOK_UCD_M;
}

static inline int is_ps(unsigned c)
{
    c &= 7u;
    return c == TOK_UCD_P || c == TOK_UCD_S;
}

static inline int ascii_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline int ascii_punct(uint32_t c)
{
    return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) ||
           (c >= 0x7b && c <= 0x7e);
}

static inline int is_cjk(uint32_t c)
{
    return (c >= 0x4e00 && c <= 0x9fa5) || (c >= 0x3040 && c <= 0x30ff);
}

/* End of the run of code points from i whose class satisfies pred. */
static size_t run_end(const unsigned char *s, size_t n, size_t i, int (*pred)(unsigned))
{
    while (i < n) {
        uint32_t cp;
        size_t l;
        if (!pred(cls_at(s, n, i, &cp, &l)))
            break;
        i += l;
    }
    return i;
}

static size_t space_match(const unsigned char *s, size_t n, size_t i, int with_nl);

/* Tries DeepSeek V3's word pattern at i; returns the match end, or i when
 * no alternative matches there. Alternatives, in order:
 *  a  [ASCII punct][A-Za-z]+
 *  b  [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
 *  c   ?[\p{P}\p{S}]+[\r\n]*
 *  d  \s*[\r\n]+        (ends after the last CR/LF of the white-space run)
 *  e  \s+(?!\S)         (the run, less its last char unless it ends the piece)
 *  f  \s+ */
static size_t ds3_match_at(const unsigned char *s, size_t n, size_t i)
{
    uint32_t c0, c1;
    size_t l0, l1;
    unsigned k0 = cls_at(s, n, i, &c0, &l0);
    /* a */
    if (ascii_punct(c0) && i + 1 < n && ascii_alpha(s[i + 1])) {
        size_t j = i + 2;
        while (j < n && ascii_alpha(s[j]))
            j++;
        return j;
    }
    /* b */
    unsigned m0 = k0 & 7u;
    if (c0 != '\r' && c0 != '\n' && m0 != TOK_UCD_L && m0 != TOK_UCD_P && m0 != TOK_UCD_S &&
        i + l0 < n) {
        unsigned k1 = cls_at(s, n, i + l0, &c1, &l1);
        if (is_lm(k1))
            return run_end(s, n, i + l0 + l1, is_lm);
    }
    if (is_lm(k0))
        return run_end(s, n, i + l0, is_lm);
    /* c */
    size_t j = i;
    if (c0 == ' ' && i + 1 < n) {
        unsigned k1 = cls_at(s, n, i + 1, &c1, &l1);
        if (is_ps(k1))
            j = i + 1;
    }
    if (j > i || is_ps(k0)) {
        j = run_end(s, n, j, is_ps);
        while (j < n && (s[j] == '\r' || s[j] == '\n'))
            j++;
        return j;
    }
    /* d, e, f: a white-space run */
    if (!(k0 & TOK_UCD_WS))
        return i;
    return space_match(s, n, i, 1);
}

/* White-space alternatives shared by every pattern, tried at i (a white
 * space char). with_nl adds \s*[\r\n]+ first (ends after the last CR/LF
 * of the run); then \s+(?!\S) (the run, less its last char unless it ends
 * the piece) and \s+. Returns the match end. */
static size_t space_match(const unsigned char *s, size_t n, size_t i, int with_nl)
{
    size_t end = i, last_nl = 0, last_start = i, chars = 0;
    while (end < n) {
        uint32_t cp;
        size_t l;
        unsigned k = cls_at(s, n, end, &cp, &l);
        if (!(k & TOK_UCD_WS))
            break;
        if (cp == '\r' || cp == '\n')
            last_nl = end + 1;
        last_start = end;
        chars++;
        end += l;
    }
    if (with_nl && last_nl)
        return last_nl;
    if (end == n)
        return end;
    if (chars >= 2)
        return last_start;
    return end;
}

static int is_l(unsigned c)
{
    return (c & 7u) == TOK_UCD_L;
}

static int is_n(unsigned c)
{
    return (c & 7u) == TOK_UCD_N;
}

/* [^\s\p{L}\p{N}] */
static int is_other(unsigned c)
{
    return !(c & TOK_UCD_WS) && !is_l(c) && !is_n(c);
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd) at s[i] (s[i] == '\''),
 * or 0. Case-insensitive when fold: Oniguruma folds U+017F (long s) to s. */
static size_t contraction(const unsigned char *s, size_t n, size_t i, int fold)
{
    if (i + 1 >= n)
        return 0;
    unsigned char a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
    if (fold) {
        if (a == 0xc5 && b == 0xbf) /* U+017F LATIN SMALL LETTER LONG S */
            return 3;
        a = (unsigned char)(a >= 'A' && a <= 'Z' ? a + 32 : a);
        b = (unsigned char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t gpt2_match_at(const unsigned char *s, size_t n, size_t i)
{
    uint32_t c0, c1;
    size_t l0, l1;
    unsigned k0 = cls_at(s, n, i, &c0, &l0);
    if (c0 == '\'') {
        size_t c = contraction(s, n, i, 0);
        if (c)
            return i + c;
    }
    int (*const classes[3])(unsigned) = {is_l, is_n, is_other};
    for (int a = 0; a < 3; a++) {
        if (c0 == ' ' && i + 1 < n && classes[a](cls_at(s, n, i + 1, &c1, &l1)))
            return run_end(s, n, i + 1, classes[a]);
        if (classes[a](k0))
            return run_end(s, n, i, classes[a]);
    }
    if (k0 & TOK_UCD_WS)
        return space_match(s, n, i, 0);
    return i;
}

/* Llama 3 (digits = 3) and Qwen2 (digits = 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t llama3_match_at(const unsigned char *s, size_t n, size_t i, int digits)
{
    uint32_t c0, c1;
    size_t l0, l1;
    unsigned k0 = cls_at(s, n, i, &c0, &l0);
    if (c0 == '\'') {
        size_t c = contraction(s, n, i, 1);
        if (c)
            return i + c;
    }
    if (c0 != '\r' && c0 != '\n' && !is_l(k0) && !is_n(k0) && i + l0 < n &&
        is_l(cls_at(s, n, i + l0, &c1, &l1)))
        return run_end(s, n, i + l0 + l1, is_l);
    if (is_l(k0))
        return run_end(s, n, i + l0, is_l);
    if (is_n(k0)) {
        size_t j = i + l0;
        for (int c = 1; c < digits && j < n; c++) {
            size_t l2;
            if (!is_n(cls_at(s, n, j, &c1, &l2)))
                break;
            j += l2;
        }
        return j;
    }
    size_t j = i;
    if (c0 == ' ' && i + 1 < n && is_other(cls_at(s, n, i + 1, &c1, &l1)))
        j = i + 1;
    if (j > i || is_other(k0)) {
        j = run_end(s, n, j, is_other);
        while (j < n && (s[j] == '\r' || s[j] == '\n'))
            j++;
        return j;
    }
    if (k0 & TOK_UCD_WS)
        return space_match(s, n, i, 1);
    return i;
}

int tok_split_find(tok_split_kind_t kind, const unsigned char *s, size_t n, size_t pos, size_t *ms,
                   size_t *me)
{
    size_t i = pos;
    while (i < n) {
        /* Fast skip: no ASCII byte starts a CJK match, only 0-9 a number. */
        if (s[i] < 0x80 &&
            (kind == TOK_SPLIT_CJK || (kind == TOK_SPLIT_DIGITS3 && (s[i] < '0' || s[i] > '9')))) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l;
        unsigned k = cls_at(s, n, i, &cp, &l);
        switch (kind) {
        case TOK_SPLIT_DIGITS3:
            if ((k & 7u) == TOK_UCD_N) {
                size_t j = i + l;
                for (int c = 1; c < 3 && j < n; c++) {
                    uint32_t cp2;
                    size_t l2;
                    if ((cls_at(s, n, j, &cp2, &l2) & 7u) != TOK_UCD_N)
                        break;
                    j += l2;
                }
                *ms = i;
                *me = j;
                return 1;
            }
            break;
        case TOK_SPLIT_CJK:
            if (is_cjk(cp)) {
                size_t j = i + l;
                while (j < n) {
                    uint32_t cp2;
                    size_t l2;
                    cp2 = tok_utf8_next(s + j, n - j, &l2);
                    if (!is_cjk(cp2))
                        break;
                    j += l2;
                }
                *ms = i;
                *me = j;
                return 1;
            }
            break;
        case TOK_SPLIT_DS3_WORDS:
        case TOK_SPLIT_GPT2:
        case TOK_SPLIT_LLAMA3:
        case TOK_SPLIT_QWEN2: {
            size_t e = kind == TOK_SPLIT_DS3_WORDS ? ds3_match_at(s, n, i)
                       : kind == TOK_SPLIT_GPT2
                           ? gpt2_match_at(s, n, i)
                           : llama3_match_at(s, n, i, kind == TOK_SPLIT_LLAMA3 ? 3 : 1);
            if (e > i) {
                *ms = i;
                *me = e;
                return 1;
            }
            break;
        }
        }
        i += l;
    }
    return 0;
}
