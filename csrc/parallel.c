/* parallel.c -- see parallel.h.  POSIX threads, or Win32 threads on Windows. */
#include "parallel.h"

#if defined(_WIN32)
#include <windows.h>
typedef HANDLE fb_thread;
#else
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>
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
/* Threads take runs of consecutive tasks, about this many a thread: a task's prefetch of the next
 * task's data then serves the core that reads it, and the runs still balance a core slowed by
 * another tenant (docs/performance.rst, "Runs of consecutive tasks"). */
#define FB_RUNS_PER_THREAD 8

typedef struct {
    const fb_phase *phases;
    int n_phases;
    volatile int64_t next[FB_MAX_PHASES];   /* next task of each phase; taken atomically */
    int64_t run[FB_MAX_PHASES];             /* tasks taken at once (FB_RUNS_PER_THREAD) */
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
    const int64_t run = job->run[ph];
    for (int64_t t = fb_atomic_add(&job->next[ph], run); t < p->n_tasks;
         t = fb_atomic_add(&job->next[ph], run))
        for (int64_t u = t; u < t + run && u < p->n_tasks; u++) p->fn(p->ctx, u);
}

/* A worker's part in a job: each phase's tasks, then report and wait for the caller to close the
 * phase.  Its report after the last phase is its last access to the job, which lives on the
 * caller's stack. */
static void fb_worker(fb_job *job)
{
    const int n_phases = job->n_phases;
    for (int ph = 0; ph < n_phases; ph++) {
        fb_run_tasks(job, ph);
        fb_atomic_add(&job->arrived, 1);
        if (ph == n_phases - 1) break;
        fb_wait_at_least(&job->phase_done, ph + 1);
    }
}

#if defined(_WIN32)
static DWORD WINAPI fb_thread_main(LPVOID arg) { fb_worker((fb_job *)arg); return 0; }
#else
static void *fb_thread_main(void *arg) { fb_worker((fb_job *)arg); return NULL; }
#endif

/* The caller's part in a job with `helpers` other threads: it takes part in every phase and
 * closes it -- once every helper has reported, it runs `then` and lets them into the next phase.
 * It returns when every helper has reported the last phase. */
static void fb_lead(fb_job *job, int helpers)
{
    const fb_phase *phases = job->phases;
    const int n_phases = job->n_phases;
    for (int ph = 0; ph < n_phases; ph++) {
        fb_run_tasks(job, ph);
        fb_wait_at_least(&job->arrived, (int64_t)helpers * (ph + 1));
        if (phases[ph].then) phases[ph].then(phases[ph].ctx);
        if (ph < n_phases - 1) fb_atomic_store(&job->phase_done, ph + 1);
    }
}

/* The job on threads started for this call alone and joined before it returns: the way of a call
 * that finds the pool busy (another thread's call holds it) and of platforms without the pool. */
static void fb_run_on_own_threads(fb_job *job, int helpers)
{
    fb_thread threads[FB_MAX_THREADS];
    int started = 0;
    for (int i = 0; i < helpers; i++) {
#if defined(_WIN32)
        threads[started] = CreateThread(NULL, 0, fb_thread_main, job, 0, NULL);
        if (threads[started] == NULL) break;
#else
        if (pthread_create(&threads[started], NULL, fb_thread_main, job) != 0) break;
#endif
        started++;
    }
    fb_lead(job, started);
    for (int i = 0; i < started; i++) {
#if defined(_WIN32)
        WaitForSingleObject(threads[i], INFINITE);
        CloseHandle(threads[i]);
#else
        pthread_join(threads[i], NULL);
#endif
    }
}

#if !defined(_WIN32)
#define FB_HAVE_POOL 1
/* The pool: helper threads started by the first parallel call and kept, each asleep on its own
 * condition variable between calls (no spinning, so nothing competes with BLAS or torch).  One
 * call at a time uses it; a call that finds it busy starts its own threads.  Starting and joining
 * a thread costs 60-70 us of the caller's time on the machines fastbn is tuned on; waking a
 * sleeping helper costs the caller one signal. */
typedef struct {
    pthread_cond_t wake;
    int64_t posted;      /* jobs posted to this helper */
    fb_job *job;         /* the last one */
} fb_helper;

static pthread_mutex_t fb_pool_busy = PTHREAD_MUTEX_INITIALIZER;   /* held by the call using it */
static pthread_mutex_t fb_pool_mu = PTHREAD_MUTEX_INITIALIZER;     /* guards the helpers' slots */
static int fb_pool_size = 0;                                        /* changed with `busy` held */
static fb_helper fb_pool_helper[FB_MAX_THREADS];

