/* The shared part of the libFuzzer harnesses (fuzz-driver.c). */
#pragma once

#include "dp-proto.h"

/* Each harness: encode @msg again into @out; FALSE for a type outside
 * the harness's protocol. */
gboolean fuzz_reencode(const DpMsg *msg, GByteArray *out);

/* Walks a LOOKUP/PAGE_GET reply with dp_msg_reply_page() and encodes it
 * again into @out. */
void fuzz_check_pages_reply(const DpMsg *msg, GByteArray *out);
