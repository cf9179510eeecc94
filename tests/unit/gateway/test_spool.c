/* Unit test of gw_spool (the journal alone, on a real file system): option
 * parsing (every key, every bad value), the record codec, CRC32C, ordered
 * replay from the checkpoint, segment rotation and deletion, a torn tail
 * (truncated, records before it kept), a corrupted record in the middle and a
 * damaged frame header (skipped, records after it kept), each recovery
 * stated in the log; an unreadable checkpoint (everything replayed); the
 * disk budget in refuse and block mode; a second process on the same dir. */
#include "gw_spool.h"
#include "gw_spool_rec.h"
#include "spool_files.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Captures what the library logs to stderr between begin and end. */
static int saved_stderr = -1;
static char log_path[256];

static void log_begin(void)
{
    snprintf(log_path, sizeof log_path, "/tmp/tgspool-log-%d", (int)getpid());
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
}

/* Returns the captured text (malloc'd) and echoes it to the real stderr. */
static char *log_end(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    size_t len = 0;
    uint8_t *b = spool_slurp(log_path, &len);
    unlink(log_path);
    char *s = realloc(b, len + 1);
    s[len] = '\0';
    fputs(s, stderr);
    return s;
}

static gw_spool_opts_t opts_for(const char *dir, uint64_t max_bytes)
{
    gw_spool_opts_t o;
    gw_spool_opts_default(&o);
    snprintf(o.dir, sizeof o.dir, "%s", dir);
    o.max_bytes = max_bytes;
    return o;
}

/* Collects payloads as strings ("rec-17" ...), in order. */
typedef struct collect {
    char items[4096][64];
    size_t n;
} collect_t;

static void collect_one(void *arg, const uint8_t *p, size_t len)
{
    collect_t *c = arg;
    if (c->n < 4096)
        snprintf(c->items[c->n++], 64, "%.*s", (int)len, (const char *)p);
}

static collect_t col;

/* Appends payloads "rec-<i>" padded to pad bytes, for i in [from, to). */
static int append_range(gw_spool_t *s, int from, int to, size_t pad)
{
    for (int i = from; i < to; i++) {
        char buf[2048];
        memset(buf, '.', sizeof buf);
        int n = snprintf(buf, sizeof buf, "rec-%d", i);
        buf[n] = '|';
        if (gw_spool_append(s, buf, pad > (size_t)n ? pad : (size_t)n) != 0)
            return i;
    }
    return to;
}

static int rec_index(const char *item)
{
    int i = -1;
    return sscanf(item, "rec-%d", &i) == 1 ? i : -1;
}

/* Reads everything pending into col and commits it. */
static size_t drain(gw_spool_t *s)
{
    col.n = 0;
    gw_spool_pos_t end;
    size_t n = gw_spool_read(s, 100000, collect_one, &col, &end);
    CHECK(gw_spool_commit(s, end, n) == 0);
    return n;
}

