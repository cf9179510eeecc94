/* gw_respcache: the response cache's pure logic (see gw_respcache.h):
 * eligibility, canonical JSON and the cache key, the stored entry's format,
 * the answer assembled from a provider's body or SSE events, and its replay.
 * Bad input (a provider's odd answer, a corrupted entry) is refused with a
 * message, never trusted. */
#include "gw_respcache.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_sse.h"

#define MAX_EXACT 9007199254740992.0 /* 2^53: doubles hold every integer below it */
#define MAX_TOKENS 1000000000000LL

/* ---- a growable string --------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *s, const char *d, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n + 1)
            cap *= 2;
        s->p = realloc(s->p, cap);
        if (!s->p)
            abort();
        s->cap = cap;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void sb_str(sbuf_t *s, const char *d)
{
    sb_add(s, d, strlen(d));
}

/* Appends str as a JSON string literal (one escaping rule). */
static void sb_json_str(sbuf_t *s, const char *str, size_t n)
{
    sb_add(s, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)str[i];
        const char *esc = NULL;
        char u[8];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20) {
            snprintf(u, sizeof u, "\\u%04x", c);
            esc = u;
        }
        if (esc) {
            sb_add(s, str + i - run, run);
            run = 0;
            sb_str(s, esc);
        } else {
            run++;
        }
    }
    sb_add(s, str + n - run, run);
    sb_add(s, "\"", 1);
}

void gw_rc_answer_free(gw_rc_answer_t *a)
{
    if (!a)
        return;
    free(a->content);
    free(a->reasoning);
    a->content = a->reasoning = NULL;
}

/* ---- eligibility ------------------------------------------------------------ */

static bool is_integral(double v)
{
    return fabs(v) < MAX_EXACT && v == floor(v);
}

bool gw_rc_eligible(const cJSON *body, char *why, size_t whylen)
{
#define NO(...)                                                                                    \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        return false;                                                                              \
    } while (0)
    if (!cJSON_IsObject(body))
        NO("the body is not an object");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(body, "n");
    if (n && !cJSON_IsNull(n) && !(cJSON_IsNumber(n) && n->valuedouble == 1))
        NO("n is not 1");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "temperature");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(body, "seed");
    bool temp0 = cJSON_IsNumber(t) && t->valuedouble == 0;
    bool seeded = cJSON_IsNumber(seed) && is_integral(seed->valuedouble);
    if (!temp0 && !seeded)
        NO("not deterministic (needs temperature 0 or an integer seed)");
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(body, "logprobs");
    if (lp && !cJSON_IsNull(lp) && !cJSON_IsFalse(lp))
        NO("logprobs requested (not stored)");
    const cJSON *tlp = cJSON_GetObjectItemCaseSensitive(body, "top_logprobs");
    if (tlp && !cJSON_IsNull(tlp))
        NO("top_logprobs requested (not stored)");
    if (cJSON_GetObjectItemCaseSensitive(body, "audio"))
        NO("audio output requested (not stored)");
    char err[128];
    char *canon = gw_rc_canonical(body, NULL, err, sizeof err);
    if (!canon)
        NO("%s", err);
    free(canon);
    return true;
#undef NO
}

/* ---- canonical JSON --------------------------------------------------------- */

