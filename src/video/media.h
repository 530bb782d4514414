/* The video data plane over the video registry: fragment records on each stream's shard
 * (video/fragment.h) and each stream's fragment index (video/index.h), built from the shard
 * the first time a reader needs it and kept current by ingest.
 *
 * Threads: any. Building an index reads the shard: do it on a worker, never on the loop. */
#ifndef TR_VIDEO_MEDIA_H
#define TR_VIDEO_MEDIA_H

#include <stdint.h>

#include "core/shard.h"
#include "kms/kms.h"
#include "video/fragment.h"
#include "video/index.h"
#include "video/streams.h"

typedef struct tr_media tr_media;

int tr_media_open(tr_video *video, tr_media **out);
void tr_media_close(tr_media *m);
tr_video *tr_media_video(tr_media *m);
/* The key service that seals fragments at rest (each stream's KmsKeyId); NULL: fragments
 * are stored clear. Set before the server starts. */
void tr_media_set_kms(tr_media *m, tr_kms *kms);

/* Encodes f as the stored payload of stream s, sealed under the stream's KmsKeyId when the
 * media has a key service: *buf (malloc'd, the caller frees) and *size. f is then re-pointed
 * at the stored copy (meta only, when sealed). TR_OK, TR_ETOOBIG, TR_ENOMEM, or the key
 * service's TR_ENOENT / TR_KMS_EDISABLED. */
int tr_media_encode(tr_media *m, const tr_video_stream *s, tr_fragment *f, uint8_t **buf,
                    size_t *size);

/* The stream's index, built from its shard first when `build` (blocking: a worker only) and
 * trimmed to what retention left. Without `build` the index may still be empty of older
 * fragments: ingest adds to it before any reader built it. NULL when out of memory or the
 * shard cannot be read. */
tr_frag_index *tr_media_index(tr_media *m, const tr_video_stream *s, int build);

/* Reads the fragment record at seq into b and views it as f, opening it in b when it is
 * sealed. TR_ENOENT when there is no such fragment (trimmed, or not a fragment); the key
 * service's errors (TR_KMS_EDISABLED, ...) when it cannot be opened. */
int tr_media_read(tr_media *m, const tr_video_stream *s, uint64_t seq, tr_read_batch *b,
                  tr_fragment *f);

/* The index entry of a fragment as stored. */
void tr_media_entry(uint64_t seq, const tr_fragment *f, size_t size, tr_frag_entry *e);

#endif
