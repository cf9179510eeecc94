/* sim_opts: getopt_long parsing of tollgate-sim's options with range checks;
 * a bad value is an error message, never a silent default. */
#include "sim_opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

void sim_opts_defaults(sim_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 0;
    o->threads = 1;
    o->completion_tokens = 16;
    o->context = 131072;
    o->seed = 1;
    snprintf(o->name, sizeof(o->name), "sim");
    o->cache = true;
    o->cache_blocks = 262144;
    o->max_body = 8u << 20;
    o->slow_headers_ms = 3000;
    o->slow_ttft_ms = 3000;
    o->retry_after_s = 1;
    o->idle_timeout_s = 60;
    snprintf(o->models, sizeof(o->models), "deepseek-chat,deepseek-reasoner");
    o->log_level = TG_LOG_WARN;
}

void sim_opts_usage(FILE *f)
{
    fputs(
        "usage: tollgate-sim [options]\n"
        "An OpenAI/DeepSeek-compatible provider simulator for tests, benchmarks and demos.\n"
        "\n"
        "  --listen HOST:PORT       address to listen on (default 127.0.0.1:0; port 0 picks a\n"
        "                           free port); the first stdout line is 'listening on HOST:PORT'\n"
        "  --port-file PATH         also write the port number to PATH\n"
        "  --threads N              event-loop threads (default 1)\n"
        "  --ttft-ms N              time to first token in ms (default 0)\n"
        "  --tokens-per-s N         completion tokens per second; 0 = all at once (default 0)\n"
        "  --completion-tokens N    completion length (default 16); the request's max_tokens or\n"
        "                           max_completion_tokens caps it\n"
        "  --context N              prompt tokens allowed; longer -> 400\n"
        "                           context_length_exceeded (default 131072; 0 = no limit)\n"
        "  --seed N                 seed for completion text and error draws (default 1)\n"
        "  --rate-429 P             probability (0..1) of a 429 with Retry-After\n"
        "  --rate-500 P             probability of a 500\n"
        "  --rate-503 P             probability of a 503 \"server busy\"\n"
        "  --rate-reset P           probability of closing the connection without a response\n"
        "  --rate-stall P           probability of accepting and never answering\n"
        "  --rate-slow P            probability (0..1) that an answer is slow: its time to first\n"
        "                           token is --slow-ttft-ms instead of --ttft-ms (a heavy tail;\n"
        "                           drawn apart from the faults above, from the same seed)\n"
        "  --slow-ttft-ms N         time to first token of the slow answers (default 3000)\n"
        "  --api-key KEY            accept only 'Authorization: Bearer KEY' on /v1 (else 401)\n"
        "  --name NAME              name shown in responses (system_fingerprint, x-sim-name)\n"
        "                           and in /sim/stats (default sim)\n"
        "  --cache on|off           prefix-cache hit reporting (default on)\n"
        "  --cache-blocks N         64-token blocks the prefix cache remembers (default 262144)\n"
        "  --report-cache on|off    off: usage carries no cache-hit fields at all (a provider\n"
        "                           that does not report caching; default on)\n"
        "  --tokenizer PATH         count prompt tokens exactly like DeepSeek (chat template +\n"
        "                           BPE from a tokenizer folder, e.g. data/tokenizers/deepseek-v3)\n"
        "                           instead of 4 bytes a token\n"
        "  --max-body BYTES         request body cap (default 8388608); larger -> 413\n"
        "  --slow-headers-ms N      delay before headers for x-sim-fault: slow-headers\n"
        "                           (default 3000)\n"
        "  --retry-after S          Retry-After seconds on a 429 (default 1)\n"
        "  --idle-timeout S         close idle client connections after S seconds (default 60)\n"
        "  --models LIST            comma-separated ids for GET /v1/models\n"
        "                           (default deepseek-chat,deepseek-reasoner)\n"
        "  --log-level LEVEL        debug, info, warn or error (default warn)\n"
        "  --fault KIND             inject KIND (as x-sim-fault below) into every request that\n"
        "                           has no x-sim-fault header; overrides the --rate-* draws\n"
        "  --help                   this text\n"
        "\n"
        "Per-request headers: x-sim-fault: 429|500|503|reset|stall|garbage|no-usage|cut|\n"
        "slow-headers; x-sim-ttft-ms: N; x-sim-completion-tokens: N; x-sim-tokens-per-s: N.\n"
        "See docs/simulator.md.\n",
        f);
}

