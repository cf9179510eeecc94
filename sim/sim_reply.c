/* sim_reply: hand-written JSON for the hot path (no DOM per token). Only the
 * model name comes from the client, and it is escaped like every string. */
#include "sim_reply.h"

#include "sim_text.h"

#include <stdio.h>
#include <string.h>

void sim_reply_json_string(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        evbuffer_add(b, run, (size_t)(p - run));
        if (ch == '"')
            evbuffer_add(b, "\\\"", 2);
        else if (ch == '\\')
            evbuffer_add(b, "\\\\", 2);
        else
            evbuffer_add_printf(b, "\\u%04x", ch);
        run = p + 1;
    }
    evbuffer_add(b, run, strlen(run));
    evbuffer_add(b, "\"", 1);
}

void sim_reply_error(struct evbuffer *b, const char *message, const char *type, const char *param,
                     const char *code)
{
    evbuffer_add_printf(b, "{\"error\":{\"message\":");
    sim_reply_json_string(b, message);
    evbuffer_add_printf(b, ",\"type\":");
    sim_reply_json_string(b, type);
    evbuffer_add_printf(b, ",\"param\":");
    if (param)
        sim_reply_json_string(b, param);
    else
        evbuffer_add_printf(b, "null");
    evbuffer_add_printf(b, ",\"code\":");
    if (code)
        sim_reply_json_string(b, code);
    else
        evbuffer_add_printf(b, "null");
    evbuffer_add_printf(b, "}}");
}

void sim_reply_usage(struct evbuffer *b, const sim_answer_t *a)
{
    const sim_usage_t *u = &a->usage;
    evbuffer_add_printf(b, "{\"prompt_tokens\":%llu,\"completion_tokens\":%llu,\"total_tokens\":%llu",
                        (unsigned long long)u->prompt, (unsigned long long)u->completion,
                        (unsigned long long)(u->prompt + u->completion));
    if (a->hide_cache) { /* a provider that does not report caching at all */
        if (a->reasoner)
            evbuffer_add_printf(b, ",\"completion_tokens_details\":{\"reasoning_tokens\":%llu}",
                                (unsigned long long)u->reasoning);
        evbuffer_add_printf(b, "}");
        return;
    }
    evbuffer_add_printf(b, ",\"prompt_tokens_details\":{\"cached_tokens\":%llu},",
                        (unsigned long long)u->hit);
    if (a->reasoner)
        evbuffer_add_printf(b, "\"completion_tokens_details\":{\"reasoning_tokens\":%llu},",
                            (unsigned long long)u->reasoning);
    evbuffer_add_printf(b, "\"prompt_cache_hit_tokens\":%llu,\"prompt_cache_miss_tokens\":%llu}",
                        (unsigned long long)u->hit, (unsigned long long)u->miss);
}

/* Writes the fields every object of an answer starts with. */
static void add_head(struct evbuffer *b, const sim_answer_t *a, const char *object)
{
    evbuffer_add_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", a->id,
                        object, a->created);
    sim_reply_json_string(b, a->model);
    evbuffer_add_printf(b, ",\"system_fingerprint\":\"%s\",", a->fingerprint);
}

/* Appends n words of rng as one JSON string, space-separated. */
static void add_words(struct evbuffer *b, sim_rng_t *rng, uint64_t n)
{
    evbuffer_add(b, "\"", 1);
    for (uint64_t i = 0; i < n; i++) {
        if (i)
            evbuffer_add(b, " ", 1);
        const char *w = sim_text_word(rng);
        evbuffer_add(b, w, strlen(w));
    }
    evbuffer_add(b, "\"", 1);
}

void sim_reply_full(struct evbuffer *b, sim_answer_t *a)
{
    if (a->kind == SIM_KIND_CHAT) {
        add_head(b, a, "chat.completion");
        evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                               "\"content\":");
        add_words(b, &a->rng_content, a->n_content);
        if (a->reasoner) {
            evbuffer_add_printf(b, ",\"reasoning_content\":");
            add_words(b, &a->rng_reasoning, a->n_reasoning);
        }
        evbuffer_add_printf(b, "},\"logprobs\":null,\"finish_reason\":\"%s\"}]", a->finish_reason);
    } else {
        add_head(b, a, "text_completion");
        evbuffer_add_printf(b, "\"choices\":[{\"text\":");
        add_words(b, &a->rng_content, a->n_content);
        evbuffer_add_printf(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}]",
                            a->finish_reason);
    }
    if (a->with_usage) {
        evbuffer_add_printf(b, ",\"usage\":");
        sim_reply_usage(b, a);
    }
    evbuffer_add_printf(b, "}");
}

static void add_tail(struct evbuffer *b, const sim_answer_t *a)
{
    if (a->include_usage && a->with_usage)
        evbuffer_add_printf(b, ",\"usage\":null");
    evbuffer_add_printf(b, "}\n\n");
}

void sim_reply_event_token(struct evbuffer *b, sim_answer_t *a, uint64_t i)
{
    bool reasoning = i < a->n_reasoning;
    bool first_of_part = reasoning ? i == 0 : i == a->n_reasoning;
    bool none = a->n_reasoning + a->n_content == 0;
    const char *w = none ? "" : sim_text_word(reasoning ? &a->rng_reasoning : &a->rng_content);
    const char *sp = first_of_part ? "" : " ";

    evbuffer_add(b, "data: ", 6);
    if (a->kind == SIM_KIND_CHAT) {
        add_head(b, a, "chat.completion.chunk");
        evbuffer_add_printf(b, "\"choices\":[{\"index\":0,\"delta\":{%s",
                            i == 0 ? "\"role\":\"assistant\"," : "");
        if (reasoning)
            evbuffer_add_printf(b, "\"content\":null,\"reasoning_content\":\"%s%s\"", sp, w);
        else if (a->reasoner)
            evbuffer_add_printf(b, "\"content\":\"%s%s\",\"reasoning_content\":null", sp, w);
        else
            evbuffer_add_printf(b, "\"content\":\"%s%s\"", sp, w);
        evbuffer_add_printf(b, "},\"logprobs\":null,\"finish_reason\":null}]");
    } else {
        add_head(b, a, "text_completion");
        evbuffer_add_printf(b,
                            "\"choices\":[{\"text\":\"%s%s\",\"index\":0,\"logprobs\":null,"
                            "\"finish_reason\":null}]",
                            sp, w);
    }
    add_tail(b, a);
}

void sim_reply_event_finish(struct evbuffer *b, const sim_answer_t *a)
{
    evbuffer_add(b, "data: ", 6);
    if (a->kind == SIM_KIND_CHAT) {
        add_head(b, a, "chat.completion.chunk");
        evbuffer_add_printf(b,
                            "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                            "\"finish_reason\":\"%s\"}]",
                            a->finish_reason);
    } else {
        add_head(b, a, "text_completion");
        evbuffer_add_printf(b,
                            "\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,"
                            "\"finish_reason\":\"%s\"}]",
                            a->finish_reason);
    }
    add_tail(b, a);
}

void sim_reply_event_usage(struct evbuffer *b, const sim_answer_t *a)
{
    evbuffer_add(b, "data: ", 6);
    add_head(b, a, a->kind == SIM_KIND_CHAT ? "chat.completion.chunk" : "text_completion");
    evbuffer_add_printf(b, "\"choices\":[],\"usage\":");
    sim_reply_usage(b, a);
    evbuffer_add_printf(b, "}\n\n");
}

void sim_reply_event_done(struct evbuffer *b)
{
    evbuffer_add(b, "data: [DONE]\n\n", 14);
}