static int cmp_items(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

static bool skipped(const char *key, const char *const *skip)
{
    for (int i = 0; skip && skip[i]; i++)
        if (!strcmp(key, skip[i]))
            return true;
    return false;
}

/* Appends the canonical text of v to s (see gw_rc_canonical); skip applies to
 * v's own keys only. Returns 0, or -1 with a message (nothing to undo: the
 * caller frees s). */
static int canon_value(sbuf_t *s, const cJSON *v, const char *const *skip, int depth, char *err,
                       size_t errlen)
{
    if (depth > 64) {
        snprintf(err, errlen, "nested deeper than 64 levels");
        return -1;
    }
    if (cJSON_IsNull(v)) {
        sb_str(s, "null");
    } else if (cJSON_IsTrue(v)) {
        sb_str(s, "true");
    } else if (cJSON_IsFalse(v)) {
        sb_str(s, "false");
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        char num[40];
        if (fabs(d) >= MAX_EXACT) { /* 2^53 + 1 reads as 2^53: ambiguous */
            snprintf(err, errlen, "a number beyond 2^53 (its digits may have been lost)");
            return -1;
        }
        if (d == floor(d))
            snprintf(num, sizeof num, "%" PRId64, (int64_t)d); /* -0 prints as 0 */
        else
            snprintf(num, sizeof num, "%.17g", d);
        sb_str(s, num);
    } else if (cJSON_IsString(v)) {
        sb_json_str(s, v->valuestring, strlen(v->valuestring));
    } else if (cJSON_IsArray(v)) {
        sb_add(s, "[", 1);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            if (i++)
                sb_add(s, ",", 1);
            if (canon_value(s, e, NULL, depth + 1, err, errlen) < 0)
                return -1;
        }
        sb_add(s, "]", 1);
    } else if (cJSON_IsObject(v)) {
        int n = cJSON_GetArraySize(v);
        const cJSON **items = malloc(sizeof *items * (size_t)(n ? n : 1));
        if (!items)
            abort();
        int k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            if (!skipped(e->string, skip))
                items[k++] = e;
        }
        qsort(items, (size_t)k, sizeof *items, cmp_items);
        sb_add(s, "{", 1);
        for (int i = 0; i < k; i++) {
            if (i && !strcmp(items[i - 1]->string, items[i]->string)) {
                snprintf(err, errlen, "duplicate key \"%.40s\"", items[i]->string);
                free(items);
                return -1;
            }
            if (i)
                sb_add(s, ",", 1);
            sb_json_str(s, items[i]->string, strlen(items[i]->string));
            sb_add(s, ":", 1);
            if (canon_value(s, items[i], NULL, depth + 1, err, errlen) < 0) {
                free(items);
                return -1;
            }
        }
        free(items);
        sb_add(s, "}", 1);
    } else {
        snprintf(err, errlen, "a JSON value of unknown type");
        return -1;
    }
    return 0;
}

char *gw_rc_canonical(const cJSON *v, const char *const *skip, char *err, size_t errlen)
{
    sbuf_t s = {0};
    if (canon_value(&s, v, skip, 0, err, errlen) < 0) {
        free(s.p);
        return NULL;
    }
    return s.p;
}

