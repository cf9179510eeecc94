/* Helpers shared by the tokenizer tests: file reading and failure reports. */
#ifndef TOK_TEST_UTIL_H
#define TOK_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

/* Reads a whole file into b (NUL-terminated). Exits the test on failure. */
static inline void tt_read_file(const char *path, tok_buf_t *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "FAIL: cannot open %s\n", path);
        exit(1);
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        tok_buf_append(b, chunk, n);
    fclose(f);
    if (!b->data)
        tok_buf_append(b, "", 0);
}

/* Loads a tokenizer or exits with the loader's message. */
static inline tok_tokenizer_t *tt_load(const char *path)
{
    char err[512];
    tok_tokenizer_t *t = tok_load_file(path, err, sizeof err);
    if (!t) {
        fprintf(stderr, "FAIL: %s (run scripts/setup to fetch the tokenizer files)\n", err);
        exit(1);
    }
    return t;
}

/* Loads TOKENIZER_JSON with the parts given in variants[name] (pre_tokenizer
 * and/or normalizer; tests/unit/tokenizer/variants.json) replaced, or exits
 * with a message. */
static inline tok_tokenizer_t *tt_load_variant(const char *path, const char *variants,
                                               const char *name)
{
    tok_buf_t base = {0}, vb = {0};
    tt_read_file(path, &base);
    tt_read_file(variants, &vb);
    cJSON *root = cJSON_Parse(base.data), *vars = cJSON_Parse(vb.data);
    cJSON *parts = cJSON_GetObjectItem(vars, name), *part;
    if (!root || !cJSON_IsObject(parts)) {
        fprintf(stderr, "FAIL: no variant %s in %s\n", name, variants);
        exit(1);
    }
    cJSON_ArrayForEach(part, parts)
    {
        cJSON_ReplaceItemInObject(root, part->string, cJSON_Duplicate(part, 1));
    }
    char *json = cJSON_PrintUnformatted(root), err[512];
    tok_tokenizer_t *t = tok_load_json(json, strlen(json), err, sizeof err);
    if (!t) {
        fprintf(stderr, "FAIL: variant %s: %s\n", name, err);
        exit(1);
    }
    free(json);
    cJSON_Delete(root);
    cJSON_Delete(vars);
    tok_buf_free(&base);
    tok_buf_free(&vb);
    return t;
}

#endif