static void test_opts(void)
{
    gw_spool_opts_t o;
    char err[256];
    gw_spool_opts_default(&o);
    CHECK(o.dir[0] == '\0' && o.sync == GW_SPOOL_SYNC_INTERVAL && o.sync_ms == 100);
    CHECK(o.max_bytes == (uint64_t)1 << 30 && o.full == GW_SPOOL_FULL_REFUSE);
    CHECK(gw_spool_opts_parse(&o, "spool_dir", "/var/spool/tollgate", err, sizeof err) == 1);
    CHECK(strcmp(o.dir, "/var/spool/tollgate") == 0);
    CHECK(gw_spool_opts_parse(&o, "spool_sync", "always", err, sizeof err) == 1);
    CHECK(o.sync == GW_SPOOL_SYNC_ALWAYS);
    CHECK(gw_spool_opts_parse(&o, "spool_sync", "interval", err, sizeof err) == 1);
    CHECK(o.sync == GW_SPOOL_SYNC_INTERVAL);
    CHECK(gw_spool_opts_parse(&o, "spool_sync_ms", "250", err, sizeof err) == 1 &&
          o.sync_ms == 250);
    CHECK(gw_spool_opts_parse(&o, "spool_max_bytes", "512M", err, sizeof err) == 1 &&
          o.max_bytes == (uint64_t)512 << 20);
    CHECK(gw_spool_opts_parse(&o, "spool_max_bytes", "2G", err, sizeof err) == 1 &&
          o.max_bytes == (uint64_t)2 << 30);
    CHECK(gw_spool_opts_parse(&o, "spool_max_bytes", "65536", err, sizeof err) == 1 &&
          o.max_bytes == 65536);
    CHECK(gw_spool_opts_parse(&o, "spool_full", "block", err, sizeof err) == 1 &&
          o.full == GW_SPOOL_FULL_BLOCK);
    CHECK(gw_spool_opts_parse(&o, "spool_full", "refuse", err, sizeof err) == 1 &&
          o.full == GW_SPOOL_FULL_REFUSE);
    CHECK(!o.ledger_off);
    CHECK(gw_spool_opts_parse(&o, "spool_ledger", "off-for-benchmarks", err, sizeof err) == 1 &&
          o.ledger_off);
    CHECK(gw_spool_opts_parse(&o, "spool_ledger", "on", err, sizeof err) == 1 && !o.ledger_off);
    /* Not ours: untouched, 0. */
    CHECK(gw_spool_opts_parse(&o, "listen", "x", err, sizeof err) == 0);
    CHECK(gw_spool_opts_parse(&o, "spool_colour", "x", err, sizeof err) == 0);
    /* Bad values: -1, a message naming the key, the options unchanged. */
    gw_spool_opts_t before = o;
    const char *bad[][2] = {
        {"spool_sync", "sometimes"}, {"spool_sync", ""},
        {"spool_sync_ms", "0"},      {"spool_sync_ms", "60001"},
        {"spool_sync_ms", "12x"},    {"spool_sync_ms", ""},
        {"spool_max_bytes", "100"},  {"spool_max_bytes", "-5"},
        {"spool_max_bytes", "10T"},  {"spool_max_bytes", "99999999999999999999"},
        {"spool_max_bytes", "1KK"},  {"spool_full", "drop"},
        {"spool_full", NULL},        {"spool_ledger", "off"},
        {"spool_ledger", "no"},      {"spool_ledger", ""},
        {"spool_ledger", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = gw_spool_opts_parse(&o, bad[i][0], bad[i][1], err, sizeof err);
        if (rc != -1 || !strstr(err, bad[i][0]))
            fprintf(stderr, "bad value %s=%s: rc %d, err '%s'\n", bad[i][0],
                    bad[i][1] ? bad[i][1] : "(null)", rc, err);
        CHECK(rc == -1 && strstr(err, bad[i][0]) != NULL);
    }
    char longdir[GW_SPOOL_DIR_MAX + 10];
    memset(longdir, 'a', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = '\0';
    CHECK(gw_spool_opts_parse(&o, "spool_dir", longdir, err, sizeof err) == -1);
    CHECK(memcmp(&before, &o, sizeof o) == 0);
}

static void test_codec(void)
{
    /* The standard check value of CRC32C. */
    CHECK(gw_spool_crc32c(0, "123456789", 9) == 0xE3069283u);
    /* Against a bit-at-a-time reference, for every length and alignment the
     * 8-byte hardware path can meet, and chained (crc continued). */
    uint8_t bytes[300];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= sizeof bytes; n += n < 40 ? 1 : 37) {
            uint32_t ref = ~0u;
            for (size_t i = 0; i < n; i++) {
                ref ^= bytes[off + i];
                for (int k = 0; k < 8; k++)
                    ref = ref & 1 ? (ref >> 1) ^ 0x82F63B78u : ref >> 1;
            }
            ref = ~ref;
            CHECK(gw_spool_crc32c(0, bytes + off, n) == ref);
            CHECK(gw_spool_crc32c(gw_spool_crc32c(0, bytes + off, n / 3), bytes + off + n / 3,
                                  n - n / 3) == ref);
        }
    gw_usage_record_t r, back;
    memset(&r, 0, sizeof r);
    snprintf(r.request_id, sizeof r.request_id, "req-0123456789abcdef0123456789abcdef012");
    r.team_id = 42;
    r.key_id = INT64_MAX;
    memset(r.model_requested, 'm', sizeof r.model_requested - 1);
    snprintf(r.provider, sizeof r.provider, "deepseek");
    snprintf(r.upstream_model, sizeof r.upstream_model, "deepseek-chat");
    snprintf(r.endpoint, sizeof r.endpoint, "chat.completions");
    snprintf(r.error_type, sizeof r.error_type, "upstream_timeout");
    r.attempts = 3;
    r.streamed = true;
    r.http_status = 504;
    r.received_at_us = 1800000000000001LL;
    r.first_byte_at_us = 0;
    r.completed_at_us = 1800000000900123LL;
    r.prompt_tokens = GW_USAGE_UNKNOWN;
    r.cache_hit_tokens = 0;
    r.cache_miss_tokens = 123456789012LL;
    r.completion_tokens = 7;
    r.reasoning_tokens = GW_USAGE_UNKNOWN;
    r.usage_complete = false;
    r.price_card_id = 9;
    r.discount_window_id = 3;
    r.priced_at_us = -5;
    snprintf(r.charge_currency, sizeof r.charge_currency, "USD");
    r.cost_pico[0] = (__int128)1 << 100;
    r.cost_pico[1] = -((__int128)1 << 90);
    r.cost_pico[2] = 1;
    r.cost_pico[3] = 0;
    r.charge_pico = r.cost_pico[0] + r.cost_pico[1] + 1;
    r.pricing_flags = 0x5;
    memset(r.route_explain, 'e', sizeof r.route_explain - 1); /* the longest text field */
    r.cache_predicted = true;
    r.cache_hit_predicted_tokens = 4096;
    r.response_cache_hit = true;
    uint8_t buf[GW_SPOOL_REC_MAX];
    size_t len = gw_spool_rec_encode(&r, buf);
    char err[256];
    CHECK(len > 100 && len <= GW_SPOOL_REC_MAX && buf[0] == GW_SPOOL_REC_VERSION);
    CHECK(gw_spool_rec_decode(buf, len, &back, err, sizeof err) == 0);
    CHECK(memcmp(&r, &back, sizeof r) == 0);
    /* Every truncation is refused, as are extra bytes and another version. */
    int refused = 0;
    for (size_t n = 0; n < len; n++)
        refused += gw_spool_rec_decode(buf, n, &back, err, sizeof err) == -1;
    CHECK(refused == (int)len);
    uint8_t more[GW_SPOOL_REC_MAX + 1];
    memcpy(more, buf, len);
    more[len] = 0;
    CHECK(gw_spool_rec_decode(more, len + 1, &back, err, sizeof err) == -1 &&
          strstr(err, "left over"));
    more[0] = GW_SPOOL_REC_VERSION + 1;
    CHECK(gw_spool_rec_decode(more, len, &back, err, sizeof err) == -1 && strstr(err, "version"));
    more[0] = 0;
    CHECK(gw_spool_rec_decode(more, len, &back, err, sizeof err) == -1 && strstr(err, "version"));
    /* A version 1 record (an older gateway's spool: no cache fields, 10
     * bytes shorter) decodes with no prediction and no response-cache hit. */
    memcpy(more, buf, len);
    more[0] = 1;
    CHECK(gw_spool_rec_decode(more, len - 10, &back, err, sizeof err) == 0);
    CHECK(!back.cache_predicted && back.cache_hit_predicted_tokens == 0 &&
          !back.response_cache_hit);
    CHECK(strcmp(back.route_explain, r.route_explain) == 0 && back.charge_pico == r.charge_pico);
    CHECK(gw_spool_rec_decode(more, len, &back, err, sizeof err) == -1); /* v1 is shorter */
    /* A string length longer than its field. */
    memcpy(more, buf, len);
    more[1] = 200;
    more[2] = 0;
    CHECK(gw_spool_rec_decode(more, len, &back, err, sizeof err) == -1);
}

/* The gateway cost record (first byte 64): every field round-trips; every
 * truncation, extra bytes, another version, a string too long are refused;
 * the two kinds are told apart and neither decoder takes the other's. */
static void test_codec_cost(void)
{
    gw_gateway_cost_t c, back;
    memset(&c, 0, sizeof c);
    memset(c.request_id, 'r', sizeof c.request_id - 1); /* every text field at its longest */
    c.attempt = 2;
    memset(c.reason, 'h', sizeof c.reason - 1);
    c.team_id = -7;
    c.key_id = INT64_MAX;
    memset(c.model_requested, 'm', sizeof c.model_requested - 1);
    memset(c.provider, 'p', sizeof c.provider - 1);
    memset(c.upstream_model, 'u', sizeof c.upstream_model - 1);
    c.sent_at_us = 1800000000000001LL;
    c.cancelled_at_us = 1800000000100002LL;
    c.prompt_tokens = 123456789012LL;
    c.prompt_exact = true;
    c.usage_complete = false;
    c.price_card_id = 9;
    c.discount_window_id = INT64_MIN;
    snprintf(c.charge_currency, sizeof c.charge_currency, "EUR");
    c.charge_pico = ((__int128)1 << 100) + 12345;
    uint8_t buf[GW_SPOOL_REC_MAX];
    size_t len = gw_spool_rec_encode_cost(&c, buf);
    char err[256];
    CHECK(len == 477 && buf[0] == GW_SPOOL_REC_COST_VERSION); /* every field at its longest */
    CHECK(gw_spool_rec_kind(buf, len) == GW_SPOOL_REC_COST);
    CHECK(gw_spool_rec_decode_cost(buf, len, &back, err, sizeof err) == 0);
    CHECK(memcmp(&c, &back, sizeof c) == 0);
    /* A negative amount and an empty record round-trip too. */
    gw_gateway_cost_t z;
    memset(&z, 0, sizeof z);
    z.charge_pico = -((__int128)1 << 90);
    z.prompt_tokens = GW_USAGE_UNKNOWN;
    z.attempt = 1; /* attempts count from 1 */
    size_t zlen = gw_spool_rec_encode_cost(&z, buf + 1024);
    CHECK(gw_spool_rec_decode_cost(buf + 1024, zlen, &back, err, sizeof err) == 0 &&
          memcmp(&z, &back, sizeof z) == 0);
    /* Every truncation is refused. */
    int refused = 0;
    for (size_t n = 0; n < len; n++)
        refused += gw_spool_rec_decode_cost(buf, n, &back, err, sizeof err) == -1;
    CHECK(refused == (int)len);
    CHECK(gw_spool_rec_kind(buf, 0) == GW_SPOOL_REC_UNKNOWN);
    uint8_t more[GW_SPOOL_REC_MAX + 1];
    memcpy(more, buf, len);
    more[len] = 0;
    CHECK(gw_spool_rec_decode_cost(more, len + 1, &back, err, sizeof err) == -1 &&
          strstr(err, "left over"));
    /* Another cost version, and first bytes of no kind. */
    more[0] = GW_SPOOL_REC_COST_VERSION + 1;
    CHECK(gw_spool_rec_kind(more, len) == GW_SPOOL_REC_COST);
    CHECK(gw_spool_rec_decode_cost(more, len, &back, err, sizeof err) == -1 &&
          strstr(err, "version 65"));
    more[0] = 0;
    CHECK(gw_spool_rec_kind(more, len) == GW_SPOOL_REC_UNKNOWN);
    CHECK(gw_spool_rec_decode_cost(more, len, &back, err, sizeof err) == -1 &&
          strstr(err, "version"));
    more[0] = 200;
    CHECK(gw_spool_rec_kind(more, len) == GW_SPOOL_REC_UNKNOWN);
    CHECK(gw_spool_rec_decode_cost(more, len, &back, err, sizeof err) == -1);
    /* A string length longer than its field (request_id: 40 > 39). */
    memcpy(more, buf, len);
    more[1] = 40;
    more[2] = 0;
    CHECK(gw_spool_rec_decode_cost(more, len, &back, err, sizeof err) == -1);
    /* An attempt out of range (0, or over 2^31 - 1: it would alias another
     * attempt's row once cut to an int) is refused. */
    for (int k = 0; k < 3; k++) {
        memcpy(more, buf, len);
        uint64_t bad = k == 0 ? 0 : k == 1 ? (1ULL << 32) + 1 : (uint64_t)INT32_MAX + 1;
        for (int i = 0; i < 8; i++)
            more[1 + 2 + 39 + i] = (uint8_t)(bad >> (8 * i));
        CHECK(gw_spool_rec_decode_cost(more, len, &back, err, sizeof err) == -1 &&
              strstr(err, "attempt out of range"));
    }
    /* The reason's length byte (after request_id and attempt) too long. */
    memcpy(more, buf, len);
    more[1 + 2 + 39 + 8] = 24;
    CHECK(gw_spool_rec_decode_cost(more, len, &back, err, sizeof err) == -1 &&
          strstr(err, "malformed"));
    /* The kinds do not mix: each decoder refuses the other's payload, and
     * says what it found. */
    gw_usage_record_t u;
    memset(&u, 0, sizeof u);
    snprintf(u.request_id, sizeof u.request_id, "req-1");
    uint8_t ubuf[GW_SPOOL_REC_MAX];
    size_t ulen = gw_spool_rec_encode(&u, ubuf);
    CHECK(gw_spool_rec_kind(ubuf, ulen) == GW_SPOOL_REC_USAGE);
    CHECK(gw_spool_rec_decode_cost(ubuf, ulen, &back, err, sizeof err) == -1 &&
          strstr(err, "a usage record"));
    gw_usage_record_t ub;
    CHECK(gw_spool_rec_decode(buf, len, &ub, err, sizeof err) == -1 &&
          strstr(err, "a gateway cost record"));
    /* Version 1 usage records are still of the usage kind. */
    ubuf[0] = 1;
    CHECK(gw_spool_rec_kind(ubuf, ulen) == GW_SPOOL_REC_USAGE);
}

static void test_replay_and_rotation(void)
{
    char dir[512], err[256];
    spool_tmpdir(dir, sizeof dir, "replay");
    gw_spool_opts_t o = opts_for(dir, 65536); /* segments of 8 KiB */
    gw_spool_t *s = gw_spool_open(&o, err, sizeof err);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(append_range(s, 0, 200, 200) == 200);
    CHECK(spool_segments(dir, NULL, 0) >= 4); /* 200 x 212 bytes: rotated */
    /* The first 80 are stored; then the process "stops". */
    col.n = 0;
    gw_spool_pos_t end;
    CHECK(gw_spool_read(s, 80, collect_one, &col, &end) == 80);
    CHECK(col.n == 80 && rec_index(col.items[0]) == 0 && rec_index(col.items[79]) == 79);
    CHECK(gw_spool_commit(s, end, 80) == 0);
    gw_spool_stats_t st;
    gw_spool_stats(s, &st);
    CHECK(st.pending == 120 && st.appended == 200);
    gw_spool_close(s);

    /* Reopened: exactly the 120 not committed, in order; nothing damaged. */
    s = gw_spool_open(&o, err, sizeof err);
    CHECK(s != NULL);
    if (!s)
        return;
    gw_spool_stats(s, &st);
    CHECK(st.pending == 120 && st.corrupted == 0 && st.torn == 0);
    CHECK(append_range(s, 200, 210, 200) == 210);
    CHECK(drain(s) == 130);
    bool ordered = col.n == 130;
    for (size_t i = 0; ordered && i < col.n; i++)
        ordered = rec_index(col.items[i]) == (int)(80 + i);
    CHECK(ordered);
    /* Drained: the sealed segments are deleted, the budget is free again. */
    gw_spool_stats(s, &st);
    CHECK(st.pending == 0);
    CHECK(spool_segments(dir, NULL, 0) <= 2);
    CHECK(st.bytes <= 8192 + 2048);
    gw_spool_close(s);
    s = gw_spool_open(&o, err, sizeof err);
    gw_spool_stats(s, &st);
    CHECK(st.pending == 0);
    gw_spool_close(s);
    spool_rmdir(dir);
}

static void test_torn_tail(void)
{
    char dir[512], err[256], last[2048];
    spool_tmpdir(dir, sizeof dir, "torn");
    gw_spool_opts_t o = opts_for(dir, 1 << 20);
    gw_spool_t *s = gw_spool_open(&o, err, sizeof err);
    CHECK(append_range(s, 0, 20, 100) == 20);
    gw_spool_close(s);
    CHECK(spool_segments(dir, last, sizeof last) >= 1 && last[0]);
    size_t len = 0;
    uint8_t *b = spool_slurp(last, &len);
    CHECK(b && len == 20 * 112);
    /* A crash in the middle of an append: the first 60 bytes of a frame. */
    CHECK(spool_append_raw(last, b + spool_frame_offset(b, len, 3), 60) == 0);
    free(b);
    log_begin();
    s = gw_spool_open(&o, err, sizeof err);
    char *log = log_end();
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(strstr(log, "torn record at the tail") && strstr(log, "60 bytes from offset 2240"));
    free(log);
    gw_spool_stats_t st;
    gw_spool_stats(s, &st);
    CHECK(st.torn == 1 && st.corrupted == 0 && st.pending == 20);
    b = spool_slurp(last, &len);
    CHECK(len == 20 * 112); /* truncated back to the last whole record */
    free(b);
    CHECK(append_range(s, 20, 21, 100) == 21);
    CHECK(drain(s) == 21);
    CHECK(col.n == 21 && rec_index(col.items[19]) == 19 && rec_index(col.items[20]) == 20);
    gw_spool_close(s);
    /* Reopening again finds nothing more to repair. */
    s = gw_spool_open(&o, err, sizeof err);
    gw_spool_stats(s, &st);
    CHECK(st.torn == 0 && st.pending == 0);
    gw_spool_close(s);
    spool_rmdir(dir);
}

/* Damages record `victim` of 20 in the last segment: a payload byte
 * (checksum fails) or its magic (framing fails); reopening skips exactly it. */
static void test_corrupted_middle(bool header)
{
    char dir[512], err[256], last[2048];
    spool_tmpdir(dir, sizeof dir, header ? "badhdr" : "badcrc");
    gw_spool_opts_t o = opts_for(dir, 1 << 20);
    gw_spool_t *s = gw_spool_open(&o, err, sizeof err);
    CHECK(append_range(s, 0, 20, 100) == 20);
    gw_spool_close(s);
    spool_segments(dir, last, sizeof last);
    size_t len = 0;
    uint8_t *b = spool_slurp(last, &len);
    int victim = header ? 12 : 7;
    long off = spool_frame_offset(b, len, victim);
    CHECK(off > 0);
    uint8_t x = (uint8_t)(b[off + (header ? 0 : 40)] ^ 0x5A);
    free(b);
    CHECK(spool_patch(last, off + (header ? 0 : 40), &x, 1) == 0);
    log_begin();
    s = gw_spool_open(&o, err, sizeof err);
    char *log = log_end();
    CHECK(s != NULL);
    if (!s)
        return;
    char want[128];
    snprintf(want, sizeof want, "bytes %ld..%ld (112 bytes)", off, off + 112);
    CHECK(strstr(log, "corrupted data in") && strstr(log, want));
    free(log);
    gw_spool_stats_t st;
    gw_spool_stats(s, &st);
    CHECK(st.corrupted == 1 && st.torn == 0 && st.pending == 19);
    CHECK(drain(s) == 19);
    bool all_but_victim = col.n == 19;
    for (size_t i = 0; all_but_victim && i < col.n; i++)
        all_but_victim = rec_index(col.items[i]) == (int)(i < (size_t)victim ? i : i + 1);
    CHECK(all_but_victim);
    gw_spool_close(s);
    spool_rmdir(dir);
}

static void test_bad_checkpoint(void)
{
    char dir[512], err[256], path[1024];
    spool_tmpdir(dir, sizeof dir, "ckpt");
    gw_spool_opts_t o = opts_for(dir, 1 << 20);
    gw_spool_t *s = gw_spool_open(&o, err, sizeof err);
    CHECK(append_range(s, 0, 30, 50) == 30);
    col.n = 0;
    gw_spool_pos_t end;
    CHECK(gw_spool_read(s, 10, collect_one, &col, &end) == 10);
    CHECK(gw_spool_commit(s, end, 10) == 0);
    gw_spool_close(s);
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    CHECK(spool_patch(path, 9, "9", 1) == 0); /* the checksum no longer matches */
    log_begin();
    s = gw_spool_open(&o, err, sizeof err);
    char *log = log_end();
    CHECK(strstr(log, "checkpoint") && strstr(log, "unreadable"));
    free(log);
    gw_spool_stats_t st;
    gw_spool_stats(s, &st);
    CHECK(st.pending == 30); /* replayed from the start: the store is idempotent */
    gw_spool_close(s);
    spool_rmdir(dir);
}

typedef struct blocked {
    gw_spool_t *s;
    atomic_int state; /* 0 running, 1 returned 0, 2 returned -1 */
} blocked_t;

static void *append_one(void *arg)
{
    blocked_t *b = arg;
    char payload[1000];
    memset(payload, 'b', sizeof payload);
    atomic_store(&b->state, gw_spool_append(b->s, payload, sizeof payload) == 0 ? 1 : 2);
    return NULL;
}

static void test_budget(void)
{
    char dir[512], err[256];
    spool_tmpdir(dir, sizeof dir, "budget");
    gw_spool_opts_t o = opts_for(dir, 65536);
    gw_spool_t *s = gw_spool_open(&o, err, sizeof err);
    log_begin();
    int took = append_range(s, 0, 1000, 1000);
    char *log = log_end();
    /* Full near 65536 bytes: refused, never written, logged once. */
    CHECK(took >= 60 && took <= 65);
    CHECK(strstr(log, "is full") && strstr(log, "refusing"));
    free(log);
    gw_spool_stats_t st;
    gw_spool_stats(s, &st);
    CHECK(st.refused == 1 && st.bytes <= 65536 && st.bytes + 1012 > 65536);
    CHECK(st.pending == (uint64_t)took);
    CHECK(append_range(s, 5000, 5001, 1000) == 5000); /* still full */
    CHECK(!gw_spool_has_room(s, 1000) && gw_spool_has_room(s, 100));
    CHECK(drain(s) == (size_t)took);
    CHECK(gw_spool_has_room(s, 1000));
    CHECK(append_range(s, 2000, 2010, 1000) == 2010); /* room again */
    gw_spool_close(s);
    spool_rmdir(dir);

    /* Block mode: an append past the budget waits for room. */
    spool_tmpdir(dir, sizeof dir, "block");
    o = opts_for(dir, 65536);
    o.full = GW_SPOOL_FULL_BLOCK;
    s = gw_spool_open(&o, err, sizeof err);
    took = 0;
    char payload[1000];
    memset(payload, 'a', sizeof payload);
    for (;;) {
        gw_spool_stats(s, &st);
        if (st.bytes + 1012 > 65536)
            break;
        CHECK(gw_spool_append(s, payload, sizeof payload) == 0);
        took++;
    }
    blocked_t b = {s, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, append_one, &b) == 0);
    sleep_ms(300);
    CHECK(atomic_load(&b.state) == 0); /* waiting */
    CHECK(drain(s) == (size_t)took);
    for (int i = 0; i < 200 && atomic_load(&b.state) == 0; i++)
        sleep_ms(10);
    CHECK(atomic_load(&b.state) == 1); /* written once there was room */
    pthread_join(th, NULL);
    /* Full again, then shutdown: the waiting append returns -1. */
    for (;;) {
        gw_spool_stats(s, &st);
        if (st.bytes + 1012 > 65536)
            break;
        CHECK(gw_spool_append(s, payload, sizeof payload) == 0);
    }
    b.state = 0;
    CHECK(pthread_create(&th, NULL, append_one, &b) == 0);
    sleep_ms(200);
    CHECK(atomic_load(&b.state) == 0);
    gw_spool_unblock(s);
    pthread_join(th, NULL);
    CHECK(atomic_load(&b.state) == 2);
    gw_spool_close(s);
    spool_rmdir(dir);
}

