/* tok_load: reads a HuggingFace tokenizer.json (byte-level BPE family) into
 * the immutable tables of tok_tokenizer_t: the model (vocabulary, merges,
 * added tokens, decoded bytes of every id) here, the normalizer/pre-tokenizer/
 * post-processor/decoder in tok_load_pipeline.c. Anything the encoder would
 * not reproduce exactly is refused with an error naming the JSON field. */
#include "tok_internal.h"
#include "tok_utf8.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tg_log.h"

#define TOK_MAX_FILE (512u << 20)
#define TOK_MAX_IDS (1u << 24)

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

/* Arena builder: one growable block, strings referenced by offset. */
typedef struct arena {
    char *data;
    size_t len, cap;
} arena_t;

static uint32_t arena_put(arena_t *a, const void *p, size_t n)
{
    if (a->len + n > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1 << 20;
        while (a->cap < a->len + n)
            a->cap *= 2;
        a->data = tok_xrealloc(a->data, a->cap);
    }
    memcpy(a->data + a->len, p, n);
    uint32_t off = (uint32_t)a->len;
    a->len += n;
    return off;
}

/* Reads a JSON number that must be an integer id in [0, 2^31). */
static int get_id(const cJSON *v, uint32_t *id)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= 2147483648.0 ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    *id = (uint32_t)v->valuedouble;
    return 0;
}

/* Decoded bytes of a token text: the byte-level alphabet mapped back, or the
 * text itself when any char is outside the alphabet (HF ByteLevel decoder). */
static void decode_token(const char *s, size_t n, arena_t *a, uint32_t *off, uint32_t *len)
{
    unsigned char small[256];
    unsigned char *b = n <= sizeof small ? small : tok_xmalloc(n);
    size_t bl = 0, i = 0;
    int ok = tok_utf8_valid_prefix((const unsigned char *)s, n) == n;
    while (ok && i < n) {
        size_t l;
        uint32_t cp = tok_utf8_next((const unsigned char *)s + i, n - i, &l);
        int byte = tok_bytelevel_byte(cp);
        if (byte < 0)
            ok = 0;
        else
            b[bl++] = (unsigned char)byte;
        i += l;
    }
    if (ok) {
        *off = arena_put(a, b, bl);
        *len = (uint32_t)bl;
    } else {
        *off = arena_put(a, s, n);
        *len = (uint32_t)n;
    }
    if (b != small)
        free(b);
}

/* Splits one merge entry into its two token texts. */
static int merge_parts(const cJSON *m, const char **a, size_t *al, const char **b, size_t *bl)
{
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
            return -1;
        *a = s;
        *al = (size_t)(sp - s);
        *b = sp + 1;
        *bl = strlen(sp + 1);
        return 0;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsString(x) || !cJSON_IsString(y))
            return -1;
        *a = x->valuestring;
        *al = strlen(x->valuestring);
        *b = y->valuestring;
        *bl = strlen(y->valuestring);
        return 0;
    }
    return -1;
}

