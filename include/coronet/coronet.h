/* SPDX-License-Identifier: MIT */
/* coronet: coroutine networking on libuv. The umbrella header. */
#ifndef CORONET_H
#define CORONET_H

#define CORONET_VERSION_MAJOR 0
#define CORONET_VERSION_MINOR 1
#define CORONET_VERSION_PATCH 0

#include "coronet/runtime.h"
#include "coronet/net.h"
#include "coronet/http.h"
#include "coronet/kinesis.h"
#include "coronet/ws.h"

#endif /* CORONET_H */
