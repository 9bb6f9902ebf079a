/* libFuzzer harness for the frame decoder and the device's request handling.
 *
 * Each input is (1) fed to a device as raw bytes from the line; (2) cut into messages that are
 * framed with a valid CRC and fed too, so the fuzzer reaches request handling (random bytes
 * almost never pass a CRC-32); (3) used as one message to encode: decoding the encoding must
 * give it back. No input may crash the device, and every byte it writes back must decode as
 * valid frames. Build and run: make -C firmware_bridge fuzz-run */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ebp_device.h"

static const ebp_sensor_t sensors[] = {{7, "t", "C", -1.0f, 1.0f}};
static const int32_t values[] = {0, 1};
static const ebp_actuator_t actuators[] = {
    {1, "led", "", EBP_ACT_SET, 0, 0, values, 2},
    {2, "fan", "pwm", EBP_ACT_RANGE, 0, 255, 0, 0},
};
static const ebp_caps_t caps = {"fuzz", "0", sensors, 1, actuators, 2};

static ebp_rx_t checker;
static uint32_t clock_ms;

static uint32_t now_ms(void *ctx)
{
    (void)ctx;
    return clock_ms += 3; /* time moves so that subscriptions fire */
}

static bool read_sensor(void *ctx, uint8_t id, float *value)
{
    (void)ctx;
    *value = (float)id;
    return true;
}

static bool set_actuator(void *ctx, uint8_t id, int32_t value, uint16_t seq)
{
    (void)ctx;
    (void)seq;
    return id != 2 || value != 13; /* exercise the hardware-failure path too */
}

/* Everything the device sends must be well-formed frames. */
static void write_out(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        ebp_msg_t msg;
        ebp_rx_result_t r = ebp_rx_feed(&checker, data[i], &msg);
        if (r != EBP_RX_NONE && r != EBP_RX_FRAME) {
            abort();
        }
    }
}

static const ebp_board_t board = {0, now_ms, read_sensor, set_actuator, write_out};

static void check_round_trip(const uint8_t *data, size_t size)
{
    static uint8_t scratch[EBP_MAX_RAW];
    static uint8_t out[EBP_MAX_ENCODED + 1];
    static ebp_rx_t rx;
    if (size < 4) {
        return;
    }
    size_t len = size - 4 > EBP_MAX_PAYLOAD ? EBP_MAX_PAYLOAD : size - 4;
    ebp_msg_t sent = {EBP_VERSION, data[0], data[1], (uint16_t)(data[2] | data[3] << 8), (uint16_t)len, data + 4};
    size_t n = ebp_frame_encode(&sent, scratch, out, sizeof out);
    if (n == 0 || out[n - 1] != 0) {
        abort();
    }
    ebp_rx_init(&rx);
    ebp_msg_t got;
    for (size_t i = 0; i + 1 < n; i++) {
        if (out[i] == 0 || ebp_rx_feed(&rx, out[i], &got) != EBP_RX_NONE) {
            abort(); /* COBS must remove every zero */
        }
    }
    if (ebp_rx_feed(&rx, 0, &got) != EBP_RX_FRAME || got.type != sent.type || got.flags != sent.flags ||
        got.seq != sent.seq || got.len != sent.len || memcmp(got.payload, sent.payload, len) != 0) {
        abort();
    }
}

/* Input as messages: type, flags, seq (2 bytes), length n, then n payload bytes; repeated. */
static void feed_as_frames(ebp_device_t *dev, const uint8_t *data, size_t size)
{
    static uint8_t scratch[EBP_MAX_RAW];
    static uint8_t out[EBP_MAX_ENCODED + 1];
    size_t i = 0;
    while (size - i >= 5) {
        size_t len = data[i + 4];
        if (len > size - i - 5) {
            len = size - i - 5;
        }
        ebp_msg_t msg = {EBP_VERSION, data[i], data[i + 1], (uint16_t)(data[i + 2] | data[i + 3] << 8),
                         (uint16_t)len, data + i + 5};
        ebp_device_feed(dev, out, ebp_frame_encode(&msg, scratch, out, sizeof out));
        ebp_device_poll(dev);
        i += 5 + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ebp_device_t dev;
    if (!ebp_device_init(&dev, &caps, &board)) {
        abort();
    }
    ebp_rx_init(&checker);
    ebp_device_feed(&dev, data, size);
    ebp_device_poll(&dev);
    feed_as_frames(&dev, data, size);
    check_round_trip(data, size);
    return 0;
}
