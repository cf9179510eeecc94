/* gw_spool: an append-only journal of checksummed frames in segment files
 * (DIR/seg-<20 digits>.tgj), a checkpoint file (DIR/checkpoint) saying how
 * far a consumer has stored them, and the recovery scan run at open (torn
 * tail truncated, damaged regions skipped, both logged and counted). See
 * gw_spool.h for the contract and docs/ledger.md for the format. */
#include "gw_spool.h"

#include "tg_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SP_MAGIC 0x31524754u /* "TGR1" as little-endian bytes */
#define SP_SEG_MIN ((uint64_t)4096)
#define SP_SEG_MAX ((uint64_t)64 << 20)
#define SP_READ_BUF ((size_t)1 << 20) /* > the largest frame, so one frame always fits */
#define SP_CKPT_NAME "checkpoint"
#define SP_CKPT_TMP "checkpoint.tmp"

typedef enum { SP_BAD_MIDDLE, SP_BAD_TAIL } sp_bad_t;

struct gw_spool {
    gw_spool_opts_t o;
    uint64_t seg_max; /* rotate the active segment past this size */
    int dirfd, lockfd;
    pthread_mutex_t mu;
    pthread_cond_t space_cv;  /* appends waiting for budget */
    pthread_cond_t sync_cv;   /* CLOCK_MONOTONIC; the interval syncer sleeps on it */
    pthread_cond_t synced_cv; /* always mode: appends waiting for the group's fdatasync */
    /* Under mu: */
    int afd;         /* active segment, O_APPEND */
    uint64_t aseg;   /* its number */
    uint64_t asize;  /* its size (every byte below is a complete frame) */
    uint64_t oldest; /* lowest segment number that may still exist */
    bool dirty;      /* appended since the last fdatasync */
    uint64_t seq;    /* bytes appended since open, all segments */
    uint64_t synced; /* always mode: seq known to be on disk */
    bool syncing;    /* always mode: an appender is running the group's fdatasync */
    bool closing, unblocked, full_logged;
    gw_spool_stats_t st;
    /* Reader thread only: */
    gw_spool_pos_t ck;       /* committed position */
    gw_spool_pos_t reported; /* damage before this was already reported */
    int rfd;
    uint64_t rseg;
    uint8_t *rbuf;
    pthread_t syncer;
    bool has_syncer;
};

/* ---- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) ---- */

static uint32_t sp_crc_table[256];
static bool sp_crc_hw; /* the CPU has the SSE4.2 crc32 instruction (CRC32C itself) */
static pthread_once_t sp_crc_once = PTHREAD_ONCE_INIT;

static void sp_crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        sp_crc_table[i] = c;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    sp_crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same CRC with the crc32 instruction, 8 bytes at a time (about 20x
 * faster than the table: every record is checksummed when appended and
 * again when read). Only called when sp_crc_hw. */
__attribute__((target("sse4.2"))) static uint32_t sp_crc32c_hw(uint32_t crc, const uint8_t *p,
                                                               size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8); /* unaligned; x86-64 is little-endian like the format */
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t gw_spool_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&sp_crc_once, sp_crc_init);
    const uint8_t *p = buf;
    crc = ~crc;
#if defined(__x86_64__) && defined(__GNUC__)
    if (sp_crc_hw)
        return ~sp_crc32c_hw(crc, p, len);
#endif
    while (len--)
        crc = sp_crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static uint32_t sp_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void sp_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* The frame's checksum covers its length field and its payload. */
static uint32_t sp_frame_crc(const uint8_t *len_field, const uint8_t *payload, size_t len)
{
    return gw_spool_crc32c(gw_spool_crc32c(0, len_field, 4), payload, len);
}

/* Checks the frame at b[0..avail). 1: valid, *flen = its size; 0: the bytes
 * so far look right but the frame continues past avail; -1: not a frame. */
