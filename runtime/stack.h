/* SPDX-License-Identifier: MIT */
/*
 * Coroutine stacks: mmap'ed, a PROT_NONE guard page below each, pooled per
 * scheduler (so per thread, no locks). See stack.c.
 */
#ifndef CORONET_RUNTIME_STACK_H
#define CORONET_RUNTIME_STACK_H

#include <stddef.h>

struct cn__stack {
    char *lo;       /* lowest usable byte (just above the guard page) */
    size_t size;    /* usable bytes */
    unsigned vg_id; /* Valgrind stack registration */
};

struct cn__stack_pool {
    struct cn__stack *free; /* LIFO of unused stacks */
    size_t nfree;
    size_t cap;
    size_t page;
};

void cn__stack_pool_init(struct cn__stack_pool *p);
/* Unmaps every pooled stack. */
void cn__stack_pool_free(struct cn__stack_pool *p);
/* Gets a stack of `size` usable bytes (rounded up to pages). Returns 0 or
 * CN_ENOSTACK. */
int cn__stack_get(struct cn__stack_pool *p, size_t size, struct cn__stack *out);
/* Returns a stack nobody runs on any more. */
void cn__stack_put(struct cn__stack_pool *p, struct cn__stack *s);
/* The guard page of s: [lo - page, lo). */
static inline char *cn__stack_guard(const struct cn__stack *s, size_t page)
{
    return s->lo - page;
}

#endif /* CORONET_RUNTIME_STACK_H */
