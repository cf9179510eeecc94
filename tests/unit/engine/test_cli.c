/* tollgate-engine's command line, run as a user would: --help everywhere,
 * generate reproduces a golden continuation and writes the golden logits
 * format, init-random writes a model that loads (f32 equals --random-init of
 * the same seed bit for bit; bf16 sharded loads), and usage errors say what
 * to do. argv: path of tollgate-engine, fixture dir. */
#include "eng_test_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *g_bin;

/* Runs the engine with args (stderr merged into out). Returns the exit status. */
static int run(const char *args, char *out, size_t outlen)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", g_bin, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect(const char *args, int want_rc, const char *needle)
{
    char out[65536];
    int rc = run(args, out, sizeof out);
    bool ok = rc == want_rc && (!needle || strstr(out, needle));
    printf("%-4s tollgate-engine %s -> %d\n", ok ? "ok" : "FAIL", args, rc);
    if (!ok) {
        printf("     output: %s\n", out);
        eng_test_failures++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_engine_cli TOLLGATE_ENGINE FIXTURE_DIR\n");
        return 1;
    }
    g_bin = argv[1];
    const char *fx = argv[2];
    char *tmp = tu_mkdtemp();
    char args[8192], out[65536], out2[65536];

    expect("--help", 0, "init-random");
    expect("", 2, "usage");
    expect("frobnicate", 2, "unknown command 'frobnicate'");
    expect("generate --help", 0, "--logits-out");
    expect("init-random --help", 0, "--dtype");
    expect("bench --help", 0, "--decode-tokens");

    /* golden continuation and logits file through the CLI */
    snprintf(args, sizeof args,
             "generate --model '%s/v3_tiny' --ids 337,403,132,143,387,91,110 --max-tokens 12 "
             "--greedy --ignore-eos --threads 2 --logits-out '%s/l7.f32'",
             fx, tmp);
    CHECK(run(args, out, sizeof out) == 0);
    CHECK(strcmp(out, "36,231,88,252,328,260,424,386,161,490,217,493\n") == 0);
    printf("generate v3_tiny L=7: %s", out);
    {
        char p1[4200], p2[4200];
        snprintf(p1, sizeof p1, "%s/l7.f32", tmp);
        snprintf(p2, sizeof p2, "%s/v3_tiny/logits_L7.f32", fx);
        size_t n1 = 0, n2 = 0;
        float *a = (float *)tu_read_file(p1, &n1), *b = (float *)tu_read_file(p2, &n2);
        CHECK(a && b && n1 == 7 * 512 * 4 && n1 == n2);
        if (a && b && n1 == n2)
            for (int t = 0; t < 7; t++)
                CHECK(tu_rel_err(a + t * 512, b + t * 512, 512) < 1e-4);
        free(a);
        free(b);
    }

    /* init-random f32 == --random-init, same seed */
    snprintf(args, sizeof args,
             "init-random --config '%s/v2_tiny/config.json' --out '%s/r32' --seed 5", fx, tmp);
    expect(args, 0, "wrote");
    snprintf(args, sizeof args,
             "generate --model '%s/r32' --ids 1,2,3,4 --max-tokens 6 --greedy --ignore-eos "
             "--threads 2 --logits-out '%s/a.f32'",
             tmp, tmp);
    CHECK(run(args, out, sizeof out) == 0);
    snprintf(args, sizeof args,
             "generate --random-init '%s/v2_tiny/config.json' --seed 5 --ids 1,2,3,4 "
             "--max-tokens 6 --greedy --ignore-eos --threads 2 --logits-out '%s/b.f32'",
             fx, tmp);
    CHECK(run(args, out2, sizeof out2) == 0);
    printf("init-random + generate: %s--random-init generate: %s", out, out2);
    CHECK(strcmp(out, out2) == 0 && strlen(out) > 6);
    {
        char p1[4200], p2[4200];
        snprintf(p1, sizeof p1, "%s/a.f32", tmp);
        snprintf(p2, sizeof p2, "%s/b.f32", tmp);
        size_t n1 = 0, n2 = 0;
        char *a = tu_read_file(p1, &n1), *b = tu_read_file(p2, &n2);
        CHECK(a && b && n1 == 4 * 512 * 4 && n1 == n2 && memcmp(a, b, n1) == 0);
        free(a);
        free(b);
    }
    /* bf16, sharded */
    snprintf(args, sizeof args,
             "init-random --config '%s/v3_tiny/config.json' --out '%s/rbf' --dtype bf16 "
             "--shards 3",
             fx, tmp);
    expect(args, 0, "bfloat16");
    snprintf(args, sizeof args, "%s/rbf/model.safetensors.index.json", tmp);
    {
        char *t = tu_read_file(args, NULL);
        CHECK(t && strstr(t, "model-00003-of-00003.safetensors"));
        free(t);
    }
    snprintf(args, sizeof args, "%s/rbf/config.json", tmp);
    {
        char *t = tu_read_file(args, NULL);
        CHECK(t && strstr(t, "\"bfloat16\""));
        free(t);
    }
    snprintf(args, sizeof args, "generate --model '%s/rbf' --ids 7 --max-tokens 3 --greedy", tmp);
    expect(args, 0, NULL);

    /* usage errors that say what to do */
    snprintf(args, sizeof args, "generate --model '%s/v3_tiny' --ids 1,2", fx);
    expect(args, 2, "pass --greedy");
    snprintf(args, sizeof args, "generate --model '%s/v3_tiny' --ids 1,,2 --greedy", fx);
    expect(args, 2, "comma-separated");
    snprintf(args, sizeof args, "generate --model '%s/v3_tiny' --greedy", fx);
    expect(args, 2, "--ids is required");
    snprintf(args, sizeof args, "generate --model '%s/v3_tiny' --ids 1 --greedy --max-tokens x",
             fx);
    expect(args, 2, "--max-tokens expects an integer");
    snprintf(args, sizeof args, "generate --model '%s/v3_tiny' --ids 1 --greedy --frob", fx);
    expect(args, 2, "unknown option '--frob'");
    snprintf(args, sizeof args, "generate --model '%s/v3_tiny' --ids 1,600 --greedy", fx);
    expect(args, 1, "outside the vocabulary");
    expect("generate --model /nonexistent/model --ids 1 --greedy", 1, "cannot load model");
    snprintf(args, sizeof args,
             "generate --model '%s/v3_tiny' --random-init '%s/v3_tiny/config.json' --ids 1 "
             "--greedy",
             fx, fx);
    expect(args, 1, "exactly one of --model DIR or --random-init CONFIG");
    snprintf(args, sizeof args, "init-random --config '%s/v3_tiny/config.json' --out '%s/x' "
                                "--dtype f8", fx, tmp);
    expect(args, 2, "--dtype must be");
    expect("init-random --out /tmp/x", 2, "--config FILE and --out DIR are required");
    /* a config far larger than memory is refused before allocating */
    snprintf(args, sizeof args, "%s/huge.json", tmp);
    {
        const char *huge =
            "{\"model_type\":\"deepseek_v3\",\"hidden_size\":65536,\"num_hidden_layers\":64,"
            "\"num_attention_heads\":128,\"vocab_size\":1000000,\"intermediate_size\":65536,"
            "\"kv_lora_rank\":512,\"qk_nope_head_dim\":128,\"qk_rope_head_dim\":64,"
            "\"v_head_dim\":128}";
        CHECK(tu_write_file(args, huge, strlen(huge)) == 0);
    }
    {
        char a2[8400];
        snprintf(a2, sizeof a2, "init-random --config '%s' --out '%s/big'", args, tmp);
        expect(a2, 1, "use a smaller config");
        snprintf(a2, sizeof a2, "generate --random-init '%s' --ids 1 --greedy", args);
        expect(a2, 1, "use a smaller config");
    }
    snprintf(args, sizeof args, "generate --model '%s/v3_tiny' --ids 1 --greedy --logits-out", fx);
    expect(args, 2, "needs a value");

    tu_rmtree(tmp);
    free(tmp);
    printf("%s\n", eng_test_failures ? "FAIL" : "ok");
    return eng_test_failures ? 1 : 0;
}
