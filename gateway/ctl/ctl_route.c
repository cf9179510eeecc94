/* ctl_route: "tollgatectl route explain": asks a running gateway's admin
 * listener (GET /route/explain, docs/router.md) where it would route a
 * request and why, and prints each candidate's expected cost and latency or
 * why it was dropped. Plain HTTP to the admin address; no database. */
#include "ctl.h"

#include <cjson/cJSON.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char ctl_route_usage[] =
    "usage: tollgatectl route explain --admin URL --model M --prompt-tokens N\n"
    "           [--max-tokens N] [--stream] [--preference cheapest|fastest|balanced]\n"
    "           [--latency-target-ms N] [--max-cost AMOUNT] [--token T] [--json]\n"
    "\n"
    "  --admin URL   the gateway's admin listener, e.g. http://127.0.0.1:8081\n"
    "  --token T     admin token (default: $TG_ADMIN_TOKEN; none when unset)\n"
    "  --json        print the endpoint's JSON as is\n";

#define RESP_MAX (1 << 20)

/* Appends "&name=value" to q with value percent-encoded. Returns 0, or -1
 * when q is full. */
static int query_add(char *q, size_t cap, const char *name, const char *value)
{
    size_t n = strlen(q);
    int w = snprintf(q + n, cap - n, "%s%s=", n ? "&" : "", name);
    if (w < 0 || (size_t)w >= cap - n)
        return -1;
    n += (size_t)w;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (n + 4 >= cap)
            return -1;
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '-' || *p == '_')
            q[n++] = (char)*p;
        else
            n += (size_t)snprintf(q + n, cap - n, "%%%02X", *p);
    }
    q[n] = '\0';
    return 0;
}

/* GET http://HOST:PORT/path?query. Returns the HTTP status and a malloc'd
 * body in *body (caller frees), or -1 with a message in err. */
