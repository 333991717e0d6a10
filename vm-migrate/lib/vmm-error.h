/* The error domain of libvmmigrate. */
#pragma once

#include <glib.h>

#define VMM_ERROR (vmm_error_quark())

typedef enum {
    VMM_ERROR_INVALID,   /* malformed input: placement file, arguments */
    VMM_ERROR_TOO_LARGE, /* a bounded size or count was exceeded */
    VMM_ERROR_NOT_FOUND, /* no such domain */
    VMM_ERROR_STATE,     /* a domain cannot be migrated as it is */
    VMM_ERROR_LIBVIRT,   /* a libvirt call failed */
    VMM_ERROR_IO,        /* a system call failed */
} VmmError;

GQuark vmm_error_quark(void);
