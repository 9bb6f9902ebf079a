/* The device side of the protocol: answers requests, streams subscriptions, drops duplicates.
 * No dynamic allocation: everything lives in ebp_device_t, which the board declares statically. */
#ifndef EBP_DEVICE_H
#define EBP_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ebp_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef EBP_MAX_SENSORS
#define EBP_MAX_SENSORS 8u
#endif

typedef struct {
    uint8_t id;
    const char *name;
    const char *unit;
    float min;
    float max;
} ebp_sensor_t;

typedef struct {
    uint8_t id;
    const char *name;
    const char *unit;
    uint8_t kind; /* EBP_ACT_RANGE: min..max inclusive; EBP_ACT_SET: one of values[] */
    int32_t min;
    int32_t max;
    const int32_t *values;
    uint8_t n_values;
} ebp_actuator_t;

/* What the firmware announces in HELLO. */
typedef struct {
    const char *name;
    const char *version;
    const ebp_sensor_t *sensors;
    uint8_t n_sensors;
    const ebp_actuator_t *actuators;
    uint8_t n_actuators;
} ebp_caps_t;

/* The board layer: the only code that touches hardware. ctx is passed back to every call. */
typedef struct {
    void *ctx;
    uint32_t (*now_ms)(void *ctx);
    /* Returns false if the sensor could not be read (answered with NACK HARDWARE). */
    bool (*read_sensor)(void *ctx, uint8_t id, float *value);
    /* Called once per COMMAND (never for a retransmission); seq is for logs and journals. */
    bool (*set_actuator)(void *ctx, uint8_t id, int32_t value, uint16_t seq);
    void (*write)(void *ctx, const uint8_t *data, size_t len);
} ebp_board_t;

/* Line health, for a debugger or a LOG message. */
typedef struct {
    uint32_t frames_ok;
    uint32_t bad_frames;    /* COBS, length or CRC errors, overflows */
    uint32_t duplicates;    /* retransmitted requests answered from the cache */
} ebp_device_stats_t;

typedef struct {
    uint32_t period_ms; /* 0: not subscribed */
    uint32_t next_ms;
} ebp_subscription_t;

typedef struct {
    const ebp_caps_t *caps;
    const ebp_board_t *board;
    ebp_rx_t rx;
    uint8_t scratch[EBP_MAX_RAW];
    uint8_t out[EBP_MAX_ENCODED + 1];   /* unsolicited frames */
    uint8_t reply[EBP_MAX_ENCODED + 1]; /* the last response, resent for a duplicate request */
    size_t reply_len;
    uint16_t reply_seq;
    uint8_t reply_type;
    uint16_t tx_seq; /* sequence of unsolicited frames, so the host can count losses */
    uint32_t caps_crc; /* CRC-32 of the HELLO capabilities, the answer to a compact HELLO */
    ebp_subscription_t subs[EBP_MAX_SENSORS];
    ebp_device_stats_t stats;
} ebp_device_t;

/* Returns false if caps do not fit this build (too many sensors, HELLO larger than a payload). */
bool ebp_device_init(ebp_device_t *dev, const ebp_caps_t *caps, const ebp_board_t *board);

/* Feed bytes received from the host; responses are written through board->write. */
void ebp_device_feed(ebp_device_t *dev, const uint8_t *data, size_t len);

/* Call often (every loop turn): sends the readings of subscriptions that are due. */
void ebp_device_poll(ebp_device_t *dev);

/* Send a LOG message (unsolicited, not acknowledged); text is cut to fit one payload. */
void ebp_device_log(ebp_device_t *dev, uint8_t level, const char *text);

#ifdef __cplusplus
}
#endif
#endif
