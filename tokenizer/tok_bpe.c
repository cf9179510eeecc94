/* tok_bpe: byte-pair merging of one pre-tokenized piece. Follows HF
 * tokenizers' Word::merge_all step for step (a min-heap of candidate merges
 * ordered by rank then position, stale entries re-checked on pop), so even
 * unusual merge tables give the same ids. */
#include "tok_internal.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct sym {
    uint32_t id;
    int32_t prev, next; /* -1 at the ends */
    uint32_t len;       /* 0: merged into its left neighbour */
} sym_t;

typedef struct cand {
    uint32_t rank, pos, new_id;
} cand_t;

static inline int cand_less(const cand_t *a, const cand_t *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(cand_t *h, size_t *n, cand_t c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static cand_t heap_pop(cand_t *h, size_t *n)
{
    cand_t top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand_t *mv = &last;
        if (l < *n && cand_less(&h[l], mv)) {
            m = l;
            mv = &h[l];
        }
        if (r < *n && cand_less(&h[r], mv))
            m = r;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n)
        h[i] = last;
    return top;
}

static inline const uint64_t *merge_of(const tok_tokenizer_t *t, uint32_t a, uint32_t b)
{
    return tok_map64_get(&t->merges, (uint64_t)a << 32 | b);
}

static inline void emit(tok_ids_t *out, size_t *count, uint32_t id)
{
    if (out)
        tok_ids_push(out, id);
    if (count)
        (*count)++;
}

/* Merges one piece without the cache. */
static void bpe_uncached(const tok_tokenizer_t *t, const unsigned char *p, size_t n, tok_ids_t *out,
                         size_t *count)
{
    if (t->ignore_merges) {
        /* The whole piece as one vocabulary entry wins (HF ignore_merges). */
        char small[256] = {0};
        char *key = n * 2 <= sizeof small ? small : tok_xmalloc(n * 2);
        size_t kl = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t c = tok_bytelevel_char(p[i]);
            if (c < 0x80) {
                key[kl++] = (char)c;
            } else {
                key[kl++] = (char)(0xc0 | (c >> 6));
                key[kl++] = (char)(0x80 | (c & 0x3f));
            }
        }
        uint32_t id;
        int hit = tok_strmap_get(&t->vocab, key, kl, &id);
        if (key != small)
            free(key);
        if (hit) {
            emit(out, count, id);
            return;
        }
    }
    sym_t small_syms[64];
    cand_t small_heap[128];
    sym_t *s = n <= 64 ? small_syms : tok_xmalloc(n * sizeof *s);
    /* Each merge pushes at most two candidates: n initial + 2n later. */
    size_t hcap = 3 * n + 1;
    cand_t *heap = hcap <= 128 ? small_heap : tok_xmalloc(hcap * sizeof *heap);
    size_t ns = 0, nh = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t id = t->byte_id[p[i]];
        if (id < 0)
            continue; /* no symbol and no unk token: HF drops the byte */
        s[ns].id = (uint32_t)id;
        s[ns].prev = (int32_t)ns - 1;
        s[ns].next = (int32_t)ns + 1;
        s[ns].len = 1;
        ns++;
    }
    if (ns)
        s[ns - 1].next = -1;
    for (size_t i = 0; i + 1 < ns; i++) {
        const uint64_t *m = merge_of(t, s[i].id, s[i + 1].id);
        if (m)
            heap_push(heap, &nh, (cand_t){(uint32_t)(*m >> 32), (uint32_t)i, (uint32_t)*m});
    }
    while (nh) {
        cand_t top = heap_pop(heap, &nh);
        sym_t *cur = &s[top.pos];
        if (cur->len == 0 || cur->next < 0)
            continue;
        sym_t *right = &s[cur->next];
        const uint64_t *m = merge_of(t, cur->id, right->id);
        if (!m || (uint32_t)*m != top.new_id)
            continue; /* stale entry */
        cur->id = top.new_id;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (cur->next >= 0)
            s[cur->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            m = merge_of(t, s[cur->prev].id, cur->id);
            if (m)
                heap_push(heap, &nh,
                          (cand_t){(uint32_t)(*m >> 32), (uint32_t)cur->prev, (uint32_t)*m});
        }
        if (cur->next >= 0) {
            m = merge_of(t, cur->id, s[cur->next].id);
            if (m)
                heap_push(heap, &nh, (cand_t){(uint32_t)(*m >> 32), top.pos, (uint32_t)*m});
        }
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = s[i].next)
        emit(out, count, s[i].id);
    if (s != small_syms)
        free(s);
    if (heap != small_heap)
        free(heap);
}

