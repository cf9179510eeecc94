/* tok_ucd: home of the Unicode class tables generated at build time by
 * tok_ucd_gen from the UCD (the lookup itself is inline in tok_ucd.h). */
#include "tok_ucd.h"
#include "tok_ucd_tables.h"

const char *tok_unicode_version(void)
{
    return TOK_UCD_VERSION;
}
