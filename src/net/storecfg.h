/* Bridges the server configuration (util/config.h) to the store's own configuration
 * (core/store.h). It lives in net, the top layer, because util must not know core. */
#ifndef TR_NET_STORECFG_H
#define TR_NET_STORECFG_H

#include "core/store.h"
#include "util/config.h"

/* Fills out from c, starting from tr_store_config_defaults for settings the config does not
 * carry (trim interval, index interval). out->dir points into c: keep c alive while out is. */
void tr_config_fill_store(const tr_config *c, tr_store_config *out);

#endif
