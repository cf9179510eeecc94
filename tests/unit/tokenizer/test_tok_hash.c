/* XXH64 against the published test vectors, and the chained 64-token block
 * hashes: only full blocks, each block's hash depends on every token before
 * it and on none after it. */
#include <stdio.h>
#include <string.h>

#include "tok.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL: line %d: ", __LINE__);                                          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

int main(void)
{
    /* Reference values of the xxHash 64-bit specification. */
    CHECK(tok_xxh64("", 0, 0) == 0xEF46DB3751D8E999ull, "xxh64 empty");
    CHECK(tok_xxh64("", 0, 1) == 0xD5AFBA1336A3BE4Bull, "xxh64 empty seed 1");
    CHECK(tok_xxh64("a", 1, 0) == 0xD24EC4F1A98C6E5Bull, "xxh64 a");
    CHECK(tok_xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ull, "xxh64 abc");
    const char *nobody = "Nobody inspects the spammish repetition";
    CHECK(tok_xxh64(nobody, strlen(nobody), 0) == 0xFBCEA83C8A378BF1ull, "xxh64 nobody");

    uint32_t ids[200];
    for (uint32_t i = 0; i < 200; i++)
        ids[i] = i * 2654435761u % 129280u;
    uint64_t h[4], h2[4];
    CHECK(tok_block_hashes(ids, 63, h, 4) == 0, "63 tokens give no block");
    CHECK(tok_block_hashes(ids, 200, h, 4) == 3, "200 tokens give 3 blocks");
    CHECK(tok_block_hashes(ids, 200, h, 2) == 2, "max is respected");
    /* Block 0 by hand: XXH64 of the 64 ids as little-endian uint32, seed 0. */
    unsigned char le[256];
    for (int i = 0; i < 64; i++)
        for (int b = 0; b < 4; b++)
            le[4 * i + b] = (unsigned char)(ids[i] >> (8 * b));
    CHECK(h[0] == tok_xxh64(le, 256, 0), "block 0 layout");
    for (int i = 0; i < 64; i++)
        for (int b = 0; b < 4; b++)
            le[4 * i + b] = (unsigned char)(ids[64 + i] >> (8 * b));
    CHECK(h[1] == tok_xxh64(le, 256, h[0]), "block 1 is seeded with block 0's hash");
    tok_block_hashes(ids, 200, h, 4);
    ids[199] ^= 1; /* in the partial block: no hash changes */
    tok_block_hashes(ids, 200, h2, 4);
    CHECK(memcmp(h, h2, sizeof(uint64_t) * 3) == 0, "partial block ignored");
    ids[100] ^= 1; /* in block 1: blocks 1 and 2 change, block 0 does not */
    tok_block_hashes(ids, 200, h2, 4);
    CHECK(h2[0] == h[0] && h2[1] != h[1] && h2[2] != h[2], "change in block 1");
    ids[100] ^= 1;
    ids[0] ^= 1; /* in block 0: every hash changes */
    tok_block_hashes(ids, 200, h2, 4);
    CHECK(h2[0] != h[0] && h2[1] != h[1] && h2[2] != h[2], "change in block 0");
    printf("hash checks: %d failures\n", failures);
    return failures ? 1 : 0;
}