static int sp_frame_check(const uint8_t *b, size_t avail, size_t *flen)
{
    if (avail < 4)
        return 0;
    if (sp_rd32(b) != SP_MAGIC)
        return -1;
    if (avail < GW_SPOOL_FRAME_HEADER)
        return 0;
    uint32_t len = sp_rd32(b + 4);
    if (len == 0 || len > GW_SPOOL_PAYLOAD_MAX)
        return -1;
    if (avail < GW_SPOOL_FRAME_HEADER + (size_t)len)
        return 0;
    if (sp_frame_crc(b + 4, b + GW_SPOOL_FRAME_HEADER, len) != sp_rd32(b + 8))
        return -1;
    *flen = GW_SPOOL_FRAME_HEADER + (size_t)len;
    return 1;
}

/* ---- files ---- */

static void sp_seg_name(char *buf, size_t size, uint64_t seg)
{
    snprintf(buf, size, "seg-%020" PRIu64 ".tgj", seg);
}

static ssize_t sp_pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return got ? (ssize_t)got : -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int sp_write_full(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static uint64_t sp_file_size(int fd)
{
    struct stat sb;
    return fstat(fd, &sb) == 0 && sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
}

static int sp_pos_cmp(gw_spool_pos_t a, gw_spool_pos_t b)
{
    if (a.seg != b.seg)
        return a.seg < b.seg ? -1 : 1;
    return a.off < b.off ? -1 : a.off > b.off ? 1 : 0;
}

/* The first offset in [from, limit) of fd where a valid frame starts, or
 * limit. Only runs on damage, so it simply reads the whole range. */
static uint64_t sp_resync(int fd, uint64_t from, uint64_t limit)
{
    if (from >= limit)
        return limit;
    size_t n = (size_t)(limit - from);
    uint8_t *b = malloc(n);
    if (!b)
        abort();
    ssize_t got = sp_pread_full(fd, b, n, from);
    uint64_t out = limit;
    for (size_t i = 0; got > 0 && i + GW_SPOOL_FRAME_HEADER <= (size_t)got; i++) {
        size_t flen;
        if (b[i] == (SP_MAGIC & 0xFF) && sp_frame_check(b + i, (size_t)got - i, &flen) == 1) {
            out = from + i;
            break;
        }
    }
    free(b);
    return out;
}

typedef void (*sp_bad_fn)(gw_spool_t *s, int fd, uint64_t seg, uint64_t from, uint64_t to,
                          sp_bad_t kind);

/* Walks the frames of segment seg (fd) from *off up to limit, calling visit
 * (may be NULL) for at most max valid frames. A damaged region [from, to)
 * goes to bad: SP_BAD_MIDDLE when a valid frame starts at to, SP_BAD_TAIL
 * when none does before limit. *off ends after the last frame visited or
 * region skipped. Returns the number of frames visited. */
static size_t sp_scan(gw_spool_t *s, int fd, uint64_t seg, uint64_t *off, uint64_t limit,
                      size_t max, gw_spool_visit_fn visit, void *arg, sp_bad_fn bad)
{
    size_t n = 0;
    while (n < max && *off < limit) {
        size_t want = limit - *off < SP_READ_BUF ? (size_t)(limit - *off) : SP_READ_BUF;
        ssize_t got = sp_pread_full(fd, s->rbuf, want, *off);
        if (got <= 0) {
            tg_error("usage spool: cannot read segment %" PRIu64 " at %" PRIu64 ": %s", seg, *off,
                     got < 0 ? strerror(errno) : "file shorter than expected");
            break;
        }
        if ((size_t)got < want)
            limit = *off + (uint64_t)got; /* the file shrank under us: stop at its end */
        size_t p = 0;
        bool damaged = false;
        while (n < max && p < (size_t)got) {
            size_t flen = 0;
            int c = sp_frame_check(s->rbuf + p, (size_t)got - p, &flen);
            if (c == 1) {
                if (visit)
                    visit(arg, s->rbuf + GW_SPOOL_FRAME_HEADER + p, flen - GW_SPOOL_FRAME_HEADER);
                n++;
                p += flen;
                continue;
            }
            if (c == 0 && *off + (uint64_t)got < limit)
                break; /* the frame continues in the next read */
            uint64_t from = *off + p, to = sp_resync(fd, from + 1, limit);
            bad(s, fd, seg, from, to, to >= limit ? SP_BAD_TAIL : SP_BAD_MIDDLE);
            *off = to;
            damaged = true;
            break;
        }
        if (damaged)
            continue;
        if (p == 0)
            break; /* cannot happen: a buffer holds the largest frame */
        *off += p;
    }
    return n;
}

/* ---- checkpoint ---- */

/* Reads DIR/checkpoint: "TGCKPT 1 <seg> <off> <crc32c hex of the text
 * before it>\n". Returns 1 and *pos, 0 when absent, -1 when unreadable. */
static int sp_ckpt_read(gw_spool_t *s, gw_spool_pos_t *pos)
{
    int fd = openat(s->dirfd, SP_CKPT_NAME, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    char buf[128];
    ssize_t n = sp_pread_full(fd, (uint8_t *)buf, sizeof buf - 1, 0);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    unsigned long long seg, off;
    unsigned crc;
    int used = 0;
    if (sscanf(buf, "TGCKPT 1 %llu %llu %n", &seg, &off, &used) != 2 || used <= 0 ||
        sscanf(buf + used, "%8x", &crc) != 1 || gw_spool_crc32c(0, buf, (size_t)used) != crc)
        return -1;
    pos->seg = seg;
    pos->off = off;
    return 1;
}

/* Writes the checkpoint durably: temporary file, fdatasync, rename over the
 * old one, fsync of the directory (so the rename itself survives a crash). */
static int sp_ckpt_write(gw_spool_t *s, gw_spool_pos_t pos)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "TGCKPT 1 %" PRIu64 " %" PRIu64 " ", pos.seg, pos.off);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "%08x\n", gw_spool_crc32c(0, buf, (size_t)n));
    int fd = openat(s->dirfd, SP_CKPT_TMP, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        goto fail;
    if (sp_write_full(fd, (uint8_t *)buf, (size_t)n) != 0 || fdatasync(fd) != 0) {
        close(fd);
        goto fail;
    }
    close(fd);
    if (renameat(s->dirfd, SP_CKPT_TMP, s->dirfd, SP_CKPT_NAME) != 0 || fsync(s->dirfd) != 0)
        goto fail;
    return 0;
fail:
    tg_error("usage spool: cannot write the checkpoint in %s: %s (the last batch will be "
             "read again; harmless, rows are idempotent)",
             s->o.dir, strerror(errno));
    return -1;
}

