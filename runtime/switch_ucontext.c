/* SPDX-License-Identifier: MIT */
/*
 * Portable context switch on ucontext (see ctx.h for the contract).
 * swapcontext saves and restores the signal mask, one syscall per switch:
 * this back end exists for platforms without an assembly one and as the
 * reference the benchmark compares the assembly back ends against.
 */
#include "ctx.h"

#include <stdint.h>
#include <stdlib.h>

/* makecontext passes int arguments only, so pointers travel in halves. */
static void trampoline(unsigned int fn_hi, unsigned int fn_lo, unsigned int arg_hi,
                       unsigned int arg_lo)
{
    uintptr_t fn = ((uintptr_t)fn_hi << 32) | fn_lo;
    uintptr_t arg = ((uintptr_t)arg_hi << 32) | arg_lo;
    ((cn__ctx_entry_fn)fn)((void *)arg);
    abort(); /* entry never returns */
}

void cn__ctx_make(struct cn__ctx *ctx, void *stack_lo, size_t size, cn__ctx_entry_fn entry,
                  void *arg)
{
    uintptr_t fn = (uintptr_t)entry;
    uintptr_t a = (uintptr_t)arg;
    if (getcontext(&ctx->uc) != 0) {
        abort(); /* cannot fail on Linux: it only reads registers */
    }
    ctx->uc.uc_stack.ss_sp = stack_lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))trampoline, 4, (unsigned int)(fn >> 32), (unsigned int)fn,
                (unsigned int)(a >> 32), (unsigned int)a);
}

void cn__ctx_switch(struct cn__ctx *from, struct cn__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
