/* tg_net: listening sockets and port files, shared by the gateway, the
 * simulator and the engine's server. */
#ifndef TG_NET_H
#define TG_NET_H

#include <stdbool.h>
#include <stddef.h>

/* Opens a non-blocking TCP socket listening on host:port (port 0 picks a free
 * one). TCP_NODELAY is set so that accepted sockets inherit it: without it,
 * small SSE writes meet the client's delayed ACKs and stall ~40 ms.
 * reuseport: SO_REUSEPORT, so that several workers can each own a socket on
 * one port. Returns the fd and the bound port in *bound, or -1 with a
 * message in err. */
int tg_listen_tcp(const char *host, int port, bool reuseport, int *bound, char *err,
                  size_t errlen);

/* Writes `port` and a newline to path through a temporary file and a rename,
 * so a reader never sees a partial number. Returns 0 or -1 (errno set). */
int tg_port_file_write(const char *path, int port);

#endif
