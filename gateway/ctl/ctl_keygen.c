/* ctl_keygen: new API keys for tollgatectl. The generator itself (32 bytes
 * from OpenSSL's CSPRNG, "tg-" + base64url, an 11-character display prefix)
 * lives in gw_key_admin, shared with the admin HTTP API. */
#include "ctl.h"

#include "gw_key_admin.h"

_Static_assert(CTL_KEY_LEN == GW_KEY_LEN && CTL_KEY_DISPLAY_LEN == GW_KEY_DISPLAY_LEN &&
                   CTL_KEY_RANDOM_BYTES == GW_KEY_RANDOM_BYTES,
               "tollgatectl's key format is gw_key_admin's");

int ctl_key_generate(char key[CTL_KEY_LEN + 1], char display[CTL_KEY_DISPLAY_LEN + 1], char *err,
                     size_t errlen)
{
    return gw_key_generate(key, display, err, errlen);
}