/* ---- segments ---- */

static int sp_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment numbers in the directory, sorted. *out is malloc'd. */
static size_t sp_list_segments(gw_spool_t *s, uint64_t **out)
{
    size_t n = 0, cap = 16;
    uint64_t *v = malloc(cap * sizeof *v);
    int fd = dup(s->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!v)
        abort();
    if (!d) {
        if (fd >= 0)
            close(fd);
        *out = v;
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long seg;
        char tail[8];
        if (strlen(e->d_name) != 28 || sscanf(e->d_name, "seg-%20llu%7s", &seg, tail) != 2 ||
            strcmp(tail, ".tgj") != 0)
            continue;
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            if (!v)
                abort();
        }
        v[n++] = seg;
    }
    closedir(d);
    qsort(v, n, sizeof *v, sp_u64_cmp);
    *out = v;
    return n;
}

/* Opens a fresh active segment number seg. Caller holds mu (or is open). */
static int sp_seg_create(gw_spool_t *s, uint64_t seg)
{
    char name[64];
    sp_seg_name(name, sizeof name, seg);
    int fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    uint64_t size = sp_file_size(fd);
    if (fsync(s->dirfd) != 0)
        tg_warn("usage spool: fsync of %s failed: %s", s->o.dir, strerror(errno));
    s->afd = fd;
    s->aseg = seg;
    s->asize = size;
    s->st.bytes += size;
    return 0;
}

/* At open: damage in a segment is reported; a torn tail of the last segment
 * (the append a crash interrupted) is cut off so that appends never follow
 * garbage. */
