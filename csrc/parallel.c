/* parallel.c -- see parallel.h.  POSIX threads, or Win32 threads on Windows. */
#include "parallel.h"

#if defined(_WIN32)
#include <windows.h>
typedef HANDLE fb_thread;
#else
#include <pthread.h>
#include <sched.h>
typedef pthread_t fb_thread;
#endif
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#include <immintrin.h>
#define FB_PAUSE() _mm_pause()
#else
#define FB_PAUSE() ((void)0)
#endif

#define FB_MAX_THREADS 256
#define FB_MAX_PHASES 8
#define FB_SPINS 1000   /* pauses (~13 us here) before a waiting thread starts yielding its core */

typedef struct {
    const fb_phase *phases;
    int n_phases;
    volatile int64_t next[FB_MAX_PHASES];   /* next task of each phase; taken atomically */
    volatile int64_t arrived;               /* workers done with the current phase */
    volatile int64_t phase_done;            /* phases finished, `then` included */
} fb_job;

static int64_t fb_atomic_add(volatile int64_t *p, int64_t v)
{
#if defined(_MSC_VER)
    return InterlockedExchangeAdd64((volatile LONG64 *)p, v);
#else
    return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL);
#endif
}

static int64_t fb_atomic_load(volatile int64_t *p)
{
#if defined(_MSC_VER)
    return InterlockedCompareExchange64((volatile LONG64 *)p, 0, 0);
#else
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#endif
}

static void fb_atomic_store(volatile int64_t *p, int64_t v)
{
#if defined(_MSC_VER)
    InterlockedExchange64((volatile LONG64 *)p, v);
#else
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
#endif
}

static void fb_yield(void)
{
#if defined(_WIN32)
    SwitchToThread();
#else
    sched_yield();
#endif
}

/* Wait until *p >= target: spin, then yield the core to whoever holds it. */
static void fb_wait_at_least(volatile int64_t *p, int64_t target)
{
    for (int64_t spins = 0; fb_atomic_load(p) < target; spins++) {
        if (spins < FB_SPINS) FB_PAUSE();
        else fb_yield();
    }
}

static void fb_run_tasks(fb_job *job, int ph)
{
    const fb_phase *p = &job->phases[ph];
    for (int64_t t = fb_atomic_add(&job->next[ph], 1); t < p->n_tasks; t = fb_atomic_add(&job->next[ph], 1))
        p->fn(p->ctx, t);
}

/* A started thread: each phase's tasks, then report and wait for the caller to close the phase. */
static void fb_worker(fb_job *job)
{
    for (int ph = 0; ph < job->n_phases; ph++) {
        fb_run_tasks(job, ph);
        if (ph == job->n_phases - 1) break;   /* the join closes the last phase */
        fb_atomic_add(&job->arrived, 1);
        fb_wait_at_least(&job->phase_done, ph + 1);
    }
}

#if defined(_WIN32)
static DWORD WINAPI fb_thread_main(LPVOID arg) { fb_worker((fb_job *)arg); return 0; }
#else
static void *fb_thread_main(void *arg) { fb_worker((fb_job *)arg); return NULL; }
#endif

static void fb_run_serially(const fb_phase *phases, int n_phases)
{
    for (int ph = 0; ph < n_phases; ph++) {
        for (int64_t t = 0; t < phases[ph].n_tasks; t++) phases[ph].fn(phases[ph].ctx, t);
        if (phases[ph].then) phases[ph].then(phases[ph].ctx);
    }
}

void fb_parallel_phases(const fb_phase *phases, int n_phases, int n_threads)
{
    if (n_phases <= 0) return;
    int64_t most = 0;
    for (int ph = 0; ph < n_phases; ph++)
        if (phases[ph].n_tasks > most) most = phases[ph].n_tasks;
    if (n_threads > FB_MAX_THREADS) n_threads = FB_MAX_THREADS;
    if ((int64_t)n_threads > most) n_threads = (int)most;
    if (n_threads <= 1 || n_phases > FB_MAX_PHASES) {
        fb_run_serially(phases, n_phases);
        return;
    }
    fb_job job;
    job.phases = phases, job.n_phases = n_phases, job.arrived = 0, job.phase_done = 0;
    for (int ph = 0; ph < FB_MAX_PHASES; ph++) job.next[ph] = 0;
    fb_thread threads[FB_MAX_THREADS];
    int started = 0;
    for (int i = 0; i < n_threads - 1; i++) {
#if defined(_WIN32)
        threads[started] = CreateThread(NULL, 0, fb_thread_main, &job, 0, NULL);
        if (threads[started] == NULL) break;
#else
        if (pthread_create(&threads[started], NULL, fb_thread_main, &job) != 0) break;
#endif
        started++;
    }
    /* The caller takes part in every phase and closes it: once every started thread has
     * reported, it runs `then` and lets them into the next phase. */
    for (int ph = 0; ph < n_phases; ph++) {
        fb_run_tasks(&job, ph);
        if (ph == n_phases - 1) break;
        fb_wait_at_least(&job.arrived, (int64_t)started * (ph + 1));
        if (phases[ph].then) phases[ph].then(phases[ph].ctx);
        fb_atomic_store(&job.phase_done, ph + 1);
    }
    for (int i = 0; i < started; i++) {
#if defined(_WIN32)
        WaitForSingleObject(threads[i], INFINITE);
        CloseHandle(threads[i]);
#else
        pthread_join(threads[i], NULL);
#endif
    }
    if (phases[n_phases - 1].then) phases[n_phases - 1].then(phases[n_phases - 1].ctx);
}

void fb_parallel_for(int64_t n_tasks, int n_threads, fb_task_fn fn, void *ctx)
{
    const fb_phase one = {n_tasks, fn, ctx, NULL};
    fb_parallel_phases(&one, 1, n_threads);
}
