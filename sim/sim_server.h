/* sim_server: the simulator's HTTP side on libevent's evhttp. One
 * sim_loop_t per event loop (thread); all loops share one sim_shared_t
 * (stats, prefix cache, fault generator) behind a mutex. Responses are paced
 * with timers on the loop (sim_call), never by sleeping. */
#ifndef SIM_SERVER_H
#define SIM_SERVER_H

#include "sim_shared.h"

#include <event2/event.h>

typedef struct sim_loop sim_loop_t;

/* Serves HTTP on the listening socket fd inside base. Takes ownership of fd
 * (closed by sim_loop_free). Returns NULL with a message in err on failure. */
sim_loop_t *sim_loop_new(sim_shared_t *sh, struct event_base *base, evutil_socket_t fd, char *err,
                         size_t errlen);

/* Drops every call still in flight (their connections are closed) and
 * frees the HTTP server. Call from the thread that ran base, after it
 * stopped. */
void sim_loop_free(sim_loop_t *l);

#endif
