/* OpenSSL's one-shot MD5(): the legacy low-level call skips the provider fetch and context
 * set-up that EVP_Digest pays on every call, which for a short partition key cost more than
 * the hash itself. Deprecated in OpenSSL 3 only in favour of EVP; still maintained. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "util/md5.h"

#include <openssl/md5.h>

void tr_md5(const void *data, size_t len, uint8_t out[16]) {
    MD5((const unsigned char *)data, len, out);
}