typedef struct appender {
    gw_spool_t *s;
    int from;
} appender_t;

static void *append_hundred(void *arg)
{
    appender_t *a = arg;
    CHECK(append_range(a->s, a->from, a->from + 100, 150) == a->from + 100);
    return NULL;
}

/* Sync "always" from four threads at once: every append returns only after
 * an fdatasync, and appends that wait together share one (group commit), so
 * there are fewer fdatasyncs than appends; all records are there, in order
 * per thread, after reopening. */
static void test_group_commit(void)
{
    char dir[512], err[256];
    spool_tmpdir(dir, sizeof dir, "group");
    gw_spool_opts_t o = opts_for(dir, 65536); /* small segments: rotations too */
    o.sync = GW_SPOOL_SYNC_ALWAYS;
    gw_spool_t *s = gw_spool_open(&o, err, sizeof err);
    pthread_t th[4];
    appender_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (appender_t){s, i * 1000};
        CHECK(pthread_create(&th[i], NULL, append_hundred, &a[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    gw_spool_stats_t st;
    gw_spool_stats(s, &st);
    printf("always: %llu appends from 4 threads took %llu fdatasyncs\n",
           (unsigned long long)st.appended, (unsigned long long)st.syncs);
    CHECK(st.appended == 400 && st.syncs >= 1 && st.syncs < 400);
    gw_spool_close(s);
    s = gw_spool_open(&o, err, sizeof err);
    CHECK(drain(s) == 400);
    int last[4] = {-1, -1, -1, -1};
    bool ordered = true;
    for (size_t i = 0; i < col.n; i++) {
        int k = rec_index(col.items[i]), t = k / 1000;
        ordered = ordered && t >= 0 && t < 4 && k > last[t];
        if (t >= 0 && t < 4)
            last[t] = k;
    }
    CHECK(ordered && last[0] == 99 && last[3] == 3099);
    gw_spool_close(s);
    spool_rmdir(dir);
}

static void test_misc(void)
{
    char dir[512], err[256];
    spool_tmpdir(dir, sizeof dir, "lock");
    gw_spool_opts_t o = opts_for(dir, 1 << 20);
    o.sync = GW_SPOOL_SYNC_ALWAYS;
    gw_spool_t *s = gw_spool_open(&o, err, sizeof err);
    CHECK(s != NULL);
    /* One process per spool directory. */
    log_begin();
    gw_spool_t *s2 = gw_spool_open(&o, err, sizeof err);
    free(log_end());
    CHECK(s2 == NULL && strstr(err, "in use"));
    CHECK(append_range(s, 0, 5, 10) == 5);
    CHECK(gw_spool_append(s, "", 0) == -1);
    char *huge = calloc(1, GW_SPOOL_PAYLOAD_MAX + 1);
    CHECK(gw_spool_append(s, huge, GW_SPOOL_PAYLOAD_MAX + 1) == -1);
    free(huge);
    gw_spool_close(s);
    s = gw_spool_open(&o, err, sizeof err);
    gw_spool_stats_t st;
    gw_spool_stats(s, &st);
    CHECK(st.pending == 5);
    gw_spool_close(s);
    spool_rmdir(dir);
    /* A directory that cannot be made. */
    o = opts_for("/proc/tollgate-no/spool", 1 << 20);
    log_begin();
    s = gw_spool_open(&o, err, sizeof err);
    free(log_end());
    CHECK(s == NULL && strstr(err, "cannot create"));
}

int main(void)
{
    test_opts();
    test_codec();
    test_codec_cost();
    test_replay_and_rotation();
    test_torn_tail();
    test_corrupted_middle(false);
    test_corrupted_middle(true);
    test_bad_checkpoint();
    test_budget();
    test_group_commit();
    test_misc();
    if (failures)
        fprintf(stderr, "%d checks failed\n", failures);
    return failures ? 1 : 0;
}
