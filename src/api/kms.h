/* The AWS KMS API subset (JSON 1.1, `X-Amz-Target: TrentService.<Op>`) on the local key
 * service (kms/kms.h): keys, aliases, enable/disable, rotation, Encrypt, Decrypt and
 * GenerateDataKey, so that `aws kms --endpoint-url ...` and boto3 work. Operations run on a
 * worker (the keyring is written with fsync). */
#ifndef TR_API_KMS_H
#define TR_API_KMS_H

#include "kms/kms.h"
#include "net/server.h"

typedef struct tr_kms_api tr_kms_api;

/* Registers the route. The key service must outlive the server. */
int tr_kms_api_new(tr_server *srv, tr_kms *kms, tr_kms_api **out);
void tr_kms_api_free(tr_kms_api *a);

#endif
