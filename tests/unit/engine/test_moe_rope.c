/* Routing and RoPE tests against hand-computed reference values: V2 greedy
 * and group-limited greedy (softmax, no renorm), V3 (sigmoid, bias for
 * selection only, top-2-sum groups, masked groups at 0.0, renorm, scale);
 * both RoPE layouts against transformers' formulas; YaRN frequencies. */
#include "eng_config.h"
#include "eng_moe.h"
#include "eng_ops.h"
#include "eng_test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static eng_config_t base_cfg(void)
{
    eng_config_t c;
    memset(&c, 0, sizeof c);
    c.n_routed = 8;
    c.top_k = 3;
    c.n_group = 1;
    c.topk_group = 1;
    c.routed_scale = 1.0f;
    return c;
}

static float sigm(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

static void test_v2_greedy(void)
{
    eng_config_t c = base_cfg();
    c.scoring = ENG_SCORE_SOFTMAX;
    c.routed_scale = 1.5f;
    float lg[8] = {0.1f, 2.0f, -1.0f, 1.5f, 0.3f, 1.9f, 0.0f, -0.5f};
    int idx[3];
    float w[3];
    eng_moe_route(&c, lg, NULL, idx, w);
    double z = 0;
    for (int e = 0; e < 8; e++)
        z += exp(lg[e]);
    CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 5);
    CHECK(fabs(w[0] - 1.5 * exp(2.0) / z) < 1e-6);
    CHECK(fabs(w[1] - 1.5 * exp(1.5) / z) < 1e-6);
    CHECK(fabs(w[2] - 1.5 * exp(1.9) / z) < 1e-6); /* no renormalisation */
}

static void test_v2_group_limited(void)
{
    eng_config_t c = base_cfg();
    c.scoring = ENG_SCORE_SOFTMAX;
    c.group_rank = ENG_GROUP_MAX;
    c.n_group = 4; /* groups {0,1} {2,3} {4,5} {6,7} */
    c.topk_group = 2;
    /* Group maxima: g0 2.0, g1 1.0, g2 1.9, g3 1.8 -> keep g0 and g2; the plain
     * greedy top-3 {1, 5, 7} is not allowed (7 is in g3). */
    float lg[8] = {1.7f, 2.0f, 1.0f, 0.0f, 0.1f, 1.9f, 0.0f, 1.8f};
    int idx[3];
    float w[3];
    eng_moe_route(&c, lg, NULL, idx, w);
    CHECK(idx[0] == 0 && idx[1] == 1 && idx[2] == 5);
    double z = 0;
    for (int e = 0; e < 8; e++)
        z += exp(lg[e]);
    CHECK(fabs(w[0] - exp(1.7) / z) < 1e-6);
}

static void test_v3(void)
{
    eng_config_t c = base_cfg();
    c.scoring = ENG_SCORE_SIGMOID;
    c.score_bias = true;
    c.group_rank = ENG_GROUP_TOP2_SUM;
    c.n_group = 2; /* {0..3} {4..7} */
    c.topk_group = 1;
    c.top_k = 2;
    c.norm_topk = true;
    c.routed_scale = 2.5f;
    float lg[8] = {3.0f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 0.9f, -2.0f};
    /* Group scores (sum of the two best): group 0 sig(3) + sig(0) = 0.953 + 0.5 =
     * 1.453, group 1 2 sig(1) = 1.462, so without bias group 1 wins. A bias of
     * 0.3 on expert 1 lifts group 0 to 1.753: it wins, experts 0 and 1 are
     * chosen by biased score, and their weights use the unbiased sigmoid. */
    float bias[8] = {0, 0.3f, 0, 0, 0, 0, 0, 0};
    int idx[2];
    float w[2];
    eng_moe_route(&c, lg, bias, idx, w);
    CHECK(idx[0] == 0 && idx[1] == 1);
    float s0 = sigm(3.0f), s1 = sigm(0.0f);
    CHECK(fabsf(w[0] - 2.5f * s0 / (s0 + s1)) < 1e-6f);
    CHECK(fabsf(w[1] - 2.5f * s1 / (s0 + s1)) < 1e-6f);
    /* No bias: group 1 wins, experts 4 and 5. */
    eng_moe_route(&c, lg, NULL, idx, w);
    CHECK(idx[0] == 4 && idx[1] == 5);
    /* Kept group all negative after bias: masked experts score 0.0 and win,
     * exactly as transformers' masked_fill(0.0) does. */
    float negb[8] = {-1, -1, -1, -1, -2, -2, -2, -2};
    float lg2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    eng_moe_route(&c, lg2, negb, idx, w);
    CHECK(idx[0] == 4 && idx[1] == 5);
    CHECK(fabsf(w[0] - 1.25f) < 1e-6f && fabsf(w[1] - 1.25f) < 1e-6f);
}

