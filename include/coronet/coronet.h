/* SPDX-License-Identifier: MIT */
/* coronet: coroutine networking on libuv. The umbrella header. */
#ifndef CORONET_H
#define CORONET_H

#define CORONET_VERSION_MAJOR 0
#define CORONET_VERSION_MINOR 1
#define CORONET_VERSION_PATCH 0

#include "coronet/runtime.h"
#include "coronet/net.h"
#if __has_include("coronet/http.h") /* TEMPORARY while files land */
#include "coronet/http.h"
#endif

#endif /* CORONET_H */
