/* sim_tokenize: exact DeepSeek tokenization of prompts for the simulator's
 * usage counts and prefix cache (--tokenizer; see sim_tokenize.h). */
#include "sim_tokenize.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "tg_log.h"

int sim_tokenizer_load(sim_tokenizer_t *t, const char *path, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    return tok_load_path(path, &t->tok, &t->chat, err, errlen);
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
