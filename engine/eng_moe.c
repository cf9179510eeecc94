/* eng_moe: expert routing as transformers 5 computes it. Groups that are not
 * kept have their choice scores set to 0.0 (not -inf), exactly as the
 * reference does, so a negative biased score can lose to a masked expert. */
#include "eng_moe.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#define MOE_MAX_EXPERTS 1024

/* Index of the largest value among x[i] with !taken[i]; first on ties. */
static int best_untaken(const float *x, const bool *taken, int n)
{
    int b = -1;
    for (int i = 0; i < n; i++)
        if (!taken[i] && (b < 0 || x[i] > x[b]))
            b = i;
    return b;
}

void eng_moe_route(const eng_config_t *cfg, const float *logits, const float *bias, int *idx,
                   float *w)
{
    int E = cfg->n_routed, K = cfg->top_k;
    if (E > MOE_MAX_EXPERTS)
        abort(); /* refused at config time by the caller's limits */
    float scores[MOE_MAX_EXPERTS], choice[MOE_MAX_EXPERTS];
    bool taken[MOE_MAX_EXPERTS] = {false};
    if (cfg->scoring == ENG_SCORE_SOFTMAX) {
        float mx = -INFINITY, s = 0.0f;
        for (int e = 0; e < E; e++)
            mx = logits[e] > mx ? logits[e] : mx;
        for (int e = 0; e < E; e++)
            s += (scores[e] = expf(logits[e] - mx));
        for (int e = 0; e < E; e++)
            scores[e] /= s;
    } else {
        for (int e = 0; e < E; e++)
            scores[e] = 1.0f / (1.0f + expf(-logits[e]));
    }
    for (int e = 0; e < E; e++)
        choice[e] = scores[e] + (bias ? bias[e] : 0.0f);
    int G = cfg->n_group;
    if (cfg->group_rank != ENG_GROUP_NONE && G > 1) {
        int per = E / G;
        float gscore[MOE_MAX_EXPERTS];
        bool gtaken[MOE_MAX_EXPERTS] = {false}, keep[MOE_MAX_EXPERTS] = {false};
        for (int g = 0; g < G; g++) {
            const float *c = choice + g * per;
            if (cfg->group_rank == ENG_GROUP_MAX) {
                float m = c[0];
                for (int j = 1; j < per; j++)
                    m = c[j] > m ? c[j] : m;
                gscore[g] = m;
            } else {
                int a = 0;
                for (int j = 1; j < per; j++)
                    if (c[j] > c[a])
                        a = j;
                int b = a == 0 ? 1 : 0;
                for (int j = 0; j < per; j++)
                    if (j != a && c[j] > c[b])
                        b = j;
                gscore[g] = c[a] + c[b];
            }
        }
        for (int k = 0; k < cfg->topk_group; k++) {
            int g = best_untaken(gscore, gtaken, G);
            gtaken[g] = keep[g] = true;
        }
        for (int e = 0; e < E; e++)
            if (!keep[e / per])
                choice[e] = 0.0f;
    }
    for (int k = 0; k < K; k++) {
        int e = best_untaken(choice, taken, E);
        taken[e] = true;
    }
    float sum = 0.0f;
    for (int e = 0, k = 0; e < E; e++) {
        if (!taken[e])
            continue;
        idx[k] = e;
        w[k] = scores[e];
        sum += w[k];
        k++;
    }
    for (int k = 0; k < K; k++) {
        if (cfg->norm_topk)
            w[k] /= sum + 1e-20f;
        w[k] *= cfg->routed_scale;
    }
}
