/* Unit tests for gateway/gw_sse: events split at blank lines whatever the
 * chunk boundaries, CRLF, data extraction, garbage and oversized events. */
#include "gw_sse.h"

#include <stdlib.h>

#include "check.h"

typedef struct collected {
    char events[16][256];
    int n;
} collected_t;

static int collect(void *arg, const char *ev, size_t len)
{
    collected_t *c = arg;
    if (c->n < 16 && len < 256) {
        memcpy(c->events[c->n], ev, len);
        c->events[c->n][len] = '\0';
    }
    c->n++;
    return 0;
}

static void test_split_any_boundary(void)
{
    const char *stream = "data: {\"a\":1}\n\n: keep-alive\n\nevent: x\ndata: two\ndata: lines\n\n"
                         "data: [DONE]\n\n";
    size_t n = strlen(stream);
    for (size_t step = 1; step <= n; step++) {
        gw_sse_splitter_t s;
        gw_sse_init(&s, 1024);
        collected_t c = {0};
        for (size_t off = 0; off < n; off += step) {
            size_t k = off + step > n ? n - off : step;
            CHECK(gw_sse_feed(&s, stream + off, k, collect, &c) == 0);
        }
        CHECK(c.n == 4);
        CHECK_STR(c.events[0], "data: {\"a\":1}\n\n");
        CHECK_STR(c.events[3], "data: [DONE]\n\n");
        CHECK(gw_sse_pending(&s) == 0);
        gw_sse_free(&s);
    }
}

static void test_crlf_and_data(void)
{
    gw_sse_splitter_t s;
    gw_sse_init(&s, 1024);
    collected_t c = {0};
    const char *in = "data: hello\r\ndata:world\r\n\r\n";
    CHECK(gw_sse_feed(&s, in, strlen(in), collect, &c) == 0);
    CHECK(c.n == 1);
    char out[64];
    CHECK(gw_sse_event_data(c.events[0], strlen(c.events[0]), out, sizeof out) == 11);
    CHECK_STR(out, "hello\nworld");
    CHECK(gw_sse_event_data(": comment\n\n", 11, out, sizeof out) == -1);
    CHECK(gw_sse_event_data("data: 0123456789\n\n", 18, out, 5) == -1);
    gw_sse_free(&s);
}

static void test_garbage(void)
{
    gw_sse_splitter_t s;
    gw_sse_init(&s, 64);
    collected_t c = {0};
    const char *html = "<html><body>502 Bad Gateway</body></html>\n\n";
    CHECK(gw_sse_feed(&s, html, strlen(html), collect, &c) == -2);
    CHECK(c.n == 0);
    gw_sse_free(&s);

    gw_sse_init(&s, 64);
    char big[200];
    memset(big, 'x', sizeof big);
    memcpy(big, "data: ", 6);
    CHECK(gw_sse_feed(&s, big, sizeof big, collect, &c) == -2); /* no boundary within 64 bytes */
    gw_sse_free(&s);
}

int main(void)
{
    test_split_any_boundary();
    test_crlf_and_data();
    test_garbage();
    return CHECK_DONE();
}
