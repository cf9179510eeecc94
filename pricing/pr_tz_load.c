/* pr_tz_load: the one place where pricing touches the file system: reads a
 * zone's TZif file from the system tz database and hands the bytes to the pure
 * parser (pr_tz_parse). Callers log the error message they get back. */
#include "pr_tz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* IANA names: components of letters, digits, '_', '-', '+', separated by '/'. */
static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 63 || name[0] == '/' || name[0] == '.' || strstr(name, "..") != NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '-' || c == '+'))
            return 0;
    }
    return 1;
}

int pr_tz_load(const char *name, const char *tzdir, pr_tz_t **out, char *err, size_t errlen)
{
    if (name == NULL || !name_ok(name)) {
        snprintf(err, errlen, "time zone name \"%.64s\" is not a valid IANA zone name",
                 name ? name : "(null)");
        return -1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tzdir ? tzdir : "/usr/share/zoneinfo", name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "unknown time zone \"%s\" (%s: %s)", name, path, strerror(errno));
        return -1;
    }
    /* Zone files are a few KiB; 1 MiB is a generous cap against junk. */
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL)
        abort();
    len = fread(buf, 1, cap, f);
    int rd_err = ferror(f);
    fclose(f);
    int rc;
    if (rd_err) {
        snprintf(err, errlen, "time zone \"%s\": cannot read %s (is it a directory?)", name, path);
        rc = -1;
    } else if (len == cap) {
        snprintf(err, errlen, "time zone \"%s\": %s is too large to be a TZif file", name, path);
        rc = -1;
    } else {
        rc = pr_tz_parse(name, buf, len, out, err, errlen);
    }
    free(buf);
    return rc;
}
