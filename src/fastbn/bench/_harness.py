"""The measuring part of ``python -m fastbn.bench``: cases, interleaved timing, the table.

A :class:`Case` names one kernel on one input and holds callables for each contender: fastbn,
the plain-NumPy reference (or the NumPy idiom users write today), PyTorch when installed,
``np.copyto`` of the same tensor -- the memory roofline -- and, for batch norm, the floor (its
minimal memory traffic, :mod:`fastbn.bench.floor`).  Contenders are timed in turn, round after
round, so that load from other processes on a shared machine falls on all of them alike; the
table reports medians and ratios.

A batch-norm case is timed in a *state* (:data:`STATES`), an untimed step before every timed
call of every contender: "b2b" an untimed call of the contender itself (a tight loop: the data
as warm as the last-level cache keeps it), "producer" its inputs freshly written (as the layer
before leaves them), "cold" the last-level cache flushed by writing three times its size.
"""
import ctypes
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


@dataclass
class Case:
    kernel: str                    # what is computed, e.g. "bn train"
    shape: str                     # the input, e.g. "(32,64,56,56) NCHW f32"
    fastbn: Callable[[], object]
    reference: Optional[Callable[[], object]] = None
    reference_label: str = "reference"
    torch: Optional[Callable[[], object]] = None
    copy_of: Optional[np.ndarray] = None   # the tensor whose np.copyto is the roofline
    roofline: Optional[Callable[[], object]] = None   # a custom roofline, timed instead of copy_of
    threads: Optional[int] = None          # filled in by the runner
    inputs: Optional[list] = None          # arrays the producer state rewrites; None: b2b only
    floor: Optional[Callable[[], object]] = None   # the minimal traffic (fastbn.bench.floor)
    state: str = "b2b"                     # see STATES
    notes: str = ""
    extra: dict = field(default_factory=dict)


def reuse_freed_memory():
    """Make glibc's malloc keep freed memory and serve every allocation from it (``M_MMAP_MAX``
    0, ``M_TRIM_THRESHOLD`` the largest); return whether it could (glibc only).

    Memory new from the OS costs its first writer the OS's zeroing of the pages: 6-8 ms for a
    (4096, 4096) float32 array on the machines fastbn is tuned on, about as much on two threads
    as on one.  By default glibc serves a large allocation from a freed block of its heap when one
    is large enough, and otherwise maps new memory, which it returns to the OS when freed -- so
    whether a contender's output paid the zeroing depended on what ran before it, and a row could
    pay it on one thread and not on two.  The report calls this first: every contender that
    allocates (fastbn without ``out=``, the NumPy baselines, torch) then reuses memory, as in a
    loop that allocates the same arrays every step.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4   # glibc's malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def copy_timer(a):
    """A callable that copies ``a`` into a preallocated array of the same shape."""
    dst = np.empty_like(a)
    return lambda: np.copyto(dst, a)


def split_copy(a, parts, dst=None):
    """``np.copyto`` of ``a`` (into ``dst``, or a new array) cut into ``parts`` pieces along its
    first axis: one callable each."""
    dst = np.empty_like(a) if dst is None else dst
    return [lambda s=s, d=d: np.copyto(d, s)
            for s, d in zip(np.array_split(a, parts), np.array_split(dst, parts))]


def _roofline_parts(case, parts):
    """The case's copy cut into ``parts`` callables that may run at once; None for a custom
    roofline (the clipping rows': on Python threads, a loop over many arrays contends for the GIL
    between NumPy calls) or none."""
    if case.roofline is None and case.copy_of is not None:
        return split_copy(case.copy_of, parts)
    return None


def _at_once(parts, pool):
    """A callable that runs ``parts`` at once: the first on the calling thread, the others on the
    threads of ``pool`` (NumPy releases the GIL in its loops, so they run in parallel)."""
    def run():
        pending = [pool.submit(p) for p in parts[1:]]
        parts[0]()
        for f in pending:
            f.result()
    return run


def _time_once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _roofline(case):
    """The case's roofline as a callable: its custom one, else a copy of ``copy_of``; or None."""
    if case.roofline is not None:
        return case.roofline
    return copy_timer(case.copy_of) if case.copy_of is not None else None


def _busy_wait(seconds):
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        pass


