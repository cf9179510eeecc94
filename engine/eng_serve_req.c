/* eng_serve_req: validation of OpenAI request bodies for the engine. The
 * checks follow OpenAI's ranges: temperature 0..2, top_p in (0, 1],
 * max_tokens >= 1, n == 1 only, at most 4 stop strings. top_k (>= 0, 0 = off)
 * and stop_token_ids are the extensions vLLM and SGLang also accept. */
#include "eng_serve_req.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(eng_serve_err_t *e, const char *param, const char *code, const char *fmt, ...)
{
    memset(e, 0, sizeof *e);
    e->status = 400;
    snprintf(e->type, sizeof e->type, "invalid_request_error");
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* A JSON number that is an integer in [lo, hi]. */
static bool get_int(const cJSON *v, double lo, double hi, long long *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || floor(d) != d)
        return false;
    *out = (long long)d;
    return true;
}

/* Optional number field in [lo, hi]. Returns 0 (absent or null leaves *out), -1 bad. */
static int opt_num(const cJSON *o, const char *name, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return -1;
    *out = v->valuedouble;
    return 0;
}

static int parse_prompt(const cJSON *root, bool chat, const tok_tokenizer_t *tok,
                        const tok_chat_t *tpl, const eng_serve_limits_t *lim,
                        eng_serve_req_t *r, eng_serve_err_t *e)
{
    if (chat) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "messages");
        if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) == 0)
            return fail(e, "messages", NULL, "'messages' must be a non-empty array of messages");
        const cJSON *it;
        cJSON_ArrayForEach(it, m)
        {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
            if (!cJSON_IsObject(it) || !cJSON_IsString(role))
                return fail(e, "messages", NULL, "every message needs a string 'role'");
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
            if (c && !cJSON_IsString(c) && !cJSON_IsNull(c))
                return fail(e, "messages", NULL,
                            "message 'content' must be a string (content parts are not "
                            "supported by this engine)");
        }
        tok_buf_t text = {0};
        char err[256];
        if (tok_chat_render(tpl, m, true, &text, err, sizeof err) != 0) {
            tok_buf_free(&text);
            return fail(e, "messages", NULL, "cannot render the messages: %s", err);
        }
        tok_encode(tok, text.data, text.len, &r->ids);
        tok_buf_free(&text);
        return 0;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child))
        p = p->child; /* ["text"] */
    if (cJSON_IsString(p)) {
        tok_encode(tok, p->valuestring, strlen(p->valuestring), &r->ids);
        return 0;
    }
    if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) == 0)
        return fail(e, "prompt", NULL,
                    "'prompt' must be a string, a one-string array or an array of token ids");
    const cJSON *it;
    cJSON_ArrayForEach(it, p)
    {
        long long id;
        if (!get_int(it, 0, (double)lim->n_allowed - 1, &id))
            return fail(e, "prompt", NULL,
                        "'prompt' token ids must be integers from 0 to %d (one prompt per "
                        "request)",
                        lim->n_allowed - 1);
        if (r->ids.len == r->ids.cap) {
            r->ids.cap = r->ids.cap ? 2 * r->ids.cap : 64;
            r->ids.ids = realloc(r->ids.ids, r->ids.cap * sizeof(uint32_t));
            if (!r->ids.ids)
                abort();
        }
        r->ids.ids[r->ids.len++] = (uint32_t)id;
    }
    return 0;
}

static int parse_stops(const cJSON *root, eng_serve_req_t *r, eng_serve_err_t *e)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (s && !cJSON_IsNull(s)) {
        if (cJSON_IsString(s)) {
            if (s->valuestring[0])
                r->stops[r->n_stops++] = strdup(s->valuestring);
        } else if (cJSON_IsArray(s) && cJSON_GetArraySize(s) <= ENG_MAX_STOP_STRINGS) {
            const cJSON *it;
            cJSON_ArrayForEach(it, s)
            {
                if (!cJSON_IsString(it))
                    return fail(e, "stop", NULL, "'stop' must be a string or strings");
                if (it->valuestring[0])
                    r->stops[r->n_stops++] = strdup(it->valuestring);
            }
        } else {
            return fail(e, "stop", NULL, "'stop' must be a string or an array of at most %d strings",
                        ENG_MAX_STOP_STRINGS);
        }
        for (int i = 0; i < r->n_stops; i++)
            if (!r->stops[i])
                abort();
    }
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "stop_token_ids");
    eng_req_params_t *p = &r->params;
    if (ids && !cJSON_IsNull(ids)) {
        if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) > ENG_MAX_STOP_IDS - 1)
            return fail(e, "stop_token_ids", NULL,
                        "'stop_token_ids' must be an array of at most %d token ids",
                        ENG_MAX_STOP_IDS - 1);
        const cJSON *it;
        cJSON_ArrayForEach(it, ids)
        {
            long long id;
            if (!get_int(it, 0, 2147483647.0, &id))
                return fail(e, "stop_token_ids", NULL, "'stop_token_ids' must hold token ids");
            p->stop_ids[p->n_stop_ids++] = (int32_t)id;
        }
    }
    return 0;
}

