/* tokenizer.json loading on a tiny hand-built byte-level BPE: both merge
 * forms ("a b" and ["a", "b"]) give the same ids, and each unsupported or
 * malformed field gives a clear error naming it — never a crash, also not for
 * every truncation of a valid file. tok_load_path: a file, a folder with or
 * without a chat template, and each way it can be wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tok.h"
#include "tok_internal.h"

static int failures;

/* Builds a small tokenizer.json: 256 byte symbols (ids 0..255), "ab" = 256,
 * "abc" = 257, an added special token "<|x|>" = 258. Pieces named by the
 * arguments replace the defaults. */
static void build(tok_buf_t *b, const char *merges, const char *normalizer, const char *pretok,
                  const char *decoder, const char *model_extra, const char *added)
{
    b->len = 0;
    tok_buf_appends(b,
                    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":");
    tok_buf_appends(b, added
                           ? added
                           : "[{\"id\":258,\"content\":\"<|x|>\",\"single_word\":false,\"lstrip\":"
                             "false,\"rstrip\":false,\"normalized\":false,\"special\":true}]");
    tok_buf_appends(b, ",\"normalizer\":");
    tok_buf_appends(b, normalizer ? normalizer : "null");
    tok_buf_appends(b, ",\"pre_tokenizer\":");
    tok_buf_appends(b, pretok ? pretok
                              : "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                                "\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},\"behavior\":"
                                "\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
                                "\"add_prefix_space\":false,\"use_regex\":false}]}");
    tok_buf_appends(b, ",\"post_processor\":null,\"decoder\":");
    tok_buf_appends(b, decoder ? decoder : "{\"type\":\"ByteLevel\"}");
    /* Extra model fields come first: cJSON returns the first of duplicate keys. */
    tok_buf_appends(b, ",\"model\":{\"type\":\"BPE\"");
    tok_buf_appends(b, model_extra ? model_extra : "");
    tok_buf_appends(b, ",\"dropout\":null,\"unk_token\":null,\"byte_fallback\":false");
    tok_buf_appends(b, ",\"vocab\":{");
    for (int i = 0; i < 256; i++) {
        uint32_t c = tok_bytelevel_char((unsigned char)i);
        char s[16];
        if (c == '"' || c == '\\')
            snprintf(s, sizeof s, "\"\\%c\":%d,", (char)c, i);
        else
            snprintf(s, sizeof s, "\"\\u%04x\":%d,", c, i);
        tok_buf_appends(b, s);
    }
    tok_buf_appends(b, "\"ab\":256,\"abc\":257},\"merges\":");
    tok_buf_appends(b, merges ? merges : "[\"a b\",\"ab c\"]");
    tok_buf_appends(b, "}}");
}

static void expect_ok_ids(const tok_buf_t *b, const char *text, const uint32_t *want, size_t n,
                          const char *what)
{
    char err[256];
    tok_tokenizer_t *t = tok_load_json(b->data, b->len, err, sizeof err);
    if (!t) {
        failures++;
        fprintf(stderr, "FAIL: %s: %s\n", what, err);
        return;
    }
    tok_ids_t ids = {0};
    tok_encode(t, text, strlen(text), &ids);
    if (ids.len != n || memcmp(ids.ids, want, n * sizeof *want) != 0) {
        failures++;
        fprintf(stderr, "FAIL: %s: wrong ids (%zu)\n", what, ids.len);
    }
    tok_ids_free(&ids);
    tok_free(t);
}

static void expect_err(const tok_buf_t *b, const char *needle, const char *what)
{
    char err[256] = "";
    tok_tokenizer_t *t = tok_load_json(b->data, b->len, err, sizeof err);
    if (t || !strstr(err, needle)) {
        failures++;
        fprintf(stderr, "FAIL: %s: expected an error with \"%s\", got \"%s\"\n", what, needle, err);
    } else {
        printf("%-28s -> %s\n", what, err);
    }
    tok_free(t);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        failures++;
        fprintf(stderr, "FAIL: cannot write %s\n", path);
    }
    if (f)
        fclose(f);
}

