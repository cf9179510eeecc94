/* tok_ucd: home of the Unicode tables generated at build time by tok_ucd_gen
 * from the UCD (class and combining-class lookups are inline in tok_ucd.h),
 * and the searches in its decomposition and composition lists. */
#include "tok_ucd.h"
#include "tok_ucd_tables.h"

#include <stddef.h>

const char *tok_unicode_version(void)
{
    return TOK_UCD_VERSION;
}

size_t tok_ucd_decompose(uint32_t cp, const uint32_t **out)
{
    size_t lo = 0, hi = TOK_UCD_NDECOMP;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tok_ucd_decomp_cp[mid] == cp) {
            *out = tok_ucd_decomp_pool + tok_ucd_decomp_at[mid];
            return tok_ucd_decomp_at[mid + 1] - tok_ucd_decomp_at[mid];
        }
        if (tok_ucd_decomp_cp[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

uint32_t tok_ucd_compose(uint32_t a, uint32_t b)
{
    uint64_t key = (uint64_t)a << 21 | b;
    size_t lo = 0, hi = TOK_UCD_NCOMP;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tok_ucd_comp_key[mid] == key)
            return tok_ucd_comp_val[mid];
        if (tok_ucd_comp_key[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}
