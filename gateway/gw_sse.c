/* gw_sse: incremental SSE event splitter used by the stream relay. Events end
 * at a blank line ("\n\n" or "\r\n\r\n"); partial events wait for more bytes. */
#include "gw_sse.h"

#include <stdlib.h>
#include <string.h>

void gw_sse_init(gw_sse_splitter_t *s, size_t max_event)
{
    memset(s, 0, sizeof *s);
    s->max_event = max_event;
}

void gw_sse_free(gw_sse_splitter_t *s)
{
    free(s->buf);
    memset(s, 0, sizeof *s);
}

size_t gw_sse_pending(const gw_sse_splitter_t *s)
{
    return s->len;
}

/* Finds the end of the first event in buf[from..len), where no event ends
 * before `from`: the index just past its blank line, or 0 if incomplete. */
static size_t event_end(const char *buf, size_t from, size_t len)
{
    for (size_t i = from; i + 1 < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static bool is_field_line(const char *line, size_t len)
{
    static const char *const fields[] = {"data", "event", "id", "retry"};
    if (len == 0 || line[0] == ':')
        return true;
    for (size_t f = 0; f < 4; f++) {
        size_t fl = strlen(fields[f]);
        if (len >= fl && memcmp(line, fields[f], fl) == 0 && (len == fl || line[fl] == ':'))
            return true;
    }
    return false;
}

/* Checks the complete lines of buf[0..len) (which starts at a line start) and
 * returns how many bytes they cover, or -1 if one is not an SSE field line. */
static long check_lines(const char *buf, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        size_t l = i - start;
        if (l > 0 && buf[start + l - 1] == '\r')
            l--;
        if (!is_field_line(buf + start, l))
            return -1;
        start = i + 1;
    }
    return (long)start;
}

/* A line still incomplete: plainly not SSE already? (a field name needs no
 * more than a few bytes before its colon) */
static bool partial_line_bad(const char *p, size_t l)
{
    return l >= 6 && p[0] != ':' && !is_field_line(p, l) && memchr(p, ':', l) == NULL;
}

int gw_sse_feed(gw_sse_splitter_t *s, const char *data, size_t n, gw_sse_event_cb cb, void *arg)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb)
            abort();
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    /* Each byte is searched and checked once: `searched` and `checked` keep
     * the place across calls (an upstream may trickle a big event). */
    size_t off = 0;
    int rc = 0;
    for (;;) {
        size_t from = s->searched >= off + 2 ? s->searched - 2 : off;
        size_t end = event_end(s->buf, from, s->len);
        if (end == 0)
            break;
        size_t ck = s->checked > off ? s->checked : off;
        if (check_lines(s->buf + ck, end - ck) < 0) {
            rc = -2;
            break;
        }
        int r = cb(arg, s->buf + off, end - off);
        off = s->searched = s->checked = end;
        if (r < 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0) {
        s->searched = s->len;
        size_t ck = s->checked > off ? s->checked : off;
        long done = check_lines(s->buf + ck, s->len - ck);
        if (done < 0)
            rc = -2;
        else {
            s->checked = ck + (size_t)done;
            if (partial_line_bad(s->buf + s->checked, s->len - s->checked))
                rc = -2;
        }
    }
    memmove(s->buf, s->buf + off, s->len - off);
    s->len -= off;
    s->searched = s->searched > off ? s->searched - off : 0;
    s->checked = s->checked > off ? s->checked - off : 0;
    if (rc == 0 && s->len > s->max_event)
        rc = -2;
    return rc;
}

long gw_sse_event_data(const char *event, size_t len, char *out, size_t outcap)
{
    size_t outlen = 0, start = 0;
    bool found = false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && event[i] != '\n')
            continue;
        size_t l = i - start;
        const char *line = event + start;
        if (l > 0 && line[l - 1] == '\r')
            l--;
        if (l >= 5 && memcmp(line, "data:", 5) == 0) {
            const char *p = line + 5;
            size_t pl = l - 5;
            if (pl > 0 && *p == ' ') {
                p++;
                pl--;
            }
            size_t need = outlen + (found ? 1 : 0) + pl + 1;
            if (need > outcap)
                return -1;
            if (found)
                out[outlen++] = '\n';
            memcpy(out + outlen, p, pl);
            outlen += pl;
            found = true;
        }
        start = i + 1;
    }
    if (!found)
        return -1;
    out[outlen] = '\0';
    return (long)outlen;
}
