/* gw_spool_rec: usage record (versions 1, 2) and gateway cost record
 * (version 64) <-> spool payload. Integers are little-endian two's
 * complement (8 bytes; 16 for pico amounts), booleans one byte, strings a
 * 2-byte length then the bytes without NUL. */
#include "gw_spool_rec.h"

#include <stdio.h>
#include <string.h>

typedef struct rec_w {
    uint8_t *p;
    size_t n;
} rec_w_t;

static void w_u8(rec_w_t *w, uint8_t v)
{
    w->p[w->n++] = v;
}

static void w_u64(rec_w_t *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w->p[w->n++] = (uint8_t)(v >> (8 * i));
}

static void w_i128(rec_w_t *w, __int128 v)
{
    unsigned __int128 u = (unsigned __int128)v;
    w_u64(w, (uint64_t)u);
    w_u64(w, (uint64_t)(u >> 64));
}

static void w_str(rec_w_t *w, const char *s, size_t field)
{
    size_t len = strnlen(s, field - 1);
    w->p[w->n++] = (uint8_t)len;
    w->p[w->n++] = (uint8_t)(len >> 8);
    memcpy(w->p + w->n, s, len);
    w->n += len;
}

size_t gw_spool_rec_encode(const gw_usage_record_t *r, uint8_t *buf)
{
    rec_w_t w = {buf, 0};
    w_u8(&w, GW_SPOOL_REC_VERSION);
    w_str(&w, r->request_id, sizeof r->request_id);
    w_u64(&w, (uint64_t)r->team_id);
    w_u64(&w, (uint64_t)r->key_id);
    w_str(&w, r->model_requested, sizeof r->model_requested);
    w_str(&w, r->provider, sizeof r->provider);
    w_str(&w, r->upstream_model, sizeof r->upstream_model);
    w_str(&w, r->endpoint, sizeof r->endpoint);
    w_str(&w, r->error_type, sizeof r->error_type);
    w_u64(&w, (uint64_t)(int64_t)r->attempts);
    w_u8(&w, r->streamed);
    w_u64(&w, (uint64_t)(int64_t)r->http_status);
    w_u64(&w, (uint64_t)r->received_at_us);
    w_u64(&w, (uint64_t)r->first_byte_at_us);
    w_u64(&w, (uint64_t)r->completed_at_us);
    w_u64(&w, (uint64_t)r->prompt_tokens);
    w_u64(&w, (uint64_t)r->cache_hit_tokens);
    w_u64(&w, (uint64_t)r->cache_miss_tokens);
    w_u64(&w, (uint64_t)r->completion_tokens);
    w_u64(&w, (uint64_t)r->reasoning_tokens);
    w_u8(&w, r->usage_complete);
    w_u64(&w, (uint64_t)r->price_card_id);
    w_u64(&w, (uint64_t)r->discount_window_id);
    w_u64(&w, (uint64_t)r->priced_at_us);
    w_str(&w, r->charge_currency, sizeof r->charge_currency);
    for (int i = 0; i < 4; i++)
        w_i128(&w, r->cost_pico[i]);
    w_i128(&w, r->charge_pico);
    w_u64(&w, (uint64_t)r->pricing_flags);
    w_str(&w, r->route_explain, sizeof r->route_explain);
    /* version 2 */
    w_u8(&w, r->cache_predicted);
    w_u64(&w, (uint64_t)r->cache_hit_predicted_tokens);
    w_u8(&w, r->response_cache_hit);
    return w.n;
}

typedef struct rec_r {
    const uint8_t *p;
    size_t n, len;
    bool bad;
} rec_r_t;

