/* Engine test helpers: file I/O, loading the golden fixtures (golden.json and
 * its logits files), relative error, and temp directories for broken models. */
#include "eng_test_util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int eng_test_failures;

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

int tu_load_cases(const char *dir, tu_case_t **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden.json", dir);
    char *text = tu_read_file(path, NULL);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *cases = cJSON_GetObjectItem(root, "cases");
    int n = cJSON_GetArraySize(cases);
    if (!root || n < 1) {
        fprintf(stderr, "%s: no cases\n", path);
        cJSON_Delete(root);
        return -1;
    }
    tu_case_t *cs = calloc((size_t)n, sizeof *cs);
    for (int i = 0; i < n; i++) {
        cJSON *c = cJSON_GetArrayItem(cases, i);
        cJSON *ids = cJSON_GetObjectItem(c, "prompt_ids");
        cJSON *shape = cJSON_GetObjectItem(c, "logits_shape");
        cJSON *greedy = cJSON_GetObjectItem(c, "greedy_next_12");
        cs[i].len = cJSON_GetArraySize(ids);
        cs[i].vocab = cJSON_GetArrayItem(shape, 1)->valueint;
        cs[i].prompt = calloc((size_t)cs[i].len, sizeof(int32_t));
        for (int j = 0; j < cs[i].len; j++)
            cs[i].prompt[j] = cJSON_GetArrayItem(ids, j)->valueint;
        for (int j = 0; j < 12 && j < cJSON_GetArraySize(greedy); j++)
            cs[i].greedy[j] = cJSON_GetArrayItem(greedy, j)->valueint;
        cs[i].margin = cJSON_GetObjectItem(c, "last_top2_margin")->valuedouble;
        snprintf(path, sizeof path, "%s/%s", dir,
                 cJSON_GetObjectItem(c, "logits_file")->valuestring);
        size_t len = 0;
        cs[i].logits = (float *)tu_read_file(path, &len);
        if (!cs[i].logits || len != (size_t)cs[i].len * (size_t)cs[i].vocab * 4) {
            fprintf(stderr, "%s: missing or wrong size\n", path);
            cJSON_Delete(root);
            tu_cases_free(cs, i + 1);
            return -1;
        }
    }
    cJSON_Delete(root);
    *out = cs;
    return n;
}

void tu_cases_free(tu_case_t *cases, int n)
{
    for (int i = 0; i < n; i++) {
        free(cases[i].prompt);
        free(cases[i].logits);
    }
    free(cases);
}

double tu_rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/tg-engine-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        abort();
    }
    return strdup(tmpl);
}

void tu_rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                tu_rmtree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

int tu_copy_dir(const char *src, const char *dst)
{
    mkdir(dst, 0755);
    DIR *d = opendir(src);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        char sp[4096], dp[4096];
        snprintf(sp, sizeof sp, "%s/%s", src, e->d_name);
        snprintf(dp, sizeof dp, "%s/%s", dst, e->d_name);
        struct stat st;
        if (stat(sp, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        size_t len;
        char *buf = tu_read_file(sp, &len);
        if (!buf || tu_write_file(dp, buf, len) != 0)
            rc = -1;
        free(buf);
    }
    closedir(d);
    return rc;
}
