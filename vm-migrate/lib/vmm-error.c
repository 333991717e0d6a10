#include "vmm-error.h"

G_DEFINE_QUARK(vmm-error-quark, vmm_error)
