/* SPDX-License-Identifier: MIT */
/*
 * Stack pool. Each stack is one anonymous mapping: a PROT_NONE guard page at
 * the bottom (stacks grow down, so an overflow faults there instead of
 * corrupting a neighbour) and `size` bytes of MAP_NORESERVE memory above it.
 * The kernel commits a page only when the coroutine first touches it, so a
 * 64 KiB stack that parks after a shallow call chain costs one or two pages.
 *
 * Pooling keeps spawn/join free of syscalls: a released stack goes on a
 * per-scheduler LIFO and the next spawn reuses it, pages still warm. The pool
 * is bounded: the first POOL_WARM free stacks are kept as they are, the next
 * ones up to POOL_MAX give their pages back with madvise(MADV_DONTNEED) (one
 * syscall, the mapping stays), and beyond POOL_MAX stacks are unmapped.
 *
 * Every guarded stack costs two kernel memory mappings, so the number of
 * live coroutines is bounded by vm.max_map_count / 2; hitting that limit
 * makes spawn fail with CN_ENOSTACK, never a crash.
 */
#include "stack.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coronet/runtime.h"

#if defined(CN_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CN_ASAN 1
#endif
#if defined(CN_ASAN)
#include <sanitizer/asan_interface.h>
#endif

enum {
    POOL_WARM = 64,  /* free stacks kept with their pages */
    POOL_MAX = 1024, /* free stacks kept at all */
};

void cn__stack_pool_init(struct cn__stack_pool *p)
{
    p->free = NULL;
    p->nfree = 0;
    p->cap = 0;
    p->page = (size_t)sysconf(_SC_PAGESIZE);
}

static void unmap(struct cn__stack_pool *p, struct cn__stack *s)
{
    VALGRIND_STACK_DEREGISTER(s->vg_id);
    munmap(s->lo - p->page, s->size + p->page);
}

void cn__stack_pool_free(struct cn__stack_pool *p)
{
    for (size_t i = 0; i < p->nfree; i++) {
        unmap(p, &p->free[i]);
    }
    free(p->free);
    p->free = NULL;
    p->nfree = p->cap = 0;
}

static int map(struct cn__stack_pool *p, size_t size, struct cn__stack *out)
{
    size_t total = size + p->page;
    char *base = mmap(NULL, total, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        return CN_ENOSTACK;
    }
    if (mprotect(base, p->page, PROT_NONE) != 0) {
        munmap(base, total);
        return CN_ENOSTACK;
    }
    out->lo = base + p->page;
    out->size = size;
    out->vg_id = VALGRIND_STACK_REGISTER(out->lo, out->lo + size);
    return 0;
}

int cn__stack_get(struct cn__stack_pool *p, size_t size, struct cn__stack *out)
{
    size = (size + p->page - 1) & ~(p->page - 1);
    /* Stacks of one size dominate; scan from the top for a match. */
    for (size_t i = p->nfree; i-- > 0;) {
        if (p->free[i].size == size) {
            *out = p->free[i];
            p->free[i] = p->free[--p->nfree];
            return 0;
        }
    }
    return map(p, size, out);
}

static bool grow(struct cn__stack_pool *p)
{
    size_t cap = p->cap ? p->cap * 2 : 64;
    struct cn__stack *f = realloc(p->free, cap * sizeof *f);
    if (!f) {
        return false;
    }
    p->free = f;
    p->cap = cap;
    return true;
}

void cn__stack_put(struct cn__stack_pool *p, struct cn__stack *s)
{
#if defined(CN_ASAN)
    /* Frames that never returned (the coroutine switched away for good)
     * leave their redzones poisoned; the next owner starts clean. */
    ASAN_UNPOISON_MEMORY_REGION(s->lo, s->size);
#endif
    if (p->nfree >= POOL_MAX || (p->nfree == p->cap && !grow(p))) {
        unmap(p, s);
        return;
    }
    if (p->nfree >= POOL_WARM) {
        /* Keep the top page: the next coroutine touches it first anyway. */
        madvise(s->lo, s->size - p->page, MADV_DONTNEED);
    }
    p->free[p->nfree++] = *s;
}