static void *fb_helper_main(void *arg)
{
    fb_helper *me = (fb_helper *)arg;
    int64_t done = 0;   /* a new helper has had no job: its first may be posted before it runs */
    pthread_mutex_lock(&fb_pool_mu);
    for (;;) {
        while (me->posted == done) pthread_cond_wait(&me->wake, &fb_pool_mu);
        done = me->posted;
        fb_job *job = me->job;
        pthread_mutex_unlock(&fb_pool_mu);
        fb_worker(job);
        pthread_mutex_lock(&fb_pool_mu);
    }
    return NULL;
}

/* fork: the child has none of the helpers, so it starts its own.  No call is in flight while the
 * locks are held across the fork. */
static void fb_pool_prepare(void)
{
    pthread_mutex_lock(&fb_pool_busy);
    pthread_mutex_lock(&fb_pool_mu);
}

static void fb_pool_parent(void)
{
    pthread_mutex_unlock(&fb_pool_mu);
    pthread_mutex_unlock(&fb_pool_busy);
}

static pid_t fb_pool_pid = 0;   /* the process whose threads the slots hold */

static void fb_pool_child(void)
{
    fb_pool_size = 0;   /* fb_pool_grow initializes each slot afresh */
    pthread_mutex_unlock(&fb_pool_mu);
    pthread_mutex_unlock(&fb_pool_busy);
}

static pthread_once_t fb_pool_once = PTHREAD_ONCE_INIT;
static int fb_pool_forkable = 0;
static void fb_pool_init(void)
{
    fb_pool_forkable = pthread_atfork(fb_pool_prepare, fb_pool_parent, fb_pool_child) == 0;
}

/* Start helpers until there are `want`, how many there are.  Helpers block the asynchronous
 * signals, which go to the interpreter's threads.  Called with `busy` held. */
static int fb_pool_grow(int want)
{
    /* A child whose fork skipped our handlers (seen when forking during another thread's first
     * parallel call) inherits slots without threads: the slots belong to a pid. */
    const pid_t pid = getpid();
    if (fb_pool_pid != pid) {
        pthread_mutex_init(&fb_pool_mu, NULL);
        fb_pool_size = 0;
        fb_pool_pid = pid;
    }
    if (fb_pool_size >= want) return want;   /* every call after the first: no further system call */
    sigset_t all, old;
    sigfillset(&all);
    const int synchronous[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP};
    for (size_t i = 0; i < sizeof synchronous / sizeof synchronous[0]; i++)
        sigdelset(&all, synchronous[i]);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (fb_pool_size < want) {
        fb_helper *h = &fb_pool_helper[fb_pool_size];
        pthread_cond_init(&h->wake, NULL);
        h->posted = 0, h->job = NULL;
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int failed = pthread_create(&thread, &attr, fb_helper_main, h);
        pthread_attr_destroy(&attr);
        if (failed) {
            pthread_cond_destroy(&h->wake);
            break;
        }
        fb_pool_size++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return fb_pool_size < want ? fb_pool_size : want;
}

/* The job on the pool's helpers; 0 if the pool is busy or cannot be used. */
static int fb_pool_run(fb_job *job, int helpers)
{
    pthread_once(&fb_pool_once, fb_pool_init);
    if (!fb_pool_forkable || pthread_mutex_trylock(&fb_pool_busy) != 0) return 0;
    helpers = fb_pool_grow(helpers);
    pthread_mutex_lock(&fb_pool_mu);
    for (int i = 0; i < helpers; i++) {
        fb_pool_helper[i].job = job;
        fb_pool_helper[i].posted++;
        pthread_cond_signal(&fb_pool_helper[i].wake);
    }
    pthread_mutex_unlock(&fb_pool_mu);
    fb_lead(job, helpers);
    pthread_mutex_unlock(&fb_pool_busy);
    return 1;
}
#endif

void fb_parallel_phases(const fb_phase *phases, int n_phases, int n_threads)
{
    if (n_phases <= 0) return;
    int64_t most = 0;
    for (int ph = 0; ph < n_phases; ph++)
        if (phases[ph].n_tasks > most) most = phases[ph].n_tasks;
    if (n_threads > FB_MAX_THREADS) n_threads = FB_MAX_THREADS;
    if ((int64_t)n_threads > most) n_threads = (int)most;
    if (n_threads <= 1 || n_phases > FB_MAX_PHASES) {
        fb_phases_serially(phases, n_phases);
        return;
    }
    fb_job job;
    job.phases = phases, job.n_phases = n_phases, job.arrived = 0, job.phase_done = 0;
    for (int ph = 0; ph < FB_MAX_PHASES; ph++) {
        const int64_t per = (int64_t)n_threads * FB_RUNS_PER_THREAD;
        const int64_t run = ph < n_phases ? phases[ph].n_tasks / per : 1;
        job.next[ph] = 0, job.run[ph] = run > 1 ? run : 1;
    }
#ifdef FB_HAVE_POOL
    if (fb_pool_run(&job, n_threads - 1)) return;
#endif
    fb_run_on_own_threads(&job, n_threads - 1);
}
