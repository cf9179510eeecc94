/* gw_respcache: the pure part of the response cache (docs/response-cache.md):
 * which requests may be answered from the cache, their cache key, the stored
 * answer's format, assembling it from a provider's answer (a whole body or a
 * stream's SSE events) and replaying it (a whole body or an SSE stream). No
 * sockets, no event loop, no clock: everything is a parameter. */
#ifndef GW_RESPCACHE_H
#define GW_RESPCACHE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_RC_KEY_HEX 65       /* SHA-256 in hex, NUL-terminated */
#define GW_RC_FORMAT_VERSION 1 /* of the stored entry and of the key material */

typedef enum { GW_RC_CHAT = 0, GW_RC_TEXT = 1 } gw_rc_kind_t;

/* A stored answer: what the provider said, and what it counted. */
typedef struct gw_rc_answer {
    gw_rc_kind_t kind; /* chat.completions (message) or completions (text) */
    char *content;     /* malloc'd; NULL = null content (chat only) */
    char *reasoning;   /* malloc'd reasoning_content; NULL = none */
    char finish_reason[32];
    char provider[64];        /* the provider that produced it */
    char upstream_model[128]; /* its model name at that provider */
    int64_t created;          /* unix seconds when it was produced */
    int64_t prompt_tokens;    /* as the provider reported them */
    int64_t completion_tokens;
    int64_t reasoning_tokens; /* -1 = not reported */
} gw_rc_answer_t;

void gw_rc_answer_free(gw_rc_answer_t *a);

/* Whether the request body may be answered from (and stored in) the cache:
 * deterministic (temperature 0, or an integer seed), one choice (n absent or
 * 1), no logprobs (not stored), no audio output, no number that a double
 * cannot hold exactly, no duplicate object key. On false, why says which. */
bool gw_rc_eligible(const cJSON *body, char *why, size_t whylen);

/* Canonical JSON text of v: object keys sorted (bytewise), no white space,
 * numbers normalised (integral values as integers: 1.0 and 1 and 1e0 are
 * "1"; others with 17 significant digits), strings re-escaped one way. At
 * the top level the keys in `skip` (NULL-terminated list, may be NULL) are
 * left out. Returns a malloc'd string, or NULL with a message (a duplicate
 * key, a number beyond 2^53 that may have lost digits). */
char *gw_rc_canonical(const cJSON *v, const char *const *skip, char *err, size_t errlen);

/* The cache key: SHA-256 (hex) over the format version, the team id, the
 * endpoint kind, the requested model and the canonical body without the
 * parameters that do not change the answer (stream, stream_options, user,
 * metadata, store, and n when it is 1). Returns 0, or -1 with a message. */
int gw_rc_key(int64_t team_id, gw_rc_kind_t kind, const char *model, const cJSON *body,
              char out[GW_RC_KEY_HEX], char *err, size_t errlen);

/* ---- assembling an answer from a provider's response -------------------- */

typedef struct gw_rc_builder {
    gw_rc_kind_t kind;
    size_t max_bytes; /* content + reasoning over this: too_big */
    char *content, *reasoning;
    size_t content_len, content_cap, reasoning_len, reasoning_cap;
    bool content_seen; /* a string content arrived (else content is null) */
    bool refused;      /* cannot be stored (tool calls, several choices, ...) */
    bool too_big;
    bool done;    /* [DONE] seen (streams) or a whole body fed */
    char why[96]; /* why refused */
    char finish_reason[32];
    int64_t created;
} gw_rc_builder_t;

void gw_rc_builder_init(gw_rc_builder_t *b, gw_rc_kind_t kind, size_t max_bytes);
void gw_rc_builder_free(gw_rc_builder_t *b);

/* Forgets what was fed (a failed attempt before a fail-over). */
void gw_rc_builder_reset(gw_rc_builder_t *b);

/* Feeds one whole SSE event as received from the provider ("data: {...}\n\n",
 * comments and [DONE] included). Events it cannot read refuse the answer. */
void gw_rc_builder_feed_event(gw_rc_builder_t *b, const char *event, size_t len);

/* Feeds a whole non-streamed response body (a parsed JSON object). */
void gw_rc_builder_feed_body(gw_rc_builder_t *b, const cJSON *body);

/* Moves the assembled answer into *a (content and reasoning change owner;
 * the builder is left empty) and fills the counts, provider and model from
 * the arguments. Returns 0; 1 when the answer is over max_bytes; -1 when it
 * cannot be stored (why in the builder: refused, no finish_reason, stream
 * without [DONE], counts unknown). */
int gw_rc_builder_finish(gw_rc_builder_t *b, const char *provider, const char *upstream_model,
                         int64_t prompt_tokens, int64_t completion_tokens, int64_t reasoning_tokens,
                         gw_rc_answer_t *a);

/* ---- the stored entry ------------------------------------------------------ */

/* Encodes the answer for team_id as the stored entry (compact JSON with the
 * format version and the team). Returns a malloc'd string (*len its length). */
char *gw_rc_entry_encode(const gw_rc_answer_t *a, int64_t team_id, size_t *len);

/* Decodes a stored entry, checking every field's type and range and that it
 * belongs to team_id. Returns 0 with *a filled (free with gw_rc_answer_free),
 * or -1 with a message (garbage, another version, another team). */
int gw_rc_entry_decode(const char *data, size_t len, int64_t team_id, gw_rc_answer_t *a, char *err,
                       size_t errlen);

/* ---- replaying ------------------------------------------------------------- */

/* The non-streamed response body for a stored answer: id, object, created,
 * model (the upstream model), one choice, and the usage with every prompt
 * token reported as a cache hit (DeepSeek's and OpenAI's fields). Malloc'd. */
char *gw_rc_replay_json(const gw_rc_answer_t *a, const char *id);

/* The SSE stream for a stored answer: a role event (chat), content events of
 * at most chunk_bytes bytes each (cut on UTF-8 boundaries; reasoning first),
 * the finish event, the usage event only if include_usage, then the comment
 * line ": x-tollgate-charge CHARGE" when charge is not NULL or "", and
 * "data: [DONE]". Malloc'd; *len its length. */
char *gw_rc_replay_sse(const gw_rc_answer_t *a, const char *id, bool include_usage,
                       size_t chunk_bytes, const char *charge, size_t *len);

#endif