/* ---- a pool of piece caches ---- */

/* Each encode call borrows one cache from the tokenizer's pool (a try-lock per
 * cache), so threads never share one and the tokenizer stays usable from any
 * number of threads; all caches are freed with the tokenizer. */

#define CACHE_SLOTS 4096 /* direct-mapped; about 300 kB per cache */
#define CACHE_KEY 24     /* longest piece cached, in bytes */
#define CACHE_IDS 8      /* most ids cached per piece */

typedef struct cache_slot {
    uint64_t hash;
    uint8_t len; /* 0: empty */
    uint8_t nids;
    unsigned char key[CACHE_KEY];
    uint32_t ids[CACHE_IDS];
} cache_slot_t;

struct tok_cache {
    cache_slot_t slots[CACHE_SLOTS];
};

struct tok_cache_pool {
    atomic_int busy[TOK_CACHE_POOL];
    tok_cache_t *caches[TOK_CACHE_POOL]; /* allocated by the first borrower */
};

void tok_bpe_cache_init(tok_tokenizer_t *t)
{
    t->pool = tok_xcalloc(1, sizeof *t->pool);
}

void tok_bpe_cache_fini(tok_tokenizer_t *t)
{
    if (!t->pool)
        return;
    for (int i = 0; i < TOK_CACHE_POOL; i++)
        free(t->pool->caches[i]);
    free(t->pool);
    t->pool = NULL;
}

tok_cache_t *tok_bpe_cache_borrow(const tok_tokenizer_t *t, int *slot)
{
    *slot = -1;
    if (!t->pool)
        return NULL;
    /* Start where this thread's stack address points, to spread threads. */
    int here = 0;
    unsigned start = (unsigned)(((uintptr_t)&here >> 12) % TOK_CACHE_POOL);
    for (unsigned i = 0; i < TOK_CACHE_POOL; i++) {
        unsigned k = (start + i) % TOK_CACHE_POOL;
        if (atomic_load_explicit(&t->pool->busy[k], memory_order_relaxed) ||
            atomic_exchange_explicit(&t->pool->busy[k], 1, memory_order_acquire))
            continue;
        if (!t->pool->caches[k])
            t->pool->caches[k] = tok_xcalloc(1, sizeof(tok_cache_t));
        *slot = (int)k;
        return t->pool->caches[k];
    }
    return NULL; /* all busy: this call runs without a cache */
}

void tok_bpe_cache_return(const tok_tokenizer_t *t, int slot)
{
    if (slot >= 0)
        atomic_store_explicit(&t->pool->busy[slot], 0, memory_order_release);
}

static inline uint64_t piece_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 32);
}

void tok_bpe_piece(const tok_tokenizer_t *t, tok_cache_t *cache, const unsigned char *p, size_t n,
                   tok_ids_t *out, size_t *count)
{
    if (n > CACHE_KEY || !cache) {
        bpe_uncached(t, p, n, out, count);
        return;
    }
    uint64_t h = piece_hash(p, n);
    cache_slot_t *s = &cache->slots[h & (CACHE_SLOTS - 1)];
    if (s->len == n && s->hash == h && memcmp(s->key, p, n) == 0) {
        for (unsigned i = 0; i < s->nids; i++)
            emit(out, count, s->ids[i]);
        return;
    }
    /* Miss: merge into a scratch list (a piece of n bytes gives at most n
     * ids, so it never grows), then remember short results. */
    uint32_t scratch_ids[CACHE_KEY];
    tok_ids_t tmp = {scratch_ids, 0, CACHE_KEY};
    bpe_uncached(t, p, n, &tmp, NULL);
    assert(tmp.ids == scratch_ids);
    for (size_t i = 0; i < tmp.len; i++)
        emit(out, count, tmp.ids[i]);
    if (tmp.len <= CACHE_IDS) {
        s->hash = h;
        s->len = (uint8_t)n;
        s->nids = (uint8_t)tmp.len;
        memcpy(s->key, p, n);
        memcpy(s->ids, tmp.ids, tmp.len * sizeof *tmp.ids);
    }
}
