/* eng_st: safetensors reader (mmap, single file or sharded via the index) and
 * writer. The reader trusts nothing in the file: header length, JSON, dtypes,
 * shapes and offsets are all checked before any tensor byte is touched. */
#include "eng_st.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20)

typedef struct st_map {
    void *base;
    size_t size;
    char *file;
} st_map_t;

struct eng_tset {
    eng_tensor_t *t;
    size_t n, cap;
    st_map_t *maps;
    size_t n_maps;
};

size_t eng_dtype_size(eng_dtype_t dt)
{
    switch (dt) {
    case ENG_DT_F32:
        return 4;
    case ENG_DT_BF16:
    case ENG_DT_F16:
        return 2;
    default:
        return 0;
    }
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void eng_dtype_to_f32(eng_dtype_t dt, const void *src, float *dst, size_t n)
{
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        if (dt == ENG_DT_F32) {
            memcpy(&dst[i], p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if (dt == ENG_DT_BF16) {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&dst[i], &bits, 4);
            } else {
                dst[i] = f16_to_f32(h);
            }
        }
    }
}

uint16_t eng_f32_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((bits >> 16) | 0x40); /* quiet NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

uint16_t eng_f32_to_f16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t absb = bits & 0x7fffffffu;
    if (absb > 0x7f800000u)
        return sign | 0x7e00u; /* NaN */
    if (absb >= 0x477ff000u)   /* rounds to >= 65520: infinity */
        return sign | 0x7c00u;
    if (absb < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (absb < 0x33000000u)
            return sign;
        uint32_t man = (absb & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(absb >> 23); /* 14..24 */
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u)))
            half++;
        return sign | (uint16_t)half;
    }
    uint32_t r = absb - 0x38000000u; /* rebias exponent 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u);
    return sign | (uint16_t)(r >> 13);
}

static eng_dtype_t dtype_parse(const char *s)
{
    if (strcmp(s, "F32") == 0)
        return ENG_DT_F32;
    if (strcmp(s, "BF16") == 0)
        return ENG_DT_BF16;
    if (strcmp(s, "F16") == 0)
        return ENG_DT_F16;
    return ENG_DT_OTHER;
}

static size_t dtype_size_named(const char *s)
{
    static const struct {
        const char *n;
        size_t sz;
    } tab[] = {{"F64", 8}, {"I64", 8}, {"U64", 8}, {"I32", 4},     {"U32", 4},
               {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},      {"BOOL", 1},
               {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(tab[i].n, s) == 0)
            return tab[i].sz;
    return 0;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static void tset_push(eng_tset_t *ts, const eng_tensor_t *t)
{
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? ts->cap * 2 : 256;
        ts->t = realloc(ts->t, ts->cap * sizeof *ts->t);
        if (!ts->t)
            abort();
    }
    ts->t[ts->n++] = *t;
}

/* Maps path read-only. Returns 0 or -1 with err. */
static int map_file(const char *path, const char *display, st_map_t *m, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", display, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", display);
        close(fd);
        return -1;
    }
    if (st.st_size < 8) {
        snprintf(err, errlen, "%s: truncated file (%lld bytes, less than the 8-byte header length)",
                 display, (long long)st.st_size);
        close(fd);
        return -1;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap failed: %s", display, strerror(errno));
        return -1;
    }
    m->base = p;
    m->size = (size_t)st.st_size;
    m->file = xstrdup(display);
    return 0;
}

/* Parses one shard's header and appends its tensors to ts. Tensor names are
 * checked against `index` (the weight_map) when it is not NULL. */
