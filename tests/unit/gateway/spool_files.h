/* Helpers for the spool tests: a scratch spool directory, its segment files,
 * and walking the frames of one (to damage a chosen record on purpose). */
#ifndef SPOOL_FILES_H
#define SPOOL_FILES_H

#include "gw_spool.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh empty directory under TMPDIR (or /tmp). */
static inline void spool_tmpdir(char *out, size_t size, const char *tag)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, size, "%s/tgspool-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        exit(1);
    }
}

static inline void spool_rmdir(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test: could not remove %s\n", dir);
}

/* The number of segment files in dir; *last gets the path of the highest
 * numbered one that is not empty ("" if none). */
static inline int spool_segments(const char *dir, char *last, size_t size)
{
    DIR *d = opendir(dir);
    int n = 0;
    char best[256] = "";
    if (last)
        last[0] = '\0';
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "seg-", 4) != 0)
            continue;
        n++;
        char path[2048];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb) == 0 && sb.st_size > 0 && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (last && best[0])
        snprintf(last, size, "%s/%s", dir, best);
    return n;
}

/* Reads a whole file; *len gets its size. NULL if unreadable. */
static inline uint8_t *spool_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(b, 1, n > 0 ? (size_t)n : 0, f);
    fclose(f);
    return b;
}

/* The byte offset of frame number k (0-based) in a segment's bytes, walking
 * the length fields; -1 if there are fewer frames. */
static inline long spool_frame_offset(const uint8_t *b, size_t len, int k)
{
    size_t off = 0;
    for (int i = 0; off + GW_SPOOL_FRAME_HEADER <= len; i++) {
        if (i == k)
            return (long)off;
        uint32_t plen = (uint32_t)b[off + 4] | (uint32_t)b[off + 5] << 8 |
                        (uint32_t)b[off + 6] << 16 | (uint32_t)b[off + 7] << 24;
        off += GW_SPOOL_FRAME_HEADER + plen;
    }
    return -1;
}

/* Overwrites len bytes at off in the file at path (opened read-write). */
static inline int spool_patch(const char *path, long off, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        return -1;
    int rc = fseek(f, off, SEEK_SET) == 0 && fwrite(bytes, 1, len, f) == len ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* Appends bytes at the end of the file at path. */
static inline int spool_append_raw(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "ab");
    if (!f)
        return -1;
    int rc = fwrite(bytes, 1, len, f) == len ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

#endif