/* One tok_load_path case: rc and whether a chat template came, or the error
 * text expected. */
static void expect_path(const char *path, int want_rc, bool want_chat, const char *needle)
{
    tok_tokenizer_t *tok = (tok_tokenizer_t *)1;
    tok_chat_t *chat = (tok_chat_t *)1;
    char err[512] = "";
    int rc = tok_load_path(path, &tok, &chat, err, sizeof err);
    bool ok = rc == want_rc && (rc == 0 ? tok != NULL && (chat != NULL) == want_chat
                                        : tok == NULL && chat == NULL && strstr(err, needle));
    if (!ok) {
        failures++;
        fprintf(stderr, "FAIL: tok_load_path(%s): rc %d, err \"%s\"\n", path, rc, err);
    }
    if (rc == 0) {
        tok_free(tok);
        tok_chat_free(chat);
    }
}

/* tok_load_path on a folder made here around the valid tokenizer.json in b. */
static void check_load_path(const tok_buf_t *b)
{
    char dir[] = "/tmp/tok-path-XXXXXX", file[64], cfg[64];
    if (!mkdtemp(dir)) {
        failures++;
        return;
    }
    snprintf(file, sizeof file, "%s/tokenizer.json", dir);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    expect_path("/nonexistent/tok", -1, false, "no such file or folder");
    expect_path(dir, -1, false, "tokenizer.json"); /* a folder without tokenizer.json */
    write_file(file, b->data, b->len);
    expect_path(dir, 0, false, NULL);  /* no tokenizer_config.json: no chat template */
    expect_path(file, 0, false, NULL); /* the file itself */
    const char *odd = "{\"chat_template\": \"{{ unknown }}\"}"; /* not DeepSeek's */
    write_file(cfg, odd, strlen(odd));
    expect_path(dir, -1, false, "chat template");
    write_file(cfg, "{", 1);
    expect_path(dir, -1, false, "chat template");
    write_file(file, "{", 1);
    expect_path(dir, -1, false, "tokenizer");
    unlink(cfg);
    unlink(file);
    rmdir(dir);
}

