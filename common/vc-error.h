/* The error domain of the common library. */
#pragma once

#include <glib.h>

#define VC_ERROR (vc_error_quark())

typedef enum {
    VC_ERROR_INVALID,   /* malformed input from a user or peer */
    VC_ERROR_TOO_LARGE, /* a bounded size or count was exceeded */
    VC_ERROR_IO,        /* a system call failed */
} VcError;

GQuark vc_error_quark(void);
