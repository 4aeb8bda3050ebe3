/* parallel_client.c -- fb_parallel_phases in the extension modules other than fastbn._util: a call
 * through to _util's (parallel.c), installed at import, so that the process has one pool of
 * helper threads.  See parallel.h. */
#include "parallel.h"

static fb_phases_impl fb_impl = NULL;

void fb_parallel_install(fb_phases_impl impl) { fb_impl = impl; }

void fb_parallel_phases(const fb_phase *phases, int n_phases, int n_threads)
{
    if (fb_impl)
        fb_impl(phases, n_phases, n_threads);
    else
        fb_phases_serially(phases, n_phases);
}