int gw_rc_key(int64_t team_id, gw_rc_kind_t kind, const char *model, const cJSON *body,
              char out[GW_RC_KEY_HEX], char *err, size_t errlen)
{
    static const char *const skip_n1[] = {
        "stream", "stream_options", "user", "metadata", "store", "n", NULL};
    static const char *const skip[] = {"stream",   "stream_options", "user",
                                       "metadata", "store",          NULL};
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(body, "n");
    bool n_default = !n || cJSON_IsNull(n) || (cJSON_IsNumber(n) && n->valuedouble == 1);
    char *canon = gw_rc_canonical(body, n_default ? skip_n1 : skip, err, errlen);
    if (!canon)
        return -1;
    sbuf_t s = {0};
    char head[96];
    snprintf(head, sizeof head,
             "{\"v\":%d,\"team\":%" PRId64 ",\"endpoint\":\"%s\",\"model\":", GW_RC_FORMAT_VERSION,
             team_id, kind == GW_RC_CHAT ? "chat" : "text");
    sb_str(&s, head);
    sb_json_str(&s, model, strlen(model));
    sb_str(&s, ",\"body\":");
    sb_str(&s, canon);
    sb_str(&s, "}");
    free(canon);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(s.p, s.len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        abort(); /* OpenSSL cannot hash: nothing sensible to do */
    free(s.p);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* ---- the builder ------------------------------------------------------------ */

void gw_rc_builder_init(gw_rc_builder_t *b, gw_rc_kind_t kind, size_t max_bytes)
{
    memset(b, 0, sizeof *b);
    b->kind = kind;
    b->max_bytes = max_bytes;
}

void gw_rc_builder_free(gw_rc_builder_t *b)
{
    free(b->content);
    free(b->reasoning);
    b->content = b->reasoning = NULL;
    b->content_len = b->content_cap = b->reasoning_len = b->reasoning_cap = 0;
}

void gw_rc_builder_reset(gw_rc_builder_t *b)
{
    gw_rc_builder_free(b);
    gw_rc_builder_init(b, b->kind, b->max_bytes);
}

/* Marks the answer as not storable; the first reason is kept. */
static void refuse(gw_rc_builder_t *b, const char *why)
{
    if (!b->refused)
        snprintf(b->why, sizeof b->why, "%s", why);
    b->refused = true;
}

/* Appends n bytes to one of the builder's buffers, or sets too_big (and keeps
 * nothing more) when content and reasoning together would pass max_bytes. */
static void append(gw_rc_builder_t *b, char **buf, size_t *len, size_t *cap, const char *d,
                   size_t n)
{
    if (b->too_big)
        return;
    if (b->content_len + b->reasoning_len + n > b->max_bytes) {
        b->too_big = true;
        return;
    }
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1)
            c *= 2;
        *buf = realloc(*buf, c);
        if (!*buf)
            abort();
        *cap = c;
    }
    memcpy(*buf + *len, d, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Reads one choice (a delta for streams, a message for bodies). */
static void feed_choice(gw_rc_builder_t *b, const cJSON *choice, bool stream)
{
    if (!cJSON_IsObject(choice)) {
        refuse(b, "a choice is not an object");
        return;
    }
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(choice, "index");
    if (idx && !(cJSON_IsNumber(idx) && idx->valuedouble == 0)) {
        refuse(b, "more than one choice");
        return;
    }
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(choice, "logprobs");
    if (lp && !cJSON_IsNull(lp)) {
        refuse(b, "the answer carries logprobs");
        return;
    }
    const cJSON *content = NULL, *reasoning = NULL;
    if (b->kind == GW_RC_TEXT) {
        content = cJSON_GetObjectItemCaseSensitive(choice, "text");
    } else {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(choice, stream ? "delta" : "message");
        if (!cJSON_IsObject(m)) {
            refuse(b, stream ? "a chunk has no delta" : "the choice has no message");
            return;
        }
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        const cJSON *fc = cJSON_GetObjectItemCaseSensitive(m, "function_call");
        if ((tc && !cJSON_IsNull(tc) && !(cJSON_IsArray(tc) && cJSON_GetArraySize(tc) == 0)) ||
            (fc && !cJSON_IsNull(fc))) {
            refuse(b, "the answer calls tools (not stored)");
            return;
        }
        const cJSON *refusal = cJSON_GetObjectItemCaseSensitive(m, "refusal");
        if (refusal && !cJSON_IsNull(refusal)) {
            refuse(b, "the answer carries a refusal field (not stored)");
            return;
        }
        content = cJSON_GetObjectItemCaseSensitive(m, "content");
        reasoning = cJSON_GetObjectItemCaseSensitive(m, "reasoning_content");
    }
    if (content && !cJSON_IsNull(content)) {
        if (!cJSON_IsString(content)) {
            refuse(b, "content is not a string");
            return;
        }
        b->content_seen = true;
        append(b, &b->content, &b->content_len, &b->content_cap, content->valuestring,
               strlen(content->valuestring));
    }
    if (reasoning && !cJSON_IsNull(reasoning)) {
        if (!cJSON_IsString(reasoning)) {
            refuse(b, "reasoning_content is not a string");
            return;
        }
        if (!b->reasoning)
            append(b, &b->reasoning, &b->reasoning_len, &b->reasoning_cap, "", 0);
        append(b, &b->reasoning, &b->reasoning_len, &b->reasoning_cap, reasoning->valuestring,
               strlen(reasoning->valuestring));
    }
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
    if (fr && !cJSON_IsNull(fr)) {
        if (!cJSON_IsString(fr) || strlen(fr->valuestring) >= sizeof b->finish_reason) {
            refuse(b, "finish_reason is not a short string");
            return;
        }
        if (!strcmp(fr->valuestring, "tool_calls") || !strcmp(fr->valuestring, "function_call")) {
            refuse(b, "the answer calls tools (not stored)");
            return;
        }
        snprintf(b->finish_reason, sizeof b->finish_reason, "%s", fr->valuestring);
    }
}

/* Reads one response object (a body, or one stream chunk): created, and each
 * choice. A chunk without choices (the usage event) adds nothing. */
static void feed_object(gw_rc_builder_t *b, const cJSON *j, bool stream)
{
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(j, "created");
    if (cJSON_IsNumber(created) && created->valuedouble > 0 && created->valuedouble < 1e11)
        b->created = (int64_t)created->valuedouble;
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    if (!choices || cJSON_IsNull(choices))
        return; /* e.g. a usage-only event without choices */
    if (!cJSON_IsArray(choices)) {
        refuse(b, "choices is not an array");
        return;
    }
    if (!stream && cJSON_GetArraySize(choices) != 1) {
        refuse(b, "not exactly one choice");
        return;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, choices)
    {
        feed_choice(b, c, stream);
    }
}

void gw_rc_builder_feed_event(gw_rc_builder_t *b, const char *event, size_t len)
{
    if (b->refused || b->done)
        return;
    char *data = malloc(len + 1);
    if (!data)
        abort();
    long dl = gw_sse_event_data(event, len, data, len + 1);
    if (dl < 0) { /* a comment or an event without data */
        free(data);
        return;
    }
    if (dl == 6 && !memcmp(data, "[DONE]", 6)) {
        b->done = true;
        free(data);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(data, (size_t)dl);
    free(data);
    if (!cJSON_IsObject(j))
        refuse(b, "an event is not a JSON object");
    else
        feed_object(b, j, true);
    cJSON_Delete(j);
}

void gw_rc_builder_feed_body(gw_rc_builder_t *b, const cJSON *body)
{
    if (b->refused)
        return;
    if (!cJSON_IsObject(body))
        refuse(b, "the body is not a JSON object");
    else
        feed_object(b, body, false);
    b->done = true;
}

static bool count_ok(int64_t v)
{
    return v >= 0 && v <= MAX_TOKENS;
}

int gw_rc_builder_finish(gw_rc_builder_t *b, const char *provider, const char *upstream_model,
                         int64_t prompt_tokens, int64_t completion_tokens, int64_t reasoning_tokens,
                         gw_rc_answer_t *a)
{
    memset(a, 0, sizeof *a);
    if (b->refused)
        return -1;
    if (!b->done) {
        refuse(b, "the answer did not end");
        return -1;
    }
    if (!b->finish_reason[0]) {
        refuse(b, "the answer has no finish_reason");
        return -1;
    }
    if (!count_ok(prompt_tokens) || !count_ok(completion_tokens) ||
        (reasoning_tokens != -1 && !count_ok(reasoning_tokens))) {
        refuse(b, "the usage counts are unknown");
        return -1;
    }
    if (b->too_big)
        return 1;
    a->kind = b->kind;
    if (b->content_seen || b->kind == GW_RC_TEXT) {
        a->content = b->content ? b->content : strdup("");
        if (!a->content)
            abort();
        b->content = NULL;
    }
    a->reasoning = b->reasoning;
    b->reasoning = NULL;
    snprintf(a->finish_reason, sizeof a->finish_reason, "%s", b->finish_reason);
    snprintf(a->provider, sizeof a->provider, "%s", provider ? provider : "");
    snprintf(a->upstream_model, sizeof a->upstream_model, "%s",
             upstream_model ? upstream_model : "");
    a->created = b->created;
    a->prompt_tokens = prompt_tokens;
    a->completion_tokens = completion_tokens;
    a->reasoning_tokens = reasoning_tokens;
    gw_rc_builder_free(b);
    return 0;
}

/* ---- the stored entry --------------------------------------------------------- */

char *gw_rc_entry_encode(const gw_rc_answer_t *a, int64_t team_id, size_t *len)
{
    sbuf_t s = {0};
    char num[160];
    snprintf(num, sizeof num, "{\"v\":%d,\"team\":%" PRId64 ",\"kind\":\"%s\",\"created\":%" PRId64,
             GW_RC_FORMAT_VERSION, team_id, a->kind == GW_RC_CHAT ? "chat" : "text", a->created);
    sb_str(&s, num);
    sb_str(&s, ",\"content\":");
    if (a->content)
        sb_json_str(&s, a->content, strlen(a->content));
    else
        sb_str(&s, "null");
    if (a->reasoning) {
        sb_str(&s, ",\"reasoning_content\":");
        sb_json_str(&s, a->reasoning, strlen(a->reasoning));
    }
    sb_str(&s, ",\"finish_reason\":");
    sb_json_str(&s, a->finish_reason, strlen(a->finish_reason));
    sb_str(&s, ",\"provider\":");
    sb_json_str(&s, a->provider, strlen(a->provider));
    sb_str(&s, ",\"upstream_model\":");
    sb_json_str(&s, a->upstream_model, strlen(a->upstream_model));
    snprintf(num, sizeof num,
             ",\"usage\":{\"prompt_tokens\":%" PRId64 ",\"completion_tokens\":%" PRId64,
             a->prompt_tokens, a->completion_tokens);
    sb_str(&s, num);
    if (a->reasoning_tokens >= 0) {
        snprintf(num, sizeof num, ",\"reasoning_tokens\":%" PRId64, a->reasoning_tokens);
        sb_str(&s, num);
    }
    sb_str(&s, "}}");
    *len = s.len;
    return s.p;
}

/* A token count field: an integer in 0..10^12; -1 when optional and absent. */
static int get_count(const cJSON *o, const char *name, bool optional, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v && optional) {
        *out = -1;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !is_integral(v->valuedouble) || !count_ok((int64_t)v->valuedouble))
        return -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* A string field that fits dst (and is not empty when nonempty). */
static int get_text(const cJSON *o, const char *name, char *dst, size_t cap, bool nonempty)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap || (nonempty && !v->valuestring[0]))
        return -1;
    snprintf(dst, cap, "%s", v->valuestring);
    return 0;
}

int gw_rc_entry_decode(const char *data, size_t len, int64_t team_id, gw_rc_answer_t *a, char *err,
                       size_t errlen)
{
    memset(a, 0, sizeof *a);
    cJSON *j = cJSON_ParseWithLength(data, len);
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        cJSON_Delete(j);                                                                           \
        gw_rc_answer_free(a);                                                                      \
        return -1;                                                                                 \
    } while (0)
    if (!cJSON_IsObject(j))
        BAD("not a JSON object (%zu bytes)", len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "v");
    if (!cJSON_IsNumber(v) || v->valuedouble != GW_RC_FORMAT_VERSION)
        BAD("unknown format version");
    const cJSON *team = cJSON_GetObjectItemCaseSensitive(j, "team");
    if (!cJSON_IsNumber(team) || !is_integral(team->valuedouble) ||
        (int64_t)team->valuedouble != team_id)
        BAD("the entry is not this team's");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
    if (cJSON_IsString(kind) && !strcmp(kind->valuestring, "chat"))
        a->kind = GW_RC_CHAT;
    else if (cJSON_IsString(kind) && !strcmp(kind->valuestring, "text"))
        a->kind = GW_RC_TEXT;
    else
        BAD("bad kind");
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(j, "created");
    if (!cJSON_IsNumber(created) || !is_integral(created->valuedouble) || created->valuedouble < 0)
        BAD("bad created");
    a->created = (int64_t)created->valuedouble;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
    if (cJSON_IsString(content)) {
        a->content = strdup(content->valuestring);
        if (!a->content)
            abort();
    } else if (!cJSON_IsNull(content) || a->kind == GW_RC_TEXT) {
        BAD("bad content");
    }
    const cJSON *reasoning = cJSON_GetObjectItemCaseSensitive(j, "reasoning_content");
    if (reasoning) {
        if (!cJSON_IsString(reasoning))
            BAD("bad reasoning_content");
        a->reasoning = strdup(reasoning->valuestring);
        if (!a->reasoning)
            abort();
    }
    if (get_text(j, "finish_reason", a->finish_reason, sizeof a->finish_reason, true) < 0)
        BAD("bad finish_reason");
    if (get_text(j, "provider", a->provider, sizeof a->provider, true) < 0)
        BAD("bad provider");
    if (get_text(j, "upstream_model", a->upstream_model, sizeof a->upstream_model, true) < 0)
        BAD("bad upstream_model");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (!cJSON_IsObject(usage) || get_count(usage, "prompt_tokens", false, &a->prompt_tokens) < 0 ||
        get_count(usage, "completion_tokens", false, &a->completion_tokens) < 0 ||
        get_count(usage, "reasoning_tokens", true, &a->reasoning_tokens) < 0)
        BAD("bad usage");
    if (a->reasoning_tokens > a->completion_tokens)
        BAD("bad usage: reasoning above completion");
    cJSON_Delete(j);
    return 0;
#undef BAD
}

