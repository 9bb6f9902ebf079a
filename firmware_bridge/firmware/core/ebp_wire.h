/* Wire constants of the edge bridge protocol (EBP), version 1. See PROTOCOL.md. */
#ifndef EBP_WIRE_H
#define EBP_WIRE_H

#define EBP_VERSION 1u

/* Header: version u8, type u8, flags u8, seq u16 LE, payload length u16 LE. */
#define EBP_HEADER_LEN 7u
#define EBP_CRC_LEN 4u

/* Largest payload this build accepts and sends (announced in HELLO); a board may lower it to
 * save RAM, as long as its HELLO still fits. */
#ifndef EBP_MAX_PAYLOAD
#if defined(__AVR__) /* 2 KB of RAM on an Uno: each buffer is about one payload */
#define EBP_MAX_PAYLOAD 192u
#else
#define EBP_MAX_PAYLOAD 240u
#endif
#endif

/* A decoded frame: header, payload, CRC. */
#define EBP_MAX_RAW (EBP_HEADER_LEN + EBP_MAX_PAYLOAD + EBP_CRC_LEN)
/* COBS adds one byte per started 254-byte block; the 0x00 delimiter is not counted. */
#define EBP_MAX_ENCODED (EBP_MAX_RAW + EBP_MAX_RAW / 254u + 1u)

/* Message types. */
enum {
    EBP_HELLO = 0x01,
    EBP_READ = 0x02,
    EBP_READING = 0x03,
    EBP_SUBSCRIBE = 0x04,
    EBP_COMMAND = 0x05,
    EBP_ACK = 0x06,
    EBP_NACK = 0x07,
    EBP_PING = 0x08,
    EBP_PONG = 0x09,
    EBP_LOG = 0x0A
};

/* HELLO request payload: empty asks for the capabilities, this one byte asks only for their
 * CRC-32 (a 4-byte answer), so a host holding them from before need not fetch ~180 bytes. */
#define EBP_HELLO_DIGEST 0x01u

/* Header flags. */
#define EBP_FLAG_RESPONSE 0x01u /* answers the request whose seq this frame carries */

/* NACK error codes. */
enum {
    EBP_ERR_UNSUPPORTED_VERSION = 1,
    EBP_ERR_BAD_TYPE = 2,
    EBP_ERR_BAD_PAYLOAD = 3,
    EBP_ERR_UNKNOWN_SENSOR = 4,
    EBP_ERR_UNKNOWN_ACTUATOR = 5,
    EBP_ERR_VALUE_NOT_ALLOWED = 6,
    EBP_ERR_BAD_PERIOD = 7,
    EBP_ERR_HARDWARE = 8
};

/* Actuator kinds in HELLO. */
enum { EBP_ACT_RANGE = 0, EBP_ACT_SET = 1 };

/* LOG levels. */
enum { EBP_LOG_DEBUG = 0, EBP_LOG_INFO = 1, EBP_LOG_WARN = 2, EBP_LOG_ERROR = 3 };

/* Shortest subscription period; faster streams would starve requests on a 115200 baud line. */
#define EBP_MIN_PERIOD_MS 10u

#endif
