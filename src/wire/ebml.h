/* EBML (RFC 8794), the binary format under Matroska: the primitives the MKV modules build on.
 *
 * An element is  ID | data size | data.  Both ID and size are variable-length integers
 * ("vints"): the number of leading zero bits of the first byte, plus one, is the length.
 *   - IDs are 1-4 bytes and are kept WITH their length-marker bits, the way specs write them
 *     (EBML header 0x1A45DFA3, Cluster 0x1F43B675, SimpleBlock 0xA3).
 *   - Sizes are 1-8 bytes, marker bit removed; a size whose value bits are all ones means
 *     "unknown size" (live streams: the Segment, and Clusters, end where the next element
 *     that cannot be their child begins). It is reported as TR_EBML_UNKNOWN_SIZE.
 *
 * Readers are pure functions on buffers and never read past the length given. Writers append
 * to a tr_ebml_buf, a growable buffer whose first failure (out of memory, or past its max)
 * is sticky: build a whole element tree, then check `failed` once. */
#ifndef TR_WIRE_EBML_H
#define TR_WIRE_EBML_H

#include <stddef.h>
#include <stdint.h>

#define TR_EBML_UNKNOWN_SIZE UINT64_MAX
/* The largest size value a vint can carry (8 bytes, all ones is "unknown"). */
#define TR_EBML_MAX_SIZE ((UINT64_C(1) << 56) - 2)

/* IDs of the EBML header and the Matroska elements the MKV modules use. */
enum {
    TR_EBML_ID_HEADER = 0x1A45DFA3,
    TR_EBML_ID_VERSION = 0x4286,
    TR_EBML_ID_READ_VERSION = 0x42F7,
    TR_EBML_ID_MAX_ID_LENGTH = 0x42F2,
    TR_EBML_ID_MAX_SIZE_LENGTH = 0x42F3,
    TR_EBML_ID_DOCTYPE = 0x4282,
    TR_EBML_ID_DOCTYPE_VERSION = 0x4287,
    TR_EBML_ID_DOCTYPE_READ_VERSION = 0x4285,
    TR_EBML_ID_VOID = 0xEC,
    TR_EBML_ID_CRC32 = 0xBF,

    TR_MKV_ID_SEGMENT = 0x18538067,
    TR_MKV_ID_SEEKHEAD = 0x114D9B74,
    TR_MKV_ID_INFO = 0x1549A966,
    TR_MKV_ID_TRACKS = 0x1654AE6B,
    TR_MKV_ID_CLUSTER = 0x1F43B675,
    TR_MKV_ID_CUES = 0x1C53BB6B,
    TR_MKV_ID_ATTACHMENTS = 0x1941A469,
    TR_MKV_ID_CHAPTERS = 0x1043A770,
    TR_MKV_ID_TAGS = 0x1254C367,

    TR_MKV_ID_TIMECODE_SCALE = 0x2AD7B1, /* in Info */
    TR_MKV_ID_DURATION = 0x4489,         /* in Info */

    TR_MKV_ID_TRACK_ENTRY = 0xAE,
    TR_MKV_ID_TRACK_NUMBER = 0xD7,
    TR_MKV_ID_TRACK_UID = 0x73C5,
    TR_MKV_ID_TRACK_TYPE = 0x83,
    TR_MKV_ID_CODEC_ID = 0x86,
    TR_MKV_ID_CODEC_PRIVATE = 0x63A2,
    TR_MKV_ID_DEFAULT_DURATION = 0x23E383,
    TR_MKV_ID_TRACK_NAME = 0x536E,
    TR_MKV_ID_VIDEO = 0xE0,
    TR_MKV_ID_PIXEL_WIDTH = 0xB0,
    TR_MKV_ID_PIXEL_HEIGHT = 0xBA,
    TR_MKV_ID_AUDIO = 0xE1,
    TR_MKV_ID_SAMPLING_FREQUENCY = 0xB5,
    TR_MKV_ID_CHANNELS = 0x9F,

    TR_MKV_ID_TIMECODE = 0xE7, /* in Cluster */
    TR_MKV_ID_POSITION = 0xA7,
    TR_MKV_ID_PREV_SIZE = 0xAB,
    TR_MKV_ID_SIMPLE_BLOCK = 0xA3,
    TR_MKV_ID_BLOCK_GROUP = 0xA0,
    TR_MKV_ID_BLOCK = 0xA1,
    TR_MKV_ID_BLOCK_DURATION = 0x9B,
    TR_MKV_ID_REFERENCE_BLOCK = 0xFB,

    TR_MKV_ID_TAG = 0x7373,
    TR_MKV_ID_TARGETS = 0x63C0,
    TR_MKV_ID_TARGET_TYPE_VALUE = 0x68CA,
    TR_MKV_ID_SIMPLE_TAG = 0x67C8,
    TR_MKV_ID_TAG_NAME = 0x45A3,
    TR_MKV_ID_TAG_STRING = 0x4487,
};

/* ---- reading ---- */

/* Length of the vint whose first byte is b: 1..8, or 0 when b is 0x00 (no marker bit in
 * the first byte: longer than 8 bytes, which EBML does not allow here). */
int tr_ebml_vint_len(uint8_t b);

