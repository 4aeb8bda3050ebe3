/*
 * parallel.h -- a fork-safe, deterministic parallel-for.
 *
 * Parallel calls run on a pool of helper threads, started by the first call that needs them and
 * asleep between calls (each on its own condition variable: nothing spins beside NumPy's BLAS or
 * torch).  A fork handler gives a forked child an empty pool, so a process forked after a parallel
 * call never inherits a half-alive one.  One call at a time uses the pool; a call that finds it
 * busy (from another thread) starts and joins threads of its own, as every call does on Windows.
 * The pool lives in fastbn._util (parallel.c); the other extension modules link parallel_client.c,
 * whose fb_parallel_phases calls _util's, installed when the module is imported: one pool per
 * process.
 * Tasks are indexed; a task writes only its own outputs, so which thread runs a task never changes
 * a result.  Threads take runs of consecutive tasks, so that neighbouring data meets one core.
 */
#ifndef FASTBN_PARALLEL_H
#define FASTBN_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

typedef void (*fb_task_fn)(void *ctx, int64_t task);

/* Below this many elements a kernel runs on the calling thread: waking a sleeping helper's core
 * takes tens of microseconds on the 2-core shared machines fastbn is tuned on (starting and
 * joining a thread, 60-70 us), about the time a batch-norm pass takes over 2^18 float32
 * elements, so threads only pay off from about twice that (measured: on 2^17 and 2^18 elements
 * two threads are slower than one).  The threshold changes how many threads run, never a result. */
#define FB_PAR_MIN_ELEMS ((int64_t)1 << 19)

/* One pass of a multi-pass kernel: its tasks, then `then(ctx)` (if not NULL) on one thread once
 * every task has finished -- a serial step between passes, such as merging partial results. */
typedef struct {
    int64_t n_tasks;
    fb_task_fn fn;
    void *ctx;
    void (*then)(void *ctx);
} fb_phase;

/* Run the phases in order on up to n_threads threads started once for all of them: no task of a
 * phase starts before the previous phase (and its `then`) has finished.  The threads wait for each
 * other between phases by spinning briefly, then yielding.  At most 8 phases (more run on the
 * calling thread alone). */
void fb_parallel_phases(const fb_phase *phases, int n_phases, int n_threads);

/* The phases on the calling thread alone. */
static inline void fb_phases_serially(const fb_phase *phases, int n_phases)
{
    for (int ph = 0; ph < n_phases; ph++) {
        for (int64_t t = 0; t < phases[ph].n_tasks; t++) phases[ph].fn(phases[ph].ctx, t);
        if (phases[ph].then) phases[ph].then(phases[ph].ctx);
    }
}

/* Run fn(ctx, t) for t in [0, n_tasks) on up to n_threads threads (the caller's included).
 * If a thread cannot be started the remaining tasks run on the threads that could. */
static inline void fb_parallel_for(int64_t n_tasks, int n_threads, fb_task_fn fn, void *ctx)
{
    const fb_phase one = {n_tasks, fn, ctx, NULL};
    fb_parallel_phases(&one, 1, n_threads);
}

/* parallel_client.c: make fb_parallel_phases run `impl` (fastbn._util's); until then, phases run
 * on the calling thread. */
typedef void (*fb_phases_impl)(const fb_phase *phases, int n_phases, int n_threads);
void fb_parallel_install(fb_phases_impl impl);

#endif