/* ---- replay ---------------------------------------------------------------------- */

/* The usage object of a replay: the stored counts, every prompt token a hit. */
static cJSON *usage_json(const gw_rc_answer_t *a)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)a->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)a->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(a->prompt_tokens + a->completion_tokens));
    cJSON *pd = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(pd, "cached_tokens", (double)a->prompt_tokens);
    if (a->reasoning_tokens >= 0) {
        cJSON *cd = cJSON_AddObjectToObject(u, "completion_tokens_details");
        cJSON_AddNumberToObject(cd, "reasoning_tokens", (double)a->reasoning_tokens);
    }
    cJSON_AddNumberToObject(u, "prompt_cache_hit_tokens", (double)a->prompt_tokens);
    cJSON_AddNumberToObject(u, "prompt_cache_miss_tokens", 0);
    return u;
}

/* The fields every replayed object starts with (id, object, created, model). */
static cJSON *envelope(const gw_rc_answer_t *a, const char *id, bool chunk)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object",
                            a->kind == GW_RC_TEXT ? "text_completion"
                            : chunk               ? "chat.completion.chunk"
                                                  : "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)a->created);
    cJSON_AddStringToObject(o, "model", a->upstream_model);
    cJSON_AddStringToObject(o, "system_fingerprint", "tollgate-response-cache");
    return o;
}

