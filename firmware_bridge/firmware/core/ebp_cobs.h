/* Consistent Overhead Byte Stuffing: removes every 0x00 so that 0x00 can delimit frames. */
#ifndef EBP_COBS_H
#define EBP_COBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Encode len bytes; returns the encoded length (without delimiter), or 0 if cap is too small. */
size_t ebp_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* Decode one frame (no delimiter). out may equal in (decoding in place is safe).
 * Returns false for malformed input (a zero byte, a block running past the end) or if cap is
 * too small; *out_len is then unspecified. */
bool ebp_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
