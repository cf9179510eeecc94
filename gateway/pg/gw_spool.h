/* gw_spool: the durable local journal behind the usage writer. Opaque
 * payloads are appended, framed and checksummed, to segment files in one
 * directory; a reader drains them in order and a checkpoint file (fsync'd,
 * atomic rename) records how far PostgreSQL has committed. The on-disk
 * format and the recovery rules are in docs/ledger.md. */
#ifndef GW_SPOOL_H
#define GW_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_SPOOL_DIR_MAX 1024
#define GW_SPOOL_PAYLOAD_MAX 65536 /* bytes; a longer frame is treated as corrupt */
#define GW_SPOOL_FRAME_HEADER 12   /* magic, length, CRC32C: 4 bytes each, little-endian */

typedef enum { GW_SPOOL_SYNC_INTERVAL = 0, GW_SPOOL_SYNC_ALWAYS } gw_spool_sync_t;
typedef enum { GW_SPOOL_FULL_REFUSE = 0, GW_SPOOL_FULL_BLOCK } gw_spool_full_t;

typedef struct gw_spool_opts {
    char dir[GW_SPOOL_DIR_MAX]; /* "" = no spool (the writer keeps records in memory) */
    gw_spool_sync_t sync;       /* always: fdatasync inside every append */
    int sync_ms;                /* interval mode: longest time before data is fdatasync'd */
    uint64_t max_bytes;         /* disk budget: sum of the segment files' sizes */
    gw_spool_full_t full;       /* what an append does past the budget */
    /* spool_ledger = off-for-benchmarks: the usage writer discards every
     * record (NO usage rows, nothing metered). Only for measuring the
     * ledger's cost (bench/ledger-gateway.sh); logged loudly at start. */
    bool ledger_off;
} gw_spool_opts_t;

/* Defaults: no dir, interval sync every 100 ms, 1 GiB budget, refuse. */
void gw_spool_opts_default(gw_spool_opts_t *o);

/* Applies one configuration key to *o. Keys: spool_dir (a path),
 * spool_sync (always | interval), spool_sync_ms (1..60000), spool_max_bytes
 * (an integer >= 65536, optional suffix K, M or G for powers of 1024),
 * spool_full (refuse | block), spool_ledger (on | off-for-benchmarks: no
 * usage rows at all, for benchmarks only; plain "off" is refused). Returns 1
 * when the key was one of these and its value was applied, 0 when the key is
 * not a spool key (o untouched), -1 when the value is bad (err says why, o
 * untouched). */
int gw_spool_opts_parse(gw_spool_opts_t *o, const char *key, const char *value, char *err,
                        size_t errlen);

typedef struct gw_spool gw_spool_t;

/* A place in the journal: segment number and byte offset in it. */
typedef struct gw_spool_pos {
    uint64_t seg;
    uint64_t off;
} gw_spool_pos_t;

/* Counters (all since open; bytes and pending are current values). */
typedef struct gw_spool_stats {
    uint64_t bytes;     /* sum of the segment files' sizes now */
    uint64_t pending;   /* valid records appended (or found at open) and not committed */
    uint64_t appended;  /* records appended since open */
    uint64_t corrupted; /* damaged regions skipped (each one is logged) */
    uint64_t torn;      /* torn tails truncated at open (each one is logged) */
    uint64_t refused;   /* appends refused: over budget or a write error */
    uint64_t syncs;     /* fdatasync calls (always mode: one covers every append waiting) */
} gw_spool_stats_t;

/* Opens (creating if needed) the spool directory, takes an exclusive lock on
 * it (a second process on the same dir is refused), reads the checkpoint,
 * deletes segments wholly before it, scans the rest: counts the records still
 * to drain, reports and skips corrupted regions, truncates a torn tail of the
 * last segment; then starts a new segment for appends. Returns NULL with err
 * set when the directory cannot be used. */
