/* Request bodies of the AWS JSON 1.1 protocol: see fuzz_wire.h. */
#define FUZZ_WIRE_FORMAT TR_WIRE_JSON
#include "fuzz_wire.h"
