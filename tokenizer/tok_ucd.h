/* tok_ucd: Unicode character classes for the pre-tokenizer, looked up in
 * tables generated at build time from the Unicode Character Database
 * (UnicodeData.txt General_Category, PropList.txt White_Space). */
#ifndef TOK_UCD_H
#define TOK_UCD_H

#include <stddef.h>
#include <stdint.h>

/* Major General_Category (low 3 bits of a class byte). */
enum {
    TOK_UCD_L = 1, /* letters (Lu Ll Lt Lm Lo) */
    TOK_UCD_M = 2, /* marks (Mn Mc Me) */
    TOK_UCD_N = 3, /* numbers (Nd Nl No) */
    TOK_UCD_P = 4, /* punctuation */
    TOK_UCD_S = 5, /* symbols */
    TOK_UCD_Z = 6, /* separators */
    TOK_UCD_C = 7, /* other, including unassigned */
};
#define TOK_UCD_WS 8 /* White_Space property bit */

/* The generated two-stage table (tok_ucd_tables.h, compiled in tok_ucd.c). */
extern const unsigned short tok_ucd_stage1[0x110000 / 256];
extern const unsigned char tok_ucd_stage2[][256];

/* Returns the class byte of code point cp; cp >= 0x110000 counts as C. */
static inline unsigned tok_ucd_class(uint32_t cp)
{
    if (cp >= 0x110000)
        return TOK_UCD_C;
    return tok_ucd_stage2[tok_ucd_stage1[cp >> 8]][cp & 0xff];
}

extern const unsigned short tok_ucd_ccc_stage1[0x110000 / 256];
extern const unsigned char tok_ucd_ccc_stage2[][256];

/* Canonical_Combining_Class of cp (0 for starters). */
static inline unsigned tok_ucd_ccc(uint32_t cp)
{
    if (cp >= 0x110000)
        return 0;
    return tok_ucd_ccc_stage2[tok_ucd_ccc_stage1[cp >> 8]][cp & 0xff];
}

/* Full canonical decomposition of cp (not Hangul): sets *out to its code
 * points and returns how many, or 0 when cp does not decompose. */
size_t tok_ucd_decompose(uint32_t cp, const uint32_t **out);

/* Primary composite of the pair (a, b) (not Hangul), or 0 when none. */
uint32_t tok_ucd_compose(uint32_t a, uint32_t b);

/* Returns the major category of cp, one of TOK_UCD_L .. TOK_UCD_C. */
static inline unsigned tok_ucd_major(uint32_t cp)
{
    return tok_ucd_class(cp) & 7u;
}

#endif
