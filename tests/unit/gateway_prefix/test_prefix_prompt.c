/* Block hashes of prompts (gw_prompt_count_blocks) with the real DeepSeek V3
 * tokenizer: they are tok_block_hashes of the exactly counted tokens; a
 * prompt under 64 tokens has none; a conversation that grows keeps its
 * leading blocks; completions prompts (a string, token ids) have them, a
 * batch of strings has none; max_blocks caps; no tokenizer, no blocks. */
#include <stdlib.h>

#include "gw_prompt.h"
#include "pfx_check.h"

static gw_tokenizer_t tk;

static cJSON *chat_body(int turns, const char *system)
{
    cJSON *b = cJSON_CreateObject();
    cJSON *m = cJSON_AddArrayToObject(b, "messages");
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "role", "system");
    cJSON_AddStringToObject(s, "content", system);
    cJSON_AddItemToArray(m, s);
    for (int t = 0; t < turns; t++) {
        char text[200];
        snprintf(text, sizeof text, "Question %d: what does line %d of the ledger say?", t, t * 3);
        cJSON *u = cJSON_CreateObject();
        cJSON_AddStringToObject(u, "role", "user");
        cJSON_AddStringToObject(u, "content", text);
        cJSON_AddItemToArray(m, u);
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "role", "assistant");
        cJSON_AddStringToObject(a, "content", "It says the balance carried forward is correct.");
        cJSON_AddItemToArray(m, a);
    }
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_prefix_prompt TOKENIZER_DIR\n");
        return 1;
    }
    char err[512];
    if (gw_tokenizer_load(&tk, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s (run scripts/setup)\n", err);
        return 1;
    }
    char system[20000] = "You are a careful assistant.";
    for (int i = 0; i < 400; i++) {
        char w[32];
        snprintf(w, sizeof w, " entry%d=%d", i, i * 37 % 101);
        strcat(system, w);
    }

    /* blocks = tok_block_hashes of the rendered and encoded prompt */
    cJSON *b1 = chat_body(1, system);
    gw_prompt_blocks_t bl = {0};
    gw_prompt_count_t c = gw_prompt_count_blocks(&tk, b1, true, 4096, &bl);
    CHECK(c.exact && c.tokens > 1000);
    CHECK(bl.n == (size_t)c.tokens / 64);
    {
        tok_buf_t text = {0};
        CHECK(tok_chat_render(tk.chat, cJSON_GetObjectItem(b1, "messages"), true, &text, err,
                              sizeof err) == 0);
        tok_ids_t ids = {0};
        tok_encode(tk.tok, text.data, text.len, &ids);
        CHECK((int64_t)ids.len == c.tokens);
        uint64_t ref[512];
        size_t n = tok_block_hashes(ids.ids, ids.len, ref, 512);
        CHECK(n == bl.n && !memcmp(ref, bl.hash, n * sizeof *ref));
        tok_ids_free(&ids);
        tok_buf_free(&text);
    }
    /* the count is the one gw_prompt_count gives */
    CHECK(gw_prompt_count(&tk, b1, true).tokens == c.tokens);

    /* a conversation that grows keeps its leading blocks */
    cJSON *b3 = chat_body(3, system);
    gw_prompt_blocks_t bl3 = {0};
    gw_prompt_count_t c3 = gw_prompt_count_blocks(&tk, b3, true, 4096, &bl3);
    CHECK(c3.tokens > c.tokens && bl3.n >= bl.n);
    size_t common = 0;
    while (common < bl.n && bl.hash[common] == bl3.hash[common])
        common++;
    CHECK(common >= bl.n - 1); /* all but perhaps the last block before the new turn */
    CHECK(common >= 1 && bl3.hash[bl3.n - 1] != bl.hash[bl.n - 1]);

    /* max_blocks caps, keeping the first ones */
    gw_prompt_blocks_t cap = {0};
    gw_prompt_count_blocks(&tk, b3, true, 3, &cap);
    CHECK(cap.n == 3 && !memcmp(cap.hash, bl3.hash, 3 * sizeof *cap.hash));
    gw_prompt_blocks_free(&cap);
    /* max_blocks 0 or no output: count only */
    gw_prompt_count_blocks(&tk, b3, true, 0, &cap);
    CHECK(cap.n == 0 && cap.hash == NULL);

    /* under 64 tokens: no block */
    cJSON *shortb = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi!\"}]}");
    gw_prompt_blocks_t sb = {0};
    gw_prompt_count_t sc = gw_prompt_count_blocks(&tk, shortb, true, 4096, &sb);
    CHECK(sc.exact && sc.tokens > 0 && sc.tokens < 64 && sb.n == 0);

    /* a template that cannot render (content parts): an estimate, no blocks */
    cJSON *parts = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                               "\"text\":\"hello\"}]}]}");
    gw_prompt_count_t pc = gw_prompt_count_blocks(&tk, parts, true, 4096, &sb);
    CHECK(!pc.exact && sb.n == 0);

    /* no tokenizer: an estimate, no blocks */
    gw_prompt_count_t nc = gw_prompt_count_blocks(NULL, b1, true, 4096, &sb);
    CHECK(!nc.exact && sb.n == 0);

    /* completions: a string prompt; the same tokens as ids; a batch has none */
    cJSON *cs = cJSON_CreateObject();
    cJSON_AddStringToObject(cs, "prompt", system);
    gw_prompt_blocks_t s1 = {0}, s2 = {0}, s3 = {0};
    gw_prompt_count_t k1 = gw_prompt_count_blocks(&tk, cs, false, 4096, &s1);
    CHECK(k1.exact && s1.n == (size_t)k1.tokens / 64 && s1.n > 0);
    tok_ids_t ids = {0};
    tok_encode(tk.tok, system, strlen(system), &ids);
    cJSON *ci = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(ci, "prompt");
    for (size_t i = 0; i < ids.len; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids.ids[i]));
    gw_prompt_count_t k2 = gw_prompt_count_blocks(&tk, ci, false, 4096, &s2);
    CHECK(k2.exact && k2.tokens == k1.tokens && s2.n == s1.n &&
          !memcmp(s1.hash, s2.hash, s1.n * sizeof *s1.hash));
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(-5)); /* not a token id: no blocks */
    gw_prompt_blocks_t s4 = {0};
    gw_prompt_count_blocks(&tk, ci, false, 4096, &s4);
    CHECK(s4.n == 0);
    cJSON *cb = cJSON_Parse("{\"prompt\":[\"one prompt\",\"another prompt\"]}");
    gw_prompt_count_t k3 = gw_prompt_count_blocks(&tk, cb, false, 4096, &s3);
    CHECK(k3.exact && s3.n == 0);

    tok_ids_free(&ids);
    gw_prompt_blocks_free(&bl);
    gw_prompt_blocks_free(&bl3);
    gw_prompt_blocks_free(&s1);
    gw_prompt_blocks_free(&s2);
    cJSON_Delete(b1);
    cJSON_Delete(b3);
    cJSON_Delete(shortb);
    cJSON_Delete(parts);
    cJSON_Delete(cs);
    cJSON_Delete(ci);
    cJSON_Delete(cb);
    gw_tokenizer_free(&tk);
    return CHECK_DONE();
}