static void sp_bad_at_open(gw_spool_t *s, int fd, uint64_t seg, uint64_t from, uint64_t to,
                           sp_bad_t kind)
{
    bool last = seg + 1 == s->aseg; /* during the open scan aseg is the next number */
    if (kind == SP_BAD_TAIL && last) {
        if (ftruncate(fd, (off_t)from) == 0) {
            s->st.bytes -= to - from;
            s->st.torn++;
            tg_warn("usage spool: torn record at the tail of %s/seg-%020" PRIu64 ".tgj: %" PRIu64
                    " bytes from offset %" PRIu64
                    " truncated (an append cut short by a crash; the records before it are kept)",
                    s->o.dir, seg, to - from, from);
            return;
        }
        tg_error("usage spool: cannot truncate the torn tail of segment %" PRIu64 ": %s", seg,
                 strerror(errno));
    }
    s->st.corrupted++;
    tg_error("usage spool: corrupted data in %s/seg-%020" PRIu64 ".tgj, bytes %" PRIu64 "..%" PRIu64
             " (%" PRIu64 " bytes) fail their checksum or framing: skipped, the "
             "records after them are kept",
             s->o.dir, seg, from, to, to - from);
}

/* While running: damage appears only if the disk changed bytes under us. */
static void sp_bad_running(gw_spool_t *s, int fd, uint64_t seg, uint64_t from, uint64_t to,
                           sp_bad_t kind)
{
    (void)fd;
    (void)kind;
    gw_spool_pos_t end = {seg, to};
    if (sp_pos_cmp(end, s->reported) <= 0)
        return;
    s->reported = end;
    pthread_mutex_lock(&s->mu);
    s->st.corrupted++;
    pthread_mutex_unlock(&s->mu);
    tg_error("usage spool: corrupted data in %s/seg-%020" PRIu64 ".tgj, bytes %" PRIu64 "..%" PRIu64
             ": skipped, the records after them are kept",
             s->o.dir, seg, from, to);
}

static void sp_count(void *arg, const uint8_t *payload, size_t len)
{
    (void)payload;
    (void)len;
    (*(uint64_t *)arg)++;
}

/* The recovery scan of gw_spool_open: from the checkpoint to the end of the
 * last segment. segs[0..n) sorted; aseg already set to the next number. */
static void sp_recover(gw_spool_t *s, const uint64_t *segs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char name[64];
        sp_seg_name(name, sizeof name, segs[i]);
        bool last = i + 1 == n;
        int fd = openat(s->dirfd, name, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (fd < 0) {
            tg_error("usage spool: cannot open %s/%s: %s", s->o.dir, name, strerror(errno));
            continue;
        }
        uint64_t size = sp_file_size(fd), off = 0;
        s->st.bytes += size;
        if (segs[i] == s->ck.seg) {
            off = s->ck.off;
            if (off > size) {
                tg_error("usage spool: checkpoint offset %" PRIu64
                         " is past the end of %s (%" PRIu64
                         " bytes): treating the segment as drained",
                         off, name, size);
                off = size;
            }
        }
        if (segs[i] + 1 < (i + 1 < n ? segs[i + 1] : s->aseg) && !last)
            tg_warn("usage spool: segments %" PRIu64 "..%" PRIu64 " are missing from %s",
                    segs[i] + 1, segs[i + 1] - 1, s->o.dir);
        uint64_t found = 0;
        sp_scan(s, fd, segs[i], &off, size, SIZE_MAX, sp_count, &found, sp_bad_at_open);
        s->st.pending += found;
        close(fd);
    }
}

static struct timespec sp_abs_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Interval mode: fdatasyncs the active segment every sync_ms when dirty.
 * The sync runs on a dup of the fd, outside the lock, so appends go on. */
