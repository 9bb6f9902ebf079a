#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include "sim_board.h"

#include <errno.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

enum { TEMPERATURE, HUMIDITY, LIGHT, BUTTON };
enum { LED, RELAY, FAN };

static const ebp_sensor_t sensors[] = {
    {TEMPERATURE, "temperature", "\xc2\xb0" "C", -40.0f, 85.0f},
    {HUMIDITY, "humidity", "%RH", 0.0f, 100.0f},
    {LIGHT, "light", "lx", 0.0f, 10000.0f},
    {BUTTON, "button", "", 0.0f, 1.0f},
};

static const int32_t on_off[] = {0, 1};

static const ebp_actuator_t actuators[] = {
    {LED, "led", "", EBP_ACT_SET, 0, 0, on_off, 2},
    {RELAY, "relay", "", EBP_ACT_SET, 0, 0, on_off, 2},
    {FAN, "fan", "pwm", EBP_ACT_RANGE, 0, 255, 0, 0},
};

const ebp_caps_t sim_caps = {
    "edge-bridge-sim", "1.0.0", sensors, 4, actuators, 3,
};

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t sim_now_ms(void *ctx)
{
    sim_board_t *sim = ctx;
    return (uint32_t)((monotonic_s() - sim->start_s) * 1000.0);
}

/* Slow waves so that consecutive readings differ a little, as real sensors do; the fan cools
 * and the LED lights the room, so commands have visible effects. */
static bool sim_read(void *ctx, uint8_t id, float *value)
{
    sim_board_t *sim = ctx;
    double t = monotonic_s() - sim->start_s;
    const double two_pi = 6.283185307179586;
    switch (id) {
    case TEMPERATURE:
        *value = (float)(22.0 + 2.0 * sin(two_pi * t / 60.0) - 3.0 * sim->actuator_state[FAN] / 255.0);
        return true;
    case HUMIDITY:
        *value = (float)(45.0 + 5.0 * sin(two_pi * t / 90.0));
        return true;
    case LIGHT:
        *value = (float)(400.0 + 300.0 * sin(two_pi * t / 120.0) + 150.0 * sim->actuator_state[LED]);
        return true;
    case BUTTON: /* pressed for one second in every ten */
        *value = fmod(t, 10.0) < 1.0 ? 1.0f : 0.0f;
        return true;
    default:
        return false;
    }
}

static bool sim_set(void *ctx, uint8_t id, int32_t value, uint16_t seq)
{
    sim_board_t *sim = ctx;
    if (id > FAN) {
        return false;
    }
    sim->actuator_state[id] = value;
    if (sim->journal != NULL) {
        fprintf(sim->journal, "{\"t_ms\": %u, \"seq\": %u, \"actuator\": \"%s\", \"value\": %d}\n",
                (unsigned)sim_now_ms(ctx), (unsigned)seq, actuators[id].name, (int)value);
        fflush(sim->journal); /* tests read the journal while we run */
    }
    return true;
}

static void sim_write(void *ctx, const uint8_t *data, size_t len)
{
    sim_board_t *sim = ctx;
    while (len > 0) {
        ssize_t n = write(sim->fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return; /* the line is gone; the host will retransmit */
        }
        data += n;
        len -= (size_t)n;
    }
}

void sim_board_bind(sim_board_t *sim, ebp_board_t *board)
{
    sim->start_s = monotonic_s();
    board->ctx = sim;
    board->now_ms = sim_now_ms;
    board->read_sensor = sim_read;
    board->set_actuator = sim_set;
    board->write = sim_write;
}
