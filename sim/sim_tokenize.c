/* sim_tokenize: exact DeepSeek tokenization of prompts for the simulator's
 * usage counts and prefix cache (--tokenizer; see sim_tokenize.h). */
#include "sim_tokenize.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tg_log.h"

int sim_tokenizer_load(sim_tokenizer_t *t, const char *path, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "tokenizer %s: no such file or folder", path);
        return -1;
    }
    char file[1100], lerr[256];
    bool dir = S_ISDIR(st.st_mode);
    snprintf(file, sizeof file, dir ? "%s/tokenizer.json" : "%s", path);
    t->tok = tok_load_file(file, lerr, sizeof lerr);
    if (!t->tok) {
        snprintf(err, errlen, "tokenizer %s: %s", file, lerr);
        return -1;
    }
    if (dir) {
        snprintf(file, sizeof file, "%s/tokenizer_config.json", path);
        if (stat(file, &st) == 0) {
            t->chat = tok_chat_load_file(file, lerr, sizeof lerr);
            if (!t->chat) {
                snprintf(err, errlen, "chat template %s: %s", file, lerr);
                sim_tokenizer_free(t);
                return -1;
            }
        }
    }
    return 0;
}

void sim_tokenizer_free(sim_tokenizer_t *t)
{
    if (t->tok)
        tok_free(t->tok);
    if (t->chat)
        tok_chat_free(t->chat);
    t->tok = NULL;
    t->chat = NULL;
}

int sim_tokenizer_apply(const sim_tokenizer_t *t, const char *body, size_t len, sim_request_t *r)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        return -1; /* cannot happen: the body was validated */
    tok_ids_t ids = {0};
    int rc = 0;
    if (r->kind == SIM_KIND_CHAT) {
        tok_buf_t text = {0};
        char err[256];
        if (!t->chat) {
            rc = -1;
        } else if (tok_chat_render(t->chat, cJSON_GetObjectItemCaseSensitive(root, "messages"),
                                   true, &text, err, sizeof err) != 0) {
            tg_debug("chat template cannot render this request (%s): 4-byte rule", err);
            rc = -1;
        } else {
            tok_encode(t->tok, text.data, text.len, &ids);
        }
        tok_buf_free(&text);
    } else {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        const cJSON *p;
        if (cJSON_IsString(prompt))
            tok_encode(t->tok, prompt->valuestring, strlen(prompt->valuestring), &ids);
        else
            cJSON_ArrayForEach(p, prompt) if (cJSON_IsString(p))
                tok_encode(t->tok, p->valuestring, strlen(p->valuestring), &ids);
    }
    cJSON_Delete(root);
    if (rc == 0) {
        sim_tokens_free(&r->tokens);
        sim_tokens_init(&r->tokens);
        for (size_t i = 0; i < ids.len; i++)
            sim_tokens_add(&r->tokens, ids.ids[i]);
    }
    tok_ids_free(&ids);
    return rc;
}
