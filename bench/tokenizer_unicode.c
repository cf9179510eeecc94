/* tokenizer_unicode: compares, code point by code point, this tokenizer with
 * the HF hashes from tokenizer_unicode.js and reports the code points that
 * differ as ranges, saying whether the build's UnicodeData.txt has them
 * assigned (if not, the difference is the UCD version, not the code).
 * Usage: tokenizer_unicode TOKENIZER_JSON HASHES UNICODEDATA */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "tok_utf8.h"

static unsigned char assigned[0x110000];

static void read_ucd(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    long first = -1;
    while (f && fgets(line, sizeof line, f)) {
        long cp = strtol(line, NULL, 16);
        if (cp < 0 || cp >= 0x110000)
            continue;
        if (strstr(line, ", First>")) {
            first = cp;
            continue;
        }
        for (long i = strstr(line, ", Last>") && first >= 0 ? first : cp; i <= cp; i++)
            assigned[i] = 1;
        first = -1;
    }
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON HASHES UNICODEDATA\n", argv[0]);
        return 2;
    }
    char err[512];
    tok_tokenizer_t *t = tok_load_file(argv[1], err, sizeof err);
    FILE *h = fopen(argv[2], "r");
    if (!t || !h) {
        fprintf(stderr, "%s\n", t ? argv[2] : err);
        return 1;
    }
    read_ucd(argv[3]);
    unsigned cp, want;
    long checked = 0, differ = 0, differ_assigned = 0, run_start = -1, run_end = -1;
    tok_ids_t ids = {0};
    while (fscanf(h, "%x %u", &cp, &want) == 2) {
        char c[4], line[64];
        size_t cl = tok_utf8_put((unsigned char *)c, cp), n = 0;
        const char *parts[] = {"a", c, "b ", c, "1", c, " ", c, c, "!", c, "\n"};
        for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
            size_t l = parts[i] == c ? cl : strlen(parts[i]);
            memcpy(line + n, parts[i], l);
            n += l;
        }
        ids.len = 0;
        tok_encode(t, line, n, &ids);
        uint32_t got = 0;
        for (size_t i = 0; i < ids.len; i++)
            got = got * 31u + ids.ids[i];
        got = got * 31u + (uint32_t)ids.len;
        checked++;
        if (got != want) {
            differ++;
            differ_assigned += assigned[cp];
            if ((long)cp != run_end + 1) {
                if (run_start >= 0)
                    printf("%04lX-%04lX ", run_start, run_end);
                run_start = cp;
            }
            run_end = cp;
        }
    }
    if (run_start >= 0)
        printf("%04lX-%04lX\n", run_start, run_end);
    printf("unicode %s: %ld code points checked, %ld differ from HF, %ld of those assigned in "
           "%s\n",
           tok_unicode_version(), checked, differ, differ_assigned, argv[3]);
    tok_ids_free(&ids);
    tok_free(t);
    fclose(h);
    return differ_assigned ? 1 : 0;
}
