"""``python -m fastbn.bench``: fastbn against its baselines, and alone at each thread count.

The output opens with the machine (CPU, cores, caches, fastbn's instruction set, NumPy's and
torch's versions).  Main-table columns: the state the case was timed in (batch norm: "b2b",
"producer", "cold", see :mod:`fastbn.bench._harness`; ``--state``), fastbn's median time; the
baseline (the plain-NumPy reference, or the NumPy idiom a user writes today) and fastbn's speed-up
over it; fastbn's time as a multiple of ``np.copyto`` of the same tensor (the memory roofline) and
of its floor (its minimal memory traffic at the bandwidth of the same state and thread count, see
:mod:`fastbn.bench.floor`; 1.0 is the memory's speed); PyTorch CPU and fastbn's speed-up over it,
when torch is in use (installed, and no ``--no-torch``; otherwise no torch columns).
With ``--quick`` the tables give times alone, under a line saying they are not a measurement.
The tables go to stdout; the progress (see :mod:`fastbn.bench._progress`) to stderr.  Each case
area lives in its own module of this package.
"""
import argparse
import dataclasses
import importlib
import sys
import time

from fastbn import _atomic, _config
from fastbn.bench import _machine
from fastbn.bench._harness import (MIN_TIME, SETTLE, STATES, WINDOWS, Flush, _ms, columns,
                                   in_windows, markdown, measure, measure_alone,
                                   reuse_freed_memory, row)
from fastbn.bench._progress import progress

# Above the tables of a --quick run: its figures are noise, and nothing in it is to be quoted.
QUICK_NOTE = ("**Not a measurement.** `--quick` times small inputs for a few rounds in one window, "
              "to check that every case runs: the times below are noise, and no ratio is given. "
              "Run without `--quick` for figures to compare.")

AREAS = ["batchnorm", "norms", "small", "clip", "init"]

# Rounds per window of a batch-norm row in the producer and cold states (b2b rows and the other
# areas: --rounds, default 5).  Their steps (a rewrite of the inputs, a 96 MB flush) cost as much
# as the calls: 3 rounds keep the default report near 12 minutes on the 2-core machine it is tuned on.
STATE_ROUNDS = 3


