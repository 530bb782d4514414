#include "util/error.h"

#include <errno.h>

const char *tr_strerror(int err) {
    switch (err) {
    case TR_OK: return "ok";
    case TR_EIO: return "I/O error";
    case TR_ENOSPC: return "no space left on device";
    case TR_ECORRUPT: return "stored data is corrupt";
    case TR_ENOENT: return "not found";
    case TR_EEXIST: return "already exists";
    case TR_ECLOSED: return "shard is closed";
    case TR_EINVAL: return "invalid argument";
    case TR_ETOOBIG: return "too large";
    case TR_ENOMEM: return "out of memory";
    case TR_ESHUTDOWN: return "store is shutting down";
    case TR_EREADONLY: return "shard is read-only after an fsync failure";
    default: return "unknown error";
    }
}

int tr_err_from_errno(int errnum) {
    switch (errnum) {
    case ENOSPC:
    case EDQUOT: return TR_ENOSPC;
    case ENOENT: return TR_ENOENT;
    case EEXIST: return TR_EEXIST;
    case ENOMEM: return TR_ENOMEM;
    case EFBIG: return TR_ETOOBIG;
    default: return TR_EIO;
    }
}
