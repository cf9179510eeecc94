/* tok: the Tollgate tokenizer. Loads HuggingFace tokenizer.json files of the
 * byte-level BPE family (DeepSeek V3 and relatives), encodes text to token ids
 * exactly as HF tokenizers does, decodes ids, hashes 64-token prefix blocks and
 * renders the DeepSeek chat template. A loaded tokenizer is immutable: any
 * number of threads may use one at the same time. */
#ifndef TOK_H
#define TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct tok_tokenizer tok_tokenizer_t;

/* A growable array of token ids. Zero-initialise; release with tok_ids_free. */
typedef struct tok_ids {
    uint32_t *ids;
    size_t len, cap;
} tok_ids_t;

/* A growable byte buffer (always NUL-terminated after a successful call,
 * the NUL not counted in len). Zero-initialise; release with tok_buf_free. */
typedef struct tok_buf {
    char *data;
    size_t len, cap;
} tok_buf_t;

void tok_ids_free(tok_ids_t *ids);
void tok_buf_free(tok_buf_t *buf);
/* Appends bytes (or a C string) to buf; aborts only when out of memory. */
void tok_buf_append(tok_buf_t *buf, const void *data, size_t len);
void tok_buf_appends(tok_buf_t *buf, const char *s);

/* Loads a tokenizer.json file. Returns a new tokenizer (free with tok_free),
 * or NULL with a message in err naming the file and the offending field. */
tok_tokenizer_t *tok_load_file(const char *path, char *err, size_t errlen);

/* Same from JSON text in memory (json[0..len), need not be NUL-terminated). */
tok_tokenizer_t *tok_load_json(const char *json, size_t len, char *err, size_t errlen);

void tok_free(tok_tokenizer_t *tok);

/* Version of the Unicode Character Database the character classes were
 * generated from at build time (e.g. "15.0.0"). */
const char *tok_unicode_version(void);

/* Number of ids the tokenizer knows (largest id + 1). */
uint32_t tok_vocab_size(const tok_tokenizer_t *tok);

/* Id of an added/special token given by its text, or -1 if there is none. */
int64_t tok_added_token_id(const tok_tokenizer_t *tok, const char *content);

/* Encodes text[0..len) and appends the ids to out. Added and special tokens
 * written as text (e.g. "<｜User｜>") become their ids, as HF does. Bytes that
 * are not valid UTF-8 are read as U+FFFD (maximal subparts), the way text
 * reaches HF tokenizers through any UTF-8 decoder. No BOS is added. */
void tok_encode(const tok_tokenizer_t *tok, const char *text, size_t len, tok_ids_t *out);

/* Returns how many ids tok_encode would produce, without storing them. */
size_t tok_count(const tok_tokenizer_t *tok, const char *text, size_t len);

/* Appends the bytes of ids[0..n) to out (raw bytes: a sequence cut inside a
 * character yields partial UTF-8, which streaming callers may hold back).
 * Returns 0, or -1 with err set when an id is out of range. */
int tok_decode(const tok_tokenizer_t *tok, const uint32_t *ids, size_t n, tok_buf_t *out, char *err,
               size_t errlen);

/* As tok_decode, then replaces invalid UTF-8 with U+FFFD as HF's decode does. */
int tok_decode_text(const tok_tokenizer_t *tok, const uint32_t *ids, size_t n, tok_buf_t *out,
                    char *err, size_t errlen);

/* Block size of tok_block_hashes. */
#define TOK_BLOCK_TOKENS 64

/* Chained hashes of the full 64-token blocks of ids[0..n): writes n / 64
 * hashes (at most max) to out and returns how many were written. Block k's
 * hash is XXH64 of the 64 ids as little-endian uint32 (256 bytes) seeded with
 * block k-1's hash (seed 0 for block 0), so it covers every token before it.
 * A trailing partial block is not hashed. */
size_t tok_block_hashes(const uint32_t *ids, size_t n, uint64_t *out, size_t max);

/* XXH64 of data[0..len) with seed (the published xxHash 64-bit algorithm). */
uint64_t tok_xxh64(const void *data, size_t len, uint64_t seed);

/* ---- chat template ---- */

typedef struct tok_chat tok_chat_t;

/* Loads tokenizer_config.json: checks that its chat_template is one this
 * module renders natively (the DeepSeek V3 family) and reads bos_token.
 * Returns NULL with err set otherwise. Free with tok_chat_free. */
tok_chat_t *tok_chat_load_file(const char *path, char *err, size_t errlen);
tok_chat_t *tok_chat_load_json(const char *json, size_t len, char *err, size_t errlen);
void tok_chat_free(tok_chat_t *chat);

/* Loads PATH the way every Tollgate binary takes a --tokenizer/tokenizer =
 * setting: a tokenizer.json file, or a folder holding tokenizer.json and,
 * optionally, tokenizer_config.json with the chat template. *chat is NULL
 * when the folder has no tokenizer_config.json (or PATH is a file). Returns
 * 0, or -1 with err naming the file at fault (nothing is left allocated). */
int tok_load_path(const char *path, tok_tokenizer_t **tok, tok_chat_t **chat, char *err,
                  size_t errlen);

/* Renders an OpenAI-shaped messages array (system, user, assistant with
 * content or tool_calls, tool) exactly as the published Jinja template does,
 * appending the text to out. Returns 0, or -1 with err set where the template
 * itself would fail (a missing or non-string field it reads). */
int tok_chat_render(const tok_chat_t *chat, const cJSON *messages, bool add_generation_prompt,
                    tok_buf_t *out, char *err, size_t errlen);

#endif
