/* sim_text: a fixed vocabulary drawn by a seeded generator. Plain ASCII so
 * that byte and token counts stay easy to reason about in tests. */
#include "sim_text.h"

#include <string.h>

static const char *const words[64] = {
    "alpha",   "bravo",   "cobalt",  "delta",  "ember",   "fjord",   "garnet",  "harbor",
    "indigo",  "juniper", "kelp",    "lumen",  "meadow",  "nectar",  "onyx",    "prairie",
    "quartz",  "ripple",  "saffron", "tundra", "umber",   "velvet",  "willow",  "xenon",
    "yarrow",  "zephyr",  "amber",   "basalt", "cedar",   "dune",    "estuary", "fern",
    "glacier", "heath",   "island",  "jade",   "kestrel", "lagoon",  "maple",   "nimbus",
    "orchid",  "pebble",  "quill",   "reef",   "sierra",  "thistle", "upland",  "vale",
    "wren",    "yonder",  "zinnia",  "aspen",  "birch",   "canyon",  "drift",   "echo",
    "flint",   "grove",   "hollow",  "inlet",  "jetty",   "knoll",   "ledge",   "mesa",
};

void sim_text_seed(sim_rng_t *rng, uint64_t seed, const char *model, uint64_t prompt_hash,
                   uint64_t part)
{
    uint64_t h = sim_hash_bytes(seed, model, strlen(model));
    h = sim_hash_mix(h, prompt_hash);
    sim_rng_seed(rng, sim_hash_mix(h, part));
}

const char *sim_text_word(sim_rng_t *rng)
{
    return words[sim_rng_next(rng) & 63];
}
