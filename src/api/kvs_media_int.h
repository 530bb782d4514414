/* Private to src/api/kvs_putmedia.c and kvs_getmedia.c. */
#ifndef TR_API_KVS_MEDIA_INT_H
#define TR_API_KVS_MEDIA_INT_H

#include "api/kvs_media.h"

struct put_session;
struct media_feeds;

struct tr_kvs_media {
    tr_server *srv;
    tr_media *media;
    tr_video *video;
    tr_kvs_media_config cfg;
    struct put_session *sessions;  /* PutMedia connections, for the tick (loop only) */
    struct media_feeds *feeds;     /* GetMedia (kvs_getmedia.c) */
};

/* kvs_putmedia.c */
int kvs_putmedia_register(tr_kvs_media *k);
/* kvs_getmedia.c */
int kvs_getmedia_register(tr_kvs_media *k);
void kvs_getmedia_stop(tr_kvs_media *k);

#endif
