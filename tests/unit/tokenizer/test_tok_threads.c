/* Concurrent use of one tokenizer: four threads encode the corpus files at
 * the same time (each with its own piece cache) and must get exactly the ids
 * of a single-threaded run. Then a thread that cached pieces with a tokenizer
 * since freed must not see them when it encodes with a new one.
 * Usage: test_tok_threads TOKENIZER_JSON CORPUS_DIR */
#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "tok_test_util.h"

#define NTHREADS 4
#define MAXFILES 64

static tok_tokenizer_t *tok;
static tok_buf_t texts[MAXFILES];
static tok_ids_t want[MAXFILES];
static int nfiles;

static void *worker(void *arg)
{
    intptr_t me = (intptr_t)arg, bad = 0;
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < nfiles; k++) {
            int f = (int)((k + me + round) % nfiles); /* different order per thread */
            tok_ids_t ids = {0};
            tok_encode(tok, texts[f].data, texts[f].len, &ids);
            if (ids.len != want[f].len ||
                memcmp(ids.ids, want[f].ids, ids.len * sizeof *ids.ids) != 0)
                bad++;
            tok_ids_free(&ids);
        }
    return (void *)bad;
}

/* ---- stale cache check ---- */

static sem_t go_worker, go_main;
static tok_tokenizer_t *current;
static const char *const sample = "Hello world, tokenizers cache words like these words.";
static tok_ids_t seen[2];

/* Encodes sample with the current tokenizer twice, waiting between. */
static void *stale_worker(void *arg)
{
    (void)arg;
    for (int round = 0; round < 2; round++) {
        sem_wait(&go_worker);
        tok_encode(current, sample, strlen(sample), &seen[round]);
        sem_post(&go_main);
    }
    return NULL;
}

/* The DeepSeek tokenizer with only its first 50 merges: other ids. */
static tok_tokenizer_t *load_truncated(const char *path)
{
    tok_buf_t b = {0};
    tt_read_file(path, &b);
    cJSON *root = cJSON_Parse(b.data);
    cJSON *model = cJSON_GetObjectItem(root, "model");
    cJSON *merges = cJSON_GetObjectItem(model, "merges"), *few = cJSON_CreateArray(), *m;
    int k = 0;
    cJSON_ArrayForEach(m, merges)
    {
        if (k++ == 50)
            break;
        cJSON_AddItemToArray(few, cJSON_Duplicate(m, 1));
    }
    cJSON_ReplaceItemInObject(model, "merges", few);
    char *json = cJSON_PrintUnformatted(root), err[256];
    tok_tokenizer_t *t = tok_load_json(json, strlen(json), err, sizeof err);
    if (!t) {
        fprintf(stderr, "FAIL: truncated tokenizer: %s\n", err);
        exit(1);
    }
    free(json);
    cJSON_Delete(root);
    tok_buf_free(&b);
    return t;
}

static int check_stale_cache(const char *path)
{
    sem_init(&go_worker, 0, 0);
    sem_init(&go_main, 0, 0);
    pthread_t th;
    current = tt_load(path);
    pthread_create(&th, NULL, stale_worker, NULL);
    sem_post(&go_worker); /* the worker fills its cache for tokenizer 1 */
    sem_wait(&go_main);
    tok_free(current);
    current = load_truncated(path);
    sem_post(&go_worker); /* same text, tokenizer 2, same thread */
    sem_wait(&go_main);
    pthread_join(th, NULL);
    tok_ids_t want = {0};
    tok_encode(current, sample, strlen(sample), &want);
    int bad = want.len != seen[1].len ||
              memcmp(want.ids, seen[1].ids, want.len * sizeof *want.ids) != 0 ||
              seen[0].len == seen[1].len;
    if (bad)
        fprintf(stderr, "FAIL: a thread's cache outlived its tokenizer (%zu vs %zu ids)\n",
                seen[1].len, want.len);
    else
        printf("freed tokenizer's caches unused: %zu ids before, %zu after\n", seen[0].len,
               seen[1].len);
    tok_ids_free(&want);
    tok_ids_free(&seen[0]);
    tok_ids_free(&seen[1]);
    tok_free(current);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON CORPUS_DIR\n", argv[0]);
        return 2;
    }
    tok = tt_load(argv[1]);
    DIR *d = opendir(argv[2]);
    struct dirent *de;
    while (d && (de = readdir(d)) && nfiles < MAXFILES) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[2], de->d_name);
        tt_read_file(path, &texts[nfiles]);
        tok_encode(tok, texts[nfiles].data, texts[nfiles].len, &want[nfiles]);
        nfiles++;
    }
    if (d)
        closedir(d);
    if (nfiles < 10) {
        fprintf(stderr, "FAIL: corpus not found in %s\n", argv[2]);
        return 1;
    }
    pthread_t th[NTHREADS];
    for (intptr_t i = 0; i < NTHREADS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)i) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            return 1;
        }
    long bad = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (long)(intptr_t)r;
    }
    for (int i = 0; i < nfiles; i++) {
        tok_buf_free(&texts[i]);
        tok_ids_free(&want[i]);
    }
    tok_free(tok);
    printf("%d threads x %d files x 3 rounds: %ld mismatches\n", NTHREADS, nfiles, bad);
    bad += check_stale_cache(argv[1]);
    if (bad)
        fprintf(stderr, "FAIL: concurrent encodes differ from the single-threaded ids, or a "
                        "stale cache was used\n");
    return bad ? 1 : 0;
}