def _torch_threads(n):
    torch = sys.modules.get("torch")    # imported by the cases only when its column is wanted
    if torch is not None:
        torch.set_num_threads(n)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastbn.bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="small inputs, few rounds: a smoke run, times only (no ratios)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--rounds", type=int, default=None,
                   help="timing rounds per case in each window (default 5, batch norm's producer "
                        f"and cold rows {STATE_ROUNDS}; --quick 3)")
    p.add_argument("--windows", type=int, default=None,
                   help=f"times the whole list of cases is timed (default {WINDOWS}; --quick 1)")
    p.add_argument("--state", default=",".join(STATES),
                   help="comma-separated states of the batch-norm rows: b2b (after an untimed call "
                        "of its own), producer (inputs freshly written), cold (last-level cache "
                        "flushed); default all three")
    p.add_argument("--big", action="store_true",
                   help="batch norm on inputs 4x the last-level cache instead of the standard "
                        "ones: what a machine with a cache 4x the standard inputs' meets")
    p.add_argument("--only", default="", help="run only cases whose kernel contains this text")
    p.add_argument("--no-torch", action="store_true", help="leave out the PyTorch columns")
    p.add_argument("--output", default=None, help="also write the Markdown table to this file")
    p.add_argument("--update-readme", default=None, metavar="README",
                   help="replace the table between the bench markers of this Markdown file "
                        "(not with --quick)")
    args = p.parse_args(argv)
    if args.quick and args.update_readme:
        p.error("--update-readme: a --quick table is not a measurement; run without --quick")
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    states = [s.strip() for s in args.state.split(",") if s.strip()]
    if not states or set(states) - set(STATES):
        p.error(f"--state: a comma-separated list of {', '.join(STATES)}, got {args.state!r}")
    rounds = args.rounds or (3 if args.quick else 5)
    state_rounds = args.rounds or (3 if args.quick else STATE_ROUNDS)
    windows = args.windows or (1 if args.quick else WINDOWS)
    # --quick: a smoke run, its times not compared: no minimum time, a short settle (see SETTLE)
    min_time, settle = (0.0, 0.001) if args.quick else (MIN_TIME, SETTLE)
    torch_ok, torch_version = False, None
    if not args.no_torch:
        try:
            import torch
            torch_ok, torch_version = True, torch.__version__
        except ImportError:
            pass
    reuse = reuse_freed_memory()
    llc, _ = _machine.last_level_cache()
    machine = _machine.describe(_config.get_isa(), torch_version)
    if "cold" in states:
        machine.append(f"cold state: a flush of {3 * llc >> 20} MB (3x the last-level cache) "
                       "written before each timed call")
    if args.big:
        machine.append(f"--big: batch norm on inputs of {4 * llc >> 20} MB or more "
                       "(4x the last-level cache)")
    print(f"fastbn benchmark report: isa={_config.get_isa()}, threads={threads}, "
          f"{windows} windows of {rounds} rounds or more, "
          f"torch={'yes' if torch_ok else 'not installed'}, "
          f"freed memory reused: {'yes' if reuse else 'no (not glibc)'}", file=sys.stderr)
    ratios = not args.quick
    saved = _config.get_num_threads()
    bar = None
    try:
        flush = Flush(3 * llc) if "cold" in states else None
        big = 4 * llc if args.big else None
        cases = {(n, i, s): case for n in threads
                 for i, base in enumerate(_cases(args, n, torch_ok, big))
                 for s, case in _in_states(base, states)}
        alone, seen = [], set()   # the alone table: each case once, at the first thread count
        for (n, i, _), c in cases.items():
            if n == threads[0] and i not in seen:
                seen.add(i)
                alone.append(c)
        scales = len(threads) > 1 and 1 in threads
        bar = progress(windows * (len(cases) + (len(alone) if scales else 0)))
        results = in_windows({key: _main_job(case, rounds if key[2] == "b2b" else state_rounds,
                                             min_time, flush, settle)
                              for key, case in cases.items()}, windows,
                             before=lambda key, w: bar.start("main", w, windows,
                                                             _label(cases[key])))
        rows = [(cases[key].inputs is not None, row(cases[key], t)) for key, t in results.items()]
        scaling = thread_scaling(alone, threads, rounds, min_time, windows, ratios, bar)
    finally:
        if bar is not None:
            bar.close()
        _config.set_num_threads(saved)
    # Batch norm (states, floor) in a table of its own, then the other areas.
    tables = [markdown([r for bn, r in rows if bn == is_bn],
                       columns(torch=torch_ok, ratios=ratios, bn=is_bn))
              for is_bn in (True, False) if any(bn == is_bn for bn, _ in rows)]
    table = "\n\n".join(tables)
    if scaling:
        table += "\n\n" + scaling
    if not ratios:
        table = QUICK_NOTE + "\n\n" + table
    table = machine_block(machine) + "\n\n" + table
    print(table)
    if args.output:
        with open(args.output, "w") as f:
            f.write(table + "\n")
    if args.update_readme:
        _update_readme(args.update_readme, table, threads, _how(windows, rounds, state_rounds),
                       torch_ok, reuse)
    return 0


def _cases(args, n, torch_ok, big=None):
    """The cases of every area for n threads, the --only filter applied; with ``big`` (bytes),
    batch norm on inputs that large."""
    out = []
    for area in AREAS:
        module = importlib.import_module(f"fastbn.bench.{area}")
        extra = {"big": big} if big and area == "batchnorm" else {}
        for case in module.cases(quick=args.quick, torch=torch_ok, **extra):
            if not args.only or args.only in case.kernel:
                case.threads = n
                out.append(case)
    return out


def _in_states(case, states):
    """``(state, case)`` for each state a case is timed in: every state of ``states`` for a case
    with inputs (batch norm), "b2b" alone (the protocol of the other areas) otherwise."""
    if case.inputs is None:
        return [("b2b", case)]
    return [(s, dataclasses.replace(case, state=s)) for s in states]


def machine_block(lines):
    """The machine, as the first lines of the output: a fact a line, one Markdown paragraph."""
    return "Machine: " + ";\n".join(lines) + "."


def _label(case):
    """The case as the progress bar names it."""
    state = f", {case.state}" if case.inputs is not None else ""
    return (f"{case.kernel} {case.shape}, {case.threads} thread{'s' if case.threads != 1 else ''}"
            f"{state}")