static int http_get(const char *url, const char *path, const char *token, char **body, char *err,
                    size_t errlen)
{
    *body = NULL;
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "--admin must be http://HOST:PORT (the admin listener), got '%s'", url);
        return -1;
    }
    char host[256], port[8] = "80";
    const char *hp = url + 7, *colon = strrchr(hp, ':'), *slash = strchr(hp, '/');
    size_t hl = colon && (!slash || colon < slash) ? (size_t)(colon - hp)
                                                    : (slash ? (size_t)(slash - hp) : strlen(hp));
    if (hl == 0 || hl >= sizeof host) {
        snprintf(err, errlen, "--admin has no usable host: '%s'", url);
        return -1;
    }
    memcpy(host, hp, hl);
    host[hl] = '\0';
    if (colon && (!slash || colon < slash)) {
        size_t pl = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
        if (pl == 0 || pl >= sizeof port) {
            snprintf(err, errlen, "--admin has a bad port: '%s'", url);
            return -1;
        }
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0) {
            struct timeval tv = {10, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
                close(fd);
                fd = -1;
            }
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s:%s (is the gateway's admin listener there?)",
                 host, port);
        return -1;
    }
    char req[4096];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n%s%s%sConnection: close\r\n\r\n",
                      path, host, token ? "Authorization: Bearer " : "", token ? token : "",
                      token ? "\r\n" : "");
    if (rl < 0 || (size_t)rl >= sizeof req || write(fd, req, (size_t)rl) != rl) {
        snprintf(err, errlen, "cannot send the request to %s:%s", host, port);
        close(fd);
        return -1;
    }
    char *buf = malloc(RESP_MAX + 1);
    if (!buf)
        abort();
    size_t n = 0;
    ssize_t r;
    while (n < RESP_MAX && (r = read(fd, buf + n, RESP_MAX - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    int status = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1 || !sep) {
        snprintf(err, errlen, "no HTTP answer from %s:%s", host, port);
        free(buf);
        return -1;
    }
    memmove(buf, sep + 4, strlen(sep + 4) + 1);
    *body = buf;
    return status;
}

static const char *str_or(const cJSON *o, const char *k, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double num_or(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* Prints the explanation as a table. */
static void print_table(const cJSON *j)
{
    printf("model %s, policy %s, prompt %.0f tokens, max_tokens %.0f, expected output %.0f, %s\n",
           str_or(j, "model", "?"), str_or(j, "policy", "?"), num_or(j, "prompt_tokens", 0),
           num_or(j, "max_tokens", 0), num_or(j, "expected_output_tokens", 0),
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stream")) ? "streamed" : "not streamed");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "decision");
    if (str_or(d, "chosen", NULL))
        printf("chosen: %s (%s); runner-up: %s\n", str_or(d, "chosen", "?"), str_or(d, "why", ""),
               str_or(d, "runner_up", "none"));
    else
        printf("refused: %.0f %s: %s\n", num_or(d, "status", 0), str_or(d, "code", "?"),
               str_or(d, "message", ""));
    printf("%-16s %-22s %-7s %9s %9s %10s %-10s %s\n", "provider", "expected cost", "window",
           "ttft ms", "total ms", "latency ms", "circuit", "dropped / rank");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "candidates"))
    {
        char cost[64] = "unknown", win[24] = "-", why[48];
        if (str_or(c, "expected_cost", NULL))
            snprintf(cost, sizeof cost, "%s %s", str_or(c, "expected_cost", ""),
                     str_or(c, "currency", ""));
        if (num_or(c, "discount_window_id", 0) > 0)
            snprintf(win, sizeof win, "%.0f", num_or(c, "discount_window_id", 0));
        if (str_or(c, "dropped", NULL))
            snprintf(why, sizeof why, "%s", str_or(c, "dropped", ""));
        else
            snprintf(why, sizeof why, "#%.0f", num_or(c, "rank", 0));
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(c, "state");
        printf("%-16s %-22s %-7s %9.0f %9.0f %10.0f %-10s %s\n", str_or(c, "provider", "?"), cost,
               win, num_or(c, "expected_ttft_ms", 0), num_or(c, "expected_total_ms", 0),
               num_or(c, "latency_ms", 0), str_or(st, "circuit", "?"), why);
    }
}

static int ctl_route_explain(int argc, char **argv)
{
    enum { ADMIN, MODEL, PROMPT, MAXT, STREAM, PREF, TARGET, COST, TOKEN, JSON, NOPT };
    ctl_opt_t opts[NOPT] = {{"admin", true, false, NULL},      {"model", true, false, NULL},
                            {"prompt-tokens", true, false, NULL}, {"max-tokens", true, false, NULL},
                            {"stream", false, false, NULL},    {"preference", true, false, NULL},
                            {"latency-target-ms", true, false, NULL},
                            {"max-cost", true, false, NULL},   {"token", true, false, NULL},
                            {"json", false, false, NULL}};
    const char *pos[1];
    size_t npos;
    bool help;
    if (ctl_args_parse("route explain", argc, argv, opts, NOPT, pos, 0, &npos, &help) != 0)
        return CTL_USAGE;
    if (help) {
        fputs(ctl_route_usage, stdout);
        return CTL_OK;
    }
    if (!opts[ADMIN].present || !opts[MODEL].present || !opts[PROMPT].present) {
        ctl_error("route explain: --admin, --model and --prompt-tokens are required "
                  "(see: tollgatectl route explain --help)");
        return CTL_USAGE;
    }
    char q[2048] = "";
    const struct {
        int opt;
        const char *param;
    } map[] = {{MODEL, "model"},           {PROMPT, "prompt_tokens"},
               {MAXT, "max_tokens"},       {PREF, "preference"},
               {TARGET, "latency_target_ms"}, {COST, "max_cost"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (opts[map[i].opt].present && query_add(q, sizeof q, map[i].param, opts[map[i].opt].value) != 0) {
            ctl_error("route explain: arguments too long");
            return CTL_USAGE;
        }
    if (opts[STREAM].present)
        query_add(q, sizeof q, "stream", "1");
    char path[2200];
    snprintf(path, sizeof path, "/route/explain?%s", q);
    const char *token = opts[TOKEN].present ? opts[TOKEN].value : getenv("TG_ADMIN_TOKEN");
    if (token && !*token)
        token = NULL;
    char err[512], *body;
    int status = http_get(opts[ADMIN].value, path, token, &body, err, sizeof err);
    if (status < 0) {
        ctl_error("route explain: %s", err);
        return CTL_FAIL;
    }
    cJSON *j = cJSON_Parse(body);
    int rc = CTL_OK;
    if (status != 200) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        ctl_error("route explain: the gateway answered %d: %s", status,
                  str_or(e, "message", body));
        rc = status == 400 || status == 404 ? CTL_USAGE : CTL_FAIL;
    } else if (opts[JSON].present) {
        printf("%s\n", body);
    } else if (!j) {
        ctl_error("route explain: the gateway's answer is not JSON");
        rc = CTL_FAIL;
    } else {
        print_table(j);
    }
    cJSON_Delete(j);
    free(body);
    return rc;
}

int ctl_route_main(ctl_ctx_t *ctx, int argc, char **argv)
{
    (void)ctx; /* no database */
    if (argc >= 2 && !strcmp(argv[1], "explain"))
        return ctl_route_explain(argc - 2, argv + 2);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(ctl_route_usage, stdout);
        return CTL_OK;
    }
    ctl_error("route: expected 'explain' (see: tollgatectl route --help)");
    return CTL_USAGE;
}
