/* Helpers shared by the engine unit tests: a CHECK macro that counts
 * failures, file reading, the golden fixture format, relative error, and temp
 * directories that the tests build broken or converted models in. */
#ifndef ENG_TEST_UTIL_H
#define ENG_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

extern int eng_test_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            eng_test_failures++;                                                                   \
        }                                                                                          \
    } while (0)

/* Whole file into a malloc'd buffer (NUL-terminated); NULL when unreadable. */
char *tu_read_file(const char *path, size_t *len);

/* Writes len bytes to path. Returns 0 or -1. */
int tu_write_file(const char *path, const void *data, size_t len);

/* One golden case: prompt ids, expected logits (L, vocab), 12 greedy ids. */
typedef struct {
    int32_t *prompt;
    int len;
    float *logits;
    int vocab;
    int32_t greedy[12];
    double margin;
} tu_case_t;

/* Loads golden.json and its logits files from dir. Returns the number of
 * cases (>= 1) or -1 (message on stderr). Free with tu_cases_free. */
int tu_load_cases(const char *dir, tu_case_t **out);
void tu_cases_free(tu_case_t *cases, int n);

/* ||a - b|| / ||b|| over n values. */
double tu_rel_err(const float *a, const float *b, size_t n);

/* Makes a fresh empty temp directory; returns its malloc'd path. */
char *tu_mkdtemp(void);

/* Removes a directory tree made by the test. */
void tu_rmtree(const char *path);

/* Copies every regular file of src into dst (created). Returns 0 or -1. */
int tu_copy_dir(const char *src, const char *dst);

#endif
