/* tok_util: the small containers the tokenizer is built from: aborting
 * allocators, id and byte buffers, hash maps, the added-token trie and the
 * GPT-2 byte-level alphabet. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

void *tok_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("tok: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *tok_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fputs("tok: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *tok_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("tok: out of memory\n", stderr);
        abort();
    }
    return p;
}

void tok_ids_push(tok_ids_t *ids, uint32_t id)
{
    if (ids->len == ids->cap) {
        ids->cap = ids->cap ? ids->cap * 2 : 64;
        ids->ids = tok_xrealloc(ids->ids, ids->cap * sizeof *ids->ids);
    }
    ids->ids[ids->len++] = id;
}

void tok_ids_free(tok_ids_t *ids)
{
    free(ids->ids);
    memset(ids, 0, sizeof *ids);
}

void tok_buf_append(tok_buf_t *buf, const void *data, size_t len)
{
    if (buf->len + len + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        while (cap < buf->len + len + 1)
            cap *= 2;
        buf->data = tok_xrealloc(buf->data, cap);
        buf->cap = cap;
    }
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}

void tok_buf_appends(tok_buf_t *buf, const char *s)
{
    tok_buf_append(buf, s, strlen(s));
}

void tok_buf_free(tok_buf_t *buf)
{
    free(buf->data);
    memset(buf, 0, sizeof *buf);
}

/* ---- tok_map64 ---- */

static size_t pow2_for(size_t expected)
{
    size_t n = 16;
    while (n < expected * 2)
        n *= 2;
    return n;
}

void tok_map64_init(tok_map64_t *m, size_t expected)
{
    size_t n = pow2_for(expected);
    m->keys = tok_xmalloc(n * sizeof *m->keys);
    m->vals = tok_xmalloc(n * sizeof *m->vals);
    memset(m->keys, 0xff, n * sizeof *m->keys);
    m->mask = n - 1;
    m->count = 0;
}

void tok_map64_free(tok_map64_t *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static void map64_grow(tok_map64_t *m)
{
    tok_map64_t bigger;
    tok_map64_init(&bigger, (m->mask + 1));
    for (size_t i = 0; i <= m->mask; i++)
        if (m->keys[i] != UINT64_MAX)
            tok_map64_put(&bigger, m->keys[i], m->vals[i]);
    tok_map64_free(m);
    *m = bigger;
}

void tok_map64_put(tok_map64_t *m, uint64_t key, uint64_t val)
{
    if ((m->count + 1) * 2 > m->mask + 1)
        map64_grow(m);
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    size_t i = (size_t)(h >> 20) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key)
        i = (i + 1) & m->mask;
    if (m->keys[i] == UINT64_MAX)
        m->count++;
    m->keys[i] = key;
    m->vals[i] = val;
}

/* ---- tok_strmap ---- */

static uint64_t str_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

void tok_strmap_init(tok_strmap_t *m, size_t expected)
{
    size_t n = pow2_for(expected);
    m->strs = tok_xcalloc(n, sizeof *m->strs);
    m->lens = tok_xcalloc(n, sizeof *m->lens);
    m->vals = tok_xcalloc(n, sizeof *m->vals);
    m->mask = n - 1;
    m->count = 0;
}

void tok_strmap_free(tok_strmap_t *m)
{
    free(m->strs);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

void tok_strmap_put(tok_strmap_t *m, const char *s, size_t len, uint32_t val)
{
    if ((m->count + 1) * 2 > m->mask + 1) {
        tok_strmap_t bigger;
        tok_strmap_init(&bigger, m->mask + 1);
        for (size_t i = 0; i <= m->mask; i++)
            if (m->strs[i])
                tok_strmap_put(&bigger, m->strs[i], m->lens[i], m->vals[i]);
        tok_strmap_free(m);
        *m = bigger;
    }
    size_t i = (size_t)str_hash(s, len) & m->mask;
    while (m->strs[i] && !(m->lens[i] == len && memcmp(m->strs[i], s, len) == 0))
        i = (i + 1) & m->mask;
    if (!m->strs[i])
        m->count++;
    m->strs[i] = s;
    m->lens[i] = (uint32_t)len;
    m->vals[i] = val;
}

int tok_strmap_get(const tok_strmap_t *m, const char *s, size_t len, uint32_t *val)
{
    size_t i = (size_t)str_hash(s, len) & m->mask;
    while (m->strs[i]) {
        if (m->lens[i] == len && memcmp(m->strs[i], s, len) == 0) {
            *val = m->vals[i];
            return 1;
        }
        i = (i + 1) & m->mask;
    }
    return 0;
}

/* ---- tok_trie ---- */

void tok_trie_init(tok_trie_t *t)
{
    memset(t, 0, sizeof *t);
    tok_map64_init(&t->edges, 64);
    t->cap = 64;
    t->term = tok_xmalloc(t->cap * sizeof *t->term);
    t->term[0] = -1;
    t->nodes = 1;
}

void tok_trie_free(tok_trie_t *t)
{
    tok_map64_free(&t->edges);
    free(t->term);
    memset(t, 0, sizeof *t);
}

void tok_trie_add(tok_trie_t *t, const char *s, size_t len, uint32_t id)
{
    uint64_t node = 0;
    for (size_t i = 0; i < len; i++) {
        uint64_t key = node << 8 | (unsigned char)s[i];
        const uint64_t *child = tok_map64_get(&t->edges, key);
        if (child) {
            node = *child;
            continue;
        }
        if (t->nodes == t->cap) {
            t->cap *= 2;
            t->term = tok_xrealloc(t->term, t->cap * sizeof *t->term);
        }
        t->term[t->nodes] = -1;
        tok_map64_put(&t->edges, key, t->nodes);
        node = t->nodes++;
    }
    if (len) {
        t->first[(unsigned char)s[0]] = 1;
        t->term[node] = id;
    }
}

size_t tok_trie_match(const tok_trie_t *t, const unsigned char *s, size_t n, uint32_t *id)
{
    if (!n || !t->first[s[0]])
        return 0;
    uint64_t node = 0;
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t *child = tok_map64_get(&t->edges, node << 8 | s[i]);
        if (!child)
            break;
        node = *child;
        if (t->term[node] >= 0) {
            best = i + 1;
            *id = (uint32_t)t->term[node];
        }
    }
    return best;
}

/* ---- byte-level alphabet ---- */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes take code points 256.. in increasing byte order. */
static int printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

uint32_t tok_bytelevel_char(unsigned char b)
{
    if (printable(b))
        return b;
    uint32_t n = 0;
    for (unsigned i = 0; i < b; i++)
        n += !printable(i);
    return 256 + n;
}

int tok_bytelevel_byte(uint32_t cp)
{
    if (cp < 256)
        return printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    uint32_t n = cp - 256;
    for (unsigned i = 0; i < 256; i++)
        if (!printable(i) && n-- == 0)
            return (int)i;
    return -1;
}