def _main_job(case, rounds, min_time, flush=None, settle=SETTLE):
    """One window of a main-table case: its thread count set (fastbn's and torch's), measured in
    its state."""
    def job():
        _config.set_num_threads(case.threads)
        _torch_threads(case.threads)
        return measure(case, rounds, min_time, flush, settle)
    return job


def thread_scaling(cases, threads, rounds, min_time, windows=1, ratios=True, bar=None):
    """fastbn alone (see :func:`measure_alone`), in windows like the main table: its time on one
    thread against a warm copy, its speed-up at each other thread count, and the copy's on as
    many Python threads, each copying a part (the memory's ceiling at that moment); times alone
    without ``ratios``.  Each job is announced to ``bar`` (see :mod:`fastbn.bench._progress`).
    Empty without 1 and another count."""
    if len(threads) < 2 or 1 not in threads:
        return ""

    def job(case):
        return lambda: measure_alone(case, threads, rounds, _config.set_num_threads, min_time,
                                     warmup=0.2 if ratios else 0.02)   # --quick: a short warm-up

    def before(i, w):
        if bar is not None:
            bar.start("fastbn alone", w, windows, f"{cases[i].kernel} {cases[i].shape}")

    time.sleep(0.5)   # let the BLAS / OpenMP workers of the last contenders stop spinning
    results = in_windows({i: job(case) for i, case in enumerate(cases)}, windows, before)
    return alone_table(cases, [results[i] for i in range(len(cases))], threads,
                       _how(windows, rounds), ratios)


def alone_table(cases, results, threads, how, ratios=True):
    """The "fastbn alone" table of ``cases`` timed as ``results`` (:func:`measure_alone`, in the
    same order), under a sentence saying how it was made (``how``): with ``ratios``, fastbn's
    time over the warm copy's and each thread count's speed-up beside the copy's; without, the
    times alone."""
    others = [n for n in threads if n != 1]
    if ratios:
        head = ["1 thread ms", "warm copyto ms", "x warm copyto"]
        head += [h for n in others for h in (f"{n} threads vs 1", f"copyto: {n} threads vs 1")]
    else:
        head = ["1 thread ms"] + [f"{n} threads ms" for n in others] + ["warm copyto ms"]
        head += [f"copyto: {n} threads ms" for n in others]
    lines = ["| kernel | input | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for case, t in zip(cases, results):
        copy = t["copyto"]
        if ratios:
            cells = [_ms(t[1]), _ms(copy), "" if copy is None else f"{t[1] / copy:.2f}"]
            for m in others:
                cells += [_times(t[1], t[m]), _times(copy, t[("copyto", m)])]
        else:
            cells = [_ms(t[n]) for n in [1] + others] + [_ms(copy)]
            cells += [_ms(t[("copyto", m)]) for m in others]
        lines.append(f"| {case.kernel} | {case.shape} | " + " | ".join(cells) + " |")
    return ("fastbn alone: its thread counts, a copy of the same tensor, and that copy cut into "
            "as many parts as threads and run on as many Python threads (the memory's scaling at "
            f"that moment), interleaved with each other only ({how}).\n\n" + "\n".join(lines))


def _times(a, b):
    """a / b as "1.23x"; blank if either is missing."""
    return "" if a is None or b is None else f"{a / b:.2f}x"


def _how(windows, rounds, state_rounds=None):
    """How each figure was made, for the table headers (``state_rounds``: those of batch norm's
    producer and cold rows, when they differ)."""
    states = ("" if state_rounds in (None, rounds)
              else f" (batch norm's producer and cold rows: {state_rounds})")
    if windows == 1:
        return f"{rounds} rounds or more{states}, medians"
    return (f"the median of {windows} windows spread over the run, each the median of "
            f"{rounds} rounds or more{states}")


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _update_readme(path, table, threads, how_timed, torch_ok, reuse):
    """Put the table (and how it was made) between the bench markers of a Markdown file."""
    import platform
    with open(path) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no {START} ... {END} markers")
    cpu = platform.processor() or platform.machine()
    how = (f"`python -m fastbn.bench --threads {','.join(map(str, threads))}` on {cpu}, "
           f"isa {_config.get_isa()}, interleaved rounds: {how_timed}; "
           f"torch {'2.13 CPU' if torch_ok else 'not installed'}; freed memory "
           f"{'reused (glibc mallopt)' if reuse else 'not pinned (not glibc)'}.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    _atomic.write_text(path, f"{head}{START}\n{how}\n\n{table}\n{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
