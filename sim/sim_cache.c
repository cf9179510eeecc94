/* sim_cache: a chained hash set of 64-bit block ids with an LRU list.
 * A block id is mix(key hash, chained prefix hash), so one key's entries can
 * never answer another key's lookup. */
#include "sim_cache.h"

#include "sim_rng.h"

#include <stdlib.h>

typedef struct sim_entry {
    uint64_t id;
    struct sim_entry *bucket_next;
    struct sim_entry *lru_prev, *lru_next; /* head = most recent */
} sim_entry_t;

struct sim_cache {
    size_t capacity, count, nbuckets;
    sim_entry_t **buckets;
    sim_entry_t *lru_head, *lru_tail;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        abort();
    return p;
}

sim_cache_t *sim_cache_new(size_t capacity)
{
    sim_cache_t *c = xcalloc(1, sizeof(*c));
    c->capacity = capacity ? capacity : 1;
    c->nbuckets = 1024;
    c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
    return c;
}

void sim_cache_clear(sim_cache_t *c)
{
    sim_entry_t *e = c->lru_head;
    while (e) {
        sim_entry_t *next = e->lru_next;
        free(e);
        e = next;
    }
    for (size_t i = 0; i < c->nbuckets; i++)
        c->buckets[i] = NULL;
    c->lru_head = c->lru_tail = NULL;
    c->count = 0;
}

void sim_cache_free(sim_cache_t *c)
{
    if (!c)
        return;
    sim_cache_clear(c);
    free(c->buckets);
    free(c);
}

size_t sim_cache_size(const sim_cache_t *c)
{
    return c->count;
}

static sim_entry_t **bucket_of(sim_cache_t *c, uint64_t id)
{
    return &c->buckets[id & (c->nbuckets - 1)];
}

static void lru_unlink(sim_cache_t *c, sim_entry_t *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(sim_cache_t *c, sim_entry_t *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

static sim_entry_t *find(sim_cache_t *c, uint64_t id)
{
    for (sim_entry_t *e = *bucket_of(c, id); e; e = e->bucket_next)
        if (e->id == id)
            return e;
    return NULL;
}

static void bucket_remove(sim_cache_t *c, sim_entry_t *e)
{
    sim_entry_t **pp = bucket_of(c, e->id);
    while (*pp != e)
        pp = &(*pp)->bucket_next;
    *pp = e->bucket_next;
}

/* Doubles the bucket array while the load factor is above one. */
static void maybe_grow(sim_cache_t *c)
{
    if (c->count <= c->nbuckets)
        return;
    size_t nb = c->nbuckets * 2;
    sim_entry_t **b = xcalloc(nb, sizeof(*b));
    for (sim_entry_t *e = c->lru_head; e; e = e->lru_next) {
        sim_entry_t **slot = &b[e->id & (nb - 1)];
        e->bucket_next = *slot;
        *slot = e;
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

size_t sim_cache_lookup(sim_cache_t *c, uint64_t key_hash, const uint64_t *blocks, size_t n)
{
    size_t hit = 0;
    while (hit < n) {
        sim_entry_t *e = find(c, sim_hash_mix(key_hash, blocks[hit]));
        if (!e)
            break;
        lru_unlink(c, e);
        lru_push_front(c, e);
        hit++;
    }
    return hit;
}

void sim_cache_store(sim_cache_t *c, uint64_t key_hash, const uint64_t *blocks, size_t n)
{
    /* Deepest block first, so that the shared leading blocks end up most
     * recently used and eviction trims prefixes from their far end. */
    for (size_t i = n; i-- > 0;) {
        uint64_t id = sim_hash_mix(key_hash, blocks[i]);
        sim_entry_t *e = find(c, id);
        if (e) {
            lru_unlink(c, e);
            lru_push_front(c, e);
            continue;
        }
        if (c->count >= c->capacity) {
            e = c->lru_tail; /* reuse the least recently used entry */
            lru_unlink(c, e);
            bucket_remove(c, e);
        } else {
            e = xcalloc(1, sizeof(*e));
            c->count++;
        }
        e->id = id;
        sim_entry_t **slot = bucket_of(c, id);
        e->bucket_next = *slot;
        *slot = e;
        lru_push_front(c, e);
        maybe_grow(c);
    }
}