static void test_rope_layouts(void)
{
    eng_config_t c;
    memset(&c, 0, sizeof c);
    c.qk_rope = 8;
    c.rope_theta = 10000.0;
    float inv[4];
    eng_rope_inv_freq(&c, inv);
    for (int i = 0; i < 4; i++)
        CHECK(fabsf(inv[i] - (float)pow(10000.0, -2.0 * i / 8)) < 1e-7f);
    float q[8] = {0.3f, -1.2f, 0.5f, 0.8f, -0.1f, 0.9f, 1.1f, -0.4f};
    float k[8] = {1.0f, 0.2f, -0.7f, 0.4f, 0.6f, -0.3f, 0.25f, 0.75f};
    int pq = 7, pk = 3;
    /* rotate-half (transformers, rope_interleave false): x*cos + rotate_half(x)*sin */
    float qr[8], kr[8], ref_q[8], ref_k[8];
    memcpy(qr, q, sizeof q);
    memcpy(kr, k, sizeof k);
    eng_rope_apply(qr, 8, inv, pq, false, 1.0f);
    eng_rope_apply(kr, 8, inv, pk, false, 1.0f);
    for (int d = 0; d < 8; d++) {
        int i = d % 4;
        double rq = d < 4 ? -q[d + 4] : q[d - 4], rk = d < 4 ? -k[d + 4] : k[d - 4];
        ref_q[d] = (float)(q[d] * cos(pq * (double)inv[i]) + rq * sin(pq * (double)inv[i]));
        ref_k[d] = (float)(k[d] * cos(pk * (double)inv[i]) + rk * sin(pk * (double)inv[i]));
    }
    CHECK(tu_rel_err(qr, ref_q, 8) < 1e-6 && tu_rel_err(kr, ref_k, 8) < 1e-6);
    /* interleaved (V3 default): transformers de-interleaves [x0,x2,..,x1,x3,..] then
     * applies rotate-half; the engine rotates adjacent pairs in place. The
     * attention score q.k must agree. */
    float qp[8], kp[8];
    for (int i = 0; i < 4; i++) {
        qp[i] = q[2 * i], qp[i + 4] = q[2 * i + 1];
        kp[i] = k[2 * i], kp[i + 4] = k[2 * i + 1];
    }
    float ref_dot = 0;
    for (int d = 0; d < 8; d++) {
        int i = d % 4;
        double rq = d < 4 ? -qp[d + 4] : qp[d - 4], rk = d < 4 ? -kp[d + 4] : kp[d - 4];
        ref_dot += (float)((qp[d] * cos(pq * (double)inv[i]) + rq * sin(pq * (double)inv[i])) *
                           (kp[d] * cos(pk * (double)inv[i]) + rk * sin(pk * (double)inv[i])));
    }
    memcpy(qr, q, sizeof q);
    memcpy(kr, k, sizeof k);
    eng_rope_apply(qr, 8, inv, pq, true, 1.0f);
    eng_rope_apply(kr, 8, inv, pk, true, 1.0f);
    CHECK(fabsf(eng_dot(qr, kr, 8) - ref_dot) < 1e-5f);
    /* and the two layouts really differ */
    memcpy(qr, q, sizeof q);
    eng_rope_apply(qr, 8, inv, pq, false, 1.0f);
    memcpy(kr, k, sizeof k);
    eng_rope_apply(kr, 8, inv, pk, false, 1.0f);
    CHECK(fabsf(eng_dot(qr, kr, 8) - ref_dot) > 1e-3f);
}

static void test_yarn_freq(void)
{
    eng_config_t c;
    memset(&c, 0, sizeof c);
    c.qk_rope = 64;
    c.rope_theta = 10000.0;
    c.yarn = true;
    c.yarn_factor = 40.0;
    c.yarn_orig_max = 4096;
    c.beta_fast = 32;
    c.beta_slow = 1;
    c.yarn_truncate = true;
    float inv[32];
    eng_rope_inv_freq(&c, inv);
    /* correction range for V2-Lite: low = floor(10.24...) = 10, high = ceil(22.9...) = 23 */
    double low = floor(64 * log(4096 / (32 * 2 * M_PI)) / (2 * log(10000.0)));
    double high = ceil(64 * log(4096 / (1 * 2 * M_PI)) / (2 * log(10000.0)));
    CHECK(low == 10 && high == 23);
    for (int i = 0; i < 32; i++) {
        double f = pow(10000.0, -2.0 * i / 64);
        double ramp = fmin(fmax((i - low) / (high - low), 0.0), 1.0);
        double want = f / 40.0 * ramp + f * (1.0 - ramp);
        CHECK(fabs(inv[i] - want) / want < 1e-5);
    }
}

int main(void)
{
    test_v2_greedy();
    test_v2_group_limited();
    test_v3();
    test_rope_layouts();
    test_yarn_freq();
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
