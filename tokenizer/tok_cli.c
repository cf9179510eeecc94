/* tok_cli: "tokens count|encode|decode" — lets anyone check what a prompt
 * costs: the token count, the ids one per line, or the text of ids. Input is
 * FILE or standard input. */
#include "tok_cli.h"
#include "tok.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CLI_MAX_INPUT (1024u << 20)

static void usage(FILE *to)
{
    fputs("usage: tokens count|encode|decode --tokenizer PATH_OR_NAME [--chat] [FILE]\n"
          "  count   print the number of tokens of the text\n"
          "  encode  print the token ids of the text, one per line\n"
          "  decode  read token ids (decimal, separated by white space) and print the text\n"
          "  --chat  the input is a chat request (an OpenAI request body or its messages\n"
          "          array): render the model's chat template (from tokenizer_config.json\n"
          "          beside tokenizer.json, with the generation prompt) and count/encode that\n"
          "          or, with decode, print the rendered prompt\n"
          "FILE defaults to standard input. PATH_OR_NAME is a tokenizer.json file, a folder\n"
          "holding one, or a name looked up as $TG_TOKENIZER_DIR/NAME/tokenizer.json and then\n"
          "data/tokenizers/NAME/tokenizer.json (e.g. deepseek-v3).\n"
          "Added and special tokens written in the text (e.g. <｜User｜>) count as one token.\n",
          to);
}

/* Renders the chat request in text (request object or messages array) with
 * the template in tokenizer_config.json beside tokenizer_path into out.
 * Returns 0, or 1 with a message printed. */
static int render_chat(const char *tokenizer_path, const tok_buf_t *text, tok_buf_t *out)
{
    char cfg[4200], err[512];
    const char *slash = strrchr(tokenizer_path, '/');
    int dl = slash ? (int)(slash - tokenizer_path) : 1;
    snprintf(cfg, sizeof cfg, "%.*s/tokenizer_config.json", dl, slash ? tokenizer_path : ".");
    tok_chat_t *chat = tok_chat_load_file(cfg, err, sizeof err);
    if (!chat) {
        fprintf(stderr, "tokens: %s\n", err);
        return 1;
    }
    cJSON *req = cJSON_ParseWithLength(text->data, text->len);
    const cJSON *msgs =
        cJSON_IsObject(req) ? cJSON_GetObjectItemCaseSensitive(req, "messages") : req;
    int rc = 0;
    if (!req) {
        fprintf(stderr, "tokens: --chat: the input is not valid JSON\n");
        rc = 1;
    } else if (tok_chat_render(chat, msgs, true, out, err, sizeof err) != 0) {
        fprintf(stderr, "tokens: --chat: %s\n", err);
        rc = 1;
    }
    cJSON_Delete(req);
    tok_chat_free(chat);
    return rc;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Resolves PATH_OR_NAME to a tokenizer.json path in buf; returns buf or NULL. */
static const char *resolve(const char *arg, char *buf, size_t len)
{
    if (strchr(arg, '/') || is_file(arg) || is_dir(arg)) {
        if (is_dir(arg))
            snprintf(buf, len, "%s/tokenizer.json", arg);
        else
            snprintf(buf, len, "%s", arg);
        return buf;
    }
    const char *dir = getenv("TG_TOKENIZER_DIR");
    if (dir && *dir) {
        snprintf(buf, len, "%s/%s/tokenizer.json", dir, arg);
        if (is_file(buf))
            return buf;
    }
    snprintf(buf, len, "data/tokenizers/%s/tokenizer.json", arg);
    return is_file(buf) ? buf : NULL;
}

/* Reads all of f into b; returns 0, or -1 when too large or on a read error. */
static int read_all(FILE *f, tok_buf_t *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b->len + n > CLI_MAX_INPUT)
            return -1;
        tok_buf_append(b, chunk, n);
    }
    if (!b->data)
        tok_buf_append(b, "", 0);
    return ferror(f) ? -1 : 0;
}

