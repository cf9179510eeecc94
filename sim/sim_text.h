/* sim_text: deterministic pseudo-words for simulated completions. Each word
 * is one completion token. */
#ifndef SIM_TEXT_H
#define SIM_TEXT_H

#include "sim_rng.h"

#include <stdint.h>

/* Seeds rng for the completion of one request: equal (seed, model, prompt
 * hash, part) give equal words. part separates reasoning from content. */
void sim_text_seed(sim_rng_t *rng, uint64_t seed, const char *model, uint64_t prompt_hash,
                   uint64_t part);

/* The next word (a static string, no spaces). */
const char *sim_text_word(sim_rng_t *rng);

#endif