static int load_model(tok_tokenizer_t *t, const cJSON *model, const cJSON *added, arena_t *a,
                      char *err, size_t errlen)
{
    const char *type = tok_json_type(model);
    if (!type || strcmp(type, "BPE") != 0) {
        set_err(err, errlen, "model.type: '%s' is not supported (only BPE)", type ? type : "?");
        return -1;
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (!tok_json_is_null(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0)) {
        set_err(err, errlen, "model.dropout: BPE dropout is not supported");
        return -1;
    }
    static const char *const must_be_null[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, must_be_null[i]);
        if (!tok_json_is_null(v) && !(cJSON_IsString(v) && v->valuestring[0] == '\0')) {
            set_err(err, errlen, "model.%s: not supported", must_be_null[i]);
            return -1;
        }
    }
    if (!tok_json_off(model, "byte_fallback")) {
        set_err(err, errlen, "model.byte_fallback: true is not supported");
        return -1;
    }
    t->ignore_merges = !tok_json_off(model, "ignore_merges");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) {
        set_err(err, errlen, "model.vocab: missing or not an object");
        return -1;
    }
    if (!cJSON_IsArray(merges)) {
        set_err(err, errlen, "model.merges: missing or not an array");
        return -1;
    }
    /* Ids: the vocabulary and the added tokens share one id space. */
    uint32_t maxid = 0, id;
    size_t nvocab = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab)
    {
        if (get_id(e, &id) != 0) {
            set_err(err, errlen, "model.vocab[\"%.60s\"]: id is not an integer in [0, 2^31)",
                    e->string);
            return -1;
        }
        maxid = id > maxid ? id : maxid;
        nvocab++;
    }
    int i = 0;
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (get_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) != 0 ||
            !cJSON_IsString(content)) {
            set_err(err, errlen, "added_tokens[%d]: needs an integer id and a string content", i);
            return -1;
        }
        static const char *const flags[] = {"single_word", "lstrip", "rstrip"};
        for (size_t f = 0; f < 3; f++)
            if (!tok_json_off(e, flags[f])) {
                set_err(err, errlen, "added_tokens[%d].%s: true is not supported", i, flags[f]);
                return -1;
            }
        maxid = id > maxid ? id : maxid;
        i++;
    }
    if (nvocab == 0) {
        set_err(err, errlen, "model.vocab: empty");
        return -1;
    }
    /* Ids index flat tables: a stray huge id must not cost gigabytes. */
    if (maxid >= TOK_MAX_IDS) {
        set_err(err, errlen, "token id %u is too large (ids must be below %u)", maxid, TOK_MAX_IDS);
        return -1;
    }
    t->nids = maxid + 1;
    t->tok_off = tok_xcalloc(t->nids, sizeof *t->tok_off);
    t->tok_len = tok_xmalloc(t->nids * sizeof *t->tok_len);
    memset(t->tok_len, 0xff, t->nids * sizeof *t->tok_len);
    t->is_special = tok_xcalloc(t->nids, sizeof *t->is_special);
    tok_strmap_init(&t->vocab, nvocab);
    /* Token texts go to the arena first; the maps point into it afterwards,
     * once it no longer moves. */
    cJSON_ArrayForEach(e, vocab)
    {
        get_id(e, &id);
        size_t n = strlen(e->string);
        t->tok_off[id] = arena_put(a, e->string, n);
        t->tok_len[id] = (uint32_t)n;
    }
    uint32_t *added_off = tok_xcalloc((size_t)i + 1, sizeof *added_off);
    i = 0;
    cJSON_ArrayForEach(e, added)
    {
        const char *c = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        added_off[i++] = arena_put(a, c, strlen(c));
    }
    /* Decoded bytes of every id (added tokens override the model's text). */
    i = 0;
    cJSON_ArrayForEach(e, added)
    {
        get_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id);
        const char *c = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        t->tok_off[id] = added_off[i++];
        t->tok_len[id] = (uint32_t)strlen(c);
        t->is_special[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"));
    }
    t->dec_off = tok_xcalloc(t->nids, sizeof *t->dec_off);
    t->dec_len = tok_xcalloc(t->nids, sizeof *t->dec_len);
    for (uint32_t k = 0; k < t->nids; k++)
        if (t->tok_len[k] != UINT32_MAX) {
            /* arena may move while we append: copy the text out first */
            size_t n = t->tok_len[k];
            char *tmp = tok_xmalloc(n + 1);
            memcpy(tmp, a->data + t->tok_off[k], n);
            decode_token(tmp, n, a, &t->dec_off[k], &t->dec_len[k]);
            free(tmp);
        }
    /* Now the arena is final: build the maps over it. The model texts were
     * stored first, in JSON order, from offset 0. */
    t->arena = a->data;
    {
        size_t off = 0;
        cJSON_ArrayForEach(e, vocab)
        {
            get_id(e, &id);
            size_t n = strlen(e->string);
            tok_strmap_put(&t->vocab, t->arena + off, n, id);
            off += n;
        }
    }
    tok_strmap_init(&t->added, (size_t)i + 1);
    tok_trie_init(&t->added_raw);
    tok_trie_init(&t->added_norm);
    i = 0;
    cJSON_ArrayForEach(e, added)
    {
        get_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id);
        size_t n = strlen(cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring);
        const char *c = t->arena + added_off[i++];
        if (n == 0)
            continue;
        tok_strmap_put(&t->added, c, n, id);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "normalized")))
            tok_trie_add(&t->added_norm, c, n, id);
        else
            tok_trie_add(&t->added_raw, c, n, id);
    }
    free(added_off);
    /* Initial symbols: one per byte. */
    for (int b = 0; b < 256; b++) {
        uint32_t c = tok_bytelevel_char((unsigned char)b);
        char s[2];
        size_t n = 0;
        if (c < 0x80) {
            s[n++] = (char)c;
        } else {
            s[n++] = (char)(0xc0 | (c >> 6));
            s[n++] = (char)(0x80 | (c & 0x3f));
        }
        t->byte_id[b] = tok_strmap_get(&t->vocab, s, n, &id) ? (int64_t)id : -1;
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (!tok_json_is_null(unk))
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] < 0) {
                set_err(err, errlen,
                        "model.unk_token: unknown-token handling is not supported "
                        "and the vocabulary lacks some byte symbols");
                return -1;
            }
    /* Merges: rank = position in the list (a later duplicate wins, as in HF). */
    tok_map64_init(&t->merges, (size_t)cJSON_GetArraySize(merges));
    uint32_t rank = 0;
    char small[512];
    cJSON_ArrayForEach(e, merges)
    {
        const char *x, *y;
        size_t xl, yl;
        if (merge_parts(e, &x, &xl, &y, &yl) != 0) {
            set_err(err, errlen, "model.merges[%u]: expected \"a b\" or [\"a\", \"b\"]", rank);
            return -1;
        }
        uint32_t xi, yi, zi;
        char *cat = xl + yl <= sizeof small ? small : tok_xmalloc(xl + yl);
        memcpy(cat, x, xl);
        memcpy(cat + xl, y, yl);
        int ok = tok_strmap_get(&t->vocab, x, xl, &xi) && tok_strmap_get(&t->vocab, y, yl, &yi) &&
                 tok_strmap_get(&t->vocab, cat, xl + yl, &zi);
        if (cat != small)
            free(cat);
        if (!ok) {
            set_err(err, errlen,
                    "model.merges[%u]: \"%.*s\" + \"%.*s\" or their join is not "
                    "in model.vocab",
                    rank, (int)(xl < 40 ? xl : 40), x, (int)(yl < 40 ? yl : 40), y);
            return -1;
        }
        tok_map64_put(&t->merges, (uint64_t)xi << 32 | yi, (uint64_t)rank << 32 | zi);
        rank++;
    }
    return 0;
}

