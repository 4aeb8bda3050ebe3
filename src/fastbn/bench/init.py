"""Benchmark cases for the weight initializers: one row per initializer family on a (4096, 4096)
float32 weight (16.7M values), against the NumPy idiom a user writes today.

Baselines: ``rng.uniform(-a, a, n).astype(np.float32)`` for the uniform family,
``rng.standard_normal(n, dtype=np.float32) * std`` for the normal family, and
``scipy.stats.truncnorm.rvs`` for the truncated normal.  truncnorm.rvs draws all n values, as
fastbn does, in 16 calls of n/16 (:func:`truncnorm_baseline`; the pytest-benchmark suite times
the same callable), which bounds the memory its float64 temporaries take.  fastbn allocates its
result like the baselines do; the "(out=)" rows fill a preallocated array, which is the kernel
alone.
"""
import math

import numpy as np

from fastbn import init
from fastbn.bench._harness import Case

SHAPE, QUICK_SHAPE = (4096, 4096), (256, 256)
# orthogonal is a QR, O(n^3): a matrix of its own (a small one with --quick)
ORTHO_SHAPE, QUICK_ORTHO_SHAPE = (1024, 1024), (128, 128)
TRUNCNORM_PARTS = 16


def truncnorm_baseline(n, std, rng, parts=TRUNCNORM_PARTS):
    """A callable drawing ``n`` values of N(0, std) cut at 2 std with ``scipy.stats.truncnorm``,
    in ``parts`` calls of about n / parts values; None without scipy."""
    try:
        from scipy import stats
    except ImportError:   # scipy is optional (the "bench" extra)
        return None
    sizes = [n // parts + (i < n % parts) for i in range(parts)]

    def run():
        for size in sizes:
            stats.truncnorm.rvs(-2.0, 2.0, scale=std, size=size, random_state=rng)
    return run


def _torch_fn(name, shape, **kw):
    import torch
    t = torch.empty(shape)
    fn = getattr(torch.nn.init, name)
    return lambda: fn(t, **kw)


def cases(quick=False, torch=False):
    shape = QUICK_SHAPE if quick else SHAPE
    ortho = QUICK_ORTHO_SHAPE if quick else ORTHO_SHAPE
    n = math.prod(shape)
    fan_in, fan_out = shape
    rng = np.random.default_rng(0)
    out = np.empty(shape, np.float32)
    label = "(" + ",".join(map(str, shape)) + ") f32"
    glorot_a = math.sqrt(6.0 / (fan_in + fan_out))
    he_std = math.sqrt(2.0 / fan_in)

    def uniform_baseline(a):
        return lambda: rng.uniform(-a, a, n).astype(np.float32)

    def normal_baseline(std):
        return lambda: rng.standard_normal(n, dtype=np.float32) * np.float32(std)

    parts = 1 if quick else TRUNCNORM_PARTS

    def truncnorm(std):
        return truncnorm_baseline(n, std, rng, parts)

    truncnorm_label = ("scipy not installed" if truncnorm(1.0) is None else "scipy truncnorm.rvs"
                       + ("" if quick else f" (n/{parts} x{parts})"))
    # (kernel, fastbn call, baseline, baseline label, torch function name and kwargs)
    rows = [
        ("init glorot_uniform", lambda: init.glorot_uniform(shape, rng=rng),
         uniform_baseline(glorot_a), "np uniform", ("xavier_uniform_", {})),
        ("init glorot_uniform (out=)", lambda: init.glorot_uniform(shape, rng=rng, out=out),
         uniform_baseline(glorot_a), "np uniform", ("xavier_uniform_", {})),
        ("init he_uniform", lambda: init.he_uniform(shape, rng=rng),
         uniform_baseline(math.sqrt(3) * he_std), "np uniform",
         ("kaiming_uniform_", {"nonlinearity": "relu"})),
        ("init lecun_uniform", lambda: init.lecun_uniform(shape, rng=rng),
         uniform_baseline(math.sqrt(3.0 / fan_in)), "np uniform", None),
        ("init glorot_normal", lambda: init.glorot_normal(shape, rng=rng),
         normal_baseline(math.sqrt(2.0 / (fan_in + fan_out))), "np standard_normal",
         ("xavier_normal_", {})),
        ("init he_normal", lambda: init.he_normal(shape, rng=rng), normal_baseline(he_std),
         "np standard_normal", ("kaiming_normal_", {"nonlinearity": "relu"})),
        ("init he_normal (out=)", lambda: init.he_normal(shape, rng=rng, out=out),
         normal_baseline(he_std), "np standard_normal",
         ("kaiming_normal_", {"nonlinearity": "relu"})),
        ("init lecun_normal", lambda: init.lecun_normal(shape, rng=rng),
         normal_baseline(math.sqrt(1.0 / fan_in)), "np standard_normal", None),
        ("init truncated_normal", lambda: init.truncated_normal(shape, 0.0, 0.02, rng=rng),
         truncnorm(0.02), truncnorm_label,
         ("trunc_normal_", {"std": 0.02, "a": -0.04, "b": 0.04})),
        ("init variance_scaling", lambda: init.variance_scaling(shape, rng=rng),
         truncnorm(math.sqrt(1.0 / fan_in) / init.TRUNCATION_STD), truncnorm_label,
         None),
        ("init orthogonal", lambda: init.orthogonal(ortho, rng=rng),
         lambda: np.linalg.qr(rng.standard_normal(ortho))[0].astype(np.float32),
         "np qr(standard_normal)", ("orthogonal_", {})),
    ]
    result = []
    for kernel, fast, base, base_label, torch_spec in rows:
        own = kernel == "init orthogonal"   # a matrix of its own shape, no copy to compare with
        t = None
        if torch and torch_spec is not None:
            t = _torch_fn(torch_spec[0], ortho if own else shape, **torch_spec[1])
        in_label = f"({ortho[0]},{ortho[1]}) f32" if own else label
        notes = (f"baseline: {parts} calls on n/{parts} values"
                 if "truncnorm" in base_label and not quick else "")
        result.append(Case(kernel, in_label, fast, base, base_label, torch=t,
                           copy_of=None if own else out, notes=notes))
    return result
