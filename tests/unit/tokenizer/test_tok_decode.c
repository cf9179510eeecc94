/* Decoding against HF tokenizers' decode: seeded random id sequences (byte
 * tokens that cut characters, special tokens, anything) must give HF's text,
 * invalid UTF-8 replaced by U+FFFD the same way.
 * Usage: test_tok_decode TOKENIZER_JSON DECODE_EXPECTED_JSON */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "tok_test_util.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON DECODE_EXPECTED_JSON\n", argv[0]);
        return 2;
    }
    tok_tokenizer_t *t = tt_load(argv[1]);
    tok_buf_t eb = {0};
    tt_read_file(argv[2], &eb);
    cJSON *cases = cJSON_Parse(eb.data);
    if (!cJSON_IsArray(cases) || cJSON_GetArraySize(cases) < 100) {
        fprintf(stderr, "FAIL: %s: not a decode reference\n", argv[2]);
        return 1;
    }
    int n = 0, failures = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
    {
        const cJSON *jids = cJSON_GetObjectItem(c, "ids"), *e;
        const cJSON *hex = cJSON_GetObjectItem(c, "hex");
        uint32_t ids[64];
        size_t k = 0;
        cJSON_ArrayForEach(e, jids) if (k < 64) ids[k++] = (uint32_t)e->valuedouble;
        tok_buf_t out = {0};
        char err[128], *mine = NULL;
        int ok = tok_decode_text(t, ids, k, &out, err, sizeof err) == 0 && cJSON_IsString(hex);
        if (ok) {
            mine = malloc(out.len * 2 + 1);
            for (size_t i = 0; i < out.len; i++)
                sprintf(mine + 2 * i, "%02x", (unsigned char)out.data[i]);
            mine[out.len * 2] = '\0';
            ok = strcmp(mine, hex->valuestring) == 0;
        }
        if (!ok) {
            failures++;
            fprintf(stderr, "FAIL: case %d:\n  ours %s\n  HF   %s\n", n, mine ? mine : err,
                    cJSON_IsString(hex) ? hex->valuestring : "?");
        }
        free(mine);
        tok_buf_free(&out);
        n++;
    }
    /* An id outside the vocabulary is an error, not a crash. */
    uint32_t bad[] = {1, 4000000000u};
    tok_buf_t out = {0};
    char err[128] = "";
    if (tok_decode(t, bad, 2, &out, err, sizeof err) == 0 || !strstr(err, "4000000000")) {
        failures++;
        fprintf(stderr, "FAIL: a bad id was decoded\n");
    }
    tok_buf_free(&out);
    cJSON_Delete(cases);
    tok_buf_free(&eb);
    tok_free(t);
    printf("%d decode cases: %d failures\n", n, failures);
    return failures ? 1 : 0;
}
