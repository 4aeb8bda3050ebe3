"""Benchmark cases for small calls: a fully-connected layer's batch norm and a small network's
layer, RMS and group norm (the inputs of the guide's "Small calls are cheap"), where a call's
fixed cost (checking the arguments, choosing a path, waking threads) rather than memory decides
its time.

The rows are named after the functions they call.  Each call writes into an output allocated
once (``out=``), as a training loop that reuses its buffers does; torch's contenders allocate
theirs, as torch's functional calls do.  The rows keep the b2b protocol of the other areas: each
timed call follows a call of its own.  Their roofline is ``np.copyto`` of the input, a NumPy call
that touches as many bytes (with no two-thread figure: two Python threads would time waking them).
"""
import numpy as np

import fastbn
from fastbn import reference
from fastbn.bench import batchnorm, norms
from fastbn.bench._harness import Case, copy_timer

# (kind, shape, options): batch norm over (N, C); the norms as in fastbn.bench.norms
SHAPES = [
    ("batch", (32, 64), {}),
    ("layer", (32, 64), {}),
    ("rms", (32, 64), {}),
    ("group", (4, 32, 8, 8), {"num_groups": 8, "axis": 1}),
]


def _batch_norm_cases(x, dy, name, torch, copy):
    C = x.shape[1]
    g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y = np.empty_like(x)
    _, mean, invstd = fastbn.batch_norm_train(x, g, b)
    t_train = t_infer = t_back = None
    if torch:
        t_train, t_infer, t_back = batchnorm._torch_fns(x, dy, 1, C, mean, invstd)
    return [
        Case("batch_norm_train", name,
             lambda: fastbn.batch_norm_train(x, g, b, running_mean=rm, running_var=rv, out=y),
             lambda: reference.batch_norm_train(x, g, b, running_mean=rm, running_var=rv),
             torch=t_train, roofline=copy),
        Case("batch_norm_infer", name, lambda: fastbn.batch_norm_infer(x, rm, rv, g, b, out=y),
             lambda: reference.batch_norm_infer(x, rm, rv, g, b), torch=t_infer, roofline=copy),
        Case("batch_norm_backward", name,
             lambda: fastbn.batch_norm_backward(dy, x, mean, invstd, g, out=y),
             lambda: reference.batch_norm_backward(dy, x, mean, invstd, g), torch=t_back,
             roofline=copy),
    ]


def cases(quick=False, torch=False):
    """The small calls' cases (the same inputs with ``quick``: they are small already)."""
    out = []
    for kind, shape, opts in SHAPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=np.float32) * 2 + 3
        dy = rng.standard_normal(shape, dtype=np.float32)
        name = "(" + ",".join(map(str, shape)) + ")"
        name += f" G={opts['num_groups']}" if "num_groups" in opts else ""
        name += " f32, out="
        copy = copy_timer(x)
        if kind == "batch":
            out += _batch_norm_cases(x, dy, name, torch, copy)
            continue
        fwd, bwd, ref_fwd, ref_bwd = norms._fastbn_fns(kind, x, dy, opts, np.empty_like(x))
        t_fwd = t_bwd = None
        if torch:
            t_fwd, t_bwd = norms._torch_fns(kind, x, dy, opts)
        out += [Case(f"{kind}_norm", name, fwd, ref_fwd, torch=t_fwd, roofline=copy),
                Case(f"{kind}_norm_backward", name, bwd, ref_bwd, torch=t_bwd, roofline=copy)]
    return out