int eng_serve_req_parse(const char *body, size_t len, bool chat, const tok_tokenizer_t *tok,
                        const tok_chat_t *chat_tpl, const eng_serve_limits_t *lim,
                        eng_serve_req_t *r, eng_serve_err_t *e)
{
    memset(r, 0, sizeof *r);
    r->chat = chat;
    cJSON *root = cJSON_ParseWithLength(body, len);
    int rc = -1;
    if (!root || !cJSON_IsObject(root)) {
        fail(e, NULL, NULL, "the request body must be a JSON object");
        goto out;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(model) || !model->valuestring[0] ||
        strlen(model->valuestring) >= sizeof r->model) {
        fail(e, "model", NULL, "'model' must be a non-empty string (under %zu bytes)",
             sizeof r->model);
        goto out;
    }
    snprintf(r->model, sizeof r->model, "%s", model->valuestring);

    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (st && !cJSON_IsNull(st) && !cJSON_IsBool(st)) {
        fail(e, "stream", NULL, "'stream' must be true or false");
        goto out;
    }
    r->stream = cJSON_IsTrue(st);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        const cJSON *iu = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
        if (!cJSON_IsObject(so) || (iu && !cJSON_IsBool(iu))) {
            fail(e, "stream_options", NULL, "'stream_options.include_usage' must be a boolean");
            goto out;
        }
        r->include_usage = cJSON_IsTrue(iu);
    }

    eng_req_params_t *p = &r->params;
    p->sample = eng_sample_defaults();
    p->sample.n_allowed = lim->n_allowed;
    double d;
    d = 1.0;
    if (opt_num(root, "temperature", 0, 2, &d)) {
        fail(e, "temperature", NULL, "'temperature' must be a number from 0 to 2");
        goto out;
    }
    p->sample.temperature = (float)d;
    d = 1.0;
    if (opt_num(root, "top_p", 0, 1, &d) || d <= 0) {
        fail(e, "top_p", NULL, "'top_p' must be a number in (0, 1]");
        goto out;
    }
    p->sample.top_p = (float)d;
    long long k = 0;
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(root, "top_k");
    if (tk && !cJSON_IsNull(tk) && !get_int(tk, -1, 1e9, &k)) {
        fail(e, "top_k", NULL, "'top_k' must be an integer >= 0 (0 or -1: no limit)");
        goto out;
    }
    p->sample.top_k = k > 0 ? (int)k : 0;
    long long seed = 0;
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (sd && !cJSON_IsNull(sd) && !get_int(sd, -9.2e18, 9.2e18, &seed)) {
        fail(e, "seed", NULL, "'seed' must be an integer");
        goto out;
    }
    p->sample.seed = (uint64_t)seed;
    long long n = 1;
    const cJSON *nn = cJSON_GetObjectItemCaseSensitive(root, "n");
    if (nn && !cJSON_IsNull(nn) && (!get_int(nn, 1, 1e9, &n) || n != 1)) {
        fail(e, "n", NULL, "'n' must be 1: this engine returns one choice");
        goto out;
    }
    long long max = -1;
    const char *max_names[] = {"max_tokens", "max_completion_tokens"};
    for (int i = 0; i < 2; i++) {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, max_names[i]);
        long long v;
        if (!mt || cJSON_IsNull(mt))
            continue;
        if (!get_int(mt, 1, 1e9, &v)) {
            fail(e, max_names[i], NULL, "'%s' must be an integer >= 1", max_names[i]);
            goto out;
        }
        if (max < 0 || v < max)
            max = v;
    }
    if (parse_stops(root, r, e) || parse_prompt(root, chat, tok, chat_tpl, lim, r, e))
        goto out;
    if (lim->eos_id >= 0 && p->n_stop_ids < ENG_MAX_STOP_IDS)
        p->stop_ids[p->n_stop_ids++] = lim->eos_id;

    long long np = (long long)r->ids.len;
    const char *pparam = chat ? "messages" : "prompt";
    if (np == 0) {
        fail(e, pparam, NULL, "the prompt is empty");
        goto out;
    }
    long long room = lim->context < lim->kv_tokens ? lim->context : lim->kv_tokens;
    if (np >= room || (max > 0 && np + max > room)) {
        fail(e, pparam, "context_length_exceeded",
             "This model's maximum context length is %d tokens and its KV cache holds %d "
             "tokens. However, you requested %lld tokens (%lld in the prompt, %lld for the "
             "completion). Please reduce the length of the prompt or the completion.",
             lim->context, lim->kv_tokens, np + (max > 0 ? max : 1), np, max > 0 ? max : 1);
        goto out;
    }
    if (max < 0)
        max = lim->default_max < room - np ? lim->default_max : room - np;
    p->max_tokens = (int)max;
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc)
        eng_serve_req_free(r);
    return rc;
}

void eng_serve_req_free(eng_serve_req_t *r)
{
    tok_ids_free(&r->ids);
    for (int i = 0; i < r->n_stops; i++)
        free(r->stops[i]);
    r->n_stops = 0;
}
