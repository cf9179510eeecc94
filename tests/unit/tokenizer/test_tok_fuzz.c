/* Fuzz-style test of encode: tens of thousands of seeded random byte strings
 * (raw bytes, UTF-8 fragments, random code points, added-token pieces) must
 * encode without crash or hang, give ids inside the vocabulary, agree with
 * tok_count, and decode back to the input (invalid bytes as U+FFFD; in NFC
 * form when the tokenizer normalizes — NFC itself is checked by tok_nfc).
 * With VARIANTS_JSON and VARIANT, under that variant's pre-tokenizer.
 * Usage: test_tok_fuzz TOKENIZER_JSON [ITERATIONS [VARIANTS_JSON VARIANT]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok.h"
#include "tok_internal.h"
#include "tok_test_util.h"
#include "tok_utf8.h"

static uint64_t rng = 0x5eed0f70c1a7e5ull;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static const char *const FRAGMENTS[] = {
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "a",
    "Z",
    "1",
    "12",
    "!",
    "'",
    "-",
    ".",
    "é",
    "\xcc\x81",
    "\xe4\xbd\xa0",
    "\xe3\x82\xab",
    "\xf0\x9f\x98\x80",
    "\xc2\xa0",
    "\xe3\x80\x80",
    "\xe2\x80\x8b",
    "<",
    "\xef\xbd\x9c",
    "<\xef\xbd\x9cUser\xef\xbd\x9c>",
    "<think>",
    "\xe2\x96\x81",
    "\xc3",
    "\xe4\xbd",
    "\xf0\x9f",
    "\x80",
    "\xff",
    "\xed\xa0\x80",
    "\xc0\xaf",
    "\0",
};

/* Fills buf with one random input of one of four kinds; returns its length. */
static size_t make_input(unsigned char *buf, size_t max)
{
    size_t n = 0, want = next_rand() % (max / 3);
    unsigned kind = next_rand() % 4;
    while (n < want && n + 16 <= max) { /* 16 >= the longest item */
        switch (kind) {
        case 0:
            buf[n++] = (unsigned char)next_rand();
            break;
        case 1: {
            const char *f = FRAGMENTS[next_rand() % (sizeof FRAGMENTS / sizeof *FRAGMENTS)];
            size_t l = f[0] ? strlen(f) : 1;
            memcpy(buf + n, f, l);
            n += l;
            break;
        }
        case 2: {
            uint32_t cp = next_rand() % 0x110000;
            if (cp >= 0xd800 && cp < 0xe000)
                cp = 'x';
            n += tok_utf8_put(buf + n, cp);
            break;
        }
        default:
            buf[n++] = (unsigned char)(next_rand() % 2 ? ' ' + next_rand() % 95 : next_rand());
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON [ITERATIONS]\n", argv[0]);
        return 2;
    }
    long iters = argc > 2 ? atol(argv[2]) : 20000;
    tok_tokenizer_t *t = argc > 4 ? tt_load_variant(argv[1], argv[3], argv[4]) : tt_load(argv[1]);
    uint32_t vocab = tok_vocab_size(t);
    unsigned char buf[2048], want[2048 * 3];
    int failures = 0;
    size_t total = 0;
    clock_t t0 = clock();
    for (long it = 0; it < iters && failures < 10; it++) {
        size_t n = make_input(buf, sizeof buf);
        tok_ids_t ids = {0};
        tok_encode(t, (const char *)buf, n, &ids);
        total += n;
        for (size_t i = 0; i < ids.len; i++)
            if (ids.ids[i] >= vocab) {
                failures++;
                fprintf(stderr, "FAIL: iteration %ld: id %u out of range\n", it, ids.ids[i]);
                break;
            }
        if (tok_count(t, (const char *)buf, n) != ids.len) {
            failures++;
            fprintf(stderr, "FAIL: iteration %ld: tok_count disagrees with tok_encode\n", it);
        }
        tok_buf_t dec = {0};
        char err[128];
        size_t wl = tok_utf8_repair(buf, n, want);
        tok_buf_t norm = {0};
        const unsigned char *w = want;
        if (t->nfc) {
            tok_nfc(want, wl, &norm);
            w = (const unsigned char *)norm.data;
            wl = norm.len;
        }
        if (tok_decode(t, ids.ids, ids.len, &dec, err, sizeof err) != 0 || dec.len != wl ||
            (wl && memcmp(dec.data, w, wl) != 0)) {
            failures++;
            fprintf(stderr, "FAIL: iteration %ld: decode(encode(s)) differs from s\n", it);
        }
        tok_buf_free(&norm);
        tok_buf_free(&dec);
        tok_ids_free(&ids);
    }
    /* Empty input, also as a NULL pointer: no ids. */
    tok_ids_t none = {0};
    tok_encode(t, NULL, 0, &none);
    if (none.len != 0 || tok_count(t, "", 0) != 0) {
        failures++;
        fprintf(stderr, "FAIL: empty input gave ids\n");
    }
    tok_ids_free(&none);
    /* One very long piece (a 300 kB word): BPE must stay fast, not quadratic. */
    size_t big = 300000;
    char *word = malloc(big);
    for (size_t i = 0; i < big; i++)
        word[i] = (char)('a' + next_rand() % 26);
    clock_t t1 = clock();
    size_t cnt = tok_count(t, word, big);
    double secs = (double)(clock() - t1) / CLOCKS_PER_SEC;
    if (cnt == 0 || cnt > big) {
        failures++;
        fprintf(stderr, "FAIL: long word gave %zu tokens\n", cnt);
    }
    free(word);
    tok_free(t);
    printf("%ld inputs, %zu bytes in %.2fs; 300 kB word: %zu tokens in %.3fs; %d failures\n", iters,
           total, (double)(clock() - t0) / CLOCKS_PER_SEC, cnt, secs, failures);
    return failures ? 1 : 0;
}
