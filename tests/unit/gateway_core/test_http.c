/* Unit tests for gateway/gw_http: UTF-8 validation, request ids and the
 * OpenAI error body. */
#include "gw_http.h"

#include <stdlib.h>

#include "check.h"

int main(void)
{
    CHECK(gw_utf8_valid("plain ascii", 11));
    CHECK(gw_utf8_valid("caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80", 17));
    CHECK(!gw_utf8_valid("\xc3", 1));             /* truncated */
    CHECK(!gw_utf8_valid("\xc0\xaf", 2));         /* overlong */
    CHECK(!gw_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!gw_utf8_valid("\xf4\x90\x80\x80", 4)); /* beyond U+10FFFF */
    CHECK(!gw_utf8_valid("\xff", 1));
    CHECK(!gw_utf8_valid("ab\xe4\xb8", 4));
    char a[GW_REQUEST_ID_LEN + 1], b[GW_REQUEST_ID_LEN + 1];
    gw_request_id_new(a);
    gw_request_id_new(b);
    CHECK(strlen(a) == GW_REQUEST_ID_LEN && !strncmp(a, "req_", 4) && strcmp(a, b));
    char *body = gw_http_error_body("invalid_request_error", "invalid_value", "model", "bad \"x\"");
    CHECK_STR(body, "{\"error\":{\"message\":\"bad \\\"x\\\"\",\"type\":\"invalid_request_error\","
                    "\"code\":\"invalid_value\",\"param\":\"model\"}}");
    free(body);
    body = gw_http_error_body("api_error", NULL, NULL, "m");
    CHECK_STR(body, "{\"error\":{\"message\":\"m\",\"type\":\"api_error\",\"code\":null,"
                    "\"param\":null}}");
    free(body);
    return CHECK_DONE();
}