int main(void)
{
    tok_buf_t b = {0};
    /* "abc<|x|>ab1": abc, the added token, ab, and the byte '1' (byte ids = bytes). */
    const uint32_t want[4] = {257, 258, 256, '1'};
    build(&b, NULL, NULL, NULL, NULL, NULL, NULL);
    expect_ok_ids(&b, "abc<|x|>ab1", want, 4, "string merges");
    build(&b, "[[\"a\",\"b\"],[\"ab\",\"c\"]]", NULL, NULL, NULL, NULL, NULL);
    expect_ok_ids(&b, "abc<|x|>ab1", want, 4, "array merges");
    build(&b, NULL, "{\"type\":\"Sequence\",\"normalizers\":[]}", NULL, NULL,
          ",\"ignore_merges\":true", NULL);
    expect_ok_ids(&b, "abc<|x|>ab1", want, 4, "ignore_merges + empty normalizer");
    check_load_path(&b);

    /* Every truncation of a valid file fails cleanly. */
    build(&b, NULL, NULL, NULL, NULL, NULL, NULL);
    for (size_t cut = 0; cut < b.len; cut += 7) {
        char err[256] = "";
        tok_tokenizer_t *t = tok_load_json(b.data, cut, err, sizeof err);
        if (t || !err[0]) {
            failures++;
            fprintf(stderr, "FAIL: truncation at %zu accepted\n", cut);
        }
        tok_free(t);
    }

    build(&b, "[\"a\"]", NULL, NULL, NULL, NULL, NULL);
    expect_err(&b, "model.merges[0]: expected", "merge without space");
    build(&b, "[\"a q\"]", NULL, NULL, NULL, NULL, NULL);
    expect_err(&b, "model.merges[0]: \"a\" + \"q\" or their join is not in model.vocab",
               "merge result not in vocab");
    build(&b, "[[\"a\"]]", NULL, NULL, NULL, NULL, NULL);
    expect_err(&b, "model.merges[0]: expected", "merge array of one");
    build(&b, "{}", NULL, NULL, NULL, NULL, NULL);
    expect_err(&b, "model.merges: missing or not an array", "merges object");
    build(&b, NULL, "{\"type\":\"NFKC\"}", NULL, NULL, NULL, NULL);
    expect_err(&b, "normalizer: normalizer type 'NFKC' is not supported", "NFKC normalizer");
    /* NFC: "e" + U+0301 composes to U+00E9, which has no merges here: its two
     * UTF-8 bytes (0xC3 0xA9) are two byte tokens. */
    build(&b, NULL, "{\"type\":\"NFC\"}", NULL, NULL, NULL, NULL);
    const uint32_t nfc_want[] = {0xc3, 0xa9};
    expect_ok_ids(&b, "e\xcc\x81", nfc_want, 2, "NFC normalizer");
    build(&b, NULL, "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Lowercase\"}]}", NULL,
          NULL, NULL, NULL);
    expect_err(&b, "normalizer.normalizers[0]: normalizer type 'Lowercase'", "nested normalizer");
    build(&b, NULL, NULL, "{\"type\":\"Whitespace\"}", NULL, NULL, NULL);
    expect_err(&b, "pre_tokenizer: type 'Whitespace' is not supported", "Whitespace pretok");
    build(&b, NULL, NULL,
          "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
          "\"\\\\w+\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\"}]}",
          NULL, NULL, NULL);
    expect_err(&b, "pretokenizers[0].pattern.Regex: no native implementation", "unknown regex");
    build(&b, NULL, NULL,
          "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"String\":"
          "\" \"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\"}]}",
          NULL, NULL, NULL);
    expect_err(&b, "pretokenizers[0].pattern: only {\"Regex\"", "string pattern");
    build(&b, NULL, NULL,
          "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
          "\"\\\\p{N}{1,3}\"},\"behavior\":\"Removed\"},{\"type\":\"ByteLevel\"}]}",
          NULL, NULL, NULL);
    expect_err(&b, "pretokenizers[0].behavior: only \"Isolated\"", "Removed behavior");
    build(&b, NULL, NULL, "{\"type\":\"ByteLevel\",\"add_prefix_space\":true}", NULL, NULL, NULL);
    expect_err(&b, "pre_tokenizer.add_prefix_space: true", "ByteLevel add_prefix_space");
    build(&b, NULL, NULL, "{\"type\":\"ByteLevel\",\"use_regex\":1}", NULL, NULL, NULL);
    expect_err(&b, "pre_tokenizer.use_regex: expected true or false", "ByteLevel use_regex 1");
    /* use_regex absent = true (HF's default): the GPT-2 split, "abc" "'s" ... */
    build(&b, NULL, NULL, "{\"type\":\"ByteLevel\",\"add_prefix_space\":false}", NULL, NULL, NULL);
    const uint32_t gpt2_want[] = {257, '\'', 's', ' ', 256};
    expect_ok_ids(&b, "abc's ab", gpt2_want, 5, "ByteLevel with the GPT-2 split");
    build(&b, NULL, NULL, "{\"type\":\"Sequence\",\"pretokenizers\":[]}", NULL, NULL, NULL);
    expect_err(&b, "no ByteLevel step", "no ByteLevel");
    build(&b, NULL, NULL, "null", NULL, NULL, NULL);
    expect_err(&b, "pre_tokenizer: missing", "null pretok");
    b.len = 0;
    build(&b, NULL, NULL, NULL, NULL, NULL, NULL);
    {
        cJSON *root = cJSON_Parse(b.data);
        cJSON_ReplaceItemInObject(
            root, "post_processor",
            cJSON_Parse("{\"type\":\"Sequence\",\"processors\":[{\"type\":"
                        "\"ByteLevel\"},{\"type\":\"TemplateProcessing\"}]}"));
        char *j = cJSON_PrintUnformatted(root);
        b.len = 0;
        tok_buf_appends(&b, j);
        expect_ok_ids(&b, "abc<|x|>ab1", want, 4, "post-processors (not applied)");
        cJSON_ReplaceItemInObject(root, "post_processor", cJSON_Parse("{\"type\":\"Foo\"}"));
        free(j);
        j = cJSON_PrintUnformatted(root);
        b.len = 0;
        tok_buf_appends(&b, j);
        expect_err(&b, "post_processor: type 'Foo' is not supported", "unknown post-processor");
        free(j);
        cJSON_Delete(root);
    }
    build(&b, NULL, NULL, NULL, "{\"type\":\"WordPiece\"}", NULL, NULL);
    expect_err(&b, "decoder: type 'WordPiece' is not supported", "WordPiece decoder");
    build(&b, NULL, NULL, NULL, "null", NULL, NULL);
    expect_err(&b, "decoder: missing", "null decoder");
    build(&b, NULL, NULL, NULL, NULL, ",\"byte_fallback\":true", NULL);
    expect_err(&b, "model.byte_fallback", "byte_fallback");
    build(&b, NULL, NULL, NULL, NULL, ",\"dropout\":0.1", NULL);
    expect_err(&b, "model.dropout", "dropout");
    build(&b, NULL, NULL, NULL, NULL, ",\"continuing_subword_prefix\":\"##\"", NULL);
    expect_err(&b, "model.continuing_subword_prefix", "subword prefix");
    build(&b, NULL, NULL, NULL, NULL, NULL, "[{\"id\":258,\"content\":\"<|x|>\",\"lstrip\":true}]");
    expect_err(&b, "added_tokens[0].lstrip", "lstrip");
    build(&b, NULL, NULL, NULL, NULL, NULL, "[{\"id\":-1,\"content\":\"<|x|>\"}]");
    expect_err(&b, "added_tokens[0]: needs an integer id", "negative added id");
    build(&b, NULL, NULL, NULL, NULL, NULL, "[{\"id\":2000000000,\"content\":\"<|x|>\"}]");
    expect_err(&b, "token id 2000000000 is too large", "huge added id");
    build(&b, NULL, NULL, NULL, NULL, NULL, "{}");
    expect_err(&b, "added_tokens: expected an array", "added object");

    const char *docs[][2] = {
        {"[1,2]", "top level: expected an object"},
        {"{}", "model: missing"},
        {"{\"model\":{\"type\":\"WordPiece\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
         "\"decoder\":{\"type\":\"ByteLevel\"}}",
         "model.type: 'WordPiece'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},\"merges\":[]},\"pre_tokenizer\":"
         "{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"}}",
         "model.vocab[\"a\"]: id is not an integer"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"pre_tokenizer\":"
         "{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"}}",
         "model.vocab: empty"},
        {"{\"truncation\":{\"max_length\":5},\"model\":{}}", "truncation: must be null"},
        {"", "not valid JSON"},
        {"\xff\xfe garbage", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        b.len = 0;
        tok_buf_appends(&b, docs[i][0]);
        expect_err(&b, docs[i][1], docs[i][0][0] ? docs[i][1] : "empty document");
    }
    char err[256] = "";
    if (tok_load_file("/nonexistent/tokenizer.json", err, sizeof err) ||
        !strstr(err, "/nonexistent/tokenizer.json: No such file")) {
        failures++;
        fprintf(stderr, "FAIL: missing file: \"%s\"\n", err);
    }
    tok_buf_free(&b);
    printf("loader checks: %d failures\n", failures);
    return failures ? 1 : 0;
}
