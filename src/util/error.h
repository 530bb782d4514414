/* Error codes shared by every layer below the API. The API layer maps them to AWS error
 * names in one table; nothing below it knows those names. */
#ifndef TR_UTIL_ERROR_H
#define TR_UTIL_ERROR_H

typedef enum {
    TR_OK = 0,
    TR_EIO = -1,       /* a read, write or fsync failed */
    TR_ENOSPC = -2,    /* the disk is full (or over quota) */
    TR_ECORRUPT = -3,  /* stored bytes fail their checksum or framing */
    TR_ENOENT = -4,    /* no such stream, shard, record or key */
    TR_EEXIST = -5,    /* already exists */
    TR_ECLOSED = -6,   /* the shard is closed to appends (resharded) */
    TR_EINVAL = -7,    /* an argument is out of range */
    TR_ETOOBIG = -8,   /* a record or request exceeds a size limit */
    TR_ENOMEM = -9,    /* allocation failed */
    TR_ESHUTDOWN = -10, /* the store is stopping */
    TR_EREADONLY = -11, /* the shard saw an fsync failure and refuses appends */
} tr_err;

const char *tr_strerror(int err);
/* Maps an errno value from a failed system call to a tr_err. */
int tr_err_from_errno(int errnum);

#endif