static int parse_shard(eng_tset_t *ts, const st_map_t *m, const cJSON *index, char *err,
                       size_t errlen)
{
    uint64_t hlen = 0;
    const unsigned char *b = m->base;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | b[i];
    if (hlen > ST_MAX_HEADER || hlen > m->size - 8) {
        snprintf(err, errlen,
                 "%s: header length %llu exceeds the file size %zu (truncated or not a "
                 "safetensors file)",
                 m->file, (unsigned long long)hlen, m->size);
        return -1;
    }
    cJSON *hdr = cJSON_ParseWithLength((const char *)b + 8, (size_t)hlen);
    if (!hdr || !cJSON_IsObject(hdr)) {
        snprintf(err, errlen, "%s: header is not a valid JSON object", m->file);
        cJSON_Delete(hdr);
        return -1;
    }
    size_t data_start = 8 + (size_t)hlen, data_size = m->size - data_start;
    int rc = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, hdr)
    {
        const char *name = it->string;
        if (strcmp(name, "__metadata__") == 0)
            continue;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) ||
            !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2) {
            snprintf(err, errlen,
                     "%s: tensor '%s': header entry needs dtype, shape and data_offsets [begin, "
                     "end]",
                     m->file, name);
            goto out;
        }
        eng_tensor_t t;
        memset(&t, 0, sizeof t);
        t.dtype = dtype_parse(dt->valuestring);
        snprintf(t.dtype_name, sizeof t.dtype_name, "%s", dt->valuestring);
        size_t esz = t.dtype == ENG_DT_OTHER ? dtype_size_named(dt->valuestring)
                                             : eng_dtype_size(t.dtype);
        if (esz == 0) {
            snprintf(err, errlen, "%s: tensor '%s': unknown dtype '%s'", m->file, name,
                     dt->valuestring);
            goto out;
        }
        int nd = cJSON_GetArraySize(sh);
        if (nd > ENG_ST_MAX_DIMS) {
            snprintf(err, errlen, "%s: tensor '%s': %d dimensions (at most %d supported)",
                     m->file, name, nd, ENG_ST_MAX_DIMS);
            goto out;
        }
        t.ndim = nd;
        uint64_t numel = 1;
        for (int d = 0; d < nd; d++) {
            const cJSON *v = cJSON_GetArrayItem(sh, d);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e12 ||
                v->valuedouble != (double)(int64_t)v->valuedouble) {
                snprintf(err, errlen, "%s: tensor '%s': bad shape entry %d", m->file, name, d);
                goto out;
            }
            t.shape[d] = (int64_t)v->valuedouble;
            numel *= (uint64_t)t.shape[d];
            if (numel > (1ull << 40)) {
                snprintf(err, errlen, "%s: tensor '%s': shape too large", m->file, name);
                goto out;
            }
        }
        const cJSON *o0 = cJSON_GetArrayItem(off, 0), *o1 = cJSON_GetArrayItem(off, 1);
        if (!cJSON_IsNumber(o0) || !cJSON_IsNumber(o1) || o0->valuedouble < 0 ||
            o1->valuedouble < o0->valuedouble || o1->valuedouble > 1e18) {
            snprintf(err, errlen, "%s: tensor '%s': bad data_offsets", m->file, name);
            goto out;
        }
        uint64_t beg = (uint64_t)o0->valuedouble, end = (uint64_t)o1->valuedouble;
        if (end > data_size) {
            snprintf(err, errlen,
                     "%s: tensor '%s': data ends at byte %llu of the data area but the file "
                     "holds only %zu (truncated file?)",
                     m->file, name, (unsigned long long)end, data_size);
            goto out;
        }
        if (end - beg != numel * esz) {
            snprintf(err, errlen,
                     "%s: tensor '%s': data_offsets span %llu bytes but shape and dtype %s "
                     "need %llu",
                     m->file, name, (unsigned long long)(end - beg), t.dtype_name,
                     (unsigned long long)(numel * esz));
            goto out;
        }
        if (index) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(index, name);
            if (!cJSON_IsString(f) || strcmp(f->valuestring, m->file) != 0) {
                snprintf(err, errlen,
                         "%s: tensor '%s' is not listed for this shard in "
                         "model.safetensors.index.json",
                         m->file, name);
                goto out;
            }
        }
        t.name = xstrdup(name);
        t.data = b + data_start + beg;
        t.nbytes = (size_t)(end - beg);
        t.file = m->file;
        tset_push(ts, &t);
    }
    rc = 0;
out:
    cJSON_Delete(hdr);
    return rc;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const eng_tensor_t *)a)->name, ((const eng_tensor_t *)b)->name);
}

