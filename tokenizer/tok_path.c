/* tok_path: loading a tokenizer the way the gateway, the simulator and the
 * tools are configured with one (a tokenizer.json file, or a folder with it
 * and the optional chat template in tokenizer_config.json). */
#include "tok.h"

#include <stdio.h>
#include <sys/stat.h>

int tok_load_path(const char *path, tok_tokenizer_t **tok, tok_chat_t **chat, char *err,
                  size_t errlen)
{
    *tok = NULL;
    *chat = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "tokenizer %s: no such file or folder", path);
        return -1;
    }
    char file[4200], lerr[256];
    bool dir = S_ISDIR(st.st_mode);
    snprintf(file, sizeof file, dir ? "%s/tokenizer.json" : "%s", path);
    *tok = tok_load_file(file, lerr, sizeof lerr);
    if (!*tok) {
        snprintf(err, errlen, "tokenizer %s: %s", file, lerr);
        return -1;
    }
    if (!dir)
        return 0;
    snprintf(file, sizeof file, "%s/tokenizer_config.json", path);
    if (stat(file, &st) != 0)
        return 0; /* no chat template: plain text only */
    *chat = tok_chat_load_file(file, lerr, sizeof lerr);
    if (!*chat) {
        snprintf(err, errlen, "chat template %s: %s", file, lerr);
        tok_free(*tok);
        *tok = NULL;
        return -1;
    }
    return 0;
}
