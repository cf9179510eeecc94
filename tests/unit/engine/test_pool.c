/* Thread pool: every index of a parallel-for is visited exactly once, for
 * many sizes, grains and thread counts (including more threads than work);
 * and the matmul gives the same bits with 1 and 3 threads. */
#include "eng_ops.h"
#include "eng_pool.h"
#include "eng_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int *hits;
    size_t grain;
    int misaligned;
} visit_ctx_t;

static void visit(void *arg, size_t lo, size_t hi)
{
    visit_ctx_t *v = arg;
    if (lo % v->grain != 0)
        __atomic_add_fetch(&v->misaligned, 1, __ATOMIC_RELAXED);
    for (size_t i = lo; i < hi; i++)
        __atomic_add_fetch(&v->hits[i], 1, __ATOMIC_RELAXED);
}

int main(void)
{
    int *hits = calloc(1000, sizeof(int));
    for (int th = 1; th <= 5; th++) {
        eng_pool_t *p = eng_pool_create(th);
        CHECK(eng_pool_size(p) == th);
        const size_t sizes[] = {0, 1, 2, 3, 7, 16, 17, 100, 999};
        const size_t grains[] = {1, 4, 16, 64};
        for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
                memset(hits, 0, 1000 * sizeof(int));
                visit_ctx_t v = {hits, grains[g], 0};
                eng_pool_for(p, sizes[a], grains[g], visit, &v);
                int bad = v.misaligned;
                for (size_t i = 0; i < sizes[a]; i++)
                    bad += hits[i] != 1;
                for (size_t i = sizes[a]; i < 1000; i++)
                    bad += hits[i] != 0;
                if (bad) {
                    fprintf(stderr, "threads %d n %zu grain %zu: %d bad\n", th, sizes[a],
                            grains[g], bad);
                    eng_test_failures++;
                }
            }
        eng_pool_free(p);
    }
    free(hits);
    /* matmul: same result whatever the thread count (static row split) */
    size_t T = 5, N = 300, O = 257;
    float *x = calloc(T * N, sizeof(float)), *w = calloc(O * N, sizeof(float));
    float *y1 = calloc(T * O, sizeof(float)), *y3 = calloc(T * O, sizeof(float));
    for (size_t i = 0; i < T * N; i++)
        x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    for (size_t i = 0; i < O * N; i++)
        w[i] = (float)((i * 53) % 97) / 97.0f - 0.5f;
    eng_pool_t *p3 = eng_pool_create(3);
    eng_matmul(NULL, y1, O, x, N, w, T, N, O);
    eng_matmul(p3, y3, O, x, N, w, T, N, O);
    CHECK(memcmp(y1, y3, T * O * sizeof(float)) == 0);
    /* and against a plain double-precision product */
    double worst = 0;
    for (size_t t = 0; t < T; t++)
        for (size_t o = 0; o < O; o++) {
            double ref = 0;
            for (size_t i = 0; i < N; i++)
                ref += (double)x[t * N + i] * w[o * N + i];
            double e = ref - y1[t * O + o];
            e = e < 0 ? -e : e;
            worst = e > worst ? e : worst;
        }
    printf("matmul vs double: max abs err %.2e\n", worst);
    CHECK(worst < 1e-4);
    eng_pool_free(p3);
    free(x);
    free(w);
    free(y1);
    free(y3);
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
