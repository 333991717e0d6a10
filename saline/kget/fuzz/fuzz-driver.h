/* The shared part of the Kget+ libFuzzer harness (fuzz-driver.c). */
#pragma once

#include "kget-proto.h"

/* Encode @msg again into @out; FALSE for a type the harness skips. */
gboolean fuzz_reencode(const KgetMsg *msg, GByteArray *out);
