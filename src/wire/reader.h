/* Request bodies of the AWS JSON 1.1 and CBOR protocols, parsed into one tree (jansson) so
 * that operations read their input the same way whatever the client sent. In a tree from CBOR,
 * byte strings are strings holding the raw bytes and tag-1 timestamps are reals in epoch
 * seconds, the JSON form; the accessors below hide the remaining difference (blobs are base64
 * text in JSON). */
#ifndef TR_WIRE_READER_H
#define TR_WIRE_READER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/writer.h"

#define TR_WIRE_MAX_DEPTH 64

/* Returns the tree (caller json_decref's) or NULL with a message in err. An empty body is an
 * empty object, as the SDKs send for operations without input. */
json_t *tr_wire_parse(tr_wire_format f, const uint8_t *body, size_t len, char *err,
                      size_t err_len);

/* The bytes of a blob member. In CBOR trees *data points into v (no copy, *owned = 0); in JSON
 * trees the base64 text is decoded into a malloc'd buffer (*owned = 1). -1 if v is not a
 * blob of this format. */
int tr_wire_blob(tr_wire_format f, json_t *v, const uint8_t **data, size_t *len, int *owned);

/* A timestamp member (epoch seconds, fractional allowed) in milliseconds; -1 if not a number. */
int tr_wire_time_ms(json_t *v, int64_t *ms);

#endif
