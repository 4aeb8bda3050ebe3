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
from fastbn.bench._harness import MIN_TIME, markdown, measure, measure_alone, row

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
    p.add_argument("--rounds", type=int, default=None, help="timing rounds per case")
    p.add_argument("--only", default="", help="run only cases whose kernel contains this text")
    p.add_argument("--no-torch", action="store_true", help="leave out the PyTorch column")
    p.add_argument("--output", default=None, help="also write the Markdown table to this file")
    p.add_argument("--update-readme", default=None, metavar="README",
                   help="replace the table between the bench markers of this Markdown file")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    rounds = args.rounds or (3 if args.quick else 15)
    min_time = 0.05 if args.quick else MIN_TIME
    torch_ok = False
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            torch_ok = True
        except ImportError:
            pass
    print(f"fastbn benchmark report: isa={_config.get_isa()}, threads={threads}, rounds={rounds}, "
          f"torch={'yes' if torch_ok else 'not installed'}", file=sys.stderr)
    rows, scaling_cases = [], []
    saved = _config.get_num_threads()
    try:
        for n in threads:
            _config.set_num_threads(n)
            _torch_threads(n)
            for area in AREAS:
                module = importlib.import_module(f"fastbn.bench.{area}")
                for case in module.cases(quick=args.quick, torch=torch_ok):
                    if args.only and args.only not in case.kernel:
                        continue
                    case.threads = n
                    t = measure(case, rounds, min_time)
                    rows.append(row(case, t))
                    print("  " + " | ".join(rows[-1]), file=sys.stderr, flush=True)
                    if n == threads[0]:
                        scaling_cases.append(case)
        scaling = thread_scaling(scaling_cases, threads, rounds, min_time)
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
        _update_readme(args.update_readme, table, threads, rounds, torch_ok)
    return 0


def thread_scaling(cases, threads, rounds, min_time):
    """fastbn alone (see :func:`measure_alone`): its time on one thread against a warm copy, and
    its speed-up at each other thread count (empty without 1 and another count)."""
    if len(threads) < 2 or 1 not in threads:
        return ""
    others = [n for n in threads if n != 1]
    time.sleep(0.5)   # let the BLAS / OpenMP workers of the last contenders stop spinning
    lines = ["| kernel | input | 1 thread ms | warm copyto ms | x warm copyto | "
             + " | ".join(f"{n} threads vs 1" for n in others) + " |",
             "|---|---|---|---|---|" + "---|" * len(others)]
    for case in cases:
        t = measure_alone(case, threads, rounds, _config.set_num_threads, min_time)
        copy = t["copyto"]
        cells = [f"{t[1] * 1e3:.3f}", "" if copy is None else f"{copy * 1e3:.3f}",
                 "" if copy is None else f"{t[1] / copy:.2f}"]
        cells += [f"{t[1] / t[m]:.2f}x" for m in others]
        lines.append(f"| {case.kernel} | {case.shape} | " + " | ".join(cells) + " |")
        print("  alone " + lines[-1], file=sys.stderr, flush=True)
    return ("fastbn alone: its thread counts and a copy of the same tensor interleaved with each "
            f"other only ({rounds} rounds or more, medians).\n\n" + "\n".join(lines))


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _update_readme(path, table, threads, rounds, torch_ok):
    """Put the table (and how it was made) between the bench markers of a Markdown file."""
    import platform
    with open(path) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no {START} ... {END} markers")
    cpu = platform.processor() or platform.machine()
    how = (f"`python -m fastbn.bench --threads {','.join(map(str, threads))}` on {cpu}, "
           f"isa {_config.get_isa()}, {rounds} or more interleaved rounds, medians; "
           f"torch {'2.13 CPU' if torch_ok else 'not installed'}.")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(f"{head}{START}\n{how}\n\n{table}\n{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
