/* tok_internal: the tokenizer's private structures, shared by the loader,
 * the encoder and the decoder. Not for use outside tokenizer/. */
#ifndef TOK_INTERNAL_H
#define TOK_INTERNAL_H

#include "tok.h"

#include <stdio.h>

/* ---- memory: out of memory aborts (the team's rule) ---- */
void *tok_xmalloc(size_t n);
void *tok_xcalloc(size_t n, size_t size);
void *tok_xrealloc(void *p, size_t n);
void tok_ids_push(tok_ids_t *ids, uint32_t id);

/* ---- u64 -> u64 open-addressing map (keys != UINT64_MAX) ---- */
typedef struct tok_map64 {
    uint64_t *keys, *vals;
    size_t mask, count;
} tok_map64_t;

void tok_map64_init(tok_map64_t *m, size_t expected);
void tok_map64_free(tok_map64_t *m);
/* Inserts or overwrites. */
void tok_map64_put(tok_map64_t *m, uint64_t key, uint64_t val);
/* Returns a pointer to the value of key, or NULL. */
static inline const uint64_t *tok_map64_get(const tok_map64_t *m, uint64_t key)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    size_t i = (size_t)(h >> 20) & m->mask;
    for (;;) {
        uint64_t k = m->keys[i];
        if (k == key)
            return &m->vals[i];
        if (k == UINT64_MAX)
            return NULL;
        i = (i + 1) & m->mask;
    }
}

/* ---- string -> u32 map over borrowed strings ---- */
typedef struct tok_strmap {
    const char **strs;
    uint32_t *lens, *vals;
    size_t mask, count;
} tok_strmap_t;

void tok_strmap_init(tok_strmap_t *m, size_t expected);
void tok_strmap_free(tok_strmap_t *m);
/* Inserts (s must outlive the map) or overwrites. */
void tok_strmap_put(tok_strmap_t *m, const char *s, size_t len, uint32_t val);
/* Returns 1 and sets *val when present, else 0. */
int tok_strmap_get(const tok_strmap_t *m, const char *s, size_t len, uint32_t *val);

/* ---- added-token matcher: a byte trie, leftmost-longest ---- */
typedef struct tok_trie {
    tok_map64_t edges; /* (node << 8 | byte) -> child node */
    int64_t *term;     /* node -> token id, or -1 */
    size_t nodes, cap;
    uint8_t first[256]; /* 1 when some token starts with this byte */
} tok_trie_t;

void tok_trie_init(tok_trie_t *t);
void tok_trie_free(tok_trie_t *t);
void tok_trie_add(tok_trie_t *t, const char *s, size_t len, uint32_t id);
/* Length of the longest token starting at s[0..n) (its id in *id), or 0. */
size_t tok_trie_match(const tok_trie_t *t, const unsigned char *s, size_t n, uint32_t *id);

/* ---- NFC normalization (tok_nfc.c) ---- */

/* True when s[0..n) (valid UTF-8) is certainly unchanged by NFC. */
bool tok_nfc_is_trivial(const unsigned char *s, size_t n);
/* Appends the NFC form of s[0..n) (valid UTF-8) to out. */
void tok_nfc(const unsigned char *s, size_t n, tok_buf_t *out);

/* ---- pre-tokenizer splits (native versions of known regexes) ---- */
typedef enum {
    TOK_SPLIT_DIGITS3,   /* \p{N}{1,3} */
    TOK_SPLIT_CJK,       /* [一-龥぀-ゟ゠-ヿ]+ */
    TOK_SPLIT_DS3_WORDS, /* DeepSeek V3's word/punctuation/space pattern */
    TOK_SPLIT_GPT2,      /* GPT-2's (ByteLevel use_regex) */
    TOK_SPLIT_LLAMA3,    /* Llama 3's: contractions, words, \p{N}{1,3}, ... */
    TOK_SPLIT_QWEN2      /* Qwen2's: as Llama 3 with single digits */
} tok_split_kind_t;

