/* tokenizer_bench: single-thread encode throughput of the Tollgate tokenizer
 * on the test corpus, and the per-request cost of a typical 2,000-token chat
 * prompt (template + count + block hashes). Prints a checksum of the ids that
 * bench/tokenizer_hf.js computes the same way, so equal ids are checked in
 * the same run. Run through bench/tokenizer.sh.
 * Usage: tokenizer_bench TOKENIZER_DIR CORPUS_DIR [SECONDS] */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    tok_buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        tok_buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return b.data;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_DIR CORPUS_DIR [SECONDS]\n", argv[0]);
        return 2;
    }
    double secs = argc > 3 ? atof(argv[3]) : 2.0;
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", argv[1]);
    double t0 = now();
    tok_tokenizer_t *t = tok_load_file(path, err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double load = now() - t0;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", argv[1]);
    tok_chat_t *chat = tok_chat_load_file(path, err, sizeof err);
    if (!chat) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* Corpus files in name order (the same order as the node side). */
    DIR *d = opendir(argv[2]);
    if (!d)
        return 1;
    char *names[256];
    int nf = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nf < 256)
        if (de->d_name[0] != '.' && strcmp(de->d_name, "README.md") != 0)
            names[nf++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)nf, sizeof *names, cmp_names);
    char *texts[256];
    size_t lens[256], bytes = 0;
    for (int i = 0; i < nf; i++) {
        snprintf(path, sizeof path, "%s/%s", argv[2], names[i]);
        texts[i] = read_file(path, &lens[i]);
        bytes += lens[i];
    }
    /* Checksum and token count of one pass. */
    tok_ids_t ids = {0};
    uint32_t sum = 0;
    size_t tokens = 0;
    for (int i = 0; i < nf; i++) {
        ids.len = 0;
        tok_encode(t, texts[i], lens[i], &ids);
        for (size_t k = 0; k < ids.len; k++)
            sum = sum * 31u + ids.ids[k];
        tokens += ids.len;
    }
    /* Throughput: whole passes over the corpus until secs have passed. */
    int passes = 0;
    t0 = now();
    double el;
    do {
        for (int i = 0; i < nf; i++) {
            ids.len = 0;
            tok_encode(t, texts[i], lens[i], &ids);
        }
        passes++;
    } while ((el = now() - t0) < secs);
    printf("tollgate files=%d bytes=%zu tokens=%zu checksum=%08x passes=%d seconds=%.3f "
           "tokens_per_s=%.0f mb_per_s=%.2f load_s=%.3f\n",
           nf, bytes, tokens, sum, passes, el, (double)tokens * passes / el,
           (double)bytes * passes / el / 1e6, load);

    /* Per file: at least one pass and 0.1 s each. */
    for (int i = 0; i < nf; i++) {
        ids.len = 0;
        tok_encode(t, texts[i], lens[i], &ids);
        size_t ft = ids.len;
        int reps = 0;
        t0 = now();
        do {
            ids.len = 0;
            tok_encode(t, texts[i], lens[i], &ids);
            reps++;
        } while ((el = now() - t0) < 0.1);
        printf("file %s bytes=%zu tokens=%zu tokens_per_s=%.0f mb_per_s=%.2f\n", names[i], lens[i],
               ft, (double)ft * reps / el, (double)lens[i] * reps / el / 1e6);
    }

    /* A typical 2,000-token chat prompt: system + 3 turns + a new question,
     * taken from the English corpus text. */
    const char *eng = NULL;
    size_t englen = 0;
    for (int i = 0; i < nf; i++)
        if (strstr(names[i], "english")) {
            eng = texts[i];
            englen = lens[i];
        }
    if (!eng || englen < 9000)
        return 1;
    cJSON *msgs = cJSON_CreateArray();
    const char *roles[] = {"system",    "user", "assistant", "user",
                           "assistant", "user", "assistant", "user"};
    size_t off = 0, sizes[] = {600, 1400, 1000, 1200, 900, 1500, 1100, 800};
    for (int i = 0; i < 8; i++) {
        cJSON *m = cJSON_CreateObject();
        char *c = strndup(eng + off, sizes[i]);
        off += sizes[i];
        cJSON_AddStringToObject(m, "role", roles[i]);
        cJSON_AddStringToObject(m, "content", c);
        free(c);
        cJSON_AddItemToArray(msgs, m);
    }
    tok_buf_t prompt = {0};
    size_t ptoks = 0, reqs = 0;
    uint64_t hashes[256];
    t0 = now();
    do {
        for (int r = 0; r < 100; r++) {
            prompt.len = 0;
            if (tok_chat_render(chat, msgs, true, &prompt, err, sizeof err) != 0)
                return 1;
            ids.len = 0;
            tok_encode(t, prompt.data, prompt.len, &ids);
            ptoks = ids.len;
            tok_block_hashes(ids.ids, ids.len, hashes, 256);
        }
        reqs += 100;
    } while ((el = now() - t0) < secs / 2);
    printf("chat_prompt tokens=%zu bytes=%zu blocks=%zu us_per_request=%.1f\n", ptoks, prompt.len,
           ptoks / TOK_BLOCK_TOKENS, el / (double)reqs * 1e6);
    cJSON_Delete(msgs);
    tok_buf_free(&prompt);
    tok_ids_free(&ids);
    for (int i = 0; i < nf; i++) {
        free(texts[i]);
        free(names[i]);
    }
    tok_chat_free(chat);
    tok_free(t);
    return 0;
}
