#include "net/reqid.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>

int tr_reqid_uuid4(char out[TR_UUID_LEN + 1]) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, TR_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

int tr_reqid_amz_id2(char out[TR_AMZ_ID2_LEN + 1]) {
    unsigned char b[48];
    if (RAND_bytes(b, sizeof b) != 1) return -1;
    /* 48 bytes encode to exactly 64 characters plus the NUL EVP_EncodeBlock writes. */
    EVP_EncodeBlock((unsigned char *)out, b, sizeof b);
    return 0;
}
