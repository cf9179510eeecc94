/* sim_request: turns a JSON request body into a validated sim_request_t,
 * tokenizing the prompt by the rule in sim_tokens.h. Accepts the shapes
 * OpenAI accepts for text: content strings, null, or arrays of text parts. */
#include "sim_request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define FAIL(p, ...)                                                                               \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        *param = (p);                                                                              \
        goto fail;                                                                                 \
    } while (0)

/* Reads an optional positive integer field. Returns 0 (absent/null leaves
 * *out alone), or -1 when present with the wrong type or range. */
static int read_limit(const cJSON *root, const char *name, long long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e9 ||
        floor(v->valuedouble) != v->valuedouble)
        return -1;
    long long n = (long long)v->valuedouble;
    if (*out < 0 || n < *out)
        *out = n;
    return 0;
}

/* Tokenizes one message's content: a string, null, or an array of parts
 * of which the text parts count. Returns 0 or -1 on a wrong type. */
static int add_content(sim_tokens_t *t, const cJSON *content)
{
    if (!content || cJSON_IsNull(content))
        return 0;
    if (cJSON_IsString(content)) {
        sim_tokens_add_text(t, content->valuestring, strlen(content->valuestring));
        return 0;
    }
    if (!cJSON_IsArray(content))
        return -1;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        if (!cJSON_IsObject(part))
            return -1;
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (text && !cJSON_IsString(text))
            return -1;
        if (text)
            sim_tokens_add_text(t, text->valuestring, strlen(text->valuestring));
    }
    return 0;
}

static int parse_messages(const cJSON *root, sim_request_t *out, char *err, size_t errlen,
                          const char **param)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs)
        FAIL("messages", "Missing required parameter: 'messages'.");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        FAIL("messages", "Invalid 'messages': expected a non-empty array of messages.");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        if (!cJSON_IsObject(m))
            FAIL("messages", "Invalid 'messages[%d]': expected an object.", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role))
            FAIL("messages", "Invalid 'messages[%d].role': expected a string.", i);
        sim_tokens_add_message_overhead(&out->tokens, role->valuestring);
        if (add_content(&out->tokens, cJSON_GetObjectItemCaseSensitive(m, "content")) < 0)
            FAIL("messages",
                 "Invalid 'messages[%d].content': expected a string, null or an array of text "
                 "parts.",
                 i);
        i++;
    }
    return 0;
fail:
    return -1;
}

static int parse_prompt(const cJSON *root, sim_request_t *out, char *err, size_t errlen,
                        const char **param)
{
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!prompt)
        FAIL("prompt", "Missing required parameter: 'prompt'.");
    if (cJSON_IsString(prompt)) {
        sim_tokens_add_text(&out->tokens, prompt->valuestring, strlen(prompt->valuestring));
        return 0;
    }
    if (!cJSON_IsArray(prompt) || cJSON_GetArraySize(prompt) == 0)
        FAIL("prompt", "Invalid 'prompt': expected a string or a non-empty array of strings.");
    const cJSON *p;
    cJSON_ArrayForEach(p, prompt)
    {
        if (!cJSON_IsString(p))
            FAIL("prompt", "Invalid 'prompt': expected a string or an array of strings.");
        sim_tokens_add_text(&out->tokens, p->valuestring, strlen(p->valuestring));
    }
    return 0;
fail:
    return -1;
}

int sim_request_parse(const char *body, size_t len, sim_kind_t kind, sim_request_t *out, char *err,
                      size_t errlen, const char **param)
{
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    out->max_tokens = -1;
    sim_tokens_init(&out->tokens);
    *param = NULL;

    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root)
        FAIL(NULL, "We could not parse the JSON body of your request. (The body is not valid "
                   "JSON.)");
    if (!cJSON_IsObject(root))
        FAIL(NULL, "The JSON body of your request must be an object.");

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!model)
        FAIL("model", "Missing required parameter: 'model'.");
    if (!cJSON_IsString(model) || model->valuestring[0] == '\0')
        FAIL("model", "Invalid 'model': expected a non-empty string.");
    if (strlen(model->valuestring) >= sizeof(out->model))
        FAIL("model", "Invalid 'model': longer than %zu bytes.", sizeof(out->model) - 1);
    snprintf(out->model, sizeof(out->model), "%s", model->valuestring);

    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (stream && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream))
            FAIL("stream", "Invalid 'stream': expected a boolean.");
        out->stream = cJSON_IsTrue(stream);
    }
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            FAIL("stream_options", "Invalid 'stream_options': expected an object.");
        out->has_stream_options = true;
        char *printed = cJSON_PrintUnformatted(so);
        if (printed) {
            if (strlen(printed) < sizeof(out->stream_options_json))
                memcpy(out->stream_options_json, printed, strlen(printed) + 1);
            cJSON_free(printed);
        }
        const cJSON *iu = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
        if (iu && !cJSON_IsNull(iu)) {
            if (!cJSON_IsBool(iu))
                FAIL("stream_options",
                     "Invalid 'stream_options.include_usage': expected a boolean.");
            out->include_usage = cJSON_IsTrue(iu);
        }
    }
    if (read_limit(root, "max_tokens", &out->max_tokens) < 0)
        FAIL("max_tokens", "Invalid 'max_tokens': expected a positive integer.");
    if (read_limit(root, "max_completion_tokens", &out->max_tokens) < 0)
        FAIL("max_completion_tokens", "Invalid 'max_completion_tokens': expected a positive "
                                      "integer.");

    if (kind == SIM_KIND_CHAT) {
        if (parse_messages(root, out, err, errlen, param) < 0)
            goto fail;
    } else if (parse_prompt(root, out, err, errlen, param) < 0) {
        goto fail;
    }
    cJSON_Delete(root);
    return 0;
fail:
    cJSON_Delete(root);
    sim_request_free(out);
    return -1;
}

void sim_request_free(sim_request_t *r)
{
    sim_tokens_free(&r->tokens);
}
