/* NFC against the Unicode conformance file NormalizationTest.txt (shipped
 * bz2-compressed by Debian's unicode-data): for every line, c2 == NFC(c1) ==
 * NFC(c2) == NFC(c3) and c4 == NFC(c4) == NFC(c5).
 * Usage: test_tok_nfc NormalizationTest.txt.bz2 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "tok_utf8.h"

/* Parses one field ("1E0A 0323") into UTF-8; returns its length. */
static size_t field(const char *s, char *out)
{
    size_t n = 0;
    char *end;
    for (;;) {
        unsigned long cp = strtoul(s, &end, 16);
        if (end == s)
            break;
        n += tok_utf8_put((unsigned char *)out + n, cp);
        s = end;
    }
    return n;
}

/* NFC as the tokenizer applies it (the trivial check first). */
static void nfc(const char *s, size_t n, tok_buf_t *out)
{
    out->len = 0;
    if (tok_nfc_is_trivial((const unsigned char *)s, n))
        tok_buf_append(out, s, n);
    else
        tok_nfc((const unsigned char *)s, n, out);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s NormalizationTest.txt.bz2\n", argv[0]);
        return 2;
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "bzcat '%s'", argv[1]);
    FILE *f = popen(cmd, "r");
    if (!f) {
        fprintf(stderr, "FAIL: cannot run %s\n", cmd);
        return 1;
    }
    char line[4096], c[5][512];
    size_t cl[5];
    long lines = 0, failures = 0;
    tok_buf_t out = {0};
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '@' || line[0] == '\n')
            continue;
        char *p = line;
        for (int i = 0; i < 5; i++) {
            char *semi = strchr(p, ';');
            if (!semi)
                break;
            *semi = '\0';
            cl[i] = field(p, c[i]);
            p = semi + 1;
        }
        lines++;
        const int from[5] = {0, 1, 2, 3, 4}, want[5] = {1, 1, 1, 3, 3};
        for (int i = 0; i < 5; i++) {
            nfc(c[from[i]], cl[from[i]], &out);
            if (out.len != cl[want[i]] || memcmp(out.data, c[want[i]], out.len) != 0) {
                if (failures++ < 10)
                    fprintf(stderr, "FAIL: line %ld: NFC(c%d) != c%d\n", lines, from[i] + 1,
                            want[i] + 1);
            }
        }
    }
    int rc = pclose(f);
    tok_buf_free(&out);
    if (rc != 0 || lines < 10000) {
        fprintf(stderr, "FAIL: %s: read %ld lines (bzcat status %d)\n", argv[1], lines, rc);
        return 1;
    }
    printf("NormalizationTest: %ld lines, %ld failures\n", lines, failures);
    return failures ? 1 : 0;
}
