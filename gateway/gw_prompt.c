/* gw_prompt: exact prompt token counts with the model's tokenizer, or an
 * estimate marked as one. */
#include "gw_prompt.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tg_log.h"

int gw_tokenizer_load(gw_tokenizer_t *t, const char *path, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "tokenizer %s: no such file or folder", path);
        return -1;
    }
    char file[600], cfg[600];
    bool dir = S_ISDIR(st.st_mode);
    snprintf(file, sizeof file, dir ? "%s/tokenizer.json" : "%s", path);
    char lerr[256];
    t->tok = tok_load_file(file, lerr, sizeof lerr);
    if (!t->tok) {
        snprintf(err, errlen, "tokenizer %s: %s", file, lerr);
        return -1;
    }
    if (dir) {
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", path);
        if (stat(cfg, &st) == 0) {
            t->chat = tok_chat_load_file(cfg, lerr, sizeof lerr);
            if (!t->chat) {
                snprintf(err, errlen, "chat template %s: %s", cfg, lerr);
                gw_tokenizer_free(t);
                return -1;
            }
        }
    }
    return 0;
}

void gw_tokenizer_free(gw_tokenizer_t *t)
{
    if (t->tok)
        tok_free(t->tok);
    if (t->chat)
        tok_chat_free(t->chat);
    t->tok = NULL;
    t->chat = NULL;
}

/* Bytes of text a message contributes: its content string, or the text parts
 * of a content array. */
static size_t content_bytes(const cJSON *content)
{
    if (cJSON_IsString(content))
        return strlen(content->valuestring);
    size_t n = 0;
    const cJSON *part;
    if (cJSON_IsArray(content))
        cJSON_ArrayForEach(part, content)
        {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (cJSON_IsString(text))
                n += strlen(text->valuestring);
        }
    return n;
}

static int64_t estimate(const cJSON *body, bool chat)
{
    int64_t bytes = 0, pieces = 0;
    if (chat) {
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(body, "messages"))
        {
            bytes += (int64_t)content_bytes(cJSON_GetObjectItemCaseSensitive(m, "content"));
            pieces++;
        }
        return (bytes + 3) / 4 + 4 * pieces;
    }
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (cJSON_IsString(prompt))
        return ((int64_t)strlen(prompt->valuestring) + 3) / 4;
    const cJSON *p;
    cJSON_ArrayForEach(p, prompt)
    {
        if (cJSON_IsNumber(p))
            pieces++; /* a token id */
        else if (cJSON_IsString(p))
            bytes += (int64_t)strlen(p->valuestring);
    }
    return (bytes + 3) / 4 + pieces;
}

gw_prompt_count_t gw_prompt_count(const gw_tokenizer_t *t, const cJSON *body, bool chat)
{
    gw_prompt_count_t out = {estimate(body, chat), false};
    if (!t || !t->tok)
        return out;
    if (chat) {
        if (!t->chat)
            return out;
        tok_buf_t text = {0};
        char err[256];
        if (tok_chat_render(t->chat, cJSON_GetObjectItemCaseSensitive(body, "messages"), true,
                            &text, err, sizeof err) == 0) {
            out.tokens = (int64_t)tok_count(t->tok, text.data, text.len);
            out.exact = true;
        } else {
            tg_debug("chat template could not render this request (%s): estimating", err);
        }
        tok_buf_free(&text);
        return out;
    }
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (cJSON_IsString(prompt)) {
        out.tokens = (int64_t)tok_count(t->tok, prompt->valuestring, strlen(prompt->valuestring));
        out.exact = true;
    } else if (cJSON_IsArray(prompt)) {
        int64_t n = 0;
        bool all_ids = true;
        const cJSON *p;
        cJSON_ArrayForEach(p, prompt)
        {
            if (cJSON_IsNumber(p))
                n++;
            else if (cJSON_IsString(p))
                n += (int64_t)tok_count(t->tok, p->valuestring, strlen(p->valuestring));
            else
                all_ids = false;
        }
        if (all_ids) {
            out.tokens = n;
            out.exact = true;
        }
    }
    return out;
}
