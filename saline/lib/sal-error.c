#include "sal-error.h"

G_DEFINE_QUARK(sal-error-quark, sal_error)
