/* SPDX-License-Identifier: MIT */
/*
 * The context switch: the only machine-specific part of the runtime. One back
 * end per file, chosen by meson:
 *   switch_x86_64.S   SysV x86-64: rbx, rbp, r12-r15, rsp, MXCSR, x87 CW
 *   switch_aarch64.S  AAPCS64: x19-x29, lr, sp, d8-d15, FPCR
 *   switch_ucontext.c portable fallback (swapcontext; one syscall per switch)
 *
 * A context is what a suspended stack needs to resume. Switching saves the
 * callee-saved state of the caller on its own stack, stores the stack pointer
 * in *from and resumes *to. Everything else is caller-saved by the ABI, so
 * the compiler already spilled it around the call.
 *
 * Floating-point control state (rounding mode, exception masks, flush-to-zero)
 * is callee-saved by both ABIs, so it travels with each context: a coroutine
 * that changes its rounding mode does not change anyone else's. A new context
 * starts with the control state of the thread that made it.
 *
 * This header has no dependency on the rest of the runtime so that the
 * switch can be built and tested alone (the AArch64 cross test does so).
 */
#ifndef CORONET_RUNTIME_CTX_H
#define CORONET_RUNTIME_CTX_H

#include <stddef.h>

#if defined(CN_CTX_UCONTEXT)
#include <ucontext.h>
struct cn__ctx {
    ucontext_t uc;
};
#else
struct cn__ctx {
    void *sp; /* saved stack pointer; the rest lives on the stack */
};
#endif

typedef void (*cn__ctx_entry_fn)(void *arg);

/* Prepares ctx to run entry(arg) on the stack [stack_lo, stack_lo + size)
 * the first time it is switched to. entry must never return: it ends by
 * switching away for good. */
void cn__ctx_make(struct cn__ctx *ctx, void *stack_lo, size_t size, cn__ctx_entry_fn entry,
                  void *arg);

/* Saves the running context into *from and resumes *to. Returns when some
 * other context switches back to *from. */
void cn__ctx_switch(struct cn__ctx *from, struct cn__ctx *to);

#endif /* CORONET_RUNTIME_CTX_H */