gw_spool_t *gw_spool_open(const gw_spool_opts_t *o, char *err, size_t errlen);

/* Appends one payload (1..GW_SPOOL_PAYLOAD_MAX bytes) with write(2): once
 * this returns 0 the record survives the process being killed; with sync
 * "always" it has also been fdatasync'd (group commit: appends from several
 * threads that wait at the same time share one fdatasync). Thread-safe. Returns 0, or -1 when
 * refused (over the budget in refuse mode, the spool closing while blocked,
 * or a write error; each case logged, counted in refused, nothing written). */
int gw_spool_append(gw_spool_t *s, const void *payload, size_t len);

/* True when an append of len bytes would fit the budget now (a hint for
 * admission: another thread may take the room first). Thread-safe. */
bool gw_spool_has_room(gw_spool_t *s, size_t len);

/* Called for each record by gw_spool_read; payload valid only during the call. */
typedef void (*gw_spool_visit_fn)(void *arg, const uint8_t *payload, size_t len);

/* Reads up to max valid records from the committed position on (one reader
 * thread only), calling visit for each, skipping damaged regions. *end gets
 * the position just after the last record visited: pass it to
 * gw_spool_commit once they are safely stored. Returns the number visited. */
size_t gw_spool_read(gw_spool_t *s, size_t max, gw_spool_visit_fn visit, void *arg,
                     gw_spool_pos_t *end);

/* Like gw_spool_read, but from `from` (a position an earlier read returned
 * as its end; NULL or a position before the checkpoint = the checkpoint), so
 * that the reader can take the next batch while an earlier one is still
 * being stored. Same thread as gw_spool_read. Commits must still come in
 * order: gw_spool_commit(end) says that everything before end is stored. */
size_t gw_spool_read_from(gw_spool_t *s, const gw_spool_pos_t *from, size_t max,
                          gw_spool_visit_fn visit, void *arg, gw_spool_pos_t *end);

/* Records that everything before end (n records) is stored: writes the
 * checkpoint (temporary file, fdatasync, rename, directory fsync), then
 * deletes segments wholly before it and wakes appends waiting for space;
 * the stats' pending count drops after the deletion, so a caller that sees
 * it reach 0 also sees the drained segments' bytes gone. Same thread as
 * gw_spool_read. Returns 0, or -1 if the checkpoint could not
 * be written (logged; the records will be read again: harmless when the
 * store is idempotent). */
int gw_spool_commit(gw_spool_t *s, gw_spool_pos_t end, size_t n);

/* Wakes appends blocked for space so that they return -1 (for shutdown). */
void gw_spool_unblock(gw_spool_t *s);

void gw_spool_stats(gw_spool_t *s, gw_spool_stats_t *out);
const char *gw_spool_dir(const gw_spool_t *s);

/* fdatasyncs what was appended, releases the lock and frees. */
void gw_spool_close(gw_spool_t *s);

/* What gw_spool_inspect found. */
typedef struct gw_spool_inspect {
    uint64_t records;   /* valid records after the checkpoint (not yet committed) */
    uint64_t bytes;     /* segment files' total size */
    uint64_t segments;  /* segment files */
    uint64_t corrupted; /* damaged regions that would be skipped */
    uint64_t torn;      /* an incomplete tail on the last segment (or an append in flight) */
    bool in_use;        /* a running process holds the spool's lock */
} gw_spool_inspect_t;

/* Reads a spool directory without changing anything (no lock taken, nothing
 * truncated): visits every valid record after the checkpoint, in order, and
 * counts. Safe while a gateway is appending (its last frame may show as a
 * torn tail). Returns 0, or -1 with err set if the directory is unreadable. */
int gw_spool_inspect(const char *dir, gw_spool_visit_fn visit, void *arg, gw_spool_inspect_t *out,
                     char *err, size_t errlen);

/* CRC32C (Castagnoli) of buf, continuing from crc (start with 0). */
uint32_t gw_spool_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
