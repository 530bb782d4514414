/* MD5 (RFC 1321) of one buffer, by OpenSSL. Kinesis routes a record by the MD5 of its
 * partition key; EVP_Digest spent more time setting up and tearing down a context for each
 * short key (a tenth of a PutRecords call's CPU) than hashing it. Not for security. */
#ifndef TR_UTIL_MD5_H
#define TR_UTIL_MD5_H

#include <stddef.h>
#include <stdint.h>

void tr_md5(const void *data, size_t len, uint8_t out[16]);

#endif
