/* eng_kvcache: block pool, chained-hash table and LRU list of the latent KV
 * cache. A lookup matches on the 64-bit chain hash and then on the block's
 * own tokens and its parent's hash, so a hash collision alone cannot hand a
 * sequence another prompt's rows. Single-threaded: the scheduler owns it. */
#include "eng_kvcache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct kv_block {
    int ref;
    bool registered;
    uint64_t hash, parent;
    int32_t tokens[ENG_KV_BLOCK];
    int hnext;            /* next block in the same hash bucket */
    int lru_prev, lru_next; /* evictable list (ref 0 and registered) */
    int free_next;        /* free list (ref 0, unregistered) */
} kv_block_t;

struct eng_kvcache {
    int n_blocks, n_layers, row;
    size_t block_floats;
    float *data; /* (n_blocks, n_layers, 64, row) */
    kv_block_t *b;
    int *bucket;
    int n_buckets;
    int free_head;
    int lru_head, lru_tail;
    long evictions;
};

/* Shared by both constructors: with_data false leaves the rows to a device. */
static eng_kvcache_t *kvcache_new(const eng_model_t *model, int n_blocks, bool with_data)
{
    eng_kvcache_t *kc = calloc(1, sizeof *kc);
    if (!kc || n_blocks < 1)
        abort();
    kc->n_blocks = n_blocks;
    kc->n_layers = model->cfg.n_layers;
    kc->row = model->cfg.kv_lora_rank + model->cfg.qk_rope;
    kc->block_floats = (size_t)kc->n_layers * ENG_KV_BLOCK * (size_t)kc->row;
    kc->data = with_data ? calloc((size_t)n_blocks * kc->block_floats, sizeof(float)) : NULL;
    kc->b = calloc((size_t)n_blocks, sizeof *kc->b);
    kc->n_buckets = 2 * n_blocks + 1;
    kc->bucket = malloc((size_t)kc->n_buckets * sizeof *kc->bucket);
    if ((with_data && !kc->data) || !kc->b || !kc->bucket)
        abort();
    for (int i = 0; i < kc->n_buckets; i++)
        kc->bucket[i] = -1;
    for (int i = 0; i < n_blocks; i++) {
        kc->b[i].free_next = i + 1 < n_blocks ? i + 1 : -1;
        kc->b[i].hnext = kc->b[i].lru_prev = kc->b[i].lru_next = -1;
    }
    kc->free_head = 0;
    kc->lru_head = kc->lru_tail = -1;
    return kc;
}

eng_kvcache_t *eng_kvcache_create(const eng_model_t *model, int n_blocks)
{
    return kvcache_new(model, n_blocks, true);
}

eng_kvcache_t *eng_kvcache_create_meta(const eng_model_t *model, int n_blocks)
{
    return kvcache_new(model, n_blocks, false);
}

void eng_kvcache_free(eng_kvcache_t *kc)
{
    if (!kc)
        return;
    free(kc->data);
    free(kc->b);
    free(kc->bucket);
    free(kc);
}

int eng_kvcache_row(const eng_kvcache_t *kc)
{
    return kc->row;
}

float *eng_kvcache_row_ptr(eng_kvcache_t *kc, int b, int layer, int slot)
{
    return kc->data + (size_t)b * kc->block_floats +
           ((size_t)layer * ENG_KV_BLOCK + (size_t)slot) * (size_t)kc->row;
}

static void lru_unlink(eng_kvcache_t *kc, int i)
{
    kv_block_t *b = &kc->b[i];
    if (b->lru_prev >= 0)
        kc->b[b->lru_prev].lru_next = b->lru_next;
    else
        kc->lru_head = b->lru_next;
    if (b->lru_next >= 0)
        kc->b[b->lru_next].lru_prev = b->lru_prev;
    else
        kc->lru_tail = b->lru_prev;
    b->lru_prev = b->lru_next = -1;
}