/* Parses decimal ids separated by white space; returns 0 or -1 (message printed). */
static int parse_ids(const char *s, tok_ids_t *ids)
{
    while (*s) {
        while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r' || *s == ',')
            s++;
        if (!*s)
            break;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || errno || v > 0xffffffffull || (*s < '0' || *s > '9')) {
            fprintf(stderr, "tokens: decode: not a token id: \"%.20s\"\n", s);
            return -1;
        }
        uint32_t id = (uint32_t)v;
        if (ids->len == ids->cap) {
            ids->cap = ids->cap ? ids->cap * 2 : 256;
            ids->ids = realloc(ids->ids, ids->cap * sizeof *ids->ids);
            if (!ids->ids)
                abort();
        }
        ids->ids[ids->len++] = id;
        s = end;
    }
    return 0;
}

int tok_cli_main(int argc, char **argv)
{
    const char *cmd = NULL, *tokenizer = NULL, *file = NULL;
    int chat = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            tokenizer = argv[++i];
        } else if (strcmp(argv[i], "--chat") == 0) {
            chat = 1;
        } else if (strncmp(argv[i], "--tokenizer=", 12) == 0) {
            tokenizer = argv[i] + 12;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "tokens: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!cmd) {
            cmd = argv[i];
        } else if (!file) {
            file = argv[i];
        } else {
            fprintf(stderr, "tokens: too many arguments\n");
            usage(stderr);
            return 2;
        }
    }
    if (!cmd || !tokenizer ||
        (strcmp(cmd, "count") && strcmp(cmd, "encode") && strcmp(cmd, "decode"))) {
        usage(stderr);
        return 2;
    }
    char path[4096], err[512];
    if (!resolve(tokenizer, path, sizeof path)) {
        fprintf(stderr,
                "tokens: no tokenizer named '%s' (tried $TG_TOKENIZER_DIR/%s and "
                "data/tokenizers/%s)\n",
                tokenizer, tokenizer, tokenizer);
        return 1;
    }
    FILE *in = stdin;
    if (file && strcmp(file, "-") != 0 && !(in = fopen(file, "rb"))) {
        fprintf(stderr, "tokens: %s: %s\n", file, strerror(errno));
        return 1;
    }
    tok_buf_t text = {0};
    int bad = read_all(in, &text);
    if (in != stdin)
        fclose(in);
    if (bad) {
        fprintf(stderr, "tokens: %s: read error or larger than %u MiB\n", file ? file : "stdin",
                CLI_MAX_INPUT >> 20);
        tok_buf_free(&text);
        return 1;
    }
    if (chat) {
        tok_buf_t prompt = {0};
        if (render_chat(path, &text, &prompt) != 0) {
            tok_buf_free(&text);
            tok_buf_free(&prompt);
            return 1;
        }
        tok_buf_free(&text);
        text = prompt;
        if (strcmp(cmd, "decode") == 0) { /* the rendered prompt itself */
            fwrite(text.data, 1, text.len, stdout);
            tok_buf_free(&text);
            return fflush(stdout) == 0 ? 0 : 1;
        }
    }
    tok_tokenizer_t *tok = tok_load_file(path, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "tokens: %s\n", err);
        tok_buf_free(&text);
        return 1;
    }
    int rc = 0;
    tok_ids_t ids = {0};
    if (strcmp(cmd, "count") == 0) {
        printf("%zu\n", tok_count(tok, text.data, text.len));
    } else if (strcmp(cmd, "encode") == 0) {
        tok_encode(tok, text.data, text.len, &ids);
        for (size_t i = 0; i < ids.len; i++)
            printf("%u\n", ids.ids[i]);
    } else {
        tok_buf_t out = {0};
        if (parse_ids(text.data, &ids) != 0) {
            rc = 1;
        } else if (tok_decode_text(tok, ids.ids, ids.len, &out, err, sizeof err) != 0) {
            fprintf(stderr, "tokens: decode: %s\n", err);
            rc = 1;
        } else {
            fwrite(out.data, 1, out.len, stdout);
        }
        tok_buf_free(&out);
    }
    if (fflush(stdout) != 0)
        rc = 1;
    tok_ids_free(&ids);
    tok_buf_free(&text);
    tok_free(tok);
    return rc;
}
