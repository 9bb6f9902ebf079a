/* The simulated board: sensors computed from the clock, actuators kept in memory and journaled. */
#ifndef SIM_BOARD_H
#define SIM_BOARD_H

#include <stdio.h>

#include "ebp_device.h"

typedef struct {
    int fd;          /* pty master: what the host writes to the slave arrives here */
    FILE *journal;   /* one JSON line per executed actuator command, or NULL */
    double start_s;  /* monotonic clock at start-up */
    int32_t actuator_state[3];
} sim_board_t;

extern const ebp_caps_t sim_caps;

/* Fills board with the callbacks bound to sim. */
void sim_board_bind(sim_board_t *sim, ebp_board_t *board);

#endif