/* Maps a Split regex source to its native kind; returns -1 when unknown. */
int tok_split_kind_of(const char *regex);

/* Finds the first match of kind in s[pos..n) (valid UTF-8, the match is
 * relative to the whole piece s[0..n)). Returns 1 and sets [*ms, *me), else 0. */
int tok_split_find(tok_split_kind_t kind, const unsigned char *s, size_t n, size_t pos, size_t *ms,
                   size_t *me);

/* ---- loading helpers (tok_load_pipeline.c) ---- */

/* True when j is absent or JSON null. */
int tok_json_is_null(const cJSON *j);
/* obj["type"] when it is a string, else NULL. */
const char *tok_json_type(const cJSON *obj);
/* True when obj[key] is absent, null or false. */
int tok_json_off(const cJSON *obj, const char *key);

struct tok_tokenizer;
/* Each reads one part of tokenizer.json into t (or checks it); 0, or -1 with
 * err naming the field that is malformed or not supported. */
int tok_load_normalizer(struct tok_tokenizer *t, const cJSON *n, const char *where, char *err,
                        size_t errlen);
int tok_load_pretok(struct tok_tokenizer *t, const cJSON *p, char *err, size_t errlen);
int tok_check_post_processor(const cJSON *j, const char *field, char *err, size_t errlen);
int tok_check_decoder(const cJSON *j, const char *field, char *err, size_t errlen);

/* ---- the tokenizer ---- */
#define TOK_MAX_SPLITS 8

struct tok_tokenizer {
    uint32_t nids;     /* largest id + 1 */
    char *arena;       /* token texts and decoded bytes */
    uint32_t *tok_off; /* id -> offset of its text (UTF-8 as in the JSON) */
    uint32_t *tok_len; /* id -> length; UINT32_MAX when the id is unused */
    uint32_t *dec_off; /* id -> offset of its decoded bytes */
    uint32_t *dec_len;
    bool *is_special;     /* id -> added token marked special */
    tok_strmap_t vocab;   /* model token text -> id */
    tok_map64_t merges;   /* (a << 32 | b) -> (rank << 32 | new id) */
    int64_t byte_id[256]; /* raw byte -> id of its byte-level symbol, or -1 */
    bool ignore_merges;
    bool nfc;              /* normalizer: NFC */
    tok_trie_t added_raw;  /* added tokens with normalized = false */
    tok_trie_t added_norm; /* added tokens with normalized = true */
    tok_strmap_t added;    /* added token text -> id */
    int nsplits;
    tok_split_kind_t splits[TOK_MAX_SPLITS];
    /* Caches of short pieces' ids (tok_bpe.c), lent to one encode call at a
     * time: the only state that changes after loading. */
    struct tok_cache_pool *pool;
};

#define TOK_CACHE_POOL 16
typedef struct tok_cache tok_cache_t;

/* Creates / frees t's cache pool (tok_free: no encode may be running). */
void tok_bpe_cache_init(tok_tokenizer_t *t);
void tok_bpe_cache_fini(tok_tokenizer_t *t);

/* Borrows a free cache for one encode call (NULL when all are in use; the
 * call then runs uncached); give it back with tok_bpe_cache_return(slot). */
tok_cache_t *tok_bpe_cache_borrow(const tok_tokenizer_t *t, int *slot);
void tok_bpe_cache_return(const tok_tokenizer_t *t, int slot);

/* GPT-2 byte-level alphabet: byte -> code point, and back (-1: not a symbol). */
uint32_t tok_bytelevel_char(unsigned char b);
int tok_bytelevel_byte(uint32_t cp);

/* Runs BPE over the raw bytes p[0..n) of one pre-tokenized piece: appends
 * the ids to out (when not NULL) and adds their number to *count (when not
 * NULL). cache (may be NULL) must be borrowed by the caller. */
void tok_bpe_piece(const tok_tokenizer_t *t, tok_cache_t *cache, const unsigned char *p, size_t n,
                   tok_ids_t *out, size_t *count);

#endif
