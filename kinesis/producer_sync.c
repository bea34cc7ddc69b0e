/* SPDX-License-Identifier: MIT */
/* placeholder: filled in by the work on issue 7 */
#include "coronet/kinesis.h"
