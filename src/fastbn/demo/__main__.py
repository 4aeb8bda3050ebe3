"""``python -m fastbn.demo [--out DIR] [--quick] [--data-parallel]``: train every experiment, write
figures and table; with ``--data-parallel`` (under ``mpiexec -n P``) the data-parallel comparison
of :mod:`fastbn.demo.data_parallel` instead."""
import argparse
import platform
import sys
import time

import fastbn
from fastbn import _config


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m fastbn.demo",
        description="Train small NumPy MLPs on the digits data set with fastbn's initializers, "
                    "batch norm and gradient clipping; write figures and a Markdown table.")
    p.add_argument("--out", default="demo-output",
                   help="output folder for accuracy.png, activations.png, results.md "
                        "(default: demo-output)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: a few steps per experiment (seconds, numbers meaningless)")
    p.add_argument("--data-parallel", action="store_true",
                   help="under mpiexec -n P: the batch-norm networks trained data-parallel with "
                        "SyncBatchNorm, compared with one process on the global batch; writes "
                        "data-parallel.png and data-parallel.json (needs mpi4py: "
                        "pip install 'fastbn[mpi]')")
    args = p.parse_args(argv)
    if args.data_parallel:
        try:
            from fastbn.demo import data_parallel
            from fastbn.demo import report
            from fastbn.distributed import _mpi
            _mpi()
            report._pyplot()
        except ImportError as e:
            print(f"python -m fastbn.demo: {e}", file=sys.stderr)
            return 2
        return data_parallel.main(args.out, quick=args.quick,
                                  log=lambda text: print(text, flush=True))

    try:
        from fastbn import init  # noqa: F401  (the weight initializers, fastbn.init)
        from fastbn.demo import experiments as ex
        from fastbn.demo import report
        data = ex.load_data()
        report._pyplot()
    except ImportError as e:
        print(f"python -m fastbn.demo: {e}", file=sys.stderr)
        return 2

    def log(text):
        print(text, flush=True)

    start = time.perf_counter()
    runs = ex.experiments()
    steps = 12 if args.quick else None
    eval_every = 4 if args.quick else 10
    log(f"fastbn {fastbn.__version__} demo: {len(runs)} training runs on digits "
        f"({len(data.y_train)} train / {len(data.y_test)} test), isa={_config.get_isa()}, "
        f"threads={fastbn.get_num_threads()}{', QUICK' if args.quick else ''}")
    results = []
    for k, exp in enumerate(runs, 1):
        n = exp.steps if steps is None else steps
        log(f"[{k:2d}/{len(runs)}] {exp.name}: {exp.activation}, {exp.depth} x {exp.width}, "
            f"{exp.label}, lr {exp.lr:g}, {n} steps")
        r = ex.train(exp, data, steps=steps, eval_every=eval_every, log=log)
        results.append(r)
        log(f"        test acc {r.final_accuracy:.3f} (best {r.best_accuracy:.3f}), "
            f"{ex.TARGET_ACCURACY:.0%} at step {report._fmt_steps(r.steps_to_target)}, "
            f"diverged: {'yes' if r.diverged else 'no'}, {r.seconds:.1f} s")
    log("activation std at initialization ...")
    stds = ex.activation_std(data, width=64 if args.quick else 256)
    elapsed = time.perf_counter() - start
    header = (f"Measured by `python -m fastbn.demo{' --quick' if args.quick else ''}` in "
              f"{elapsed:.0f} s (fastbn {fastbn.__version__}, isa {_config.get_isa()}, "
              f"{fastbn.get_num_threads()} threads, Python {platform.python_version()}).  "
              f"Data: scikit-learn digits, {len(data.y_train)} training / {len(data.y_test)} "
              f"test images.  Training: mini-batches of {ex.BATCH_SIZE}, SGD with momentum "
              f"{ex.MOMENTUM:g}, gradients clipped to global norm {ex.MAX_NORM:g} by "
              f"`fastbn.clip_grad_norm`, seed {ex.SEED}.")
    paths = report.write(args.out, results, stds, header=header)
    log(f"done in {elapsed:.1f} s; wrote " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
