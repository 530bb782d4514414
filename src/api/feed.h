/* Long-lived streamed answers fed from storage: SubscribeToShard's events, GetMedia's chunks.
 *
 * One thread serves every feed of a tr_feeds: it wakes when the store commits (the commit
 * notifier), when a feed starts or drains, or every second, and asks each feed for its next
 * message; it posts what it gets to the loop, which writes it to the feed's answer. The
 * thread never touches a request; the loop never reads storage. A feed stays within
 * TR_FEED_MAX_IN_FLIGHT messages posted and unwritten, and pauses while its socket queue is
 * long (until the request's on_drain).
 *
 * The handler that owns the route passes its on_close and on_drain to tr_feed_on_close and
 * tr_feed_on_drain (they do nothing for requests that are not feeds). */
#ifndef TR_API_FEED_H
#define TR_API_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "net/http.h"
#include "net/server.h"
#include "util/notify.h"

#define TR_FEED_MAX_IN_FLIGHT 2
#define TR_FEED_CONGESTED_BYTES (4u * 1024 * 1024)

typedef enum {
    TR_FEED_WAIT = 0,   /* nothing to send now: ask again after the next wake */
    TR_FEED_SENT = 1,   /* *msg holds a message (malloc'd; the feed takes it) */
    TR_FEED_MORE = 2,   /* as SENT, and more is ready at once: do not sleep */
} tr_feed_step;

typedef struct tr_feed_ops {
    /* On the feed thread. Produces the next message, or none. *end = 1 makes this the last
     * message (msg may then be NULL): the answer ends after it. */
    tr_feed_step (*next)(void *state, int64_t now_ms, uint8_t **msg, size_t *len, int *end);
    /* On the loop, when the feed is gone (the request closed or the feed ended). */
    void (*free_state)(void *state);
    /* A live feed never ends by itself (GetMedia, SubscribeToShard): it ends when the server
     * starts to drain for a stop, so that it does not hold the drain. A finite feed
     * (GetMediaForFragmentList) runs to its end. */
    int live;
} tr_feed_ops;

typedef struct tr_feeds tr_feeds;

/* wake may be NULL (then the feeds wake only on their own events and every second).
 * Registers a server tick (the drain check): call before tr_server_run. */
int tr_feeds_new(tr_server *srv, tr_notify *wake, tr_feeds **out);
/* Ends every feed and joins the thread: after tr_server_run, before tr_server_free. */
void tr_feeds_stop(tr_feeds *f);
void tr_feeds_free(tr_feeds *f);

/* On the loop: makes req a feed. The answer must be started (tr_resp_start) and may already
 * hold a first message. The feed owns state from now on (free_state runs on the loop).
 * Returns 0, or -1 when the feeds are stopping (state is freed). */
int tr_feed_start(tr_feeds *f, tr_req *req, const tr_feed_ops *ops, void *state);

void tr_feed_on_close(tr_req *req);
void tr_feed_on_drain(tr_req *req);

#endif
