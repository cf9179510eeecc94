/* gw_http: small helpers for answering clients: OpenAI-shaped errors, JSON
 * bodies, request ids, UTF-8 validation. Used by the proxy and admin handlers. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

#define GW_REQUEST_ID_LEN 28 /* "req_" + 24 hex digits */

/* Sends {"error":{"message","type","code","param"}} with `status`. type is
 * OpenAI's (invalid_request_error, authentication_error, permission_error,
 * rate_limit_error, api_error, ...); code and param may be NULL (JSON null). */
void gw_http_send_error(struct evhttp_request *req, int status, const char *type, const char *code,
                        const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Builds the same error body as a malloc'd JSON string (caller frees). */
char *gw_http_error_body(const char *type, const char *code, const char *param,
                         const char *message);

/* Sends `json` (not consumed) with Content-Type application/json. */
void gw_http_send_json(struct evhttp_request *req, int status, const cJSON *json);

/* Writes a fresh random request id ("req_" + 24 hex digits) into out. */
void gw_request_id_new(char out[GW_REQUEST_ID_LEN + 1]);

/* True if buf[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool gw_utf8_valid(const char *buf, size_t len);

/* evbuffer_add_reference cleanup that free()s the data. */
void gw_evbuffer_free_data(const void *data, size_t len, void *extra);

/* Reason phrase for an HTTP status. */
const char *gw_http_reason(int status);

#endif