def _interleaved(contenders, rounds, min_time=0.0, warmup=0.0, settle=0.0, lead_below=0.0,
                 before=None):
    """Median seconds of each callable of the dict ``contenders``, timed in turn round after
    round (the order reversed every other round), at least ``rounds`` rounds and ``min_time``
    seconds.

    First a warm-up: a call of each, repeated for ``warmup`` seconds (pages in outputs, loads
    code, wakes the cores the calls will use).  In the rounds, each contender's turn is
    ``settle`` seconds of busy waiting, then -- if its warm-up call took less than
    ``lead_below`` seconds -- an untimed call, then the timed call.  So each timed call follows
    a call of the same contender, as in a loop: its threads are awake and its code and buffers
    warm, whatever ran before it (see :data:`SETTLE`).  With ``before`` (a callable), that is
    called instead of the untimed call, after the settle: a state step (:func:`state_step`)."""
    t_end = time.perf_counter() + warmup
    first = {}
    while True:
        for name, fn in contenders.items():
            t = _time_once(fn)
            first.setdefault(name, t)
        if time.perf_counter() >= t_end:
            break
    lead = {name for name, t in first.items() if t < lead_below}
    samples = {k: [] for k in contenders}
    t_start = time.perf_counter()
    r = 0
    while r < rounds or (time.perf_counter() - t_start < min_time and r < 50 * rounds):
        order = list(contenders.items())
        if r % 2:
            order.reverse()
        for name, fn in order:
            _busy_wait(settle)
            if before is not None:
                before()
            elif name in lead:
                fn()
            samples[name].append(_time_once(fn))
        r += 1
    return {k: float(np.median(v)) for k, v in samples.items()}


# The main table's turn of each contender (see _interleaved): SETTLE seconds of busy waiting,
# then an untimed call if the contender takes under LEAD_BELOW seconds, then the timed call.
# A runtime with a persistent pool leaves its workers spinning after a call (torch's OpenMP:
# about 5 ms on the machines fastbn is tuned on; OpenBLAS): a contender timed in that window
# shares a core with them.  And a contender timed right after another meets the caches that one
# left (the reference's temporaries evict the input) and a core idle since it started.  The
# untimed call puts every contender in its own state, as in a loop -- torch's pool awake, its
# code and buffers warm -- and the timed call measures the kernel, not its neighbour.  (One call
# does not bring back all of a large input that a neighbour evicted from the last-level cache:
# a few more calls make the largest cases 10-45% faster, fastbn's and torch's alike.)
# The wait is busy, on the calling thread, so that its core does not go idle.
SETTLE = 0.008
LEAD_BELOW = 0.05

# Seconds each case is timed at least in each window, in both tables: a millisecond kernel gets
# more rounds.
MIN_TIME = 0.3

# Each case is timed in WINDOWS windows spread over the run: the runner goes through its whole list
# of cases, then through it again (see :func:`in_windows`).  Load from other tenants on the shared
# machines fastbn is tuned on comes in bursts of seconds, longer than a case's window: one window
# of a case can fall in a burst (a two-thread row then loses a fifth of its speed-up), the next
# ones rarely do.  Each contender's figure is the median of its window medians, so one bad window
# moves nothing.
WINDOWS = 3


def in_windows(jobs, windows, before=None):
    """Run every job of the dict ``jobs`` (key -> callable returning ``{contender: seconds}``)
    ``windows`` times, the whole dict in order each time, and return, for each key, each
    contender's median over the windows (None where a window has None).  ``before(key, window)``,
    if given, is called before each job (window counts from 1): the report's progress."""
    seen = {key: [] for key in jobs}
    for w in range(1, windows + 1):
        for key, job in jobs.items():
            if before is not None:
                before(key, w)
            seen[key].append(job())
    return {key: _median_of(ts) for key, ts in seen.items()}


def _median_of(per_window):
    out = {}
    for name in per_window[0]:
        ts = [t[name] for t in per_window if t[name] is not None]
        out[name] = float(np.median(ts)) if ts else None
    return out


# The states a batch-norm case is timed in (see the module's docstring and state_step).
STATES = ("b2b", "producer", "cold")


