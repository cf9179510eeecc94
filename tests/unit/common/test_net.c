/* Unit test for common/tg_net: port 0 picks a free port, a taken port is
 * refused with a message (and accepted twice with SO_REUSEPORT), a bad host
 * is an error, and the port file is written whole. */
#include "tg_net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

int main(void)
{
    char err[256];
    int port = 0, again = 0;
    int fd = tg_listen_tcp("127.0.0.1", 0, false, &port, err, sizeof err);
    CHECK(fd >= 0 && port > 0);
    int fd2 = tg_listen_tcp("127.0.0.1", port, false, &again, err, sizeof err);
    CHECK(fd2 < 0 && strstr(err, "cannot listen on 127.0.0.1"));
    close(fd);

    int a = tg_listen_tcp("127.0.0.1", 0, true, &port, err, sizeof err);
    int b = tg_listen_tcp("127.0.0.1", port, true, &again, err, sizeof err);
    CHECK(a >= 0 && b >= 0 && again == port);
    close(a);
    close(b);

    CHECK(tg_listen_tcp("no-such-host.invalid", 0, false, &port, err, sizeof err) < 0);
    CHECK(strstr(err, "cannot resolve") != NULL);

    char path[] = "/tmp/tg-net-test-XXXXXX";
    int tfd = mkstemp(path);
    CHECK(tfd >= 0);
    close(tfd);
    CHECK(tg_port_file_write(path, 4242) == 0);
    FILE *f = fopen(path, "r");
    char line[32] = "";
    CHECK(f && fgets(line, sizeof line, f) && strcmp(line, "4242\n") == 0);
    if (f)
        fclose(f);
    unlink(path);
    CHECK(tg_port_file_write("/nonexistent-dir/port", 1) == -1);
    return failures ? 1 : 0;
}