/* Reads a whole small text file (the index). Returns malloc'd text or NULL. */
static char *read_text(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(max + 1);
    if (!buf)
        abort();
    size_t n = fread(buf, 1, max + 1, f);
    fclose(f);
    if (n > max) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int add_map(eng_tset_t *ts, const char *dir, const char *file, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    ts->maps = realloc(ts->maps, (ts->n_maps + 1) * sizeof *ts->maps);
    if (!ts->maps)
        abort();
    if (map_file(path, file, &ts->maps[ts->n_maps], err, errlen))
        return -1;
    ts->n_maps++;
    return 0;
}

/* Opens the shards named by the index's weight_map. */
static int open_sharded(eng_tset_t *ts, const char *dir, const char *index_path, char *err,
                        size_t errlen)
{
    char *text = read_text(index_path, 64u << 20);
    if (!text) {
        snprintf(err, errlen, "model.safetensors.index.json: cannot read (missing or too large)");
        return -1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    int rc = -1;
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!root || !cJSON_IsObject(wm)) {
        snprintf(err, errlen,
                 "model.safetensors.index.json: not valid JSON with a 'weight_map' object");
        goto out;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, wm)
    {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/') || it->valuestring[0] == '.' ||
            it->valuestring[0] == '\0') {
            snprintf(err, errlen,
                     "model.safetensors.index.json: weight_map entry '%s' must name a file in "
                     "the model directory",
                     it->string);
            goto out;
        }
        bool seen = false;
        for (size_t i = 0; i < ts->n_maps && !seen; i++)
            seen = strcmp(ts->maps[i].file, it->valuestring) == 0;
        if (seen)
            continue;
        if (add_map(ts, dir, it->valuestring, err, errlen) ||
            parse_shard(ts, &ts->maps[ts->n_maps - 1], wm, err, errlen))
            goto out;
    }
    qsort(ts->t, ts->n, sizeof *ts->t, cmp_tensor);
    cJSON_ArrayForEach(it, wm)
    {
        if (!eng_tset_find(ts, it->string)) {
            snprintf(err, errlen,
                     "model.safetensors.index.json: tensor '%s' is listed in %s but that shard "
                     "does not hold it",
                     it->string, it->valuestring);
            goto out;
        }
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int eng_tset_open_dir(const char *dir, eng_tset_t **out, char *err, size_t errlen)
{
    eng_tset_t *ts = calloc(1, sizeof *ts);
    if (!ts)
        abort();
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    int rc;
    if (access(path, F_OK) == 0) {
        rc = open_sharded(ts, dir, path, err, errlen);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (access(path, F_OK) != 0) {
            snprintf(err, errlen,
                     "%s: no model.safetensors or model.safetensors.index.json in the model "
                     "directory",
                     dir);
            rc = -1;
        } else {
            rc = add_map(ts, dir, "model.safetensors", err, errlen);
            if (rc == 0)
                rc = parse_shard(ts, &ts->maps[0], NULL, err, errlen);
            if (rc == 0)
                qsort(ts->t, ts->n, sizeof *ts->t, cmp_tensor);
        }
    }
    for (size_t i = 0; rc == 0 && i + 1 < ts->n; i++) {
        if (strcmp(ts->t[i].name, ts->t[i + 1].name) == 0) {
            snprintf(err, errlen, "tensor '%s' appears twice (in %s and %s)", ts->t[i].name,
                     ts->t[i].file, ts->t[i + 1].file);
            rc = -1;
        }
    }
    if (rc != 0) {
        eng_tset_free(ts);
        return -1;
    }
    *out = ts;
    return 0;
}

size_t eng_tset_count(const eng_tset_t *ts)
{
    return ts->n;
}

eng_tensor_t *eng_tset_at(eng_tset_t *ts, size_t i)
{
    return &ts->t[i];
}

eng_tensor_t *eng_tset_find(eng_tset_t *ts, const char *name)
{
    size_t lo = 0, hi = ts->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(ts->t[mid].name, name);
        if (c == 0)
            return &ts->t[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void eng_tset_free(eng_tset_t *ts)
{
    if (!ts)
        return;
    for (size_t i = 0; i < ts->n; i++)
        free(ts->t[i].name);
    free(ts->t);
    for (size_t i = 0; i < ts->n_maps; i++) {
        munmap(ts->maps[i].base, ts->maps[i].size);
        free(ts->maps[i].file);
    }
    free(ts->maps);
    free(ts);
}

/* ---- writer ---- */

static size_t item_numel(const eng_st_item_t *it)
{
    size_t n = 1;
    for (int d = 0; d < it->ndim; d++)
        n *= (size_t)it->shape[d];
    return n;
}

/* Writes items[lo, hi) into one file at path. */
static int write_file(const char *path, const eng_st_item_t *items, size_t lo, size_t hi,
                      eng_dtype_t dtype, char *err, size_t errlen)
{
    size_t esz = eng_dtype_size(dtype);
    cJSON *hdr = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(hdr, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t off = 0;
    for (size_t i = lo; i < hi; i++) {
        cJSON *e = cJSON_AddObjectToObject(hdr, items[i].name);
        cJSON_AddStringToObject(e, "dtype",
                                dtype == ENG_DT_F32 ? "F32" : (dtype == ENG_DT_BF16 ? "BF16" : "F16"));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < items[i].ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)items[i].shape[d]));
        size_t nb = item_numel(&items[i]) * esz;
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
    }
    char *text = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    if (!text)
        abort();
    size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        free(text);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(text, 1, tl, f);
    for (size_t i = tl; i < padded; i++)
        fputc(' ', f);
    free(text);
    uint16_t buf[4096];
    for (size_t i = lo; i < hi; i++) {
        size_t n = item_numel(&items[i]);
        if (dtype == ENG_DT_F32) {
            fwrite(items[i].data, 4, n, f);
            continue;
        }
        for (size_t j = 0; j < n; j += 4096) {
            size_t k = n - j < 4096 ? n - j : 4096;
            for (size_t q = 0; q < k; q++)
                buf[q] = dtype == ENG_DT_BF16 ? eng_f32_to_bf16(items[i].data[j + q])
                                              : eng_f32_to_f16(items[i].data[j + q]);
            fwrite(buf, 2, k, f);
        }
    }
    if (ferror(f) | fclose(f)) {
        snprintf(err, errlen, "%s: write failed", path);
        return -1;
    }
    return 0;
}

int eng_st_write(const char *dir, const eng_st_item_t *items, size_t n, eng_dtype_t dtype,
                 int n_shards, char *err, size_t errlen)
{
    if (dtype == ENG_DT_OTHER) {
        snprintf(err, errlen, "writer supports float32, bfloat16 and float16 only");
        return -1;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    if (n_shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        return write_file(path, items, 0, n, dtype, err, errlen);
    }
    if ((size_t)n_shards > n)
        n_shards = (int)n;
    /* Split by bytes: shard s gets the items whose cumulative end falls in its share. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += item_numel(&items[i]);
    cJSON *idx = cJSON_CreateObject();
    cJSON *md = cJSON_AddObjectToObject(idx, "metadata");
    cJSON_AddNumberToObject(md, "total_size", (double)(total * eng_dtype_size(dtype)));
    cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
    size_t lo = 0, acc = 0;
    int rc = 0;
    for (int s = 0; s < n_shards && rc == 0; s++) {
        size_t hi = lo;
        size_t goal = total / (size_t)n_shards * (size_t)(s + 1);
        while (hi < n && (s == n_shards - 1 || acc < goal || hi == lo) &&
               n - hi > (size_t)(n_shards - 1 - s)) {
            acc += item_numel(&items[hi]);
            hi++;
        }
        if (s == n_shards - 1)
            hi = n;
        char fname[64];
        snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        rc = write_file(path, items, lo, hi, dtype, err, errlen);
        for (size_t i = lo; i < hi; i++)
            cJSON_AddStringToObject(wm, items[i].name, fname);
        lo = hi;
    }
    if (rc == 0) {
        char *text = cJSON_Print(idx);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        FILE *f = fopen(path, "wb");
        bool ok = f && fputs(text, f) >= 0;
        if (f && fclose(f) != 0)
            ok = false;
        if (!ok) {
            snprintf(err, errlen, "%s: cannot write", path);
            rc = -1;
        }
        free(text);
    }
    cJSON_Delete(idx);
    return rc;
}