/* Parses an unsigned decimal in [0, max]. Returns 0 or -1. */
static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

static int parse_listen(const char *s, sim_opts_t *o)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(o->host))
        return -1;
    unsigned long long port;
    if (parse_uint(colon + 1, 65535, &port) < 0)
        return -1;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') { /* [::1]:8080 */
        memcpy(o->host, s + 1, hl - 2);
        o->host[hl - 2] = '\0';
    } else {
        memcpy(o->host, s, hl);
        o->host[hl] = '\0';
    }
    o->port = (int)port;
    return 0;
}

enum {
    OPT_LISTEN = 256,
    OPT_PORT_FILE,
    OPT_THREADS,
    OPT_TTFT,
    OPT_TPS,
    OPT_COMPLETION,
    OPT_CONTEXT,
    OPT_SEED,
    OPT_R429,
    OPT_R500,
    OPT_R503,
    OPT_RRESET,
    OPT_RSTALL,
    OPT_API_KEY,
    OPT_NAME,
    OPT_CACHE,
    OPT_CACHE_BLOCKS,
    OPT_MAX_BODY,
    OPT_SLOW,
    OPT_RETRY,
    OPT_IDLE,
    OPT_MODELS,
    OPT_LOG,
    OPT_FAULT,
    OPT_HELP,
    OPT_REPORT_CACHE,
    OPT_TOKENIZER,
    OPT_RSLOW,
    OPT_SLOW_TTFT,
};

