/* SPDX-License-Identifier: MIT */
/*
 * Context switch for AArch64 AAPCS64 (see ctx.h for the contract).
 *
 * Saved on the suspended stack (176 bytes, 16-byte aligned):
 *   [sp+0]   x19..x28      [sp+80]  x29 (fp), x30 (lr = resume address)
 *   [sp+96]  d8..d15       [sp+160] FPCR
 * x19-x29, sp, d8-d15 (low 64 bits) are callee-saved by AAPCS64 and FPCR's
 * rounding and flush-to-zero fields are expected to survive calls, so they
 * travel with the context.
 */
    .text
    .globl cn__ctx_switch
    .hidden cn__ctx_switch
    .type cn__ctx_switch, %function
    .p2align 4
/* void cn__ctx_switch(struct cn__ctx *from, struct cn__ctx *to) */
cn__ctx_switch:
    .cfi_startproc
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldr x9, [sp, #160]
    msr fpcr, x9
    add sp, sp, #176
    /* br, not ret: ret would train the return predictor with a return into
     * another context (see switch_x86_64.S). */
    br x30
    .cfi_endproc
    .size cn__ctx_switch, .-cn__ctx_switch

/*
 * void cn__ctx_make(struct cn__ctx *ctx, void *stack_lo, size_t size,
 *                   cn__ctx_entry_fn entry, void *arg)
 * Builds a frame that cn__ctx_switch returns into: x19 = entry, x20 = arg,
 * fp = 0 (ends backtraces), lr = trampoline.
 */
    .globl cn__ctx_make
    .hidden cn__ctx_make
    .type cn__ctx_make, %function
    .p2align 4
cn__ctx_make:
    .cfi_startproc
    add x9, x1, x2
    and x9, x9, #~15
    sub x9, x9, #176
    stp x3, x4, [x9, #0]
    adr x10, cn__ctx_trampoline
    stp xzr, x10, [x9, #80]
    mrs x10, fpcr
    str x10, [x9, #160]
    str x9, [x0]
    ret
    .cfi_endproc
    .size cn__ctx_make, .-cn__ctx_make

    .type cn__ctx_trampoline, %function
    .p2align 4
cn__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov x0, x20
    blr x19
    brk #0                    /* entry never returns */
    .cfi_endproc
    .size cn__ctx_trampoline, .-cn__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
