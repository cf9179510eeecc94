/* Concurrent use of one tokenizer: four threads encode the corpus files at
 * the same time (each with its own piece cache) and must get exactly the ids
 * of a single-threaded run.
 * Usage: test_tok_threads TOKENIZER_JSON CORPUS_DIR */
#include <dirent.h>
#include <pthread.h>
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
    if (bad)
        fprintf(stderr, "FAIL: concurrent encodes differ from the single-threaded ids\n");
    return bad ? 1 : 0;
}
