/* gw_prompt: exact prompt token counts with the model's tokenizer, or an
 * estimate marked as one. */
#include "gw_prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_log.h"

int gw_tokenizer_load(gw_tokenizer_t *t, const char *path, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    return tok_load_path(path, &t->tok, &t->chat, err, errlen);
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

void gw_prompt_blocks_free(gw_prompt_blocks_t *b)
{
    free(b->hash);
    b->hash = NULL;
    b->n = 0;
}

/* Hashes the full blocks of ids into *blocks (at most max). */
static void blocks_of(const tok_ids_t *ids, size_t max, gw_prompt_blocks_t *blocks)
{
    size_t n = ids->len / TOK_BLOCK_TOKENS;
    if (n > max)
        n = max;
    if (n == 0)
        return;
    blocks->hash = malloc(n * sizeof *blocks->hash);
    if (!blocks->hash)
        abort();
    blocks->n = tok_block_hashes(ids->ids, n * TOK_BLOCK_TOKENS, blocks->hash, n);
}

/* Counts (and, with want, encodes into ids) text[0..len). */
static int64_t encode(const gw_tokenizer_t *t, const char *text, size_t len, bool want,
                      tok_ids_t *ids)
{
    if (!want)
        return (int64_t)tok_count(t->tok, text, len);
    size_t before = ids->len;
    tok_encode(t->tok, text, len, ids);
    return (int64_t)(ids->len - before);
}

gw_prompt_count_t gw_prompt_count(const gw_tokenizer_t *t, const cJSON *body, bool chat)
{
    return gw_prompt_count_blocks(t, body, chat, 0, NULL);
}

gw_prompt_count_t gw_prompt_count_blocks(const gw_tokenizer_t *t, const cJSON *body, bool chat,
                                         size_t max_blocks, gw_prompt_blocks_t *blocks)
{
    gw_prompt_count_t out = {estimate(body, chat), false};
    if (!t || !t->tok)
        return out;
    bool want = blocks && max_blocks > 0;
    tok_ids_t ids = {0};
    if (chat) {
        if (!t->chat)
            return out;
        tok_buf_t text = {0};
        char err[256];
        if (tok_chat_render(t->chat, cJSON_GetObjectItemCaseSensitive(body, "messages"), true,
                            &text, err, sizeof err) == 0) {
            out.tokens = encode(t, text.data, text.len, want, &ids);
            out.exact = true;
        } else {
            tg_debug("chat template could not render this request (%s): estimating", err);
        }
        tok_buf_free(&text);
    } else {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(body, "prompt");
        if (cJSON_IsString(prompt)) {
            out.tokens = encode(t, prompt->valuestring, strlen(prompt->valuestring), want, &ids);
            out.exact = true;
        } else if (cJSON_IsArray(prompt)) {
            /* several strings are a batch of prompts (no one prefix); ids are
             * one prompt, already tokenized */
            int64_t n = 0;
            int strings = 0, numbers = 0;
            bool all_ids = true, ids_ok = true;
            const cJSON *p;
            cJSON_ArrayForEach(p, prompt)
            {
                if (cJSON_IsNumber(p)) {
                    n++;
                    numbers++;
                    double v = p->valuedouble;
                    if (want && ids_ok && v >= 0 && v < 4294967296.0 && v == (double)(int64_t)v) {
                        uint32_t id = (uint32_t)v;
                        if (ids.len == ids.cap) {
                            ids.cap = ids.cap ? ids.cap * 2 : 256;
                            ids.ids = realloc(ids.ids, ids.cap * sizeof *ids.ids);
                            if (!ids.ids)
                                abort();
                        }
                        ids.ids[ids.len++] = id;
                    } else {
                        ids_ok = false;
                    }
                } else if (cJSON_IsString(p)) {
                    strings++;
                    n += encode(t, p->valuestring, strlen(p->valuestring), want, &ids);
                } else {
                    all_ids = false;
                }
            }
            if (all_ids) {
                out.tokens = n;
                out.exact = true;
            }
            if (!all_ids || !ids_ok || strings > 1 || (strings > 0 && numbers > 0))
                ids.len = 0; /* a batch, or a mix: no prefix to index */
        }
    }
    if (want && out.exact)
        blocks_of(&ids, max_blocks, blocks);
    tok_ids_free(&ids);
    return out;
}
