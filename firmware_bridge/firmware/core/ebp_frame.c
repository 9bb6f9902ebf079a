#include "ebp_frame.h"

#include "ebp_cobs.h"
#include "ebp_crc32.h"

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

size_t ebp_frame_encode(const ebp_msg_t *msg, uint8_t scratch[EBP_MAX_RAW], uint8_t *out, size_t cap)
{
    if (msg->len > EBP_MAX_PAYLOAD || cap < 2) {
        return 0;
    }
    scratch[0] = msg->version;
    scratch[1] = msg->type;
    scratch[2] = msg->flags;
    put_u16(scratch + 3, msg->seq);
    put_u16(scratch + 5, msg->len);
    for (uint16_t i = 0; i < msg->len; i++) {
        scratch[EBP_HEADER_LEN + i] = msg->payload[i];
    }
    size_t body = EBP_HEADER_LEN + msg->len;
    uint32_t crc = ebp_crc32(0, scratch, body);
    for (unsigned i = 0; i < EBP_CRC_LEN; i++) {
        scratch[body + i] = (uint8_t)(crc >> (8u * i));
    }
    size_t n = ebp_cobs_encode(scratch, body + EBP_CRC_LEN, out, cap - 1);
    if (n == 0) {
        return 0;
    }
    out[n] = 0x00;
    return n + 1;
}

void ebp_rx_init(ebp_rx_t *rx)
{
    rx->len = 0;
    rx->overflow = false;
}

/* Checks a complete frame in rx->buf (decoded in place) and fills msg. */
static ebp_rx_result_t finish_frame(ebp_rx_t *rx, ebp_msg_t *msg)
{
    size_t n;
    if (!ebp_cobs_decode(rx->buf, rx->len, rx->buf, sizeof rx->buf, &n)) {
        return EBP_RX_BAD_COBS;
    }
    if (n < EBP_HEADER_LEN + EBP_CRC_LEN) {
        return EBP_RX_TOO_SHORT;
    }
    size_t body = n - EBP_CRC_LEN;
    const uint8_t *c = rx->buf + body;
    uint32_t got = (uint32_t)c[0] | ((uint32_t)c[1] << 8) | ((uint32_t)c[2] << 16) | ((uint32_t)c[3] << 24);
    if (ebp_crc32(0, rx->buf, body) != got) {
        return EBP_RX_BAD_CRC;
    }
    uint16_t len = get_u16(rx->buf + 5);
    if ((size_t)len != body - EBP_HEADER_LEN) {
        return EBP_RX_BAD_LENGTH;
    }
    msg->version = rx->buf[0];
    msg->type = rx->buf[1];
    msg->flags = rx->buf[2];
    msg->seq = get_u16(rx->buf + 3);
    msg->len = len;
    msg->payload = rx->buf + EBP_HEADER_LEN;
    return EBP_RX_FRAME;
}

ebp_rx_result_t ebp_rx_feed(ebp_rx_t *rx, uint8_t byte, ebp_msg_t *msg)
{
    if (byte != 0x00) {
        if (rx->len < sizeof rx->buf) {
            rx->buf[rx->len++] = byte;
        } else {
            rx->overflow = true; /* keep discarding until the next delimiter */
        }
        return EBP_RX_NONE;
    }
    /* A delimiter ends the frame whatever it held: this is what resynchronises after garbage. */
    ebp_rx_result_t result;
    if (rx->overflow) {
        result = EBP_RX_OVERFLOW;
    } else if (rx->len == 0) {
        result = EBP_RX_NONE;
    } else {
        result = finish_frame(rx, msg);
    }
    rx->len = 0;
    rx->overflow = false;
    return result;
}
