/* The Kinesis Video Streams control plane (service `kinesisvideo`, REST-JSON: every operation
 * is `POST /<opName>` with a JSON body) on the video service. Thin: decode the request,
 * validate it as KVS does, call the service on a worker, encode the answer. */
#ifndef TR_API_KVS_CONTROL_H
#define TR_API_KVS_CONTROL_H

#include "net/server.h"
#include "video/streams.h"

typedef struct tr_kvs_control tr_kvs_control;

typedef struct tr_kvs_control_config {
    /* What GetDataEndpoint answers: the server's base URL (tr_config_base_url); copied. */
    const char *data_endpoint;
} tr_kvs_control_config;

/* Registers the routes on the server's router. The service must outlive the server. */
int tr_kvs_control_new(tr_server *srv, tr_video *video, const tr_kvs_control_config *cfg,
                       tr_kvs_control **out);
/* After tr_server_free: requests in flight hold the face until they are answered. */
void tr_kvs_control_free(tr_kvs_control *k);

#endif