static bool r_need(rec_r_t *r, size_t k)
{
    if (r->bad || r->len - r->n < k) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint8_t r_u8(rec_r_t *r)
{
    return r_need(r, 1) ? r->p[r->n++] : 0;
}

static uint64_t r_u64(rec_r_t *r)
{
    uint64_t v = 0;
    if (!r_need(r, 8))
        return 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[r->n++] << (8 * i);
    return v;
}

static __int128 r_i128(rec_r_t *r)
{
    uint64_t lo = r_u64(r), hi = r_u64(r);
    return (__int128)(((unsigned __int128)hi << 64) | lo);
}

static void r_str(rec_r_t *r, char *out, size_t field)
{
    out[0] = '\0';
    if (!r_need(r, 2))
        return;
    size_t len = (size_t)r->p[r->n] | (size_t)r->p[r->n + 1] << 8;
    r->n += 2;
    if (len >= field || !r_need(r, len)) {
        r->bad = true;
        return;
    }
    memcpy(out, r->p + r->n, len);
    out[len] = '\0';
    r->n += len;
}

int gw_spool_rec_decode(const uint8_t *p, size_t len, gw_usage_record_t *out, char *err,
                        size_t errlen)
{
    rec_r_t r = {p, 0, len, false};
    gw_usage_record_t x;
    memset(&x, 0, sizeof x);
    uint8_t version = r_u8(&r);
    if (!r.bad && gw_spool_rec_kind(p, len) == GW_SPOOL_REC_COST) {
        snprintf(err, errlen, "a gateway cost record (version %u), not a usage record", version);
        return -1;
    }
    if (!r.bad && (version < 1 || version > GW_SPOOL_REC_VERSION)) {
        snprintf(err, errlen, "unknown spool record version %u", version);
        return -1;
    }
    r_str(&r, x.request_id, sizeof x.request_id);
    x.team_id = (int64_t)r_u64(&r);
    x.key_id = (int64_t)r_u64(&r);
    r_str(&r, x.model_requested, sizeof x.model_requested);
    r_str(&r, x.provider, sizeof x.provider);
    r_str(&r, x.upstream_model, sizeof x.upstream_model);
    r_str(&r, x.endpoint, sizeof x.endpoint);
    r_str(&r, x.error_type, sizeof x.error_type);
    x.attempts = (int)(int64_t)r_u64(&r);
    x.streamed = r_u8(&r) != 0;
    x.http_status = (int)(int64_t)r_u64(&r);
    x.received_at_us = (int64_t)r_u64(&r);
    x.first_byte_at_us = (int64_t)r_u64(&r);
    x.completed_at_us = (int64_t)r_u64(&r);
    x.prompt_tokens = (int64_t)r_u64(&r);
    x.cache_hit_tokens = (int64_t)r_u64(&r);
    x.cache_miss_tokens = (int64_t)r_u64(&r);
    x.completion_tokens = (int64_t)r_u64(&r);
    x.reasoning_tokens = (int64_t)r_u64(&r);
    x.usage_complete = r_u8(&r) != 0;
    x.price_card_id = (int64_t)r_u64(&r);
    x.discount_window_id = (int64_t)r_u64(&r);
    x.priced_at_us = (int64_t)r_u64(&r);
    r_str(&r, x.charge_currency, sizeof x.charge_currency);
    for (int i = 0; i < 4; i++)
        x.cost_pico[i] = r_i128(&r);
    x.charge_pico = r_i128(&r);
    x.pricing_flags = (unsigned)r_u64(&r);
    r_str(&r, x.route_explain, sizeof x.route_explain);
    if (version >= 2) {
        x.cache_predicted = r_u8(&r) != 0;
        x.cache_hit_predicted_tokens = (int64_t)r_u64(&r);
        x.response_cache_hit = r_u8(&r) != 0;
    }
    if (r.bad || r.n != len) {
        snprintf(err, errlen, "malformed spool record (%zu bytes, %s)", len,
                 r.bad ? "truncated or a string too long" : "bytes left over");
        return -1;
    }
    *out = x;
    return 0;
}

gw_spool_rec_kind_t gw_spool_rec_kind(const uint8_t *p, size_t len)
{
    if (len == 0)
        return GW_SPOOL_REC_UNKNOWN;
    if (p[0] >= 1 && p[0] < GW_SPOOL_REC_COST_VERSION)
        return GW_SPOOL_REC_USAGE;
    if (p[0] >= GW_SPOOL_REC_COST_VERSION && p[0] < 128)
        return GW_SPOOL_REC_COST;
    return GW_SPOOL_REC_UNKNOWN;
}

size_t gw_spool_rec_encode_cost(const gw_gateway_cost_t *c, uint8_t *buf)
{
    rec_w_t w = {buf, 0};
    w_u8(&w, GW_SPOOL_REC_COST_VERSION);
    w_str(&w, c->request_id, sizeof c->request_id);
    w_u64(&w, (uint64_t)(int64_t)c->attempt);
    w_str(&w, c->reason, sizeof c->reason);
    w_u64(&w, (uint64_t)c->team_id);
    w_u64(&w, (uint64_t)c->key_id);
    w_str(&w, c->model_requested, sizeof c->model_requested);
    w_str(&w, c->provider, sizeof c->provider);
    w_str(&w, c->upstream_model, sizeof c->upstream_model);
    w_u64(&w, (uint64_t)c->sent_at_us);
    w_u64(&w, (uint64_t)c->cancelled_at_us);
    w_u64(&w, (uint64_t)c->prompt_tokens);
    w_u8(&w, c->prompt_exact);
    w_u8(&w, c->usage_complete);
    w_u64(&w, (uint64_t)c->price_card_id);
    w_u64(&w, (uint64_t)c->discount_window_id);
    w_str(&w, c->charge_currency, sizeof c->charge_currency);
    w_i128(&w, c->charge_pico);
    return w.n;
}

int gw_spool_rec_decode_cost(const uint8_t *p, size_t len, gw_gateway_cost_t *out, char *err,
                             size_t errlen)
{
    rec_r_t r = {p, 0, len, false};
    gw_gateway_cost_t x;
    memset(&x, 0, sizeof x);
    uint8_t version = r_u8(&r);
    if (!r.bad && version != GW_SPOOL_REC_COST_VERSION) {
        if (gw_spool_rec_kind(p, len) == GW_SPOOL_REC_USAGE)
            snprintf(err, errlen, "a usage record (version %u), not a gateway cost record",
                     version);
        else
            snprintf(err, errlen, "unknown gateway cost record version %u", version);
        return -1;
    }
    r_str(&r, x.request_id, sizeof x.request_id);
    uint64_t attempt = r_u64(&r);
    x.attempt = attempt >= 1 && attempt <= INT32_MAX ? (int)attempt : 0;
    r_str(&r, x.reason, sizeof x.reason);
    x.team_id = (int64_t)r_u64(&r);
    x.key_id = (int64_t)r_u64(&r);
    r_str(&r, x.model_requested, sizeof x.model_requested);
    r_str(&r, x.provider, sizeof x.provider);
    r_str(&r, x.upstream_model, sizeof x.upstream_model);
    x.sent_at_us = (int64_t)r_u64(&r);
    x.cancelled_at_us = (int64_t)r_u64(&r);
    x.prompt_tokens = (int64_t)r_u64(&r);
    x.prompt_exact = r_u8(&r) != 0;
    x.usage_complete = r_u8(&r) != 0;
    x.price_card_id = (int64_t)r_u64(&r);
    x.discount_window_id = (int64_t)r_u64(&r);
    r_str(&r, x.charge_currency, sizeof x.charge_currency);
    x.charge_pico = r_i128(&r);
    if (r.bad || r.n != len || x.attempt == 0) {
        snprintf(err, errlen, "malformed gateway cost record (%zu bytes, %s)", len,
                 r.bad        ? "truncated or a string too long"
                 : r.n != len ? "bytes left over"
                              : "attempt out of range");
        return -1;
    }
    *out = x;
    return 0;
}
