// SPDX-License-Identifier: MIT
//
// Reference for the `switch` benchmark: Boost.Context's fcontext jump, the
// hand-written assembly switch under Boost.Coroutine2 and Boost.Fiber. Like
// coronet's back end it saves callee-saved registers and the FP control words
// (MXCSR, x87 CW) on the suspended stack and keeps the stack pointer, so the
// two measure the same work. Built only when meson finds a C++ compiler and
// Boost.Context (bench/meson.build); bench-runtime.c calls it through the
// extern "C" function below.
#include <boost/context/detail/fcontext.hpp>

#include <cstddef>
#include <cstdlib>
#include <ctime>

namespace bcd = boost::context::detail;

namespace
{

const std::size_t stack_size = 64 * 1024;

// The other side of the ping-pong: jumps straight back, forever. Each
// jump_fcontext returns the context that jumped here, which is where the
// next jump goes.
void bounce(bcd::transfer_t t)
{
    bcd::fcontext_t back = t.fctx;
    for (;;) {
        back = bcd::jump_fcontext(back, nullptr).fctx;
    }
}

double now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

} // namespace

// ns per one-way switch, best of `runs` runs of `iters` round trips; a
// negative value if no stack could be had.
extern "C" double cn_bench_boost_switch_ns(long iters, int runs);

extern "C" double cn_bench_boost_switch_ns(long iters, int runs)
{
    void *stack = std::malloc(stack_size);
    if (stack == nullptr) {
        return -1;
    }
    // fcontext stacks grow down from the top address passed here.
    bcd::fcontext_t co =
        bcd::make_fcontext(static_cast<char *>(stack) + stack_size, stack_size, bounce);
    co = bcd::jump_fcontext(co, nullptr).fctx; // first entry
    double best = 1e300;
    for (int r = 0; r < runs; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            co = bcd::jump_fcontext(co, nullptr).fctx;
        }
        double per = (now_ns() - t0) / (2.0 * static_cast<double>(iters));
        best = per < best ? per : best;
    }
    // The bouncing context stays suspended for good; nothing runs on it again.
    std::free(stack);
    return best;
}
