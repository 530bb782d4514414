/* Private to the KVS data-plane face (src/api/kvs_putmedia*.c, kvs_ingest.c, kvs_getmedia.c). */
#ifndef TR_API_KVS_MEDIA_INT_H
#define TR_API_KVS_MEDIA_INT_H


#include "api/kvs_media.h"

struct kvs_ingest;
struct tr_feeds;

struct tr_kvs_media {
    tr_server *srv;
    tr_media *media;
    tr_video *video;
    tr_kvs_media_config cfg;
    struct kvs_ingest *sessions;   /* PutMedia connections, for the tick (loop only) */
    struct tr_feeds *feeds;        /* GetMedia and GetMediaForFragmentList answers */
};

/* kvs_putmedia.c: PutMedia over HTTP, and over a websocket (kvs_putmedia_ws.c) */
int kvs_putmedia_register(tr_kvs_media *k);
int kvs_putmedia_ws_register(tr_kvs_media *k);
/* kvs_getmedia.c */
int kvs_getmedia_register(tr_kvs_media *k);
/* kvs_media.c: the KVS ErrorId (4500..4506) of a key service failure; 0 for other errors. */
int kvs_kms_error_id(int rc);

#endif
