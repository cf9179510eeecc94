/* eng_sample: greedy, temperature, top-k and top-p sampling with a seeded
 * per-request generator. Probabilities are computed in double. Top-k uses a
 * quickselect; top-p sorts only the candidates above a probability threshold
 * chosen so that they already hold the nucleus (exact, and fast on a 129k
 * vocabulary). */
#include "eng_sample.h"

#include "eng_forward.h"

#include <math.h>
#include <stdlib.h>

typedef struct cand {
    double w; /* unnormalised probability exp((l - max) / T) */
    int32_t id;
} cand_t;

struct eng_sample_scratch {
    int cap;
    cand_t *c;
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void eng_rng_seed(eng_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t eng_rng_next(eng_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double eng_rng_uniform(eng_rng_t *r)
{
    return (double)(eng_rng_next(r) >> 11) * 0x1.0p-53;
}

eng_sample_params_t eng_sample_defaults(void)
{
    return (eng_sample_params_t){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
}

eng_sample_scratch_t *eng_sample_scratch_new(int vocab)
{
    eng_sample_scratch_t *sc = calloc(1, sizeof *sc);
    if (!sc)
        abort();
    sc->cap = vocab > 0 ? vocab : 1;
    sc->c = calloc((size_t)sc->cap, sizeof *sc->c);
    if (!sc->c)
        abort();
    return sc;
}

void eng_sample_scratch_free(eng_sample_scratch_t *sc)
{
    if (!sc)
        return;
    free(sc->c);
    free(sc);
}

/* Order: higher probability first, lower id first on ties. */
static int before(const cand_t *a, const cand_t *b)
{
    return a->w > b->w || (a->w == b->w && a->id < b->id);
}

static int cmp_cand(const void *x, const void *y)
{
    const cand_t *a = x, *b = y;
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

/* Rearranges c[0..n) so that its k first entries are the k best (in any
 * order). Quickselect with a middle pivot; the order is total (ids differ). */
static void select_top(cand_t *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        cand_t pivot = c[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (before(&c[i], &pivot))
                i++;
            while (before(&pivot, &c[j]))
                j--;
            if (i <= j) {
                cand_t t = c[i];
                c[i] = c[j];
                c[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            return;
    }
}

static bool is_greedy(const eng_sample_params_t *p)
{
    return !(p->temperature > 0.0f) || p->top_k == 1;
}

/* Fills sc with the candidates of a random draw, most probable first when a
 * cut applies (in id order otherwise). Returns their count and the sum of
 * their weights in *sum. */
static int build(const float *logits, int vocab, const eng_sample_params_t *p,
                 eng_sample_scratch_t *sc, double *sum)
{
    int n = p->n_allowed > 0 && p->n_allowed < vocab ? p->n_allowed : vocab;
    if (n > sc->cap)
        n = sc->cap;
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double inv_t = 1.0 / (double)p->temperature;
    cand_t *c = sc->c;
    for (int i = 0; i < n; i++)
        c[i] = (cand_t){exp(((double)logits[i] - (double)mx) * inv_t), i};
    bool sorted = false;
    if (p->top_k > 0 && p->top_k < n) {
        select_top(c, n, p->top_k);
        n = p->top_k;
        qsort(c, (size_t)n, sizeof *c, cmp_cand);
        sorted = true;
    }
    double total = 0;
    for (int i = 0; i < n; i++)
        total += c[i].w;
    if (p->top_p < 1.0f && p->top_p > 0.0f) {
        double need = (double)p->top_p * total;
        if (!sorted) {
            /* Only candidates of weight >= t can be in the nucleus once the
             * ones above t already reach it: move them first and sort them. */
            double t = 1e-3;
            int m = n;
            for (;;) {
                double s = 0;
                int k = 0;
                for (int i = 0; i < n; i++)
                    if (c[i].w >= t) {
                        s += c[i].w;
                        cand_t x = c[k];
                        c[k++] = c[i];
                        c[i] = x;
                    }
                if (s >= need || t < 1e-300) {
                    m = k;
                    break;
                }
                t /= 64;
            }
            qsort(c, (size_t)m, sizeof *c, cmp_cand);
            n = m;
        }
        double cum = 0;
        int keep = 0;
        while (keep < n) {
            cum += c[keep++].w;
            if (cum >= need)
                break;
        }
        n = keep;
        total = cum;
    }
    *sum = total;
    return n;
}

int eng_sample(const float *logits, int vocab, const eng_sample_params_t *p, eng_rng_t *rng,
               eng_sample_scratch_t *sc)
{
    int n_allowed = p->n_allowed > 0 && p->n_allowed < vocab ? p->n_allowed : vocab;
    if (is_greedy(p))
        return eng_argmax(logits, n_allowed);
    double sum;
    int n = build(logits, vocab, p, sc, &sum);
    double u = eng_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += sc->c[i].w;
        if (u < acc)
            return sc->c[i].id;
    }
    return sc->c[n - 1].id;
}

int eng_sample_candidates(const float *logits, int vocab, const eng_sample_params_t *p,
                          eng_sample_scratch_t *sc, int32_t *ids, double *probs, int max)
{
    if (is_greedy(p)) {
        int n_allowed = p->n_allowed > 0 && p->n_allowed < vocab ? p->n_allowed : vocab;
        if (max > 0) {
            ids[0] = eng_argmax(logits, n_allowed);
            probs[0] = 1.0;
        }
        return 1;
    }
    double sum;
    int n = build(logits, vocab, p, sc, &sum);
    qsort(sc->c, (size_t)n, sizeof *sc->c, cmp_cand);
    for (int i = 0; i < n && i < max; i++) {
        ids[i] = sc->c[i].id;
        probs[i] = sc->c[i].w / sum;
    }
    return n;
}
