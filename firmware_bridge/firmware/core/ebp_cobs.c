#include "ebp_cobs.h"

size_t ebp_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t code_pos = 0; /* where the current block's code byte goes */
    size_t o = 1;
    uint8_t code = 1; /* 1 + bytes in the current block */

    if (cap == 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (o >= cap) {
            return 0;
        }
        if (in[i] == 0) {
            out[code_pos] = code;
            code_pos = o++;
            code = 1;
            continue;
        }
        out[o++] = in[i];
        code++;
        if (code == 0xFF) { /* a full block of 254 data bytes carries no implied zero */
            if (o >= cap) {
                return 0;
            }
            out[code_pos] = code;
            code_pos = o++;
            code = 1;
        }
    }
    out[code_pos] = code;
    return o;
}

bool ebp_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t i = 0;
    size_t o = 0;

    while (i < len) {
        uint8_t code = in[i++];
        if (code == 0) {
            return false;
        }
        size_t n = (size_t)code - 1u;
        if (n > len - i || n > cap - o) {
            return false;
        }
        /* Forward copy: o < i always holds, so decoding in place never overwrites unread input. */
        for (size_t k = 0; k < n; k++) {
            uint8_t b = in[i++];
            if (b == 0) {
                return false;
            }
            out[o++] = b;
        }
        if (code != 0xFF && i < len) {
            if (o >= cap) {
                return false;
            }
            out[o++] = 0;
        }
    }
    *out_len = o;
    return true;
}
