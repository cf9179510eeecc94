/* Bad model directories: each is built in a temp folder from a fixture model
 * and must give a clear error naming the tensor, file or field — never a
 * crash. Also: tensors of multi-token-prediction layers are ignored. */
#include "eng_model.h"
#include "eng_st.h"
#include "eng_test_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *g_fixture; /* fixtures/engine-golden/v3_tiny */
static char *g_tmp;
static int g_case;

/* A fresh copy of the fixture model; returns its path (static buffer). */
static const char *fresh_copy(void)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s/case%d", g_tmp, g_case++);
    if (tu_copy_dir(g_fixture, dir) != 0) {
        fprintf(stderr, "cannot copy %s\n", g_fixture);
        abort();
    }
    return dir;
}

/* Loading dir must fail with every needle in the message. */
static void expect_error(const char *what, const char *dir, const char *n1, const char *n2)
{
    char err[1024] = "";
    eng_model_t *m = eng_model_load(dir, err, sizeof err);
    bool ok = !m && strstr(err, n1) && (!n2 || strstr(err, n2));
    printf("%-28s %s: %s\n", what, ok ? "ok  " : "FAIL", m ? "(loaded!)" : err);
    if (!ok)
        eng_test_failures++;
    eng_model_free(m);
}

/* The fixture's tensors as writer items (data owned by m). */
static eng_st_item_t *items_of(eng_model_t *m, size_t *n);

typedef struct {
    eng_st_item_t *v;
    size_t n;
} items_t;

static int collect(void *ctx, const char *name, int ndim, const int64_t *shape, eng_tkind_t kind,
                   const float **slot, char *err, size_t errlen)
{
    (void)kind, (void)err, (void)errlen;
    items_t *it = ctx;
    it->v = realloc(it->v, (it->n + 1) * sizeof *it->v);
    eng_st_item_t *e = &it->v[it->n++];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->data = *slot;
    return 0;
}

static eng_st_item_t *items_of(eng_model_t *m, size_t *n)
{
    items_t it = {0};
    char err[64];
    eng_model_for_each_tensor(m, collect, &it, err, sizeof err);
    *n = it.n;
    return it.v;
}

static void items_free(eng_st_item_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)v[i].name);
    free(v);
}

/* Rewrites path's safetensors header through edit(), keeping the data bytes. */
static void edit_header(const char *path, void (*edit)(cJSON *hdr))
{
    size_t len;
    unsigned char *buf = (unsigned char *)tu_read_file(path, &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | buf[i];
    cJSON *hdr = cJSON_ParseWithLength((const char *)buf + 8, hl);
    edit(hdr);
    char *text = cJSON_PrintUnformatted(hdr);
    size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 8; i++)
        fputc((int)((padded >> (8 * i)) & 0xff), f);
    fwrite(text, 1, tl, f);
    for (size_t i = tl; i < padded; i++)
        fputc(' ', f);
    fwrite(buf + 8 + hl, 1, len - 8 - hl, f);
    fclose(f);
    free(text);
    cJSON_Delete(hdr);
    free(buf);
}

static const char *EDIT_TENSOR = "model.layers.0.self_attn.o_proj.weight";

static void edit_dtype_i32(cJSON *hdr)
{
    cJSON *t = cJSON_GetObjectItem(hdr, EDIT_TENSOR);
    cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("I32"));
}

static void edit_dtype_unknown(cJSON *hdr)
{
    cJSON *t = cJSON_GetObjectItem(hdr, EDIT_TENSOR);
    cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("Q4_K"));
}

static void edit_shape_size(cJSON *hdr)
{
    cJSON *t = cJSON_GetObjectItem(hdr, EDIT_TENSOR);
    int dims[2] = {64, 65};
    cJSON_ReplaceItemInObject(t, "shape", cJSON_CreateIntArray(dims, 2));
}

static void edit_offsets_past_end(cJSON *hdr)
{
    cJSON *t = cJSON_GetObjectItem(hdr, EDIT_TENSOR);
    double o[2] = {1e7, 1e7 + 16384};
    cJSON_ReplaceItemInObject(t, "data_offsets", cJSON_CreateDoubleArray(o, 2));
}

