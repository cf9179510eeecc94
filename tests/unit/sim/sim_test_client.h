/* sim_test_client: a small blocking HTTP/1.1 client and process helpers for
 * the simulator's end-to-end tests. It starts tollgate-sim, reads the
 * announced port, sends one request per connection (Connection: close) and
 * records exactly what came back: status, headers, the de-chunked body,
 * whether the chunked body was complete, and whether the peer closed or
 * reset without any response. */
#ifndef SIM_TEST_CLIENT_H
#define SIM_TEST_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int t_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            t_failures++;                                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

typedef struct t_sim {
    pid_t pid;
    int port;
} t_sim_t;

/* Starts the simulator binary with the given NULL-terminated arguments
 * (after the program name) and reads "listening on HOST:PORT". */
static int t_sim_start(t_sim_t *s, const char *bin, const char *const *args)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        return -1;
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    char line[256];
    size_t len = 0;
    struct pollfd p = {pfd[0], POLLIN, 0};
    while (len < sizeof(line) - 1) {
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t r = read(pfd[0], line + len, 1);
        if (r <= 0)
            break;
        if (line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    close(pfd[0]);
    const char *colon = strrchr(line, ':');
    if (strncmp(line, "listening on ", 13) != 0 || !colon) {
        fprintf(stderr, "simulator did not announce its port: '%s'\n", line);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        return -1;
    }
    s->port = atoi(colon + 1);
    return s->port > 0 ? 0 : -1;
}

/* Stops the simulator with SIGTERM; returns its exit status (0 = clean,
 * which under ASan also means no leak), or -1 if it had to be killed. */
static int t_sim_stop(t_sim_t *s)
{
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        int st;
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(50000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    return -1;
}

typedef struct t_resp {
    int status; /* 0 when no status line came */
    char *raw;  /* everything received (owned) */
    size_t raw_len;
    char *headers; /* points into raw */
    char *body;    /* de-chunked body, NUL-terminated (owned) */
    size_t body_len;
    bool chunked, complete; /* complete: Content-Length met or final chunk seen */
    bool timed_out;         /* the deadline passed with the connection still open */
    bool reset;             /* recv failed with ECONNRESET */
    double first_byte_ms, total_ms;
} t_resp_t;

static double t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int t_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void t_resp_free(t_resp_t *r)
{
    free(r->raw);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Returns the value of header name in r (a static copy) or NULL. */
static const char *t_header(const t_resp_t *r, const char *name)
{
    static char val[512];
    if (!r->headers)
        return NULL;
    size_t nl = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol || eol == p)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(val, sizeof(val), "%.*s", (int)(eol - v), v);
            return val;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Parses raw into status, headers and body. */
static void t_parse(t_resp_t *r)
{
    r->body = calloc(1, r->raw_len + 1);
    if (r->raw_len < 12 || strncmp(r->raw, "HTTP/1.", 7) != 0)
        return;
    r->status = atoi(r->raw + 9);
    char *end = strstr(r->raw, "\r\n\r\n");
    if (!end)
        return;
    r->headers = strstr(r->raw, "\r\n") + 2;
    end[2] = '\0'; /* headers end with their last CRLF */
    const char *b = end + 4;
    size_t left = r->raw_len - (size_t)(b - r->raw);
    const char *te = t_header(r, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked") == 0) {
        r->chunked = true;
        while (left > 0) {
            char *e;
            unsigned long n = strtoul(b, &e, 16);
            const char *crlf = strstr(b, "\r\n");
            if (!crlf || e == b)
                break;
            size_t hl = (size_t)(crlf - b) + 2;
            if (n == 0) {
                r->complete = true;
                break;
            }
            if (left < hl + n + 2)
                break;
            memcpy(r->body + r->body_len, b + hl, n);
            r->body_len += n;
            b += hl + n + 2;
            left -= hl + n + 2;
        }
    } else {
        memcpy(r->body, b, left);
        r->body_len = left;
        const char *cl = t_header(r, "Content-Length");
        r->complete = cl && (size_t)atol(cl) == left;
    }
    r->body[r->body_len] = '\0';
}

/* Sends one request and reads until the server closes or timeout_ms pass.
 * extra_headers is a block of "Name: value\r\n" lines (or NULL). Returns 0
 * when the request was sent (then r describes what came back), -1 if the
 * connection failed. */
static int t_http(int port, const char *method, const char *path, const char *extra_headers,
                  const char *body, int timeout_ms, t_resp_t *r)
{
    memset(r, 0, sizeof(*r));
    int fd = t_connect(port);
    if (fd < 0)
        return -1;
    size_t bl = body ? strlen(body) : 0;
    size_t cap = bl + 4096 + (extra_headers ? strlen(extra_headers) : 0);
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, extra_headers ? extra_headers : "", bl);
    if (bl)
        memcpy(req + n, body, bl);
    double t0 = t_now_ms();
    size_t total = (size_t)n + bl, off = 0;
    while (off < total) {
        ssize_t w = send(fd, req + off, total - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(req);
    size_t rcap = 65536;
    r->raw = malloc(rcap + 1);
    for (;;) {
        int left = timeout_ms - (int)(t_now_ms() - t0);
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            r->timed_out = true;
            break;
        }
        if (r->raw_len == rcap) {
            rcap *= 2;
            r->raw = realloc(r->raw, rcap + 1);
        }
        ssize_t got = recv(fd, r->raw + r->raw_len, rcap - r->raw_len, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            r->reset = errno == ECONNRESET;
            break;
        }
        if (got == 0)
            break;
        if (r->raw_len == 0)
            r->first_byte_ms = t_now_ms() - t0;
        r->raw_len += (size_t)got;
    }
    r->total_ms = t_now_ms() - t0;
    r->raw[r->raw_len] = '\0';
    close(fd);
    t_parse(r);
    return 0;
}

#endif
