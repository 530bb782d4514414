/* Request bodies of the CBOR protocol (the SDKs' Kinesis CBOR): see fuzz_wire.h. */
#define FUZZ_WIRE_FORMAT TR_WIRE_CBOR
#include "fuzz_wire.h"
