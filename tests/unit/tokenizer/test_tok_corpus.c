/* Exact ids against HF tokenizers on the whole corpus: each corpus file is
 * encoded whole and line by line and compared with the reference ids in
 * EXPECTED_DIR (committed, or regenerated live by tokenizer-expected.js).
 * Also checks the round trip decode(encode(s)) == s (U+FFFD for bad bytes).
 * With VARIANTS_JSON and a VARIANT name, the tokenizer's pre_tokenizer is
 * replaced by that variant's (GPT-2, Llama 3, Qwen2 splits over the same
 * vocabulary) and the reference is hashed ids (EXPECTED_DIR/variants/NAME).
 * Usage: test_tok_corpus TOKENIZER_JSON CORPUS_DIR EXPECTED_DIR [VARIANTS_JSON VARIANT] */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "tok_test_util.h"
#include "tok_utf8.h"

static int failures;

/* The id-list hash of tests/node/tokenizer-expected.js (idsHash). */
static uint32_t ids_hash(const tok_ids_t *ids)
{
    uint32_t h = 0;
    for (size_t i = 0; i < ids->len; i++)
        h = h * 31u + ids->ids[i];
    return h * 31u + (uint32_t)ids->len;
}

/* Compares one encoding with the reference; prints the first difference. */
static void check_ids(const tok_tokenizer_t *t, const char *file, const char *what,
                      const char *text, size_t len, const cJSON *expect)
{
    tok_ids_t ids = {0};
    tok_encode(t, text, len, &ids);
    if (cJSON_IsNumber(expect)) { /* variant reference: a hash of the ids */
        if ((uint32_t)expect->valuedouble != ids_hash(&ids)) {
            failures++;
            fprintf(stderr, "FAIL: %s %s: ids differ from the reference\n", file, what);
            if (failures < 5)
                fprintf(stderr, "  text: \"%.*s\"\n", (int)(len < 300 ? len : 300), text);
        }
        tok_ids_free(&ids);
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(expect), i = 0;
    const cJSON *e;
    int bad = n != ids.len;
    cJSON_ArrayForEach(e, expect)
    {
        if (i < ids.len && (uint32_t)e->valuedouble != ids.ids[i]) {
            bad = 1;
            break;
        }
        i++;
    }
    if (bad) {
        failures++;
        fprintf(stderr, "FAIL: %s %s: %zu ids, reference %zu; first difference at %zu\n", file,
                what, ids.len, n, i);
        if (failures < 5) {
            fprintf(stderr, "  text: \"%.*s\"\n  ours:", (int)(len < 300 ? len : 300), text);
            for (size_t k = i > 3 ? i - 3 : 0; k < ids.len && k < i + 8; k++)
                fprintf(stderr, " %u", ids.ids[k]);
            fprintf(stderr, "\n  ref: ");
            for (size_t k = i > 3 ? i - 3 : 0; k < n && k < i + 8; k++)
                fprintf(stderr, " %u", (uint32_t)cJSON_GetArrayItem(expect, (int)k)->valuedouble);
            fprintf(stderr, "\n");
        }
    }
    /* Round trip: the decoded bytes are the input (bad bytes as U+FFFD). */
    tok_buf_t dec = {0};
    char err[256];
    unsigned char *want = malloc(len * 3 + 1);
    size_t wl = tok_utf8_repair((const unsigned char *)text, len, want);
    if (tok_decode(t, ids.ids, ids.len, &dec, err, sizeof err) != 0 || dec.len != wl ||
        memcmp(dec.data, want, wl) != 0) {
        failures++;
        fprintf(stderr, "FAIL: %s %s: decode(encode(s)) != s\n", file, what);
    }
    free(want);
    tok_buf_free(&dec);
    tok_ids_free(&ids);
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON CORPUS_DIR EXPECTED_DIR [VARIANTS VARIANT]\n",
                argv[0]);
        return 2;
    }
    tok_tokenizer_t *t;
    char expdir[2048];
    snprintf(expdir, sizeof expdir, "%s", argv[3]);
    if (argc == 6) {
        t = tt_load_variant(argv[1], argv[4], argv[5]);
        snprintf(expdir, sizeof expdir, "%s/variants/%s", argv[3], argv[5]);
    } else {
        t = tt_load(argv[1]);
    }
    DIR *d = opendir(argv[2]);
    if (!d) {
        fprintf(stderr, "FAIL: cannot open %s\n", argv[2]);
        return 1;
    }
    struct dirent *de;
    int files = 0;
    size_t lines = 0, bytes = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "README.md") == 0)
            continue;
        char path[4096];
        tok_buf_t text = {0}, exp = {0};
        snprintf(path, sizeof path, "%s/%s", argv[2], de->d_name);
        tt_read_file(path, &text);
        snprintf(path, sizeof path, "%s/%s.json", expdir, de->d_name);
        tt_read_file(path, &exp);
        cJSON *j = cJSON_Parse(exp.data);
        const cJSON *whole = cJSON_GetObjectItem(j, "whole"), *el = cJSON_GetObjectItem(j, "lines");
        if (!(cJSON_IsArray(whole) || cJSON_IsNumber(whole)) || !cJSON_IsArray(el)) {
            fprintf(stderr, "FAIL: %s: not a reference file\n", path);
            return 1;
        }
        check_ids(t, de->d_name, "whole", text.data, text.len, whole);
        size_t start = 0;
        int li = 0;
        const cJSON *le = el->child;
        for (size_t i = 0; i <= text.len; i++) {
            if (i < text.len && text.data[i] != '\n')
                continue;
            size_t end = i < text.len ? i + 1 : i;
            if (end == start)
                break;
            char what[64];
            snprintf(what, sizeof what, "line %d", li + 1);
            if (!le) {
                failures++;
                fprintf(stderr, "FAIL: %s: more lines than the reference\n", de->d_name);
                break;
            }
            check_ids(t, de->d_name, what, text.data + start, end - start, le);
            le = le->next;
            li++;
            start = end;
        }
        lines += (size_t)li;
        bytes += text.len;
        files++;
        cJSON_Delete(j);
        tok_buf_free(&text);
        tok_buf_free(&exp);
    }
    closedir(d);
    tok_free(t);
    if (files < 10) {
        fprintf(stderr, "FAIL: only %d corpus files found\n", files);
        return 1;
    }
    printf("%s%s%d files, %zu bytes, %zu lines: %d failures\n", argc == 6 ? argv[5] : "",
           argc == 6 ? ": " : "", files, bytes, lines, failures);
    return failures ? 1 : 0;
}
