"""``python -m fastbn.bench``: fastbn against its baselines, one table.

Columns: fastbn's median time; the baseline (the plain-NumPy reference, or the NumPy idiom a user
writes today) and fastbn's speed-up over it; fastbn's time as a multiple of ``np.copyto`` of the
same tensor (the memory roofline: 1.0 would be a copy's speed); PyTorch CPU and fastbn's speed-up
over it, when torch is installed.  Each case area lives in its own module of this package.
"""
import argparse
import importlib
import sys
import time

from fastbn import _config
from fastbn.bench._harness import (MIN_TIME, WINDOWS, in_windows, markdown, measure,
                                   measure_alone, reuse_freed_memory, row)

AREAS = ["batchnorm", "clip", "init"]


def _torch_threads(n):
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastbn.bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small inputs, few rounds (a smoke run)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--rounds", type=int, default=None,
                   help="timing rounds per case in each window (default 5; --quick 3)")
    p.add_argument("--windows", type=int, default=None,
                   help=f"times the whole list of cases is timed (default {WINDOWS}; --quick 1)")
    p.add_argument("--only", default="", help="run only cases whose kernel contains this text")
    p.add_argument("--no-torch", action="store_true", help="leave out the PyTorch column")
    p.add_argument("--output", default=None, help="also write the Markdown table to this file")
    p.add_argument("--update-readme", default=None, metavar="README",
                   help="replace the table between the bench markers of this Markdown file")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    rounds = args.rounds or (3 if args.quick else 5)
    windows = args.windows or (1 if args.quick else WINDOWS)
    min_time = 0.05 if args.quick else MIN_TIME
    torch_ok = False
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            torch_ok = True
        except ImportError:
            pass
    reuse = reuse_freed_memory()
    print(f"fastbn benchmark report: isa={_config.get_isa()}, threads={threads}, "
          f"{windows} windows of {rounds} rounds or more, "
          f"torch={'yes' if torch_ok else 'not installed'}, "
          f"freed memory reused: {'yes' if reuse else 'no (not glibc)'}", file=sys.stderr)
    saved = _config.get_num_threads()
    try:
        cases = {(n, i): case for n in threads for i, case in enumerate(_cases(args, n, torch_ok))}
        results = in_windows({key: _main_job(case, rounds, min_time)
                              for key, case in cases.items()}, windows)
        rows = [row(cases[key], t) for key, t in results.items()]
        scaling = thread_scaling([c for (n, _), c in cases.items() if n == threads[0]], threads,
                                 rounds, min_time, windows)
    finally:
        _config.set_num_threads(saved)
    table = markdown(rows)
    if scaling:
        table += "\n\n" + scaling
    print(table)
    if args.output:
        with open(args.output, "w") as f:
            f.write(table + "\n")
    if args.update_readme:
        _update_readme(args.update_readme, table, threads, _how(windows, rounds), torch_ok, reuse)
    return 0


def _cases(args, n, torch_ok):
    """The cases of every area for n threads, the --only filter applied."""
    out = []
    for area in AREAS:
        module = importlib.import_module(f"fastbn.bench.{area}")
        for case in module.cases(quick=args.quick, torch=torch_ok):
            if not args.only or args.only in case.kernel:
                case.threads = n
                out.append(case)
    return out


def _main_job(case, rounds, min_time):
    """One window of a main-table case: its thread count set (fastbn's and torch's), measured."""
    def job():
        _config.set_num_threads(case.threads)
        _torch_threads(case.threads)
        t = measure(case, rounds, min_time)
        print("  " + " | ".join(row(case, t)), file=sys.stderr, flush=True)
        return t
    return job


def thread_scaling(cases, threads, rounds, min_time, windows=1):
    """fastbn alone (see :func:`measure_alone`), in windows like the main table: its time on one
    thread against a warm copy, its speed-up at each other thread count, and the copy's on as
    many Python threads, each copying a part (the memory's ceiling at that moment).  Empty
    without 1 and another count."""
    if len(threads) < 2 or 1 not in threads:
        return ""
    others = [n for n in threads if n != 1]

    def job(case):
        def run():
            t = measure_alone(case, threads, rounds, _config.set_num_threads, min_time)
            print(f"  alone | {case.kernel} | {case.shape} | "
                  + " | ".join(_scaling_cells(t, others)), file=sys.stderr, flush=True)
            return t
        return run

    time.sleep(0.5)   # let the BLAS / OpenMP workers of the last contenders stop spinning
    results = in_windows({i: job(case) for i, case in enumerate(cases)}, windows)
    lines = ["| kernel | input | 1 thread ms | warm copyto ms | x warm copyto | "
             + " | ".join(f"{n} threads vs 1 | copyto: {n} threads vs 1" for n in others) + " |",
             "|---|---|---|---|---|" + "---|---|" * len(others)]
    for i, case in enumerate(cases):
        t = results[i]
        copy = t["copyto"]
        cells = [f"{t[1] * 1e3:.3f}", "" if copy is None else f"{copy * 1e3:.3f}",
                 "" if copy is None else f"{t[1] / copy:.2f}"]
        cells += _scaling_cells(t, others)
        lines.append(f"| {case.kernel} | {case.shape} | " + " | ".join(cells) + " |")
    return ("fastbn alone: its thread counts, a copy of the same tensor, and that copy cut into "
            "as many parts as threads and run on as many Python threads (the memory's scaling at "
            "that moment), interleaved with each other only "
            f"({_how(windows, rounds)}).\n\n" + "\n".join(lines))


def _scaling_cells(t, others):
    """fastbn's speed-up at each other thread count, each beside the roofline's (blank without)."""
    cells = []
    for m in others:
        copy, copy_m = t["copyto"], t[("copyto", m)]
        cells += [f"{t[1] / t[m]:.2f}x", "" if copy_m is None else f"{copy / copy_m:.2f}x"]
    return cells


def _how(windows, rounds):
    """How each figure was made, for the table headers."""
    if windows == 1:
        return f"{rounds} rounds or more, medians"
    return (f"the median of {windows} windows spread over the run, each the median of "
            f"{rounds} rounds or more")


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
    with open(path, "w") as f:
        f.write(f"{head}{START}\n{how}\n\n{table}\n{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
