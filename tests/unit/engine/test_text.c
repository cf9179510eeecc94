/* Stop strings and text hold-back: a stop string split across tokens is
 * found and neither it nor anything after it is returned; text that might
 * begin a stop string is held back and released when it does not; the
 * earliest of several stop strings wins; a UTF-8 character split across
 * tokens is never returned in halves; invalid bytes become U+FFFD. */
#include "eng_test_util.h"
#include "eng_text.h"

#include <stdio.h>
#include <string.h>

/* Pushes pieces (NULL-terminated) and returns what came out; *stopped_at
 * gets the index of the piece that hit a stop string (-1 none). */
static void run(const char *const *stops, int n_stops, const char *const *pieces, char *out,
                size_t cap, int *stopped_at, bool finish)
{
    eng_text_t t;
    eng_text_init(&t, stops, n_stops);
    tok_buf_t b = {0};
    *stopped_at = -1;
    for (int i = 0; pieces[i]; i++)
        if (eng_text_push(&t, pieces[i], strlen(pieces[i]), &b)) {
            *stopped_at = i;
            break;
        }
    if (finish)
        eng_text_finish(&t, &b);
    snprintf(out, cap, "%s", b.data ? b.data : "");
    tok_buf_free(&b);
    eng_text_free(&t);
}

int main(void)
{
    char out[256];
    int at;
    const char *stop1[] = {"</end>"};
    const char *p1[] = {"Hello", " wor", "ld</", "en", "d> more", NULL};
    run(stop1, 1, p1, out, sizeof out, &at, true);
    CHECK(at == 4);
    CHECK(!strcmp(out, "Hello world"));

    /* a false start is released */
    const char *p2[] = {"a</", "x", NULL};
    eng_text_t t;
    eng_text_init(&t, stop1, 1);
    tok_buf_t b = {0};
    CHECK(!eng_text_push(&t, p2[0], strlen(p2[0]), &b));
    CHECK(b.len == 1 && !memcmp(b.data, "a", 1)); /* "</" held */
    CHECK(!eng_text_push(&t, p2[1], 1, &b));
    CHECK(b.len == 4 && !memcmp(b.data, "a</x", 4));
    eng_text_finish(&t, &b);
    CHECK(b.len == 4);
    tok_buf_free(&b);
    eng_text_free(&t);

    /* held-back text is released at the end */
    const char *p3[] = {"abc<", "/en", NULL};
    run(stop1, 1, p3, out, sizeof out, &at, true);
    CHECK(at == -1 && !strcmp(out, "abc</en"));

    /* earliest of several stops; the stop in the first piece */
    const char *stops2[] = {"STOP", "\n\n", "zz"};
    const char *p4[] = {"one\n", "\ntwo STOP", NULL};
    run(stops2, 3, p4, out, sizeof out, &at, true);
    CHECK(at == 1 && !strcmp(out, "one"));
    const char *p5[] = {"STOP now", NULL};
    run(stops2, 3, p5, out, sizeof out, &at, true);
    CHECK(at == 0 && !strcmp(out, ""));
    /* empty stop strings are ignored */
    const char *stops3[] = {""};
    const char *p6[] = {"x", "y", NULL};
    run(stops3, 1, p6, out, sizeof out, &at, true);
    CHECK(at == -1 && !strcmp(out, "xy"));

    /* UTF-8: "é" (c3 a9) and "中" (e4 b8 ad) split across tokens */
    eng_text_init(&t, NULL, 0);
    CHECK(!eng_text_push(&t, "caf\xc3", 4, &b));
    CHECK(b.len == 3 && !memcmp(b.data, "caf", 3));
    CHECK(!eng_text_push(&t, "\xa9 \xe4", 3, &b));
    CHECK(b.len == 6 && !memcmp(b.data, "caf\xc3\xa9 ", 6));
    CHECK(!eng_text_push(&t, "\xb8", 1, &b));
    CHECK(b.len == 6);
    CHECK(!eng_text_push(&t, "\xad!", 2, &b));
    CHECK(b.len == 10 && !memcmp(b.data, "caf\xc3\xa9 \xe4\xb8\xad!", 10));
    /* a dangling lead byte at the end becomes U+FFFD; invalid bytes too */
    CHECK(!eng_text_push(&t, "\xff", 1, &b));
    CHECK(!eng_text_push(&t, "\xe4", 1, &b));
    eng_text_finish(&t, &b);
    CHECK(b.len == 16 && !memcmp(b.data + 10, "\xef\xbf\xbd\xef\xbf\xbd", 6));
    tok_buf_free(&b);
    eng_text_free(&t);

    /* a multi-byte stop string split inside its character */
    const char *stops4[] = {"。"};
    const char *p7[] = {"好\xe3", "\x80\x82后", NULL};
    run(stops4, 1, p7, out, sizeof out, &at, true);
    CHECK(at == 1 && !strcmp(out, "好"));

    if (eng_test_failures) {
        fprintf(stderr, "%d checks failed\n", eng_test_failures);
        return 1;
    }
    printf("text ok\n");
    return 0;
}