/* Reads an element ID at p. Returns its length (1-4) with *id set, 0 when len is too short
 * to hold it, or -1 when it is not a valid ID: longer than 4 bytes, value bits all zeros or
 * all ones (reserved), or not in its shortest form. */
int tr_ebml_read_id(const uint8_t *p, size_t len, uint32_t *id);

/* Reads a data size at p. Returns its length (1-8) with *size set (TR_EBML_UNKNOWN_SIZE for
 * the all-ones value of any length), 0 when len is too short, or -1 when the first byte is
 * 0x00. */
int tr_ebml_read_size(const uint8_t *p, size_t len, uint64_t *size);

/* Element values of n bytes (big-endian). Return 0, or -1 when n is not a length the type
 * allows (unsigned/signed 0-8, float 0, 4 or 8; a 0-byte value is 0). */
int tr_ebml_get_uint(const uint8_t *p, size_t n, uint64_t *v);
int tr_ebml_get_int(const uint8_t *p, size_t n, int64_t *v);
int tr_ebml_get_float(const uint8_t *p, size_t n, double *v);

/* One element of a complete buffer (a whole master element's data in memory). */
typedef struct tr_ebml_elem {
    uint32_t id;
    const uint8_t *data; /* its data, inside the buffer */
    size_t size;         /* its data size (never unknown here) */
    size_t hdr_len;      /* bytes of ID + size before data */
} tr_ebml_elem;

/* Reads the element at *p (before end) and advances *p past it. Returns 1 with *e set, 0 when
 * *p == end, -1 when the element is malformed, has an unknown size or runs past end. */
int tr_ebml_next(const uint8_t **p, const uint8_t *end, tr_ebml_elem *e);

/* ---- encoding into caller storage ---- */

/* Bytes the ID takes (1-4), from its marker bit; 0 if id is not a valid ID. */
int tr_ebml_id_len(uint32_t id);
/* Writes id to out (room for 4) and returns its length, 0 if id is not a valid ID. */
int tr_ebml_encode_id(uint8_t *out, uint32_t id);
/* Writes size in its shortest form (1-8 bytes) to out (room for 8) and returns the length;
 * 0 if size > TR_EBML_MAX_SIZE. The shortest form never uses the reserved all-ones value. */
int tr_ebml_encode_size(uint8_t *out, uint64_t size);
/* Writes size in the fixed 8-byte form, for sizes patched in after the data is written. */
void tr_ebml_encode_size8(uint8_t *out, uint64_t size);
/* The 8-byte "unknown size" (01 FF FF FF FF FF FF FF). */
void tr_ebml_encode_unknown_size(uint8_t *out);

/* ---- a growable output buffer ---- */

typedef struct tr_ebml_buf {
    uint8_t *data;
    size_t len, cap;
    size_t max;  /* never grow past this many bytes (0: SIZE_MAX / 2) */
    int failed;  /* an append failed (out of memory or past max): the content is unusable */
} tr_ebml_buf;

/* An empty buffer growing to at most max bytes (0 for no limit of its own). */
void tr_ebml_buf_init(tr_ebml_buf *b, size_t max);
/* Frees the data and resets b to empty (max kept). */
void tr_ebml_buf_free(tr_ebml_buf *b);
/* Empties b but keeps its allocation for reuse; clears failed. */
void tr_ebml_buf_reset(tr_ebml_buf *b);
/* Makes room for n more bytes. 0, or -1 (and failed set). */
int tr_ebml_buf_reserve(tr_ebml_buf *b, size_t n);
/* Hands the data (malloc'd, caller frees) to the caller and resets b. NULL when b failed or is
 * empty; *len is set either way. */
uint8_t *tr_ebml_buf_take(tr_ebml_buf *b, size_t *len);

void tr_ebml_put_bytes(tr_ebml_buf *b, const void *p, size_t n);
void tr_ebml_put_id(tr_ebml_buf *b, uint32_t id);
void tr_ebml_put_size(tr_ebml_buf *b, uint64_t size);          /* shortest form */
void tr_ebml_put_size8(tr_ebml_buf *b, uint64_t size);         /* fixed 8 bytes */
void tr_ebml_put_unknown_size(tr_ebml_buf *b);

/* Whole elements: ID, size, value. Integers take their shortest form but at least one byte
 * (EBML allows an empty 0, some readers do not); floats are written as 8-byte doubles. */
void tr_ebml_put_uint(tr_ebml_buf *b, uint32_t id, uint64_t v);
void tr_ebml_put_int(tr_ebml_buf *b, uint32_t id, int64_t v);
void tr_ebml_put_float(tr_ebml_buf *b, uint32_t id, double v);
void tr_ebml_put_string(tr_ebml_buf *b, uint32_t id, const char *s); /* without the NUL */
void tr_ebml_put_binary(tr_ebml_buf *b, uint32_t id, const void *p, size_t n);

/* A master element whose size is not known until its children are written: begin writes the
 * ID and reserves an 8-byte size and returns where that size sits; end patches it with the
 * bytes written since. Nest freely. */
size_t tr_ebml_master_begin(tr_ebml_buf *b, uint32_t id);
void tr_ebml_master_end(tr_ebml_buf *b, size_t at);

#endif
