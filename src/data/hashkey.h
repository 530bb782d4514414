/* Kinesis hash keys: 128-bit unsigned integers written in decimal. A record's hash key is the
 * MD5 of its partition key read as a big-endian integer, unless an ExplicitHashKey is given;
 * a stream's open shards split [0, 2^128-1] into contiguous ranges. */
#ifndef TR_DATA_HASHKEY_H
#define TR_DATA_HASHKEY_H

#include <stddef.h>

typedef unsigned __int128 tr_hashkey;

#define TR_HASHKEY_MAX (~(tr_hashkey)0)
#define TR_HASHKEY_DIGITS 39

/* Parses a decimal string of 1..39 digits with no sign, spaces or leading '+'. Returns 0, or -1
 * when it is not a number in [0, 2^128-1]. */
int tr_hashkey_parse(const char *s, size_t len, tr_hashkey *out);
/* Writes the decimal form (NUL-terminated) into out, which has TR_HASHKEY_DIGITS+1 bytes. */
void tr_hashkey_format(tr_hashkey v, char *out);
/* MD5 of the partition key as a big-endian 128-bit integer. */
tr_hashkey tr_hashkey_of_partition_key(const void *key, size_t len);
/* Range i of n even ranges: step floor(2^128 / n); the last one ends at 2^128-1. */
void tr_hashkey_even_range(unsigned i, unsigned n, tr_hashkey *start, tr_hashkey *end);

#endif
