/* What the AWS JSON 1.1 faces (Kinesis, KMS) share on the wire: their content type and the
 * error body {"__type": ..., "message": ...}, in the request's format. */
#ifndef TR_API_AWS_JSON_H
#define TR_API_AWS_JSON_H

#include "net/http.h"
#include "wire/writer.h"

/* "application/x-amz-json-1.1" or "application/x-amz-cbor-1.1". */
const char *tr_aws_content_type(tr_wire_format f);
/* The format a request's Content-Type asks for (CBOR only when it says so). */
tr_wire_format tr_aws_request_format(tr_req *req);
/* Sends an AWS error answer. Loop thread only. */
void tr_aws_send_error(tr_req *req, tr_wire_format f, int status, const char *type,
                       const char *msg);

#endif
