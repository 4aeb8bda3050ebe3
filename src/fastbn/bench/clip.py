"""Benchmark cases for gradient clipping over a whole model's gradients.

The input is ResNet-50's real parameter list (161 float32 arrays, 25.6M values: every conv
weight, batch-norm weight and bias, and the fc layer), rather than a synthetic list of about 100
arrays and 17.6M values: a real model's mix of a few large arrays and many small ones is what
the per-array overhead of every contender meets.

Rows:
  * ``global_norm``: fastbn vs the NumPy way (``np.vdot`` per array, summed, square-rooted) and
    ``torch.nn.utils.get_total_norm`` (foreach).
  * ``clip_grad_norm``: a call that clips, every time: fastbn vs the NumPy way (the norm as above,
    then ``a *= c`` per array) and ``torch.nn.utils.clip_grad_norm_`` (foreach default).  Each
    contender owns its copy of the gradients and asks for ``max_norm = 0.9999 * (its last
    total)``, so every call scales (by about 0.9999: values never reach subnormals).
  * ``clip_grad_value``: fastbn vs ``np.clip(a, -c, c, out=a)`` per array and torch's
    ``clip_grad_value_``.

The "x copyto" column is fastbn's time over a roofline measured here, not a copy: for
``global_norm`` reading every array once (``np.max`` per array, the fastest NumPy single pass we
found, faster than ``np.sum`` and ``np.vdot``); for ``clip_grad_norm`` that read plus one in-place
scaling pass (``np.multiply(a, 1.0, out=a)`` per array: one read and one write of every value); for
``clip_grad_value`` the in-place pass alone. The thread-scaling table gives these rooflines no
two-thread figure: on two Python threads, looping over 161 arrays, they contend for the GIL between
NumPy calls and measure that rather than the memory (``tools/bandwidth.c`` measures these
patterns). BLAS (``np.vdot``) is limited to the benchmark's thread count with threadpoolctl when it
is installed.
"""
import math

import numpy as np

import fastbn
from fastbn.bench._harness import Case


def resnet50_shapes(width=1):
    """Parameter shapes of torchvision's resnet50 (width=1), or a narrower copy for --quick."""
    def w(c):
        return max(1, c // width)
    shapes = [(w(64), 3, 7, 7), (w(64),), (w(64),)]
    inp = w(64)
    for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        p = w(planes)
        for b in range(blocks):
            shapes += [(p, inp, 1, 1), (p,), (p,), (p, p, 3, 3), (p,), (p,),
                       (4 * p, p, 1, 1), (4 * p,), (4 * p,)]
            if b == 0:
                shapes += [(4 * p, inp, 1, 1), (4 * p,), (4 * p,)]
            inp = 4 * p
    shapes += [(1000, inp), (1000,)]
    return shapes


def _blas_limit():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits


def numpy_global_norm(grads):
    """The NumPy way: one BLAS dot per array."""
    return math.sqrt(sum(float(np.vdot(a, a)) for a in grads))


def numpy_clip_grad_norm(grads, max_norm):
    total = numpy_global_norm(grads)
    c = max_norm / (total + 1e-6)
    if c < 1.0:
        for a in grads:
            a *= c
    return total


def _limited(fn):
    """fn run with BLAS limited to fastbn's thread count (set by the runner per row)."""
    limits = _blas_limit()
    if limits is None:
        return fn

    def run():
        with limits(limits=fastbn.get_num_threads(), user_api="blas"):
            return fn()
    return run


def _shrinking(clip, grads, start):
    """A callable that clips ``grads`` on every call: max_norm = 0.9999 * the last total."""
    state = [start]

    def run():
        state[0] = float(clip(grads, state[0] * 0.9999))
    return run


def _read_all(grads):
    for a in grads:
        np.max(a)


def _scale_all(grads):
    for a in grads:
        np.multiply(a, 1.0, out=a)


def _make(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s, dtype=np.float32) * 1e-2 for s in shapes]


def cases(quick=False, torch=False):
    shapes = resnet50_shapes(8 if quick else 1)
    n = sum(math.prod(s) for s in shapes)
    name = f"resnet50 {'/8 ' if quick else ''}{len(shapes)} arrays {n / 1e6:.1f}M f32"
    base = _make(shapes)
    start = fastbn.global_norm(base)
    g_fb, g_np, g_roof = base, [a.copy() for a in base], [a.copy() for a in base]
    t_norm = t_clip = t_value = None
    if torch:
        import torch as th
        tg = [th.from_numpy(a.copy()) for a in base]
        params = []
        for a in base:
            prm = th.nn.Parameter(th.zeros(a.shape))
            prm.grad = th.from_numpy(a.copy())
            params.append(prm)

        def t_norm():
            return th.nn.utils.get_total_norm(tg)

        t_clip = _shrinking(lambda ps, mn: th.nn.utils.clip_grad_norm_(ps, mn), params, start)

        def t_value():
            th.nn.utils.clip_grad_value_(params, 1e-2)

    return [
        Case("global_norm", name, lambda: fastbn.global_norm(g_fb),
             _limited(lambda: numpy_global_norm(g_np)), reference_label="np.vdot per array",
             torch=t_norm, roofline=lambda: _read_all(g_roof),
             notes="roofline: np.max of every array (one read)"),
        Case("clip_grad_norm", name, _shrinking(fastbn.clip_grad_norm, g_fb, start),
             _limited(_shrinking(numpy_clip_grad_norm, g_np, start)),
             reference_label="np.vdot + a *= c", torch=t_clip,
             roofline=lambda: (_read_all(g_roof), _scale_all(g_roof)),
             notes="roofline: np.max of every array, then np.multiply(a, 1.0, out=a) of every array"),
        Case("clip_grad_value", name, lambda: fastbn.clip_grad_value(g_fb, 1e-2),
             lambda: [np.clip(a, -1e-2, 1e-2, out=a) for a in g_np],
             reference_label="np.clip per array", torch=t_value,
             roofline=lambda: _scale_all(g_roof),
             notes="roofline: np.multiply(a, 1.0, out=a) of every array (one read, one write)"),
    ]
