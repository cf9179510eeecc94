/* gw_spool_rec: the spool's payload for one usage record: a version byte
 * (2; version 1 records, without the cache fields, still decode) and then
 * every field of gw_usage_record_t in a fixed order,
 * little-endian, strings as a 2-byte length and their bytes (layout in
 * docs/ledger.md). Stable across builds: old spools replay after upgrades. */
#ifndef GW_SPOOL_REC_H
#define GW_SPOOL_REC_H

#include "gw_usage.h"

#include <stddef.h>
#include <stdint.h>

#define GW_SPOOL_REC_VERSION 2
#define GW_SPOOL_REC_MAX 2048 /* bytes; every record fits (about 1200 at most) */

/* Encodes *r into buf (at least GW_SPOOL_REC_MAX bytes). Returns the length. */
size_t gw_spool_rec_encode(const gw_usage_record_t *r, uint8_t *buf);

/* Decodes a payload into *r. Returns 0, or -1 (err set) for an unknown
 * version, a truncated payload, bytes left over, or a string too long for
 * its field. */
int gw_spool_rec_decode(const uint8_t *p, size_t len, gw_usage_record_t *r, char *err,
                        size_t errlen);

#endif
