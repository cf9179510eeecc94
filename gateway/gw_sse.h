/* gw_sse: splits an upstream Server-Sent Events byte stream into whole events,
 * so that the relay forwards complete events and can read the usage event.
 * Pure: no I/O. */
#ifndef GW_SSE_H
#define GW_SSE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct gw_sse_splitter {
    char *buf;
    size_t len;
    size_t cap;
    size_t max_event; /* an event longer than this is garbage */
    size_t searched;  /* bytes of buf already searched for an event's end */
    size_t checked;   /* bytes of buf (whole lines) already checked to be SSE */
} gw_sse_splitter_t;

/* Called once per complete event; `event` includes its terminating blank line.
 * Return 0 to continue, -1 to stop feeding. */
typedef int (*gw_sse_event_cb)(void *arg, const char *event, size_t len);

void gw_sse_init(gw_sse_splitter_t *s, size_t max_event);
void gw_sse_free(gw_sse_splitter_t *s);

/* Appends n bytes and calls cb for every event completed by them. Returns 0,
 * -1 if cb asked to stop, or -2 if the pending bytes exceed max_event or are
 * not SSE (a line that is no field: data, event, id, retry or a ':' comment). */
int gw_sse_feed(gw_sse_splitter_t *s, const char *data, size_t n, gw_sse_event_cb cb, void *arg);

/* Bytes held back (an incomplete event). */
size_t gw_sse_pending(const gw_sse_splitter_t *s);

/* Copies the payload of the event's data: lines (joined by '\n', the optional
 * space after the colon dropped) into out (NUL-terminated). Returns the payload
 * length, or -1 if the event has no data line or out is too small. */
long gw_sse_event_data(const char *event, size_t len, char *out, size_t outcap);

#endif
