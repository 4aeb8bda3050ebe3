/* parallel.c -- see parallel.h.  POSIX threads, or Win32 threads on Windows. */
#include "parallel.h"

#if defined(_WIN32)
#include <windows.h>
typedef HANDLE fb_thread;
#else
#include <pthread.h>
typedef pthread_t fb_thread;
#endif

#define FB_MAX_THREADS 256

typedef struct {
    fb_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    volatile int64_t next;  /* next task to take; updated atomically */
} fb_job;

static int64_t fb_take(fb_job *job)
{
#if defined(_MSC_VER)
    return InterlockedExchangeAdd64((volatile LONG64 *)&job->next, 1);
#else
    return __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
#endif
}

static void fb_work(fb_job *job)
{
    for (int64_t t = fb_take(job); t < job->n_tasks; t = fb_take(job)) job->fn(job->ctx, t);
}

#if defined(_WIN32)
static DWORD WINAPI fb_thread_main(LPVOID arg) { fb_work((fb_job *)arg); return 0; }
#else
static void *fb_thread_main(void *arg) { fb_work((fb_job *)arg); return NULL; }
#endif

void fb_parallel_for(int64_t n_tasks, int n_threads, fb_task_fn fn, void *ctx)
{
    if (n_tasks <= 0) return;
    if (n_threads > FB_MAX_THREADS) n_threads = FB_MAX_THREADS;
    if ((int64_t)n_threads > n_tasks) n_threads = (int)n_tasks;
    if (n_threads <= 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(ctx, t);
        return;
    }
    fb_job job = {fn, ctx, n_tasks, 0};
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
    fb_work(&job);
    for (int i = 0; i < started; i++) {
#if defined(_WIN32)
        WaitForSingleObject(threads[i], INFINITE);
        CloseHandle(threads[i]);
#else
        pthread_join(threads[i], NULL);
#endif
    }
}
