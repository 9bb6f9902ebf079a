/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32) with a 16-entry table: 64 bytes of flash. */
#ifndef EBP_CRC32_H
#define EBP_CRC32_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Continue a CRC: start with crc = 0; the result of one call can be passed to the next. */
uint32_t ebp_crc32(uint32_t crc, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