static void lru_push_tail(eng_kvcache_t *kc, int i)
{
    kv_block_t *b = &kc->b[i];
    b->lru_prev = kc->lru_tail;
    b->lru_next = -1;
    if (kc->lru_tail >= 0)
        kc->b[kc->lru_tail].lru_next = i;
    else
        kc->lru_head = i;
    kc->lru_tail = i;
}

static void hash_remove(eng_kvcache_t *kc, int i)
{
    int *pp = &kc->bucket[kc->b[i].hash % (uint64_t)kc->n_buckets];
    while (*pp >= 0 && *pp != i)
        pp = &kc->b[*pp].hnext;
    if (*pp == i)
        *pp = kc->b[i].hnext;
    kc->b[i].hnext = -1;
    kc->b[i].registered = false;
}

int eng_kvcache_alloc(eng_kvcache_t *kc)
{
    int i = kc->free_head;
    if (i >= 0) {
        kc->free_head = kc->b[i].free_next;
    } else {
        i = kc->lru_head; /* least recently released cached block */
        if (i < 0)
            return -1;
        lru_unlink(kc, i);
        hash_remove(kc, i);
        kc->evictions++;
    }
    kc->b[i].ref = 1;
    kc->b[i].registered = false;
    return i;
}

void eng_kvcache_ref(eng_kvcache_t *kc, int i)
{
    if (kc->b[i].ref++ == 0 && kc->b[i].registered)
        lru_unlink(kc, i);
}

void eng_kvcache_release(eng_kvcache_t *kc, int i)
{
    kv_block_t *b = &kc->b[i];
    if (b->ref <= 0)
        abort(); /* double release: a programmer error */
    if (--b->ref > 0)
        return;
    if (b->registered) {
        lru_push_tail(kc, i);
    } else {
        b->free_next = kc->free_head;
        kc->free_head = i;
    }
}

uint64_t eng_kvcache_chain_hash(uint64_t parent, const int32_t *tokens)
{
    uint64_t h = parent ^ 0x6a09e667f3bcc909ull;
    for (int i = 0; i < ENG_KV_BLOCK; i++) {
        h ^= (uint32_t)tokens[i];
        h *= 0x100000001b3ull; /* FNV-1a step, then a splitmix finaliser below */
        h ^= h >> 29;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h ? h : 1; /* 0 is the empty prefix */
}

static int find(const eng_kvcache_t *kc, uint64_t hash, uint64_t parent, const int32_t *tokens)
{
    for (int i = kc->bucket[hash % (uint64_t)kc->n_buckets]; i >= 0; i = kc->b[i].hnext) {
        const kv_block_t *b = &kc->b[i];
        if (b->hash == hash && b->parent == parent &&
            memcmp(b->tokens, tokens, sizeof b->tokens) == 0)
            return i;
    }
    return -1;
}

void eng_kvcache_register(eng_kvcache_t *kc, int i, uint64_t parent, const int32_t *tokens)
{
    uint64_t h = eng_kvcache_chain_hash(parent, tokens);
    kv_block_t *b = &kc->b[i];
    if (b->registered || find(kc, h, parent, tokens) >= 0)
        return;
    b->hash = h;
    b->parent = parent;
    memcpy(b->tokens, tokens, sizeof b->tokens);
    b->registered = true;
    int *head = &kc->bucket[h % (uint64_t)kc->n_buckets];
    b->hnext = *head;
    *head = i;
}

int eng_kvcache_lookup(eng_kvcache_t *kc, uint64_t parent, const int32_t *tokens, uint64_t *hash)
{
    uint64_t h = eng_kvcache_chain_hash(parent, tokens);
    int i = find(kc, h, parent, tokens);
    if (i < 0)
        return -1;
    eng_kvcache_ref(kc, i);
    *hash = h;
    return i;
}

void eng_kvcache_stats(const eng_kvcache_t *kc, eng_kvcache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->n_blocks = kc->n_blocks;
    out->evictions = kc->evictions;
    for (int i = 0; i < kc->n_blocks; i++) {
        if (kc->b[i].ref > 0)
            out->in_use++;
        else if (kc->b[i].registered)
            out->cached++;
        else
            out->free++;
    }
}
