/* The Kinesis Video Streams data-plane face: its routes and lifetime. */
#include "api/kvs_media.h"

#include <stdlib.h>

#include "api/feed.h"
#include "api/kvs_media_int.h"
#include "util/error.h"
#include "wire/mkv_ingest.h"

int kvs_kms_error_id(int rc) {
    switch (rc) {
    case TR_ENOENT: return TR_KVS_KMS_KEY_NOT_FOUND;
    case TR_KMS_EDISABLED: return TR_KVS_KMS_KEY_DISABLED;
    case TR_KMS_EBADCIPHER: return TR_KVS_KMS_KEY_INVALID_STATE;
    default: return 0;
    }
}

int tr_kvs_media_new(tr_server *srv, tr_media *media, const tr_kvs_media_config *cfg,
                     tr_kvs_media **out) {
    tr_kvs_media *k = calloc(1, sizeof *k);
    if (k == NULL) return TR_ENOMEM;
    k->srv = srv;
    k->media = media;
    k->video = tr_media_video(media);
    if (cfg != NULL) k->cfg = *cfg;
    int rc = kvs_putmedia_register(k);
    if (rc == TR_OK) rc = kvs_getmedia_register(k);
    if (rc != TR_OK) {
        tr_kvs_media_free(k);
        return rc;
    }
    *out = k;
    return TR_OK;
}

void tr_kvs_media_stop(tr_kvs_media *k) {
    if (k != NULL) tr_feeds_stop(k->feeds);
}

void tr_kvs_media_free(tr_kvs_media *k) {
    if (k == NULL) return;
    tr_feeds_free(k->feeds);
    free(k);
}
