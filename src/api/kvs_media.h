/* The Kinesis Video Streams data plane: PutMedia (kvs_putmedia.c), GetMedia,
 * GetMediaForFragmentList and ListFragments (kvs_getmedia.c), on the video registry and its
 * media service. */
#ifndef TR_API_KVS_MEDIA_H
#define TR_API_KVS_MEDIA_H

#include "net/server.h"
#include "util/notify.h"
#include "video/media.h"

typedef struct tr_kvs_media tr_kvs_media;

typedef struct tr_kvs_media_config {
    tr_notify *commits;   /* bumped on every store commit: wakes live GetMedia readers */
    int64_t idle_ack_ms;  /* PutMedia: an IDLE ack after this long without data (0: 3 s) */
    int64_t idle_close_ms; /* ...and the answer ends after this long (0: 30 s) */
} tr_kvs_media_config;

/* Registers the routes. Call tr_kvs_media_stop after tr_server_run returns (before
 * tr_server_free) and tr_kvs_media_free after tr_server_free. */
int tr_kvs_media_new(tr_server *srv, tr_media *media, const tr_kvs_media_config *cfg,
                     tr_kvs_media **out);
void tr_kvs_media_stop(tr_kvs_media *k);
void tr_kvs_media_free(tr_kvs_media *k);

#endif