static void *sp_syncer(void *arg)
{
    gw_spool_t *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        struct timespec ts = sp_abs_ms(s->o.sync_ms);
        pthread_cond_timedwait(&s->sync_cv, &s->mu, &ts);
        if (!s->dirty || s->afd < 0)
            continue;
        int fd = dup(s->afd);
        s->dirty = false;
        pthread_mutex_unlock(&s->mu);
        if (fd >= 0) {
            if (fdatasync(fd) != 0)
                tg_error("usage spool: fdatasync failed: %s", strerror(errno));
            close(fd);
        }
        pthread_mutex_lock(&s->mu);
        s->st.syncs++;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

gw_spool_t *gw_spool_open(const gw_spool_opts_t *o, char *err, size_t errlen)
{
    gw_spool_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->o = *o;
    s->dirfd = s->lockfd = s->afd = s->rfd = -1;
    s->seg_max = o->max_bytes / 8;
    s->seg_max = s->seg_max < SP_SEG_MIN   ? SP_SEG_MIN
                 : s->seg_max > SP_SEG_MAX ? SP_SEG_MAX
                                           : s->seg_max;
    if (s->o.sync_ms < 1)
        s->o.sync_ms = 1;
    s->rbuf = malloc(SP_READ_BUF);
    if (!s->rbuf)
        abort();
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->space_cv, NULL);
    pthread_cond_init(&s->synced_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->sync_cv, &ca);
    pthread_condattr_destroy(&ca);

    uint64_t *segs = NULL;
    if (!o->dir[0]) {
        snprintf(err, errlen, "usage spool: no directory given");
        goto fail;
    }
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "usage spool: cannot create %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    s->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        snprintf(err, errlen, "usage spool: cannot open %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "usage spool: %s is in use by another process (or unlockable: %s)",
                 o->dir, strerror(errno));
        goto fail;
    }
    size_t n = sp_list_segments(s, &segs);
    int ck = sp_ckpt_read(s, &s->ck);
    if (ck < 0)
        tg_error("usage spool: the checkpoint in %s is unreadable: replaying every segment "
                 "(rows already in PostgreSQL are skipped by request id)",
                 o->dir);
    if (ck <= 0)
        s->ck = (gw_spool_pos_t){n ? segs[0] : 1, 0};
    /* Segments wholly before the checkpoint are drained: delete leftovers
     * (a crash between writing the checkpoint and deleting them). */
    size_t first = 0;
    while (first < n && segs[first] < s->ck.seg) {
        char name[64];
        sp_seg_name(name, sizeof name, segs[first]);
        if (unlinkat(s->dirfd, name, 0) != 0)
            tg_warn("usage spool: cannot delete drained %s: %s", name, strerror(errno));
        first++;
    }
    uint64_t next = n ? segs[n - 1] + 1 : 1;
    if (next <= s->ck.seg)
        next = s->ck.seg + 1;
    s->aseg = next;
    s->oldest = first < n ? segs[first] : s->ck.seg;
    if (s->oldest > s->ck.seg)
        s->oldest = s->ck.seg;
    sp_recover(s, segs + first, n - first);
    free(segs);
    segs = NULL;
    s->reported = (gw_spool_pos_t){next, 0};
    if (sp_seg_create(s, next) != 0) {
        snprintf(err, errlen, "usage spool: cannot create a segment in %s: %s", o->dir,
                 strerror(errno));
        goto fail;
    }
    if (s->o.sync == GW_SPOOL_SYNC_INTERVAL) {
        if (pthread_create(&s->syncer, NULL, sp_syncer, s) != 0) {
            snprintf(err, errlen, "usage spool: cannot start the sync thread");
            goto fail;
        }
        s->has_syncer = true;
    }
    tg_info("usage spool: %s: %" PRIu64 " records to drain (%" PRIu64
            " bytes on disk, budget %" PRIu64 "), %" PRIu64 " corrupted regions skipped, %" PRIu64
            " torn tails truncated",
            o->dir, s->st.pending, s->st.bytes, o->max_bytes, s->st.corrupted, s->st.torn);
    return s;
fail:
    free(segs);
    tg_error("%s", err);
    if (s->afd >= 0)
        close(s->afd);
    if (s->lockfd >= 0)
        close(s->lockfd);
    if (s->dirfd >= 0)
        close(s->dirfd);
    pthread_cond_destroy(&s->sync_cv);
    pthread_cond_destroy(&s->space_cv);
    pthread_cond_destroy(&s->synced_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->rbuf);
    free(s);
    return NULL;
}

