/* gw_spool_rec: the spool's payload for one record. Its first byte says
 * which kind and version: 1..63 a usage record (2 now; version 1 records,
 * without the cache fields, still decode), 64..127 a gateway cost record
 * (64 now). Then every field of gw_usage_record_t or gw_gateway_cost_t in a
 * fixed order, little-endian, strings as a 2-byte length and their bytes
 * (layout in docs/ledger.md). Stable across builds: old spools replay after
 * upgrades. */
#ifndef GW_SPOOL_REC_H
#define GW_SPOOL_REC_H

#include "gw_usage.h"

#include <stddef.h>
#include <stdint.h>

#define GW_SPOOL_REC_VERSION 2       /* usage records: first byte 1..63 */
#define GW_SPOOL_REC_COST_VERSION 64 /* gateway cost records: first byte 64..127 */
#define GW_SPOOL_REC_MAX 2048 /* bytes; every record fits (about 1200 at most) */

/* Encodes *r into buf (at least GW_SPOOL_REC_MAX bytes). Returns the length. */
size_t gw_spool_rec_encode(const gw_usage_record_t *r, uint8_t *buf);

/* Decodes a usage payload into *r. Returns 0, or -1 (err set) for an
 * unknown version or a gateway cost record, a truncated payload, bytes left
 * over, or a string too long for its field. */
int gw_spool_rec_decode(const uint8_t *p, size_t len, gw_usage_record_t *r, char *err,
                        size_t errlen);

typedef enum gw_spool_rec_kind {
    GW_SPOOL_REC_UNKNOWN = 0, /* empty payload, or a first byte no build knows */
    GW_SPOOL_REC_USAGE,
    GW_SPOOL_REC_COST,
} gw_spool_rec_kind_t;

/* The kind of a payload, from its first byte alone (no validation: decode
 * with the matching function, which may still refuse it). */
gw_spool_rec_kind_t gw_spool_rec_kind(const uint8_t *p, size_t len);

/* Encodes gateway cost *c into buf (at least GW_SPOOL_REC_MAX bytes).
 * Returns the length (at most 477). */
size_t gw_spool_rec_encode_cost(const gw_gateway_cost_t *c, uint8_t *buf);

/* Decodes a gateway cost payload into *c, as strictly as
 * gw_spool_rec_decode: 0, or -1 (err set) for another kind or an unknown
 * version, a truncated payload, bytes left over, or a string too long for
 * its field. */
int gw_spool_rec_decode_cost(const uint8_t *p, size_t len, gw_gateway_cost_t *c, char *err,
                             size_t errlen);

#endif