class Flush:
    """A callable that writes ``nbytes`` of memory of its own (a new value each call): run before
    a timed call, it evicts the last-level cache when ``nbytes`` is a few times its size."""

    def __init__(self, nbytes):
        self.buf = np.ones(max(1, nbytes // 8))   # its pages touched now, not in a timed round
        self.calls = 0

    def __call__(self):
        self.calls += 1
        self.buf.fill(self.calls)


def state_step(case, flush=None):
    """The untimed step before each timed call of ``case`` in its state: None for "b2b" (an
    untimed call of the contender itself, as :func:`_interleaved` does); for "producer", a
    callable that rewrites the case's inputs with the same bytes (``np.copyto`` from copies made
    once); for "cold", ``flush`` (a :class:`Flush`)."""
    if case.state == "b2b":
        return None
    if case.state == "producer":
        # Shared by the state copies of one case (dataclasses.replace keeps the extra dict).
        pairs = case.extra.setdefault("sources", [(a.copy(), a) for a in case.inputs])

        def produce():
            for src, dst in pairs:
                np.copyto(dst, src)
        return produce
    if case.state == "cold":
        if flush is None:
            raise ValueError("the cold state needs a Flush")
        return flush
    raise ValueError(f"state: expected one of {', '.join(STATES)}, got {case.state!r}")


def measure(case, rounds, min_time=MIN_TIME, flush=None, settle=SETTLE):
    """Median seconds of each contender of ``case``, timed interleaved, round by round, each
    after ``settle`` seconds of busy waiting and the step of the case's state
    (:func:`state_step`; in "b2b" a call of its own, see :data:`SETTLE`)."""
    contenders = {"fastbn": case.fastbn}
    if case.reference is not None:
        contenders["reference"] = case.reference
    if case.torch is not None:
        contenders["torch"] = case.torch
    roofline = _roofline(case)
    if roofline is not None:
        contenders["copyto"] = roofline
    if case.floor is not None:
        contenders["floor"] = case.floor
    return _interleaved(contenders, rounds, min_time, settle=settle, lead_below=LEAD_BELOW,
                        before=state_step(case, flush))


def _at_threads(fn, n, set_threads):
    def call():
        set_threads(n)
        return fn()
    return call


def measure_alone(case, threads, rounds, set_threads, min_time=MIN_TIME, warmup=0.2):
    """Median seconds of fastbn at each thread count, of the case's roofline (``"copyto"``, None
    without one) and, for a copy roofline, of the copy cut into n parts run at once on n Python
    threads (``("copyto", n)`` for each thread count n > 1, else None), interleaved with each
    other only, at least ``rounds`` rounds and ``min_time`` seconds.

    This is the thread-scaling measure: the thread counts take turns back to back, with nothing
    else between them, so the machine's state (caches, idle cores, other tenants' load) falls
    on each alike and the ratio is the kernel's own.  The copy on n threads against one is what
    the machine's memory gave n threads at the same moment: the ceiling of a memory-bound kernel's
    scaling (a little under it, as waking the Python threads takes some microseconds).
    """
    contenders = {n: _at_threads(case.fastbn, n, set_threads) for n in threads}
    roofline = _roofline(case)
    pools = []
    if roofline is not None:
        contenders["copyto"] = roofline
        for n in threads:
            parts = _roofline_parts(case, n) if n > 1 else None
            if parts:
                pools.append(ThreadPoolExecutor(max_workers=n - 1))
                contenders[("copyto", n)] = _at_once(parts, pools[-1])
    try:
        out = _interleaved(contenders, rounds, min_time, warmup=warmup)
    finally:
        for pool in pools:
            pool.shutdown()
    out.setdefault("copyto", None)
    for n in threads:
        if n > 1:
            out.setdefault(("copyto", n), None)
    return out


def _ms(t):
    """Milliseconds: four decimals under 0.1 ms (the small calls' microseconds), three under 10."""
    if t is None:
        return ""
    return f"{t * 1e3:.4f}" if t < 1e-4 else f"{t * 1e3:.3f}" if t < 0.01 else f"{t * 1e3:.2f}"


def _ratio(a, b):
    return "" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def columns(torch=True, ratios=True, bn=False):
    """The main tables' columns: times and ratios (fastbn's speed-up over the baseline, its time
    over the copy's, torch's time over fastbn's); without ratios (``ratios=False``, a table of
    noise: ``--quick``) the copy's time instead; the torch ones only with ``torch``.  The
    batch-norm table (``bn``) has a state column, its baseline is always the NumPy reference
    ("NumPy ms"), and beside the copy it gives the floor ("x floor": fastbn's time over the
    floor's; "floor ms" without ratios) -- within 120 columns."""
    if bn:
        out = ["kernel", "input", "threads", "state", "fastbn ms", "NumPy ms"]
        out += ["speed-up", "x copyto", "x floor"] if ratios else ["copyto ms", "floor ms"]
    else:
        out = ["kernel", "input", "threads", "fastbn ms", "baseline", "baseline ms"]
        out += ["speed-up", "x copyto"] if ratios else ["copyto ms"]
    if torch:
        out += ["torch ms", "vs torch"] if ratios else ["torch ms"]
    return out


COLUMNS = columns()


def row(case, t):
    """Every cell of a main-table row, by column: ``case`` timed as ``t`` (:func:`measure`)."""
    f = t["fastbn"]
    return {"kernel": case.kernel, "input": case.shape, "threads": str(case.threads),
            "state": case.state, "fastbn ms": _ms(f),
            "baseline": case.reference_label if "reference" in t else "",
            "baseline ms": _ms(t.get("reference")), "NumPy ms": _ms(t.get("reference")),
            "speed-up": _ratio(t.get("reference"), f),
            "copyto ms": _ms(t.get("copyto")), "x copyto": _ratio(f, t.get("copyto")),
            "floor ms": _ms(t.get("floor")), "x floor": _ratio(f, t.get("floor")),
            "torch ms": _ms(t.get("torch")), "vs torch": _ratio(t.get("torch"), f)}


def markdown(rows, columns=COLUMNS):
    """A Markdown table of ``rows`` (dicts as :func:`row` makes), the given columns in order."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(r[c] for c in columns) + " |" for r in rows]
    return "\n".join(lines)
