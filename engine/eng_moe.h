/* eng_moe: DeepSeek MoE routing — which experts a token goes to and with what
 * weight, for V2 (softmax; greedy or group-limited greedy; no renorm) and V3
 * (sigmoid + correction bias for selection; group-limited by the sum of each
 * group's two best; renormalised; routed_scaling_factor). */
#ifndef ENG_MOE_H
#define ENG_MOE_H

#include "eng_config.h"

/* From the gate's logits (n_routed floats) picks top_k experts into idx
 * (ascending expert order) with their weights in w. bias is the V3
 * e_score_correction_bias (NULL for V2). */
void eng_moe_route(const eng_config_t *cfg, const float *logits, const float *bias, int *idx,
                   float *w);

#endif
