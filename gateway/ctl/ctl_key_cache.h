/* ctl_key_cache: the response cache's opt-in on API keys (migration 0014):
 * "tollgatectl key cache ID|DISPLAY_PREFIX on|off" and the --response-cache
 * option of "key create". Audited like every key change. */
#ifndef CTL_KEY_CACHE_H
#define CTL_KEY_CACHE_H

#include "ctl.h"

/* Parses on|off. Returns 0, or -1 with err set. */
int ctl_key_cache_parse(const char *value, bool *on, char *err, size_t errlen);

/* "key cache ID|DISPLAY_PREFIX on|off" (argv[0] is the first argument). */
int ctl_key_cache_main(ctl_ctx_t *ctx, int argc, char **argv);

#endif
