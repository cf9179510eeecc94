/* tok_ucd: lookups into the generated Unicode class tables (see tok_ucd_gen.c). */
#include "tok_ucd.h"
#include "tok_ucd_tables.h"

unsigned tok_ucd_class(uint32_t cp)
{
    if (cp >= 0x110000)
        return TOK_UCD_C;
    return tok_ucd_stage2[tok_ucd_stage1[cp >> 8]][cp & 0xff];
}
