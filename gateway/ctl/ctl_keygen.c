/* ctl_keygen: new API keys. A key is "tg-" followed by the unpadded base64url
 * form of 32 bytes from OpenSSL's CSPRNG (256 bits of entropy); its first 11
 * characters are the display prefix that tollgatectl stores and shows. */
#include "ctl.h"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

int ctl_key_generate(char key[CTL_KEY_LEN + 1], char display[CTL_KEY_DISPLAY_LEN + 1], char *err,
                     size_t errlen)
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[CTL_KEY_RANDOM_BYTES + 1] = {0}; /* one spare zero byte for the tail */
    if (RAND_bytes(raw, CTL_KEY_RANDOM_BYTES) != 1) {
        char msg[256];
        ERR_error_string_n(ERR_get_error(), msg, sizeof msg);
        snprintf(err, errlen, "OpenSSL could not generate random bytes: %s", msg);
        return -1;
    }
    size_t o = strlen(CTL_KEY_PREFIX);
    memcpy(key, CTL_KEY_PREFIX, o);
    /* 32 bytes = 10 groups of 3 plus 2 bytes: 40 + 3 characters. */
    for (size_t i = 0; i < CTL_KEY_RANDOM_BYTES; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8;
        if (i + 2 < CTL_KEY_RANDOM_BYTES)
            v |= raw[i + 2];
        size_t chars = CTL_KEY_RANDOM_BYTES - i >= 3 ? 4 : CTL_KEY_RANDOM_BYTES - i + 1;
        for (size_t c = 0; c < chars; c++)
            key[o++] = b64url[(v >> (18 - 6 * c)) & 63];
    }
    key[o] = '\0';
    memcpy(display, key, CTL_KEY_DISPLAY_LEN);
    display[CTL_KEY_DISPLAY_LEN] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return o == CTL_KEY_LEN ? 0 : -1;
}
