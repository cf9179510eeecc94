/* eng_sample: choosing the next token from a row of logits. Greedy (argmax,
 * first index on ties) or random with temperature, top-k and top-p (nucleus),
 * drawn from a per-request generator seeded by the request's seed, so a
 * request's tokens depend only on its logits and its seed, never on what
 * else runs in the same batch. */
#ifndef ENG_SAMPLE_H
#define ENG_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

/* How to sample. temperature <= 0 (or top_k == 1) is greedy. top_k <= 0: no
 * top-k limit. top_p >= 1: no nucleus cut. n_allowed > 0 restricts choices
 * to ids [0, n_allowed) (a model vocabulary padded beyond its tokenizer's). */
typedef struct eng_sample_params {
    float temperature;
    int top_k;
    float top_p;
    uint64_t seed;
    int n_allowed;
} eng_sample_params_t;

/* The request's generator (xoshiro256**), seeded by splitmix64 from seed. */
typedef struct eng_rng {
    uint64_t s[4];
} eng_rng_t;

void eng_rng_seed(eng_rng_t *r, uint64_t seed);
uint64_t eng_rng_next(eng_rng_t *r);
/* Uniform in [0, 1) with 53 random bits. */
double eng_rng_uniform(eng_rng_t *r);

/* Default parameters: temperature 1, no top-k, top-p 1, seed 0. */
eng_sample_params_t eng_sample_defaults(void);

/* Scratch space for eng_sample (reused between calls; owned by the caller
 * of eng_sample_scratch_new). */
typedef struct eng_sample_scratch eng_sample_scratch_t;
eng_sample_scratch_t *eng_sample_scratch_new(int vocab);
void eng_sample_scratch_free(eng_sample_scratch_t *sc);

/* Picks a token from logits[0..vocab) under p, advancing rng once when the
 * choice is random. The candidates are the top_k largest logits (all when
 * top_k <= 0), then the smallest prefix of them (by probability, highest
 * first, ties by lower id) whose probability reaches top_p; the draw follows
 * their renormalised softmax(logits / temperature). Returns the id. */
int eng_sample(const float *logits, int vocab, const eng_sample_params_t *p, eng_rng_t *rng,
               eng_sample_scratch_t *sc);

/* The candidate set eng_sample would draw from: writes up to max ids (most
 * probable first) and their renormalised probabilities, returns the count.
 * For tests and for explaining a choice. */
int eng_sample_candidates(const float *logits, int vocab, const eng_sample_params_t *p,
                          eng_sample_scratch_t *sc, int32_t *ids, double *probs, int max);

#endif