static void edit_no_offsets(cJSON *hdr)
{
    cJSON *t = cJSON_GetObjectItem(hdr, EDIT_TENSOR);
    cJSON_DeleteItemFromObject(t, "data_offsets");
}

/* Writes the model's items (optionally altered) as dir's model.safetensors. */
static void write_items(const char *dir, eng_st_item_t *v, size_t n, int shards)
{
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    if (eng_st_write(dir, v, n, ENG_DT_F32, shards, err, sizeof err) != 0) {
        fprintf(stderr, "write: %s\n", err);
        abort();
    }
}

static void edit_file_bytes(const char *path, long off, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, off, SEEK_SET);
    fwrite(bytes, 1, n, f);
    fclose(f);
}

/* Rewrites dir's index.json through a text substitution. */
static void edit_text(const char *path, const char *from, const char *to)
{
    char *t = tu_read_file(path, NULL);
    char *at = strstr(t, from);
    if (!at) {
        fprintf(stderr, "test bug: '%s' not in %s\n", from, path);
        abort();
    }
    size_t n = strlen(t) + strlen(to) + 1;
    char *o = malloc(n);
    snprintf(o, n, "%.*s%s%s", (int)(at - t), t, to, at + strlen(from));
    tu_write_file(path, o, strlen(o));
    free(o);
    free(t);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_engine_load_errors FIXTURE_DIR\n");
        return 1;
    }
    char fixture[4096], err[1024], path[4096];
    snprintf(fixture, sizeof fixture, "%s/v3_tiny", argv[1]);
    g_fixture = fixture;
    setvbuf(stdout, NULL, _IONBF, 0);
    g_tmp = tu_mkdtemp();
    eng_model_t *m = eng_model_load(fixture, err, sizeof err);
    if (!m) {
        fprintf(stderr, "FAIL: fixture does not load: %s\n", err);
        return 1;
    }
    size_t n;
    eng_st_item_t *items = items_of(m, &n);
    const char *d;

    /* missing tensor */
    d = fresh_copy();
    {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(items[i].name, "model.layers.1.mlp.gate.e_score_correction_bias") != 0)
                items[k++] = items[i];
            else
                free((char *)items[i].name);
        write_items(d, items, k, 1);
        items_free(items, k);
        items = items_of(m, &n);
    }
    expect_error("missing tensor", d,
                 "missing tensor 'model.layers.1.mlp.gate.e_score_correction_bias'", NULL);

    /* extra tensor */
    d = fresh_copy();
    {
        eng_st_item_t *v = calloc(n + 1, sizeof *v);
        memcpy(v, items, n * sizeof *v);
        v[n] = items[0];
        v[n].name = "model.layers.0.mlp.router.weight";
        write_items(d, v, n + 1, 1);
        free(v);
    }
    expect_error("extra tensor", d, "unexpected tensor 'model.layers.0.mlp.router.weight'",
                 "model.safetensors");

    /* multi-token-prediction layer (layer 3 of 3, num_nextn_predict_layers 1): ignored */
    d = fresh_copy();
    {
        eng_st_item_t *v = calloc(n + 1, sizeof *v);
        memcpy(v, items, n * sizeof *v);
        v[n] = items[0];
        v[n].name = "model.layers.3.embed_tokens.weight";
        write_items(d, v, n + 1, 1);
        free(v);
        eng_model_t *mm = eng_model_load(d, err, sizeof err);
        CHECK(mm != NULL);
        printf("%-28s %s\n", "MTP tensors ignored", mm ? "ok" : err);
        eng_model_free(mm);
    }

    /* wrong shape (same byte count, transposed) */
    d = fresh_copy();
    for (size_t i = 0; i < n; i++)
        if (!strcmp(items[i].name, "model.layers.2.self_attn.q_b_proj.weight")) {
            items[i].shape[0] = 32;
            items[i].shape[1] = 96;
        }
    write_items(d, items, n, 1);
    items_free(items, n);
    items = items_of(m, &n);
    expect_error("wrong shape", d, "'model.layers.2.self_attn.q_b_proj.weight'",
                 "shape [32, 96] but the config implies [96, 32]");

    /* wrong / unknown dtype, size disagreeing with shape, offsets past the end */
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    edit_header(path, edit_dtype_i32);
    expect_error("unsupported dtype", d, EDIT_TENSOR, "dtype I32");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    edit_header(path, edit_dtype_unknown);
    expect_error("unknown dtype", d, EDIT_TENSOR, "unknown dtype 'Q4_K'");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    edit_header(path, edit_shape_size);
    expect_error("shape vs data size", d, EDIT_TENSOR, "data_offsets span");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    edit_header(path, edit_offsets_past_end);
    expect_error("offsets past the end", d, EDIT_TENSOR, "truncated");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    edit_header(path, edit_no_offsets);
    expect_error("entry without offsets", d, EDIT_TENSOR, "data_offsets");

    /* truncated files */
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    size_t flen;
    free(tu_read_file(path, &flen));
    CHECK(truncate(path, (off_t)flen - 1000) == 0);
    expect_error("truncated data", d, "truncated", "model.safetensors");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    CHECK(truncate(path, 5) == 0);
    expect_error("truncated to 5 bytes", d, "model.safetensors", "truncated file");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    CHECK(truncate(path, 100) == 0);
    expect_error("truncated header", d, "model.safetensors", "header length");

    /* bad header JSON, absurd header length */
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    edit_file_bytes(path, 8, "{\"x\":[[[", 8);
    expect_error("bad header JSON", d, "model.safetensors", "header is not a valid JSON");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    edit_file_bytes(path, 0, "\xff\xff\xff\xff\xff\xff\x00\x00", 8);
    expect_error("header length too big", d, "model.safetensors", "header length");

    /* config problems */
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/config.json", d);
    edit_text(path, "\"attention_bias\": false", "\"attention_bias\": true");
    expect_error("unsupported option", d, "attention_bias", NULL);
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/config.json", d);
    edit_text(path, "\"kv_lora_rank\": 16", "\"kv_lora_rank\": 8");
    expect_error("config/shape mismatch", d, "kv_a_proj_with_mqa.weight", "[16, 64]");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/config.json", d);
    edit_text(path, "\"hidden_size\": 64,", "\"hidden_size\": 64");
    expect_error("bad config JSON", d, "config.json", "not a valid JSON");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/config.json", d);
    unlink(path);
    expect_error("no config.json", d, "config.json", "cannot open");
    d = fresh_copy();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    unlink(path);
    expect_error("no weights", d, "no model.safetensors", NULL);

    /* sharded checkpoints */
    d = fresh_copy();
    write_items(d, items, n, 3);
    {
        eng_model_t *mm = eng_model_load(d, err, sizeof err);
        CHECK(mm != NULL);
        printf("%-28s %s\n", "sharded loads", mm ? "ok" : err);
        eng_model_free(mm);
    }
    snprintf(path, sizeof path, "%s/model-00002-of-00003.safetensors", d);
    unlink(path);
    expect_error("missing shard", d, "model-00002-of-00003.safetensors", "cannot open");
    d = fresh_copy();
    write_items(d, items, n, 3);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", d);
    edit_text(path, "\"model.embed_tokens.weight\":\t\"model-00001-of-00003.safetensors\",", "");
    expect_error("tensor not in index", d, "'model.embed_tokens.weight'", "not listed");
    d = fresh_copy();
    write_items(d, items, n, 3);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", d);
    edit_text(path, "\"model.norm.weight\":\t\"model-00003-of-00003.safetensors\"",
              "\"model.norm.weight\":\t\"model-00003-of-00003.safetensors\",\"model.extra\":\t"
              "\"model-00003-of-00003.safetensors\"");
    expect_error("index entry not in shard", d, "'model.extra'", "does not hold it");
    d = fresh_copy();
    write_items(d, items, n, 3);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", d);
    edit_text(path, "\"weight_map\"", "\"weights\"");
    expect_error("index without weight_map", d, "model.safetensors.index.json", "weight_map");
    d = fresh_copy();
    write_items(d, items, n, 3);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", d);
    edit_text(path, "\"model-00001-of-00003.safetensors\"", "\"../model.safetensors\"");
    expect_error("index escapes the dir", d, "must name a file in the model directory", NULL);

    items_free(items, n);
    eng_model_free(m);
    tu_rmtree(g_tmp);
    free(g_tmp);
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
