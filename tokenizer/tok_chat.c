/* tok_chat: the DeepSeek V3 chat template, rendered natively. The published
 * Jinja template (tokenizer_config.json "chat_template") is recognised by its
 * XXH64 and reproduced branch for branch, quirks included: a first tool call
 * is not closed, later ones each close the whole call list. Where Jinja would
 * raise (a missing or non-string field the template reads) we return an error. */
#include "tok_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tg_log.h"

/* XXH64 (seed 0) of the chat templates rendered here. */
static const struct {
    uint64_t hash;
    const char *name;
} KNOWN_TEMPLATES[] = {
    {0x71a67db741264d08ull, "deepseek-v3"},
};

struct tok_chat {
    char *bos;
    const char *family;
};

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* tokenizer_config.json gives special tokens as a string or {"content": ...}. */
static const char *token_text(const cJSON *v)
{
    if (cJSON_IsString(v))
        return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

tok_chat_t *tok_chat_load_json(const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        set_err(err, errlen, "not valid JSON");
        return NULL;
    }
    tok_chat_t *chat = NULL;
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (!cJSON_IsString(tpl)) {
        set_err(err, errlen, "chat_template: missing or not a string");
        goto out;
    }
    uint64_t h = tok_xxh64(tpl->valuestring, strlen(tpl->valuestring), 0);
    const char *family = NULL;
    for (size_t i = 0; i < sizeof KNOWN_TEMPLATES / sizeof KNOWN_TEMPLATES[0]; i++)
        if (KNOWN_TEMPLATES[i].hash == h)
            family = KNOWN_TEMPLATES[i].name;
    if (!family) {
        set_err(err, errlen,
                "chat_template: not a template rendered natively (xxh64 %016llx; known: "
                "DeepSeek V3)",
                (unsigned long long)h);
        goto out;
    }
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(root, "bos_token");
    const char *bos_text = token_text(bos);
    if (bos && !cJSON_IsNull(bos) && !bos_text) {
        set_err(err, errlen, "bos_token: expected a string or an object with content");
        goto out;
    }
    chat = tok_xcalloc(1, sizeof *chat);
    chat->bos = strdup(bos_text ? bos_text : ""); /* Jinja prints undefined as "" */
    if (!chat->bos)
        abort();
    chat->family = family;
out:
    cJSON_Delete(root);
    return chat;
}

tok_chat_t *tok_chat_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: cannot open", path);
        tg_error("tokenizer: %s: cannot open", path);
        return NULL;
    }
    tok_buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (64u << 20))
        tok_buf_append(&b, chunk, n);
    fclose(f);
    char inner[256];
    tok_chat_t *c = tok_chat_load_json(b.data ? b.data : "", b.len, inner, sizeof inner);
    tok_buf_free(&b);
    if (!c) {
        set_err(err, errlen, "%s: %s", path, inner);
        tg_error("tokenizer: %s: %s", path, inner);
    }
    return c;
}

void tok_chat_free(tok_chat_t *chat)
{
    if (!chat)
        return;
    free(chat->bos);
    free(chat);
}

/* The string at obj[key], or NULL with err naming messages[i].key. */
static const char *need_str(const cJSON *obj, const char *key, const char *where, int i, char *err,
                            size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsString(v))
        return v->valuestring;
    set_err(err, errlen, "messages[%d]%s.%s: %s", i, where, key,
            v ? "must be a string" : "missing");
    return NULL;
}

static int role_is(const cJSON *m, const char *role)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
    return cJSON_IsString(r) && strcmp(r->valuestring, role) == 0;
}

