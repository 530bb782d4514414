#include "api/aws_json.h"

#include <stdlib.h>
#include <string.h>

const char *tr_aws_content_type(tr_wire_format f) {
    return f == TR_WIRE_CBOR ? "application/x-amz-cbor-1.1" : "application/x-amz-json-1.1";
}

tr_wire_format tr_aws_request_format(tr_req *req) {
    const char *ct = tr_req_header(req, "content-type");
    return ct != NULL && strstr(ct, "cbor") != NULL ? TR_WIRE_CBOR : TR_WIRE_JSON;
}

void tr_aws_send_error(tr_req *req, tr_wire_format f, int status, const char *type,
                       const char *msg) {
    tr_writer w;
    tr_writer_init(&w, f);
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "__type", type);
    /* AWS spells it with a capital M in this one error. */
    tr_w_kstr(&w, strcmp(type, "SerializationException") == 0 ? "Message" : "message", msg);
    tr_w_obj_end(&w);
    size_t len = 0;
    uint8_t *body = tr_writer_take(&w, &len);
    tr_resp_set_error_type(req, type);
    tr_resp_send(req, status, tr_aws_content_type(f), body, len);
    free(body);
}
