/* Unit test (no database) for tollgatectl's input checks and key format, and
 * for the key store's pure helpers: dates, model lists, team names, key
 * generation, SHA-256, constant-time hash comparison, model allow lists. */
#include "ctl.h"
#include "gw_keystore.h"

#include <stdio.h>
#include <string.h>

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static int64_t parse(const char *s)
{
    char err[256];
    int64_t us = -1;
    if (ctl_time_parse(s, &us, err, sizeof err) != 0)
        return -1;
    return us;
}

static void test_dates(void)
{
    CHECK(parse("1970-01-01") == 0);
    CHECK(parse("2027-01-31") == 1801353600LL * 1000000);
    CHECK(parse("2027-01-31T18:00:00Z") == (1801353600LL + 18 * 3600) * 1000000);
    CHECK(parse("2027-01-31t18:00:00z") == (1801353600LL + 18 * 3600) * 1000000);
    CHECK(parse("2027-01-31T18:00:00+01:00") == (1801353600LL + 17 * 3600) * 1000000);
    CHECK(parse("2027-01-31T18:00:00-02:30") == (1801353600LL + 20 * 3600 + 1800) * 1000000);
    CHECK(parse("2027-01-31T18:00:00.25Z") == (1801353600LL + 18 * 3600) * 1000000 + 250000);
    CHECK(parse("2028-02-29") > 0); /* leap year */
    const char *bad[] = {"",
                         "2027-02-29",
                         "2027-13-01",
                         "2027-1-1",
                         "27-01-01",
                         "2027-01-32",
                         "tomorrow",
                         "2027-01-31T18:00:00", /* no offset */
                         "2027-01-31T24:00:00Z",
                         "2027-01-31T18:00Z",
                         "2027-01-31X",
                         "2027-01-31T18:00:00.Z",
                         "2027-01-31T18:00:00+0100",
                         "1969-12-31",
                         "2027-01-31T18:00:00Zjunk",
                         "1900-02-29"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        int64_t us;
        int rc = ctl_time_parse(bad[i], &us, err, sizeof err);
        if (rc != -1 || !strstr(err, "invalid date"))
            fprintf(stderr, "accepted bad date '%s'\n", bad[i]);
        CHECK(rc == -1 && strstr(err, "invalid date"));
    }
}

static void test_names(void)
{
    char err[256];
    CHECK(ctl_team_name_check("acme", err, sizeof err) == 0);
    CHECK(ctl_team_name_check("a.b-c_9", err, sizeof err) == 0);
    CHECK(ctl_team_name_check("", err, sizeof err) == -1);
    CHECK(ctl_team_name_check("-acme", err, sizeof err) == -1);
    CHECK(ctl_team_name_check("ac me", err, sizeof err) == -1);
    CHECK(ctl_team_name_check("acme'; drop table teams;--", err, sizeof err) == -1);
    char long_name[70];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    CHECK(ctl_team_name_check(long_name, err, sizeof err) == -1);
    long_name[64] = '\0';
    CHECK(ctl_team_name_check(long_name, err, sizeof err) == 0);

    CHECK(ctl_models_check("deepseek-chat", err, sizeof err) == 0);
    CHECK(ctl_models_check("gpt-4o,meta-llama/Llama-3.1-8B,x:y@z", err, sizeof err) == 0);
    CHECK(ctl_models_check("", err, sizeof err) == -1);
    CHECK(ctl_models_check("a,,b", err, sizeof err) == -1);
    CHECK(ctl_models_check("a,", err, sizeof err) == -1);
    CHECK(ctl_models_check("a b", err, sizeof err) == -1);
    CHECK(ctl_models_check("a,{b}", err, sizeof err) == -1);

    CHECK(ctl_label_check("ci runner", err, sizeof err) == 0);
    CHECK(ctl_label_check("", err, sizeof err) == -1);
    CHECK(ctl_label_check("a\nb", err, sizeof err) == -1);
}

static void test_keygen(void)
{
    char k1[CTL_KEY_LEN + 1], k2[CTL_KEY_LEN + 1], d1[CTL_KEY_DISPLAY_LEN + 1],
        d2[CTL_KEY_DISPLAY_LEN + 1], err[256];
    CHECK(ctl_key_generate(k1, d1, err, sizeof err) == 0);
    CHECK(ctl_key_generate(k2, d2, err, sizeof err) == 0);
    CHECK(strlen(k1) == 46 && strncmp(k1, "tg-", 3) == 0);
    CHECK(strlen(d1) == 11 && strncmp(k1, d1, 11) == 0);
    CHECK(strcmp(k1, k2) != 0);
    for (size_t i = 3; i < strlen(k1); i++) {
        char c = k1[i];
        CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_');
    }
    /* The last character carries 4 bits (32 bytes = 256 bits = 42 x 6 + 4):
     * its low two bits are always zero in base64url. */
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    CHECK((strchr(alpha, k1[45]) - alpha) % 4 == 0);
}

static void test_hash(void)
{
    uint8_t h[GW_KEY_HASH_LEN], g[GW_KEY_HASH_LEN];
    gw_key_hash("abc", 3, h);
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                    0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    CHECK(memcmp(h, abc, 32) == 0);
    memcpy(g, h, 32);
    CHECK(gw_key_hash_equal(h, g));
    g[0] ^= 1; /* differs in the first byte */
    CHECK(!gw_key_hash_equal(h, g));
    g[0] ^= 1;
    g[31] ^= 0x80; /* differs only in the last byte */
    CHECK(!gw_key_hash_equal(h, g));
}

static void test_allow_list(void)
{
    gw_key_info_t info = {0};
    CHECK(gw_key_allows_model(&info, "anything"));
    snprintf(info.models, sizeof info.models, "gpt-4o-mini,deepseek-chat");
    CHECK(gw_key_allows_model(&info, "gpt-4o-mini"));
    CHECK(gw_key_allows_model(&info, "deepseek-chat"));
    CHECK(!gw_key_allows_model(&info, "gpt-4o"));         /* a prefix of an entry */
    CHECK(!gw_key_allows_model(&info, "deepseek-chatx")); /* an extension of one */
    CHECK(!gw_key_allows_model(&info, ""));
    snprintf(info.models, sizeof info.models, ","); /* an empty list: nothing */
    CHECK(!gw_key_allows_model(&info, "gpt-4o"));
}

int main(void)
{
    test_dates();
    test_names();
    test_keygen();
    test_hash();
    test_allow_list();
    return failures ? 1 : 0;
}
