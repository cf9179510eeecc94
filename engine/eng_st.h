/* eng_st: safetensors checkpoints read with mmap — a single model.safetensors
 * or shards listed by model.safetensors.index.json — as one set of named
 * tensors; and a writer for such checkpoints (float32 or bfloat16, optionally
 * sharded). */
#ifndef ENG_ST_H
#define ENG_ST_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ENG_DT_F32 = 0, ENG_DT_BF16, ENG_DT_F16, ENG_DT_OTHER } eng_dtype_t;

#define ENG_ST_MAX_DIMS 4

typedef struct eng_tensor {
    char *name;
    eng_dtype_t dtype;
    char dtype_name[16]; /* as written in the header, e.g. "F8_E4M3" */
    int ndim;
    int64_t shape[ENG_ST_MAX_DIMS];
    const void *data; /* inside a read-only mapping; NULL for ENG_DT_OTHER */
    size_t nbytes;
    const char *file; /* the shard's file name (owned by the set) */
    int used;         /* set by whoever binds the tensor */
} eng_tensor_t;

typedef struct eng_tset eng_tset_t;

/* Opens the checkpoint in dir: model.safetensors.index.json when present
 * (every listed shard is mapped; a tensor in a shard but not in the index, or
 * listed but absent, is an error), else model.safetensors. Validates every
 * header (JSON, dtypes, shapes, offsets within the file, sizes agree with
 * shapes). Returns 0 and *out (free with eng_tset_free) or -1 with err. */
int eng_tset_open_dir(const char *dir, eng_tset_t **out, char *err, size_t errlen);

/* Number of tensors and the i-th one (sorted by name). */
size_t eng_tset_count(const eng_tset_t *ts);
eng_tensor_t *eng_tset_at(eng_tset_t *ts, size_t i);

/* The tensor with this name, or NULL. */
eng_tensor_t *eng_tset_find(eng_tset_t *ts, const char *name);

void eng_tset_free(eng_tset_t *ts);

/* Element size in bytes of a known dtype (0 for ENG_DT_OTHER). */
size_t eng_dtype_size(eng_dtype_t dt);

/* Converts n elements of src (dtype dt) to float32 in dst. */
void eng_dtype_to_f32(eng_dtype_t dt, const void *src, float *dst, size_t n);

/* One tensor to write: float32 data converted to `dtype` on the way out. */
typedef struct eng_st_item {
    const char *name;
    int ndim;
    int64_t shape[ENG_ST_MAX_DIMS];
    const float *data;
} eng_st_item_t;

/* Writes items into dir as a safetensors checkpoint in dtype (F32, BF16 or
 * F16; both 16-bit formats round to nearest even). n_shards <= 1 writes model.safetensors;
 * more writes model-0000i-of-0000n.safetensors plus
 * model.safetensors.index.json. Returns 0 or -1 with err. */
int eng_st_write(const char *dir, const eng_st_item_t *items, size_t n, eng_dtype_t dtype,
                 int n_shards, char *err, size_t errlen);

/* float32 -> bfloat16 bits, round to nearest even (NaN kept a NaN). */
uint16_t eng_f32_to_bf16(float f);

/* float32 -> IEEE half bits, round to nearest even, overflow to infinity. */
uint16_t eng_f32_to_f16(float f);

#endif