static cJSON *str_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

char *gw_rc_replay_json(const gw_rc_answer_t *a, const char *id)
{
    cJSON *o = envelope(a, id, false);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (a->kind == GW_RC_TEXT) {
        cJSON_AddItemToObject(c, "text", cJSON_CreateString(a->content ? a->content : ""));
    } else {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddItemToObject(m, "content", str_or_null(a->content));
        if (a->reasoning)
            cJSON_AddStringToObject(m, "reasoning_content", a->reasoning);
    }
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", a->finish_reason);
    cJSON_AddItemToArray(choices, c);
    cJSON_AddItemToObject(o, "usage", usage_json(a));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        abort();
    return text;
}

/* Appends one event "data: JSON\n\n" and frees o. */
static void add_event(sbuf_t *s, cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        abort();
    sb_str(s, "data: ");
    sb_str(s, text);
    sb_str(s, "\n\n");
    free(text);
}

/* One chunk: a delta (chat) or text (completions), finish_reason or null. */
static void add_chunk(sbuf_t *s, const gw_rc_answer_t *a, const char *id, const char *field,
                      const char *piece, size_t n, bool role, const char *finish)
{
    cJSON *o = envelope(a, id, true);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    char *tmp = NULL;
    if (piece) {
        tmp = malloc(n + 1);
        if (!tmp)
            abort();
        memcpy(tmp, piece, n);
        tmp[n] = '\0';
    }
    if (a->kind == GW_RC_TEXT) {
        cJSON_AddStringToObject(c, "text", tmp ? tmp : "");
    } else {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) {
            cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddStringToObject(d, "content", "");
        }
        if (tmp)
            cJSON_AddStringToObject(d, field, tmp);
    }
    free(tmp);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
    add_event(s, o);
}

