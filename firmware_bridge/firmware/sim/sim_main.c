/* A simulated microcontroller on a pseudo-terminal: the protocol core of the real firmware with
 * simulated sensors and actuators. Prints the pty's path on its first line of output.
 *
 * usage: edge-bridge-sim [--journal FILE] [--link PATH]
 *   --journal FILE  append each executed actuator command to FILE as one JSON line
 *   --link PATH     also make PATH a symlink to the pty (a stable name across restarts)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "sim_board.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int open_pty(char *path, size_t cap, int *slave_fd)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, path, cap) != 0) {
        return -1;
    }
    /* Holding the slave open ourselves keeps the master readable while no host is attached;
     * raw mode stops the line discipline from echoing our frames back to us. */
    *slave_fd = open(path, O_RDWR | O_NOCTTY);
    struct termios tio;
    if (*slave_fd < 0 || tcgetattr(*slave_fd, &tio) != 0) {
        return -1;
    }
    cfmakeraw(&tio);
    tcsetattr(*slave_fd, TCSANOW, &tio);
    return master;
}

int main(int argc, char **argv)
{
    const char *journal_path = NULL;
    const char *link_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--journal") == 0 && i + 1 < argc) {
            journal_path = argv[++i];
        } else if (strcmp(argv[i], "--link") == 0 && i + 1 < argc) {
            link_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--journal FILE] [--link PATH]\n", argv[0]);
            return 2;
        }
    }

    char path[128];
    int slave_fd;
    int master = open_pty(path, sizeof path, &slave_fd);
    if (master < 0) {
        perror("edge-bridge-sim: cannot open a pseudo-terminal");
        return 1;
    }
    static sim_board_t sim; /* static: a microcontroller has no heap either */
    if (journal_path != NULL && (sim.journal = fopen(journal_path, "a")) == NULL) {
        perror("edge-bridge-sim: cannot open journal");
        return 1;
    }
    if (link_path != NULL) {
        unlink(link_path);
        if (symlink(path, link_path) != 0) {
            perror("edge-bridge-sim: cannot create link");
            return 1;
        }
    }
    sim.fd = master;

    static ebp_board_t board;
    static ebp_device_t dev;
    sim_board_bind(&sim, &board);
    if (!ebp_device_init(&dev, &sim_caps, &board)) {
        fprintf(stderr, "edge-bridge-sim: capabilities do not fit one payload\n");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("%s\n", path);
    fflush(stdout);

    while (!stop) {
        struct pollfd pfd = {master, POLLIN, 0};
        int ready = poll(&pfd, 1, 2); /* 2 ms: subscriptions are due at 10 ms granularity at best */
        if (ready > 0 && (pfd.revents & POLLIN)) {
            uint8_t buf[256];
            ssize_t n = read(master, buf, sizeof buf);
            if (n > 0) {
                ebp_device_feed(&dev, buf, (size_t)n);
            }
        }
        ebp_device_poll(&dev);
    }
    /* Stopped: what the line delivered before the signal still counts, so the counters cover every
     * byte a host wrote (tests compare them with what they sent). */
    for (;;) {
        struct pollfd pfd = {master, POLLIN, 0};
        if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLIN)) {
            break;
        }
        uint8_t buf[256];
        ssize_t n = read(master, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        ebp_device_feed(&dev, buf, (size_t)n);
    }
    fprintf(stderr, "{\"frames_ok\": %u, \"bad_frames\": %u, \"duplicates\": %u}\n",
            (unsigned)dev.stats.frames_ok, (unsigned)dev.stats.bad_frames, (unsigned)dev.stats.duplicates);
    if (link_path != NULL) {
        unlink(link_path);
    }
    close(slave_fd);
    close(master);
    return 0;
}
