/* CRC32C (Castagnoli), the checksum of every on-disk frame. Uses the SSE4.2 instruction
 * when the CPU has it, a table otherwise. */
#ifndef TR_UTIL_CRC32C_H
#define TR_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over len bytes. */
uint32_t tr_crc32c(uint32_t crc, const void *data, size_t len);

#endif
