/* Request identifiers every response carries: x-amzn-RequestId (a random UUID v4) and
 * x-amz-id-2 (an opaque random base64 token, like AWS's extended request id). */
#ifndef TR_NET_REQID_H
#define TR_NET_REQID_H

#define TR_UUID_LEN 36 /* without the NUL */
#define TR_AMZ_ID2_LEN 64

/* Fills out with a lowercase UUID v4 from OpenSSL's CSPRNG. Returns 0 or -1 (no entropy). */
int tr_reqid_uuid4(char out[TR_UUID_LEN + 1]);
/* Fills out with 48 random bytes in base64. Returns 0 or -1. */
int tr_reqid_amz_id2(char out[TR_AMZ_ID2_LEN + 1]);

#endif