/* Renders one assistant message whose content is null (the tool-call branch). */
static int render_tool_calls(const cJSON *m, int i, bool *is_first, tok_buf_t *out, char *err,
                             size_t errlen)
{
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (!calls)
        return 0; /* Jinja iterates an undefined value as empty */
    if (!cJSON_IsArray(calls)) {
        set_err(err, errlen, "messages[%d].tool_calls: must be an array", i);
        return -1;
    }
    int k = 0;
    const cJSON *call;
    cJSON_ArrayForEach(call, calls)
    {
        char where[48];
        snprintf(where, sizeof where, ".tool_calls[%d]", k);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
        const char *type = need_str(call, "type", where, i, err, errlen);
        if (!type)
            return -1;
        if (!cJSON_IsObject(fn)) {
            set_err(err, errlen, "messages[%d]%s.function: missing or not an object", i, where);
            return -1;
        }
        snprintf(where, sizeof where, ".tool_calls[%d].function", k);
        const char *name = need_str(fn, "name", where, i, err, errlen);
        const char *args = name ? need_str(fn, "arguments", where, i, err, errlen) : NULL;
        if (!args)
            return -1;
        if (!*is_first)
            tok_buf_appends(out, "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>");
        else
            tok_buf_appends(out, "\n<｜tool▁call▁begin｜>");
        tok_buf_appends(out, type);
        tok_buf_appends(out, "<｜tool▁sep｜>");
        tok_buf_appends(out, name);
        tok_buf_appends(out, "\n```json\n");
        tok_buf_appends(out, args);
        tok_buf_appends(out, "\n```<｜tool▁call▁end｜>");
        if (*is_first)
            tok_buf_appends(out, "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>");
        *is_first = true;
        k++;
    }
    return 0;
}

int tok_chat_render(const tok_chat_t *chat, const cJSON *messages, bool add_generation_prompt,
                    tok_buf_t *out, char *err, size_t errlen)
{
    if (!cJSON_IsArray(messages)) {
        set_err(err, errlen, "messages: must be an array");
        return -1;
    }
    size_t start = out->len;
    tok_buf_t sys = {0};
    bool is_first = false, is_tool = false, is_output_first = true, is_first_sp = true;
    int i = 0, rc = -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        if (!cJSON_IsObject(m)) {
            set_err(err, errlen, "messages[%d]: must be an object", i);
            goto done;
        }
        if (role_is(m, "system")) {
            const char *c = need_str(m, "content", "", i, err, errlen);
            if (!c)
                goto done;
            if (!is_first_sp)
                tok_buf_appends(&sys, "\n\n");
            tok_buf_appends(&sys, c);
            is_first_sp = false;
        }
        i++;
    }
    tok_buf_appends(out, chat->bos);
    if (sys.len)
        tok_buf_append(out, sys.data, sys.len);
    i = 0;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (role_is(m, "user")) {
            const char *c = need_str(m, "content", "", i, err, errlen);
            if (!c)
                goto done;
            is_tool = false;
            tok_buf_appends(out, "<｜User｜>");
            tok_buf_appends(out, c);
        } else if (role_is(m, "assistant") && cJSON_IsNull(content)) {
            is_tool = false;
            if (render_tool_calls(m, i, &is_first, out, err, errlen) != 0)
                goto done;
        } else if (role_is(m, "assistant")) {
            const char *c = need_str(m, "content", "", i, err, errlen);
            if (!c)
                goto done;
            tok_buf_appends(out, is_tool ? "<｜tool▁outputs▁end｜>" : "<｜Assistant｜>");
            tok_buf_appends(out, c);
            tok_buf_appends(out, "<｜end▁of▁sentence｜>");
            is_tool = false;
        } else if (role_is(m, "tool")) {
            const char *c = need_str(m, "content", "", i, err, errlen);
            if (!c)
                goto done;
            is_tool = true;
            tok_buf_appends(out, is_output_first ? "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>"
                                                 : "\n<｜tool▁output▁begin｜>");
            tok_buf_appends(out, c);
            tok_buf_appends(out, "<｜tool▁output▁end｜>");
            is_output_first = false;
        }
        i++;
    }
    if (is_tool)
        tok_buf_appends(out, "<｜tool▁outputs▁end｜>");
    if (add_generation_prompt && !is_tool)
        tok_buf_appends(out, "<｜Assistant｜>");
    rc = 0;
done:
    tok_buf_free(&sys);
    if (rc != 0) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}
