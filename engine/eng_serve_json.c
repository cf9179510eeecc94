/* eng_serve_json: hand-written JSON for the server's answers (no DOM per
 * token). Only the model name and the generated text vary, and both are
 * escaped. */
#include "eng_serve_json.h"

#include <string.h>

void eng_json_string(struct evbuffer *b, const char *s, size_t len)
{
    evbuffer_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        evbuffer_add(b, s + run, i - run);
        if (ch == '"')
            evbuffer_add(b, "\\\"", 2);
        else if (ch == '\\')
            evbuffer_add(b, "\\\\", 2);
        else if (ch == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add_printf(b, "\\u%04x", ch);
        run = i + 1;
    }
    evbuffer_add(b, s + run, len - run);
    evbuffer_add(b, "\"", 1);
}

static void str_or_null(struct evbuffer *b, const char *s)
{
    if (s && s[0])
        eng_json_string(b, s, strlen(s));
    else
        evbuffer_add(b, "null", 4);
}

void eng_json_error(struct evbuffer *b, const char *message, const char *type, const char *param,
                    const char *code)
{
    evbuffer_add_printf(b, "{\"error\":{\"message\":");
    eng_json_string(b, message, strlen(message));
    evbuffer_add_printf(b, ",\"type\":");
    str_or_null(b, type);
    evbuffer_add_printf(b, ",\"param\":");
    str_or_null(b, param);
    evbuffer_add_printf(b, ",\"code\":");
    str_or_null(b, code);
    evbuffer_add_printf(b, "}}");
}

void eng_json_usage(struct evbuffer *b, const eng_answer_t *a)
{
    evbuffer_add_printf(b,
                        "{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d,"
                        "\"prompt_tokens_details\":{\"cached_tokens\":%d},"
                        "\"prompt_cache_hit_tokens\":%d,\"prompt_cache_miss_tokens\":%d}",
                        a->prompt_tokens, a->completion_tokens,
                        a->prompt_tokens + a->completion_tokens, a->cache_hits, a->cache_hits,
                        a->prompt_tokens - a->cache_hits);
}

static void head(struct evbuffer *b, const eng_answer_t *a, const char *object)
{
    evbuffer_add_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", a->id,
                        object, a->created);
    eng_json_string(b, a->model, strlen(a->model));
    evbuffer_add_printf(b, ",\"system_fingerprint\":\"tollgate-engine\",");
}

void eng_json_full(struct evbuffer *b, const eng_answer_t *a, const char *text, size_t len,
                   const char *finish_reason)
{
    if (a->chat) {
        head(b, a, "chat.completion");
        evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                               "\"content\":");
        eng_json_string(b, text, len);
        evbuffer_add_printf(b, "},\"logprobs\":null,\"finish_reason\":\"%s\"}]", finish_reason);
    } else {
        head(b, a, "text_completion");
        evbuffer_add_printf(b, "\"choices\":[{\"text\":");
        eng_json_string(b, text, len);
        evbuffer_add_printf(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}]",
                            finish_reason);
    }
    evbuffer_add_printf(b, ",\"usage\":");
    eng_json_usage(b, a);
    evbuffer_add_printf(b, "}");
}

static void tail(struct evbuffer *b, bool with_usage_null)
{
    if (with_usage_null)
        evbuffer_add_printf(b, ",\"usage\":null");
    evbuffer_add_printf(b, "}\n\n");
}

void eng_json_event_text(struct evbuffer *b, const eng_answer_t *a, const char *text, size_t len,
                         bool role, bool with_usage_null)
{
    evbuffer_add(b, "data: ", 6);
    if (a->chat) {
        head(b, a, "chat.completion.chunk");
        evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"delta\":{%s\"content\":",
                            role ? "\"role\":\"assistant\"," : "");
        eng_json_string(b, text, len);
        evbuffer_add_printf(b, "},\"logprobs\":null,\"finish_reason\":null}]");
    } else {
        head(b, a, "text_completion");
        evbuffer_add_printf(b, "\"choices\":[{\"text\":");
        eng_json_string(b, text, len);
        evbuffer_add_printf(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]");
    }
    tail(b, with_usage_null);
}

void eng_json_event_finish(struct evbuffer *b, const eng_answer_t *a, const char *finish_reason,
                           bool with_usage_null)
{
    evbuffer_add(b, "data: ", 6);
    if (a->chat) {
        head(b, a, "chat.completion.chunk");
        evbuffer_add_printf(b,
                            "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                            "\"finish_reason\":\"%s\"}]",
                            finish_reason);
    } else {
        head(b, a, "text_completion");
        evbuffer_add_printf(b,
                            "\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,"
                            "\"finish_reason\":\"%s\"}]",
                            finish_reason);
    }
    tail(b, with_usage_null);
}

void eng_json_event_usage(struct evbuffer *b, const eng_answer_t *a)
{
    evbuffer_add(b, "data: ", 6);
    head(b, a, a->chat ? "chat.completion.chunk" : "text_completion");
    evbuffer_add_printf(b, "\"choices\":[],\"usage\":");
    eng_json_usage(b, a);
    evbuffer_add_printf(b, "}\n\n");
}
