/* The error domain of the Saline library. */
#pragma once

#include <glib.h>

#define SAL_ERROR (sal_error_quark())

typedef enum {
    SAL_ERROR_INVALID = 1, /* malformed or out-of-bounds input */
    SAL_ERROR_STATE,       /* a job state transition the table forbids */
    SAL_ERROR_NOT_FOUND,   /* no such job, site or address pool */
    SAL_ERROR_CONFLICT,    /* a duplicate or overlap (UNIQUE, pools) */
    SAL_ERROR_EXHAUSTED,   /* an address pool has no free address */
    SAL_ERROR_STORE,       /* the database failed */
    SAL_ERROR_VERSION,     /* the database is newer than this program */
    SAL_ERROR_NODE,        /* a node (its libvirt) failed or is gone */
} SalErrorCode;

GQuark sal_error_quark(void);