tok_tokenizer_t *tok_load_json(const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
        set_err(err, errlen, "not valid JSON (near byte %zu)", off);
        return NULL;
    }
    tok_tokenizer_t *t = tok_xcalloc(1, sizeof *t);
    arena_t a = {0};
    if (!cJSON_IsObject(root)) {
        set_err(err, errlen, "top level: expected an object");
        goto err;
    }
    static const char *const unsupported_if_set[] = {"truncation", "padding"};
    for (size_t i = 0; i < 2; i++)
        if (!tok_json_is_null(cJSON_GetObjectItemCaseSensitive(root, unsupported_if_set[i]))) {
            set_err(err, errlen, "%s: must be null (not supported)", unsupported_if_set[i]);
            goto err;
        }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!tok_json_is_null(added) && !cJSON_IsArray(added)) {
        set_err(err, errlen, "added_tokens: expected an array");
        goto err;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        set_err(err, errlen, "model: missing or not an object");
        goto err;
    }
    if (tok_load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer",
                            err, errlen) != 0 ||
        tok_load_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err, errlen) !=
            0 ||
        tok_check_post_processor(cJSON_GetObjectItemCaseSensitive(root, "post_processor"),
                                 "post_processor", err, errlen) != 0)
        goto err;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (tok_json_is_null(dec)) {
        set_err(err, errlen, "decoder: missing (ByteLevel required)");
        goto err;
    }
    if (tok_check_decoder(dec, "decoder", err, errlen) != 0 ||
        load_model(t, model, added, &a, err, errlen) != 0)
        goto err;
    cJSON_Delete(root);
    tok_bpe_cache_init(t);
    return t;
err:
    cJSON_Delete(root);
    if (!t->arena)
        free(a.data);
    tok_free(t);
    return NULL;
}

tok_tokenizer_t *tok_load_file(const char *path, char *err, size_t errlen)
{
    char inner[512];
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        tg_error("tokenizer: %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            if (cap > TOK_MAX_FILE + (1 << 20)) {
                fclose(f);
                free(buf);
                set_err(err, errlen, "%s: larger than %u MiB", path, TOK_MAX_FILE >> 20);
                tg_error("tokenizer: %s: file too large", path);
                return NULL;
            }
            buf = tok_xrealloc(buf, cap);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        set_err(err, errlen, "%s: read error", path);
        tg_error("tokenizer: %s: read error", path);
        return NULL;
    }
    tok_tokenizer_t *t = tok_load_json(buf, len, inner, sizeof inner);
    free(buf);
    if (!t) {
        set_err(err, errlen, "%s: %s", path, inner);
        tg_error("tokenizer: %s: %s", path, inner);
    }
    return t;
}

void tok_free(tok_tokenizer_t *t)
{
    if (!t)
        return;
    tok_bpe_cache_fini(t);
    free(t->arena);
    free(t->tok_off);
    free(t->tok_len);
    free(t->dec_off);
    free(t->dec_len);
    free(t->is_special);
    if (t->vocab.strs)
        tok_strmap_free(&t->vocab);
    if (t->added.strs)
        tok_strmap_free(&t->added);
    if (t->merges.keys)
        tok_map64_free(&t->merges);
    if (t->added_raw.term)
        tok_trie_free(&t->added_raw);
    if (t->added_norm.term)
        tok_trie_free(&t->added_norm);
    free(t);
}