/* Seals the active segment and starts the next. Caller holds mu. */
static int sp_rotate(gw_spool_t *s)
{
    /* A sealed segment is synced here: the interval syncer and the group
     * commit of always mode only look at the active one. (In always mode an
     * fdatasync of another appender may be in flight: this one is not
     * skipped, so every byte of a sealed segment is on disk.) */
    if (s->dirty || s->o.sync == GW_SPOOL_SYNC_ALWAYS) {
        if (fdatasync(s->afd) != 0)
            tg_error("usage spool: fdatasync failed: %s", strerror(errno));
        s->st.syncs++;
    }
    s->dirty = false;
    close(s->afd);
    s->afd = -1;
    if (sp_seg_create(s, s->aseg + 1) != 0) {
        tg_error("usage spool: cannot create segment %" PRIu64 " in %s: %s", s->aseg + 1, s->o.dir,
                 strerror(errno));
        /* Keep appending to the old one rather than lose anything. */
        char name[64];
        sp_seg_name(name, sizeof name, s->aseg);
        s->afd = openat(s->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
        return -1;
    }
    return 0;
}

/* Always mode: returns once every byte up to seq `mine` is on disk. The
 * first appender to find no fdatasync running starts one for everything
 * appended so far (on a dup of the fd, without the lock, so others append
 * meanwhile); the others wait for it and, if it did not cover them, start
 * the next. Caller holds mu. A failed fdatasync is logged and counts as done:
 * the record is in the file, only the power-loss promise is weakened. */
static void sp_sync_upto(gw_spool_t *s, uint64_t mine)
{
    while (s->synced < mine) {
        if (s->syncing) {
            pthread_cond_wait(&s->synced_cv, &s->mu);
            continue;
        }
        s->syncing = true;
        uint64_t target = s->seq;
        int fd = dup(s->afd);
        s->dirty = false;
        pthread_mutex_unlock(&s->mu);
        int r = fd >= 0 ? fdatasync(fd) : -1, e = errno;
        if (fd >= 0)
            close(fd);
        pthread_mutex_lock(&s->mu);
        s->st.syncs++;
        if (r != 0)
            tg_error("usage spool: fdatasync failed: %s", strerror(e));
        if (target > s->synced)
            s->synced = target;
        s->syncing = false;
        pthread_cond_broadcast(&s->synced_cv);
    }
}

int gw_spool_append(gw_spool_t *s, const void *payload, size_t len)
{
    if (len == 0 || len > GW_SPOOL_PAYLOAD_MAX) {
        tg_error("usage spool: record of %zu bytes refused (1..%d)", len, GW_SPOOL_PAYLOAD_MAX);
        return -1;
    }
    size_t flen = GW_SPOOL_FRAME_HEADER + len;
    uint8_t stackbuf[2048], *frame = flen <= sizeof stackbuf ? stackbuf : malloc(flen);
    if (!frame)
        abort();
    sp_wr32(frame, SP_MAGIC);
    sp_wr32(frame + 4, (uint32_t)len);
    memcpy(frame + GW_SPOOL_FRAME_HEADER, payload, len);
    sp_wr32(frame + 8, sp_frame_crc(frame + 4, frame + GW_SPOOL_FRAME_HEADER, len));
    int rc = -1;
    pthread_mutex_lock(&s->mu);
    while (s->st.bytes + flen > s->o.max_bytes) {
        if (!s->full_logged) {
            s->full_logged = true;
            tg_warn("usage spool: %s is full (%" PRIu64 " of %" PRIu64 " bytes; PostgreSQL "
                    "behind?): %s new records until the writer drains it",
                    s->o.dir, s->st.bytes, s->o.max_bytes,
                    s->o.full == GW_SPOOL_FULL_BLOCK ? "blocking" : "refusing");
        }
        if (s->o.full == GW_SPOOL_FULL_REFUSE || s->closing || s->unblocked)
            goto out;
        pthread_cond_wait(&s->space_cv, &s->mu);
    }
    if (s->asize > 0 && s->asize + flen > s->seg_max)
        sp_rotate(s);
    if (s->afd < 0 || sp_write_full(s->afd, frame, flen) != 0) {
        int e = errno;
        /* Undo a partial frame so the next append starts on a boundary. */
        if (s->afd >= 0 && ftruncate(s->afd, (off_t)s->asize) != 0)
            tg_error("usage spool: cannot undo a partial append: %s", strerror(errno));
        tg_error("usage spool: append to %s failed: %s: record refused", s->o.dir, strerror(e));
        goto out;
    }
    s->asize += flen;
    s->st.bytes += flen;
    s->st.pending++;
    s->st.appended++;
    s->seq += flen;
    s->dirty = true;
    /* The record is in the file now: a killed process loses nothing. */
    if (s->o.sync == GW_SPOOL_SYNC_ALWAYS)
        sp_sync_upto(s, s->seq);
    rc = 0;
out:
    if (rc != 0)
        s->st.refused++;
    pthread_mutex_unlock(&s->mu);
    if (frame != stackbuf)
        free(frame);
    return rc;
}

bool gw_spool_has_room(gw_spool_t *s, size_t len)
{
    pthread_mutex_lock(&s->mu);
    bool room = s->st.bytes + GW_SPOOL_FRAME_HEADER + len <= s->o.max_bytes;
    pthread_mutex_unlock(&s->mu);
    return room;
}

size_t gw_spool_read(gw_spool_t *s, size_t max, gw_spool_visit_fn visit, void *arg,
                     gw_spool_pos_t *end)
{
    return gw_spool_read_from(s, NULL, max, visit, arg, end);
}

size_t gw_spool_read_from(gw_spool_t *s, const gw_spool_pos_t *from, size_t max,
                          gw_spool_visit_fn visit, void *arg, gw_spool_pos_t *end)
{
    gw_spool_pos_t pos = from ? *from : s->ck;
    if (pos.seg < s->ck.seg || (pos.seg == s->ck.seg && pos.off < s->ck.off))
        pos = s->ck; /* never before the checkpoint: those segments may be gone */
    size_t n = 0;
    while (n < max) {
        pthread_mutex_lock(&s->mu);
        uint64_t aseg = s->aseg, asize = s->asize;
        pthread_mutex_unlock(&s->mu);
        if (pos.seg > aseg)
            break;
        if (s->rfd < 0 || s->rseg != pos.seg) {
            if (s->rfd >= 0)
                close(s->rfd);
            char name[64];
            sp_seg_name(name, sizeof name, pos.seg);
            s->rfd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
            s->rseg = pos.seg;
            if (s->rfd < 0) {
                if (pos.seg < aseg) { /* a missing segment: reported at open */
                    pos = (gw_spool_pos_t){pos.seg + 1, 0};
                    continue;
                }
                tg_error("usage spool: cannot open the active segment: %s", strerror(errno));
                break;
            }
        }
        uint64_t limit = pos.seg == aseg ? asize : sp_file_size(s->rfd);
        if (pos.off > limit)
            pos.off = limit;
        n += sp_scan(s, s->rfd, pos.seg, &pos.off, limit, max - n, visit, arg, sp_bad_running);
        if (pos.off < limit || pos.seg == aseg)
            break;
        pos = (gw_spool_pos_t){pos.seg + 1, 0};
    }
    *end = pos;
    return n;
}

int gw_spool_commit(gw_spool_t *s, gw_spool_pos_t end, size_t n)
{
    if (sp_ckpt_write(s, end) != 0)
        return -1;
    s->ck = end;
    if (s->rfd >= 0 && s->rseg < end.seg) {
        close(s->rfd);
        s->rfd = -1;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t from = s->oldest;
    s->oldest = end.seg > s->oldest ? end.seg : s->oldest;
    pthread_mutex_unlock(&s->mu);
    uint64_t freed = 0;
    for (uint64_t seg = from; seg < end.seg; seg++) {
        char name[64];
        struct stat sb;
        sp_seg_name(name, sizeof name, seg);
        if (fstatat(s->dirfd, name, &sb, 0) != 0)
            continue;
        if (unlinkat(s->dirfd, name, 0) != 0) {
            tg_warn("usage spool: cannot delete drained %s: %s", name, strerror(errno));
            continue;
        }
        freed += (uint64_t)sb.st_size;
    }
    /* pending drops only now, with the drained segments gone: whoever sees
     * it reach 0 also sees their bytes freed */
    pthread_mutex_lock(&s->mu);
    s->st.pending = s->st.pending >= n ? s->st.pending - n : 0;
    s->st.bytes = s->st.bytes >= freed ? s->st.bytes - freed : 0;
    if (freed && s->full_logged && s->st.bytes < s->o.max_bytes) {
        s->full_logged = false;
        tg_info("usage spool: %s has room again (%" PRIu64 " bytes)", s->o.dir, s->st.bytes);
    }
    pthread_cond_broadcast(&s->space_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void gw_spool_unblock(gw_spool_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->unblocked = true;
    pthread_cond_broadcast(&s->space_cv);
    pthread_mutex_unlock(&s->mu);
}

void gw_spool_stats(gw_spool_t *s, gw_spool_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

const char *gw_spool_dir(const gw_spool_t *s)
{
    return s->o.dir;
}

void gw_spool_close(gw_spool_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->sync_cv);
    pthread_cond_broadcast(&s->space_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->has_syncer)
        pthread_join(s->syncer, NULL);
    if (s->afd >= 0) {
        if (fdatasync(s->afd) != 0)
            tg_error("usage spool: fdatasync failed: %s", strerror(errno));
        close(s->afd);
    }
    if (s->rfd >= 0)
        close(s->rfd);
    close(s->lockfd); /* releases the flock */
    close(s->dirfd);
    pthread_cond_destroy(&s->sync_cv);
    pthread_cond_destroy(&s->space_cv);
    pthread_cond_destroy(&s->synced_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->rbuf);
    free(s);
}

/* gw_spool_inspect's damage counter: counts only, repairs nothing. */
static void sp_bad_inspect(gw_spool_t *s, int fd, uint64_t seg, uint64_t from, uint64_t to,
                           sp_bad_t kind)
{
    (void)fd;
    (void)from;
    (void)to;
    if (kind == SP_BAD_TAIL && seg + 1 == s->aseg)
        s->st.torn++;
    else
        s->st.corrupted++;
}

int gw_spool_inspect(const char *dir, gw_spool_visit_fn visit, void *arg, gw_spool_inspect_t *out,
                     char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    gw_spool_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    snprintf(s->o.dir, sizeof s->o.dir, "%s", dir);
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        snprintf(err, errlen, "cannot open the spool directory %s: %s", dir, strerror(errno));
        free(s);
        return -1;
    }
    s->rbuf = malloc(SP_READ_BUF);
    if (!s->rbuf)
        abort();
    int lockfd = openat(s->dirfd, "lock", O_RDONLY | O_CLOEXEC);
    if (lockfd >= 0) {
        out->in_use = flock(lockfd, LOCK_SH | LOCK_NB) != 0;
        close(lockfd); /* releases a shared lock we may have taken */
    }
    uint64_t *segs = NULL;
    size_t n = sp_list_segments(s, &segs);
    if (sp_ckpt_read(s, &s->ck) <= 0)
        s->ck = (gw_spool_pos_t){n ? segs[0] : 1, 0};
    s->aseg = n ? segs[n - 1] + 1 : 1;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        sp_seg_name(name, sizeof name, segs[i]);
        int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        uint64_t size = sp_file_size(fd), off = segs[i] == s->ck.seg ? s->ck.off : 0;
        out->segments++;
        out->bytes += size;
        if (segs[i] >= s->ck.seg && off <= size)
            out->records +=
                sp_scan(s, fd, segs[i], &off, size, SIZE_MAX, visit, arg, sp_bad_inspect);
        close(fd);
    }
    out->corrupted = s->st.corrupted;
    out->torn = s->st.torn;
    free(segs);
    free(s->rbuf);
    close(s->dirfd);
    free(s);
    return 0;
}