/* Cuts text into pieces of at most max bytes, never inside a UTF-8 sequence. */
static void add_pieces(sbuf_t *s, const gw_rc_answer_t *a, const char *id, const char *field,
                       const char *text, size_t max)
{
    size_t n = strlen(text), off = 0;
    if (max < 4)
        max = 4;
    while (off < n) {
        size_t k = n - off < max ? n - off : max;
        while (off + k < n && k > 0 && ((unsigned char)text[off + k] & 0xC0) == 0x80)
            k--;
        if (k == 0)
            k = n - off < max ? n - off : max; /* not UTF-8: cut anywhere */
        add_chunk(s, a, id, field, text + off, k, false, NULL);
        off += k;
    }
}

char *gw_rc_replay_sse(const gw_rc_answer_t *a, const char *id, bool include_usage,
                       size_t chunk_bytes, const char *charge, size_t *len)
{
    sbuf_t s = {0};
    if (a->kind == GW_RC_CHAT)
        add_chunk(&s, a, id, NULL, NULL, 0, true, NULL);
    if (a->reasoning)
        add_pieces(&s, a, id, "reasoning_content", a->reasoning, chunk_bytes);
    if (a->content)
        add_pieces(&s, a, id, a->kind == GW_RC_TEXT ? "text" : "content", a->content, chunk_bytes);
    add_chunk(&s, a, id, NULL, NULL, 0, false, a->finish_reason);
    if (include_usage) {
        cJSON *o = envelope(a, id, true);
        cJSON_AddArrayToObject(o, "choices");
        cJSON_AddItemToObject(o, "usage", usage_json(a));
        add_event(&s, o);
    }
    if (charge && charge[0]) {
        sb_str(&s, ": x-tollgate-charge ");
        sb_str(&s, charge);
        sb_str(&s, "\n\n");
    }
    sb_str(&s, "data: [DONE]\n\n");
    *len = s.len;
    return s.p;
}
