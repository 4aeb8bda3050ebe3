"""The oracle harness of the normalization family (layer, RMS, group, instance norm).

One table, NORMS, describes each norm the same way -- its fastbn and reference functions, how to
call them, the shapes of its statistics and parameters -- so that every test of
tests/test_norm_oracle.py runs over all of them (bottleneck's unit_maker style).  The oracle is
:mod:`fastbn.reference` on the float64 cast of the inputs.  float32 outputs are checked against
the per-element bound of csrc/norm.h with u = 2^-24:

    forward:  |y - y*|   <= 4u |(x - mean) s| + 2u |c| + 4u^2 |mean s|
    backward: |dx - dx*| <= 8u (|dy g| + |(x - mean) s| + |c|) + 4u^2 |mean s|

with the exact coefficients computed here in float64 (plus 1e-12 of the same terms for the
float64 rounding of the kernel's own statistics).
"""
import math
from dataclasses import dataclass, field

import numpy as np

import fastbn
from fastbn import reference


@dataclass
class Norm:
    name: str
    centered: bool            # mean subtracted (all but RMS)
    has_beta: bool
    grouped: bool             # group/instance: num_groups / channel axis; else normalized axes
    cases: list = field(default_factory=list)   # (shape, kwargs)

    def fb(self, backward=False):
        return getattr(fastbn, self.name + ("_backward" if backward else ""))

    def ref(self, backward=False):
        return getattr(reference, self.name + ("_backward" if backward else ""))

    def param_shape(self, shape, kw):
        if self.grouped:
            return (shape[kw.get("axis", 1)],)
        axes = kw.get("axis", -1)
        axes = sorted(a % len(shape) for a in (axes if isinstance(axes, tuple) else (axes,)))
        return tuple(shape[a] for a in axes)

    def args(self, kw):
        """Positional arguments after x (num_groups) and the keywords without it."""
        kw = dict(kw)
        return ([kw.pop("num_groups")] if "num_groups" in kw else []), kw

    def forward(self, fn, x, gamma, beta, kw, **extra):
        pos, kw = self.args(kw)
        if self.has_beta:
            return fn(x, *pos, gamma, beta, **kw, **extra)
        return fn(x, *pos, gamma, **kw, **extra)

    def backward(self, fn, dy, x, stats, gamma, kw, **extra):
        pos, kw = self.args(kw)
        return fn(dy, x, *stats, *pos, gamma, **kw, **extra)

    def groups(self, x, kw):
        """x (float64) as (groups, values of the group) and the per-element channel index."""
        shape = x.shape
        if not self.grouped:
            axes = kw.get("axis", -1)
            axes = sorted(a % x.ndim for a in (axes if isinstance(axes, tuple) else (axes,)))
            rest = [i for i in range(x.ndim) if i not in axes]
            xt = np.transpose(x, rest + axes)
            D = math.prod(shape[a] for a in axes)
            return xt.reshape(-1, D), np.broadcast_to(np.arange(D), (xt.size // D, D)), rest + axes
        axis = kw.get("axis", 1) % x.ndim
        C = shape[axis]
        G = kw.get("num_groups", C)
        mid, inner = math.prod(shape[1:axis]), math.prod(shape[axis + 1:])
        x5 = x.reshape(shape[0], mid, G, C // G, inner)
        ch = np.broadcast_to(np.arange(C).reshape(1, 1, G, C // G, 1), x5.shape)
        t = (0, 2, 1, 3, 4)
        return (np.transpose(x5, t).reshape(shape[0] * G, -1),
                np.transpose(ch, t).reshape(shape[0] * G, -1), None)


# Layouts of the core (csrc/norm_body.h) the cases cover: whole-channel runs (inner >= 32: NCHW
# group/instance norm, (2, 3, 4, 40)), per-element coefficients on one run per group (layer and RMS
# norm, short NCHW), and the columns layout (per-element, >= 16 runs per group: channels-last,
# (2, 40, 40, 4) with more than 1024 rows, (2, 20, 4, 3) with inner 3).
NORMS = [
    Norm("layer_norm", True, True, False, [
        ((6, 10), {}), ((4, 3, 40), {}), ((3, 4, 5), {"axis": (1, 2)}), ((5, 6, 7), {"axis": 0}),
        ((3, 4100), {}), ((2, 3, 4, 5), {"axis": (0, 2)}), ((1, 1), {}), ((7, 1), {})]),
    Norm("rms_norm", False, False, False, [
        ((6, 10), {}), ((4, 3, 40), {}), ((3, 4, 5), {"axis": (-2, -1)}), ((5, 6, 7), {"axis": 1}),
        ((3, 4100), {})]),
    Norm("group_norm", True, True, True, [
        ((4, 6, 5, 5), {"num_groups": 3}), ((2, 4, 40), {"num_groups": 2}),
        ((3, 5, 5, 6), {"num_groups": 2, "axis": -1}), ((2, 3, 4, 40), {"num_groups": 2, "axis": 2}),
        ((2, 8, 64), {"num_groups": 1}), ((3, 6), {"num_groups": 3}),
        ((2, 4, 70, 70), {"num_groups": 2}), ((2, 40, 40, 4), {"num_groups": 2, "axis": -1}),
        ((2, 20, 4, 3), {"num_groups": 2, "axis": 2})]),
    Norm("instance_norm", True, True, True, [
        ((2, 3, 40), {}), ((2, 3, 4, 5), {}), ((2, 5, 5, 3), {"axis": -1}), ((3, 2, 1), {}),
        ((2, 1100, 3), {"axis": -1})]),
]
NORM_IDS = [n.name for n in NORMS]
CASES = [(n, shape, kw) for n in NORMS for shape, kw in n.cases]
CASE_IDS = [f"{n.name}-{'x'.join(map(str, s))}-{kw}" for n, s, kw in CASES]


def make(norm, shape, kw, dtype, rng, *, loc=3.0, scale=2.0, affine=True):
    x = (rng.standard_normal(shape) * scale + loc).astype(dtype)
    ps = norm.param_shape(shape, kw)
    gamma = rng.uniform(0.5, 2.0, ps).astype(dtype) if affine else None
    beta = rng.uniform(-1.0, 1.0, ps).astype(dtype) if affine and norm.has_beta else None
    return x, gamma, beta


def exact_forward_terms(norm, x, gamma, beta, kw, eps):
    """(y*, bound terms) in float64 per element, laid out as x: y* = (x - m) s + c."""
    x64 = x.astype(np.float64)
    xg, ch, _ = norm.groups(x64, kw)
    if norm.centered:
        m = xg.mean(axis=1, keepdims=True)
        r = 1.0 / np.sqrt(((xg - m) ** 2).mean(axis=1, keepdims=True) + eps)
    else:
        m = np.zeros((xg.shape[0], 1))
        r = 1.0 / np.sqrt((xg * xg).mean(axis=1, keepdims=True) + eps)
    g = np.ones(1) if gamma is None else gamma.astype(np.float64).reshape(-1)
    b = np.zeros(1) if beta is None else beta.astype(np.float64).reshape(-1)
    s = r * (g[ch] if gamma is not None else 1.0)
    c = b[ch] if beta is not None else np.zeros_like(xg)
    return xg, m, s, c, r, ch


def check_forward_bound(norm, x, y, gamma, beta, kw, eps):
    """Every float32 y within the documented bound of its exact value."""
    xg, m, s, c, _, _ = exact_forward_terms(norm, x, gamma, beta, kw, eps)
    yg = norm.groups(y.astype(np.float64), kw)[0]
    u = 2.0 ** -24 if x.dtype == np.float32 else 2.0 ** -53
    a, cm, ms = np.abs((xg - m) * s), np.abs(c), np.abs(m * s)
    bound = 4 * u * a + 2 * u * cm + 4 * u * u * ms + 1e-12 * (a + cm + ms)
    err = np.abs(yg - ((xg - m) * s + c))
    assert np.all(err <= bound), f"max excess {np.max(err - bound)} at {np.argmax(err - bound)}"


def check_backward_bound(norm, dy, x, dx, gamma, kw, eps, stats=None):
    """Every float32 dx within the documented bound of its exact value at the statistics the
    kernel was given, ``stats`` (mean and invstd, or invrms; None: x's exact ones).  float32
    statistics, as the forward returns them, are x's rounded once: that moves the exact dx itself
    by about u |mean s|, which is the statistics' error, not the backward's."""
    xg, m, _, _, r, ch = exact_forward_terms(norm, x, gamma, None, kw, eps)
    if stats is not None:
        r = np.asarray(stats[-1], np.float64).reshape(-1, 1)
        if norm.centered:
            m = np.asarray(stats[0], np.float64).reshape(-1, 1)
    dyg = norm.groups(dy.astype(np.float64), kw)[0]
    gm = np.ones_like(xg) if gamma is None else gamma.astype(np.float64).reshape(-1)[ch]
    n = xg.shape[1]
    w = dyg * gm
    A = w.sum(axis=1, keepdims=True)
    B = (w * (xg - m)).sum(axis=1, keepdims=True)
    s = -r ** 3 * B / n
    c = -r * A / n if norm.centered else np.zeros_like(A)
    g = r * gm
    exact = dyg * g + ((xg - m) * s + c)
    dxg = norm.groups(dx.astype(np.float64), kw)[0]
    u = 2.0 ** -24 if x.dtype == np.float32 else 2.0 ** -53
    t1, t2, t3, ms = np.abs(dyg * g), np.abs((xg - m) * s), np.abs(c) + 0 * xg, np.abs(m * s)
    bound = 8 * u * (t1 + t2 + t3) + 4 * u * u * ms + 1e-12 * (t1 + t2 + t3 + ms)
    err = np.abs(dxg - exact)
    assert np.all(err <= bound), f"max excess {np.max(err - bound)}"