int sim_opts_parse(int argc, char **argv, sim_opts_t *o, char *err, size_t errlen)
{
    static const struct option longopts[] = {
        {"listen", required_argument, 0, OPT_LISTEN},
        {"port-file", required_argument, 0, OPT_PORT_FILE},
        {"threads", required_argument, 0, OPT_THREADS},
        {"ttft-ms", required_argument, 0, OPT_TTFT},
        {"tokens-per-s", required_argument, 0, OPT_TPS},
        {"completion-tokens", required_argument, 0, OPT_COMPLETION},
        {"context", required_argument, 0, OPT_CONTEXT},
        {"seed", required_argument, 0, OPT_SEED},
        {"rate-429", required_argument, 0, OPT_R429},
        {"rate-500", required_argument, 0, OPT_R500},
        {"rate-503", required_argument, 0, OPT_R503},
        {"rate-reset", required_argument, 0, OPT_RRESET},
        {"rate-stall", required_argument, 0, OPT_RSTALL},
        {"api-key", required_argument, 0, OPT_API_KEY},
        {"name", required_argument, 0, OPT_NAME},
        {"cache", required_argument, 0, OPT_CACHE},
        {"cache-blocks", required_argument, 0, OPT_CACHE_BLOCKS},
        {"max-body", required_argument, 0, OPT_MAX_BODY},
        {"slow-headers-ms", required_argument, 0, OPT_SLOW},
        {"retry-after", required_argument, 0, OPT_RETRY},
        {"idle-timeout", required_argument, 0, OPT_IDLE},
        {"models", required_argument, 0, OPT_MODELS},
        {"log-level", required_argument, 0, OPT_LOG},
        {"fault", required_argument, 0, OPT_FAULT},
        {"help", no_argument, 0, OPT_HELP},
        {"report-cache", required_argument, 0, OPT_REPORT_CACHE},
        {"tokenizer", required_argument, 0, OPT_TOKENIZER},
        {"rate-slow", required_argument, 0, OPT_RSLOW},
        {"slow-ttft-ms", required_argument, 0, OPT_SLOW_TTFT},
        {0, 0, 0, 0},
    };
    optind = 1;
    opterr = 0;
    int c, li = 0;
    unsigned long long v = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &li)) != -1) {
        const char *a = optarg;
        int bad = 0;
        switch (c) {
        case OPT_LISTEN:
            bad = parse_listen(a, o);
            break;
        case OPT_PORT_FILE:
            bad = strlen(a) >= sizeof(o->port_file);
            if (!bad)
                snprintf(o->port_file, sizeof(o->port_file), "%s", a);
            break;
        case OPT_THREADS:
            bad = parse_uint(a, 64, &v) < 0 || v == 0;
            o->threads = (int)v;
            break;
        case OPT_TTFT:
            bad = parse_uint(a, 3600000, &v);
            o->ttft_ms = (unsigned)v;
            break;
        case OPT_TPS:
            bad = parse_uint(a, 10000000, &v);
            o->tokens_per_s = (unsigned)v;
            break;
        case OPT_COMPLETION:
            bad = parse_uint(a, 1000000, &v);
            o->completion_tokens = (unsigned)v;
            break;
        case OPT_CONTEXT:
            bad = parse_uint(a, 100000000, &v);
            o->context = (unsigned long)v;
            break;
        case OPT_SEED:
            bad = parse_uint(a, UINT64_MAX, &v);
            o->seed = v;
            break;
        case OPT_R429:
            bad = parse_rate(a, &o->rate_429);
            break;
        case OPT_R500:
            bad = parse_rate(a, &o->rate_500);
            break;
        case OPT_R503:
            bad = parse_rate(a, &o->rate_503);
            break;
        case OPT_RRESET:
            bad = parse_rate(a, &o->rate_reset);
            break;
        case OPT_RSTALL:
            bad = parse_rate(a, &o->rate_stall);
            break;
        case OPT_RSLOW:
            bad = parse_rate(a, &o->rate_slow);
            break;
        case OPT_SLOW_TTFT:
            bad = parse_uint(a, 3600000, &v);
            o->slow_ttft_ms = (unsigned)v;
            break;
        case OPT_API_KEY:
            bad = strlen(a) == 0 || strlen(a) >= sizeof(o->api_key);
            if (!bad)
                snprintf(o->api_key, sizeof(o->api_key), "%s", a);
            break;
        case OPT_NAME:
            bad = strlen(a) == 0 || strlen(a) >= sizeof(o->name) || strpbrk(a, "\"\\\r\n") != NULL;
            if (!bad)
                snprintf(o->name, sizeof(o->name), "%s", a);
            break;
        case OPT_CACHE:
            if (strcmp(a, "on") == 0)
                o->cache = true;
            else if (strcmp(a, "off") == 0)
                o->cache = false;
            else
                bad = 1;
            break;
        case OPT_CACHE_BLOCKS:
            bad = parse_uint(a, 1ULL << 30, &v) < 0 || v == 0;
            o->cache_blocks = (size_t)v;
            break;
        case OPT_MAX_BODY:
            bad = parse_uint(a, 1ULL << 30, &v) < 0 || v < 1024;
            o->max_body = (size_t)v;
            break;
        case OPT_SLOW:
            bad = parse_uint(a, 3600000, &v);
            o->slow_headers_ms = (unsigned)v;
            break;
        case OPT_RETRY:
            bad = parse_uint(a, 86400, &v);
            o->retry_after_s = (unsigned)v;
            break;
        case OPT_IDLE:
            bad = parse_uint(a, 86400, &v) < 0 || v == 0;
            o->idle_timeout_s = (unsigned)v;
            break;
        case OPT_MODELS:
            bad = strlen(a) == 0 || strlen(a) >= sizeof(o->models) || strpbrk(a, "\"\\") != NULL;
            if (!bad)
                snprintf(o->models, sizeof(o->models), "%s", a);
            break;
        case OPT_LOG:
            bad = tg_log_level_parse(a, &o->log_level);
            break;
        case OPT_FAULT:
            bad = sim_fault_parse(a, &o->fault) < 0;
            break;
        case OPT_REPORT_CACHE:
            if (strcmp(a, "on") == 0)
                o->hide_cache = false;
            else if (strcmp(a, "off") == 0)
                o->hide_cache = true;
            else
                bad = 1;
            break;
        case OPT_TOKENIZER:
            bad = strlen(a) == 0 || strlen(a) >= sizeof(o->tokenizer);
            if (!bad)
                snprintf(o->tokenizer, sizeof(o->tokenizer), "%s", a);
            break;
        case OPT_HELP:
            return 1;
        default:
            snprintf(err, errlen, "unknown option or missing value: %s",
                     optind > 0 && optind <= argc ? argv[optind - 1] : "?");
            return -1;
        }
        if (bad) {
            snprintf(err, errlen, "bad value for --%s: '%s'", longopts[li].name, a);
            return -1;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument: %s", argv[optind]);
        return -1;
    }
    if (o->rate_429 + o->rate_500 + o->rate_503 + o->rate_reset + o->rate_stall > 1.0 + 1e-9) {
        snprintf(err, errlen, "the --rate-* probabilities add up to more than 1");
        return -1;
    }
    return 0;
}
