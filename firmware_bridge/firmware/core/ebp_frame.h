/* Frames: COBS(header | payload | CRC-32) followed by a 0x00 delimiter. */
#ifndef EBP_FRAME_H
#define EBP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ebp_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One message. payload points into a buffer owned by whoever filled the struct. */
typedef struct {
    uint8_t version;
    uint8_t type;
    uint8_t flags;
    uint16_t seq;
    uint16_t len;
    const uint8_t *payload;
} ebp_msg_t;

/* Encode msg (version is written as given) into out: COBS bytes and the trailing 0x00.
 * scratch holds the unencoded frame. Returns the bytes written, or 0 if msg->len is larger
 * than EBP_MAX_PAYLOAD or out is too small. */
size_t ebp_frame_encode(const ebp_msg_t *msg, uint8_t scratch[EBP_MAX_RAW], uint8_t *out, size_t cap);

/* What feeding one byte to a receiver produced. */
typedef enum {
    EBP_RX_NONE = 0,     /* no complete frame yet (or an empty frame, which senders use to flush) */
    EBP_RX_FRAME,        /* *msg holds a frame that passed every check */
    EBP_RX_BAD_COBS,     /* the bytes between two delimiters are not valid COBS */
    EBP_RX_TOO_SHORT,    /* shorter than header + CRC */
    EBP_RX_BAD_CRC,      /* CRC mismatch: corrupted on the line */
    EBP_RX_BAD_LENGTH,   /* header length disagrees with the frame size */
    EBP_RX_OVERFLOW      /* longer than EBP_MAX_ENCODED: dropped up to the next delimiter */
} ebp_rx_result_t;

/* Receiver state: the bytes since the last delimiter, in a fixed buffer. */
typedef struct {
    uint8_t buf[EBP_MAX_ENCODED];
    size_t len;
    bool overflow;
} ebp_rx_t;

void ebp_rx_init(ebp_rx_t *rx);

/* Feed one byte from the line. On EBP_RX_FRAME, msg->payload points into rx->buf and stays
 * valid until the next call. Any other version than EBP_VERSION is returned as a frame too:
 * the caller decides how to refuse it. */
ebp_rx_result_t ebp_rx_feed(ebp_rx_t *rx, uint8_t byte, ebp_msg_t *msg);

#ifdef __cplusplus
}
#endif
#endif
