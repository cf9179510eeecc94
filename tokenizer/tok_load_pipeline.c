/* tok_load_pipeline: reads the text-processing parts of tokenizer.json —
 * normalizer, pre-tokenizer sequence, post-processor, decoder — into the
 * tokenizer, refusing with the field named whatever would not be reproduced
 * exactly. The model itself is read by tok_load.c. */
#include "tok_internal.h"

#include <stdarg.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int tok_json_is_null(const cJSON *j)
{
    return !j || cJSON_IsNull(j);
}

const char *tok_json_type(const cJSON *obj)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* True when obj[key] is absent, null or false. */
int tok_json_off(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return tok_json_is_null(v) || cJSON_IsFalse(v);
}

/* Accepts null (no normalization), NFC, or a Sequence of those (nested
 * Sequences included); sets t->nfc when NFC is applied. */
int tok_load_normalizer(tok_tokenizer_t *t, const cJSON *n, const char *where, char *err,
                        size_t errlen)
{
    if (tok_json_is_null(n))
        return 0;
    const char *type = tok_json_type(n);
    if (type && strcmp(type, "NFC") == 0) {
        t->nfc = true;
        return 0;
    }
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list)) {
            set_err(err, errlen, "%s.normalizers: expected an array", where);
            return -1;
        }
        int i = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, list)
        {
            char sub[128];
            snprintf(sub, sizeof sub, "%s.normalizers[%d]", where, i++);
            if (tok_load_normalizer(t, m, sub, err, errlen) != 0)
                return -1;
        }
        return 0;
    }
    set_err(err, errlen, "%s: normalizer type '%s' is not supported (only NFC)", where,
            type ? type : "?");
    return -1;
}

/* The ByteLevel pre-tokenizer: its own GPT-2 split when use_regex is true
 * or absent (HF's default), then the byte mapping (done by tok_bpe). */
static int load_bytelevel(tok_tokenizer_t *t, const cJSON *p, const char *where, char *err,
                          size_t errlen)
{
    if (!tok_json_off(p, "add_prefix_space")) {
        set_err(err, errlen, "%s.add_prefix_space: true is not supported", where);
        return -1;
    }
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
    if (!re || cJSON_IsTrue(re)) {
        if (t->nsplits == TOK_MAX_SPLITS) {
            set_err(err, errlen, "%s: more than %d splits", where, TOK_MAX_SPLITS);
            return -1;
        }
        t->splits[t->nsplits++] = TOK_SPLIT_GPT2;
    } else if (!cJSON_IsFalse(re)) {
        set_err(err, errlen, "%s.use_regex: expected true or false", where);
        return -1;
    }
    return 0;
}

/* Reads pre_tokenizer: Sequence[Split(Regex, Isolated)..., ByteLevel]. */
int tok_load_pretok(tok_tokenizer_t *t, const cJSON *p, char *err, size_t errlen)
{
    const char *type = tok_json_is_null(p) ? NULL : tok_json_type(p);
    if (!type) {
        set_err(err, errlen, "pre_tokenizer: missing (a ByteLevel pre-tokenizer is required)");
        return -1;
    }
    if (strcmp(type, "ByteLevel") == 0)
        return load_bytelevel(t, p, "pre_tokenizer", err, errlen);
    if (strcmp(type, "Sequence") != 0) {
        set_err(err, errlen, "pre_tokenizer: type '%s' is not supported", type);
        return -1;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (!cJSON_IsArray(list)) {
        set_err(err, errlen, "pre_tokenizer.pretokenizers: expected an array");
        return -1;
    }
    int n = cJSON_GetArraySize(list), i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, list)
    {
        char where[64];
        snprintf(where, sizeof where, "pre_tokenizer.pretokenizers[%d]", i);
        const char *st = tok_json_type(s);
        if (st && strcmp(st, "ByteLevel") == 0) {
            if (i != n - 1) {
                set_err(err, errlen, "%s: ByteLevel must be the last pre-tokenizer", where);
                return -1;
            }
            return load_bytelevel(t, s, where, err, errlen);
        }
        if (!st || strcmp(st, "Split") != 0) {
            set_err(err, errlen, "%s: type '%s' is not supported", where, st ? st : "?");
            return -1;
        }
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(s, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        if (!cJSON_IsString(re)) {
            set_err(err, errlen, "%s.pattern: only {\"Regex\": ...} patterns are supported", where);
            return -1;
        }
        int kind = tok_split_kind_of(re->valuestring);
        if (kind < 0) {
            set_err(err, errlen,
                    "%s.pattern.Regex: no native implementation of the pattern \"%.80s\"", where,
                    re->valuestring);
            return -1;
        }
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(s, "behavior");
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0) {
            set_err(err, errlen, "%s.behavior: only \"Isolated\" is supported", where);
            return -1;
        }
        if (!tok_json_off(s, "invert")) {
            set_err(err, errlen, "%s.invert: true is not supported", where);
            return -1;
        }
        if (t->nsplits == TOK_MAX_SPLITS) {
            set_err(err, errlen, "%s: more than %d splits", where, TOK_MAX_SPLITS);
            return -1;
        }
        t->splits[t->nsplits++] = (tok_split_kind_t)kind;
        i++;
    }
    set_err(err, errlen, "pre_tokenizer.pretokenizers: no ByteLevel step (byte-level BPE only)");
    return -1;
}

/* Post-processors only add special tokens around an encoding (HF
 * add_special_tokens=True); tok_encode never does, so the kinds that do
 * nothing else are accepted and not applied. */
int tok_check_post_processor(const cJSON *j, const char *field, char *err, size_t errlen)
{
    if (tok_json_is_null(j))
        return 0;
    const char *type = tok_json_type(j);
    if (type && (strcmp(type, "ByteLevel") == 0 || strcmp(type, "TemplateProcessing") == 0 ||
                 strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0))
        return 0;
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "processors");
        if (!cJSON_IsArray(list)) {
            set_err(err, errlen, "%s.processors: expected an array", field);
            return -1;
        }
        int i = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, list)
        {
            char sub[96];
            snprintf(sub, sizeof sub, "%s.processors[%d]", field, i++);
            if (tok_check_post_processor(m, sub, err, errlen) != 0)
                return -1;
        }
        return 0;
    }
    set_err(err, errlen, "%s: type '%s' is not supported", field, type ? type : "?");
    return -1;
}

/* The decoder: ByteLevel (null is accepted here; tok_load_json requires one). */
int tok_check_decoder(const cJSON *j, const char *field, char *err, size_t errlen)
{
    if (tok_json_is_null(j))
        return 0;
    const char *type = tok_json_type(j);
    if (type && strcmp(type, "ByteLevel") == 0)
        return 0;
    set_err(err, errlen, "%s: type '%s' is not supported (only ByteLevel)", field,
            type ? type : "?");
    return -1;
}
