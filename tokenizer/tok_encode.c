/* tok_encode: text -> ids. The order is HF tokenizers': split out added
 * tokens matched on raw text, normalize the rest (NFC when configured), split
 * out added tokens matched on normalized text, run the pre-tokenizer splits
 * level by level, then BPE each piece. Invalid UTF-8 becomes U+FFFD first. */
#include "tok_internal.h"
#include "tok_utf8.h"

#include <stdlib.h>
#include <string.h>

typedef struct sink {
    tok_ids_t *out;
    size_t *count;
    tok_cache_t *cache; /* borrowed for this call, or NULL */
} sink_t;

static void emit_id(sink_t *k, uint32_t id)
{
    if (k->out)
        tok_ids_push(k->out, id);
    if (k->count)
        (*k->count)++;
}

/* Applies split level lvl to s[0..n): matches and the gaps between them are
 * pieces (behavior Isolated); each piece goes on to the next level. */
static void split_level(const tok_tokenizer_t *t, int lvl, const unsigned char *s, size_t n,
                        sink_t *k)
{
    if (n == 0)
        return;
    if (lvl == t->nsplits) {
        tok_bpe_piece(t, k->cache, s, n, k->out, k->count);
        return;
    }
    size_t pos = 0, ms, me;
    while (pos < n && tok_split_find(t->splits[lvl], s, n, pos, &ms, &me)) {
        split_level(t, lvl + 1, s + pos, ms - pos, k);
        /* A match is matched again by the next level on its own. */
        split_level(t, lvl + 1, s + ms, me - ms, k);
        pos = me;
    }
    split_level(t, lvl + 1, s + pos, n - pos, k);
}

/* Splits s[0..n) on the tokens of trie; text between them goes to next(). */
static void split_added(const tok_tokenizer_t *t, const tok_trie_t *trie, const unsigned char *s,
                        size_t n, sink_t *k,
                        void (*next)(const tok_tokenizer_t *, const unsigned char *, size_t,
                                     sink_t *))
{
    size_t start = 0, i = 0;
    while (i < n) {
        uint32_t id;
        size_t l = trie->first[s[i]] ? tok_trie_match(trie, s + i, n - i, &id) : 0;
        if (!l) {
            i++;
            continue;
        }
        next(t, s + start, i - start, k);
        emit_id(k, id);
        i += l;
        start = i;
    }
    next(t, s + start, n - start, k);
}

static void after_added(const tok_tokenizer_t *t, const unsigned char *s, size_t n, sink_t *k)
{
    split_level(t, 0, s, n, k);
}

/* Text between raw-matched added tokens: normalized, then split on the
 * added tokens that match normalized text. */
static void after_raw(const tok_tokenizer_t *t, const unsigned char *s, size_t n, sink_t *k)
{
    if (!n)
        return;
    if (t->nfc && !tok_nfc_is_trivial(s, n)) {
        tok_buf_t norm = {0};
        tok_nfc(s, n, &norm);
        split_added(t, &t->added_norm, (const unsigned char *)norm.data, norm.len, k, after_added);
        tok_buf_free(&norm);
        return;
    }
    split_added(t, &t->added_norm, s, n, k, after_added);
}

static void encode(const tok_tokenizer_t *t, const char *text, size_t len, sink_t *k)
{
    if (len == 0)
        return; /* text may be NULL then */
    const unsigned char *s = (const unsigned char *)text;
    unsigned char *fixed = NULL;
    if (tok_utf8_valid_prefix(s, len) != len) {
        fixed = tok_xmalloc(len * 3);
        len = tok_utf8_repair(s, len, fixed);
        s = fixed;
    }
    int slot;
    k->cache = tok_bpe_cache_borrow(t, &slot);
    split_added(t, &t->added_raw, s, len, k, after_raw);
    tok_bpe_cache_return(t, slot);
    free(fixed);
}

void tok_encode(const tok_tokenizer_t *t, const char *text, size_t len, tok_ids_t *out)
{
    sink_t k = {out, NULL, NULL};
    encode(t, text, len, &k);
}

size_t tok_count(const tok_tokenizer_t *t, const char *text, size_t len)
{
    size_t n = 0;
    sink_t k = {NULL, &n, NULL};
    encode(t, text, len, &k);
    return n;
}

uint32_t tok_vocab_size(const tok_tokenizer_t *t)
{
    return t->nids;
}

int64_t tok_added_token_id(const tok_tokenizer_t *t, const char *content)
{
    uint32_t id;
    return tok_strmap_get(&t->added, content, strlen(content), &id) ? (int64_t)id : -1;
}

int tok_decode(const tok_tokenizer_t *t, const uint32_t *ids, size_t n, tok_buf_t *out, char *err,
               size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        if (id >= t->nids || t->tok_len[id] == UINT32_MAX) {
            if (err && errlen)
                snprintf(err, errlen, "token id %u at position %zu is not in the vocabulary", id,
                         i);
            return -1;
        }
        tok_buf_append(out, t->arena + t->dec_off[id], t->dec_len[id]);
    }
    if (!out->data)
        tok_buf_append(out, "", 0);
    return 0;
}

int tok_decode_text(const tok_tokenizer_t *t, const uint32_t *ids, size_t n, tok_buf_t *out,
                    char *err, size_t errlen)
{
    size_t start = out->len;
    if (tok_decode(t, ids, n, out, err, errlen) != 0)
        return -1;
    size_t len = out->len - start;
    const unsigned char *s = (const unsigned char *)out->data + start;
    if (tok_utf8_valid_prefix(s, len) == len)
        return 0;
    unsigned char *fixed = tok_xmalloc(len * 3);
    size_t fl = tok_utf8_repair(s, len, fixed);
    out->len = start;
    tok_buf_append(out, fixed, fl);
    free(fixed);
    return 0;
}
