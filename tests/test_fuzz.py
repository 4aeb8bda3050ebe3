"""Property-based tests (hypothesis): every public function against :mod:`fastbn.reference`.

One generic test, ``test_fuzz``, parametrized over the public functions (bottleneck's style):
each function has a *case maker* that draws a complete call -- shapes with 0 and 1 along any
axis, every axis, any strides (C, Fortran, permuted, negative, strided, zero-stride broadcast
views, unaligned float views at odd byte offsets of a uint8 buffer), float32/float64 in both byte
orders, ``out=`` absent / fresh (any layout) / aliased exactly / partially overlapping, NaN,
+-inf, subnormals, values at the dtype's maximum, tiny and huge ``eps`` -- and a checker.  Each
drawn call must either

* succeed and match the reference within the documented bound (below), with every input left
  unchanged byte for byte (only ``out``, an in-place argument or a running buffer may change), or
* raise ValueError or TypeError whose message starts with the name of one of the function's
  arguments (``x: ...``, ``grads[2]: ...``), leaving *every* buffer unchanged byte for byte
  (``out`` and the running buffers included).

What matching means
-------------------
Batch norm (``tests/bn_helpers.py``): float32 elementwise outputs within the documented
per-element bound (``forward_bound``/``backward_bound``), per-channel float32 results within one
ulp; float64 within 1e-12 of the channel's scale.  Both also allow the float64 accumulation
error of the sums (``1e-12 * sum |terms|``), which the reference has as well, and an absolute
error of 4096 times the smallest normal number (gradual underflow rounds absolutely, not
relatively, and later factors scale that).  Non-finite values
are compared by position: the output is NaN exactly where the float64 reference is NaN, +-inf
where it is +-inf (or where the exact value overflows the dtype).  Channels whose inputs are
all finite but whose float64 reference statistics overflow (float64 data beyond ~1e154, where
the reference's own ``(x - mean)**2`` is inf) are not compared: the reference cannot judge them; in general, positions where the float64 reference and the same
reference evaluated in ``np.longdouble`` disagree on NaN/finiteness (the float64 reference
overflowed inside) are not judged.  The bugs the fuzzing found (float32 intermediate overflow,
the variance far from zero, the bounds' underflow term) are fixed; each example is pinned by a
plain test at the end of this file, and nothing is skipped or loosened for them here.
Running statistics: unchanged for channels whose batch statistics are not finite (with a
RuntimeWarning), else within a few ulps of the reference's update.
Clipping (``tests/test_clip.py``): norms within 1e-12 relative (NaN if any NaN, inf if any inf);
scaled and clamped values bit for bit equal to the documented formula
``T(float64(x) * float64(T(coef)))`` with ``coef`` from the returned norm.
Initializers: no reference values (another generator); the same seed gives the same bits with
and without ``out`` (any layout, either byte order), values lie in the documented range, and a
Generator is advanced only when the call succeeds.

Running it
----------
* ``python -m pytest tests/test_fuzz.py`` -- the "ci" profile (the default, and what ``.ci/run``
  runs): derandomized (fixed examples, reproducible), a fixed number of examples per function,
  about two minutes in all on a 2-core machine.
* ``FASTBN_FUZZ=long python -m pytest tests/test_fuzz.py`` -- the "long" profile: random seeds,
  ``FASTBN_FUZZ_EXAMPLES`` examples per function (default 10000, about an hour on a 2-core
  machine); a failure prints the reproducing ``@reproduce_failure`` blob.
* ``FASTBN_FUZZ=dev`` -- a quick random run of 30 examples per function while editing.
"""
import inspect
import math
import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

import fastbn
import fastbn.init
from bn_helpers import backward_bound, forward_bound, infer_bound
from fastbn import reference
from strategies import FLOATS, Stores, place, shapes, unaligned_copy, values

# ---- profiles -------------------------------------------------------------------------------

_COMMON = dict(deadline=None, database=None, print_blob=True,
               phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("ci", derandomize=True, max_examples=int(os.environ.get(
    "FASTBN_FUZZ_EXAMPLES", "300")), **_COMMON)
settings.register_profile("long", derandomize=False, max_examples=int(os.environ.get(
    "FASTBN_FUZZ_EXAMPLES", "10000")), **_COMMON)
settings.register_profile("dev", derandomize=False, max_examples=int(os.environ.get(
    "FASTBN_FUZZ_EXAMPLES", "30")), **_COMMON)
PROFILE = os.environ.get("FASTBN_FUZZ", "ci")
FUZZ = settings.get_profile(PROFILE)

U = {np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float64): 2.0 ** -53}
TINY = {d: float(np.finfo(d).smallest_subnormal) for d in U}   # underflow: absolute error
# eps: tiny and huge ones, and (one draw in six) invalid ones that must be refused naming eps
EPS = [1e-5] * 8 + [5e-324, 1e-300, 1e-12, 1.0, 1e10, 1e300, math.inf, 0.0, -1.0, math.nan]
ERRORS = (ValueError, TypeError)


def draw_dtype(data, dtypes=FLOATS):
    return data.draw(st.sampled_from(dtypes), label="dtype")


def is_bfloat16(dtype):
    return np.dtype(dtype).name == "bfloat16"


def swappable(dtype):
    """Whether ``dtype`` has a byte-swapped form (ml_dtypes' bfloat16 has none)."""
    return not is_bfloat16(dtype)


def any_values(data, name, shape, dtype, **kw):
    """strategies.values for any float dtype: bfloat16 (no np.finfo, no hypothesis floats) as
    float32 values rounded to it (float32's extremes become +-inf)."""
    if is_bfloat16(dtype):
        with np.errstate(over="ignore"):
            return values(data, name, shape, np.float32, **kw).astype(dtype)
    return values(data, name, shape, dtype, **kw)


def cast(a64, dtype):
    """float64 values rounded once to ``dtype`` (to nearest, ties to even; beyond the range:
    +-inf).  NumPy (float16) and ml_dtypes (bfloat16) round float64 directly, not through
    float32."""
    with np.errstate(over="ignore"):
        return np.asarray(a64, dtype=np.float64).astype(dtype)


def f64(a):
    return None if a is None else np.array(a, dtype=np.float64)


def ld(a):
    return None if a is None else np.array(a, dtype=np.longdouble)


def unjudged(r64, rld):
    """Where the float64 reference overflowed inside (its own (x - mean)**2, n * dy, ...): the
    same formulas in np.longdouble (x86-64: 15-bit exponent) disagree on NaN or finiteness; or
    underflowed inside: 0 where np.longdouble gives a normal float64 (batch norm's dx as
    invstd / n * (...) with invstd 5e-324 and gamma 1.8e308: 0 against 1.1e-16).
    The float64 reference cannot judge fastbn there."""
    r64, rld = np.asarray(r64, np.float64), np.asarray(rld).astype(np.float64)
    big = np.abs(np.asarray(rld, np.longdouble)) > np.finfo(np.float64).max
    lost = (r64 == 0) & (np.abs(rld) >= np.finfo(np.float64).tiny)
    return (np.isfinite(r64) != np.isfinite(rld)) | (np.isnan(r64) != np.isnan(rld)) | big | lost


# ---- comparison -----------------------------------------------------------------------------

def rounded_beyond_range(g, exp, tol, dtype):
    """Where ``g`` (a result of ``dtype``, widened) is +max or +inf and the interval ``exp +- tol``
    reaches above the dtype's range, or -max or -inf and it reaches below: the dtype's rounding of
    a value within the bound."""
    dmax = float(np.finfo(dtype).max)
    top = np.abs(g) >= dmax * (1 - 4 * U[dtype])
    with np.errstate(invalid="ignore", over="ignore"):   # an infinite exp: judged elsewhere
        return top & (((exp + tol > dmax) & (g > 0)) | ((exp - tol < -dmax) & (g < 0)))


def check_values(got, exp, tol, dtype, what, skip=None):
    """``got`` (of ``dtype``) against the float64 ``exp``: NaN exactly where ``exp`` is NaN, the
    same infinities, finite values within ``tol`` (elementwise), and +-max or +-inf where the
    interval ``exp +- tol`` reaches beyond the dtype's range on that side.  ``skip``: a boolean
    mask of positions not compared."""
    got = np.asarray(got)
    assert got.dtype.newbyteorder("=") == dtype, (what, got.dtype, dtype)
    exp = np.asarray(exp, dtype=np.float64)
    assert got.shape == exp.shape, (what, got.shape, exp.shape)
    g = got.astype(np.float64)
    # Gradual underflow: results and intermediates below the smallest normal number carry
    # absolute, not relative, rounding errors, which later factors scale (a subnormal
    # coefficient times a large dy...), so every comparison also allows an absolute error of
    # 4096 times the smallest normal number (4.8e-35 float32, 9.1e-305 float64).
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64) + 4096 * float(np.finfo(dtype).tiny),
                          exp.shape)
    keep = np.ones(exp.shape, bool) if skip is None else ~np.broadcast_to(skip, exp.shape)
    keep = keep & ~np.isnan(tol) & ~np.isposinf(tol)  # the bound itself overflows float64: not judged
    nan_e, nan_g = np.isnan(exp), np.isnan(g)
    bad = keep & (nan_e != nan_g)
    assert not bad.any(), f"{what}: NaN at other positions: got {g[bad][:5]}, expected {exp[bad][:5]}"
    inf_e = np.isinf(exp) & keep
    assert np.array_equal(g[inf_e], exp[inf_e]), f"{what}: infinities differ"
    fin = np.isfinite(exp) & keep
    within = np.abs(g - exp) <= tol
    bad = fin & ~(within | rounded_beyond_range(g, exp, tol, dtype))
    assert not bad.any(), (f"{what}: {bad.sum()} of {bad.size} values off, e.g. got "
                           f"{g[bad][:4]} expected {exp[bad][:4]} tolerance {tol[bad][:4]}")


def ulp_tol(exp, dtype, rel=1e-12, extra=0.0):
    """One ulp of the exact value in ``dtype`` (float32), a few ulps (float64), plus ``rel`` of
    its magnitude and ``extra`` (an accumulation bound)."""
    e = np.abs(np.asarray(exp, dtype=np.float64))
    e = np.where(np.isfinite(e), e, 0.0)
    with np.errstate(over="ignore"):
        sp = np.spacing(e.astype(dtype)).astype(np.float64)
    # the top binade's ulp where the spacing of the dtype's max (or of a value that rounds to
    # it) overflows: one ulp there is 2**104 in float32, not 0
    top = float(np.spacing(np.nextafter(np.finfo(dtype).max, 0, dtype=dtype)))
    return np.where(np.isfinite(sp), sp, top) * (1 if dtype == np.float32 else 4) + rel * e + extra


def assert_named_error(exc, fn):
    """A ValueError/TypeError whose message starts with one of ``fn``'s argument names."""
    assert isinstance(exc, ERRORS), f"{type(exc).__name__}: {exc}"
    names = set(inspect.signature(fn).parameters)
    m = re.match(r"^([A-Za-z_]\w*)(\[\d+\])?: ", str(exc))
    assert m and m.group(1) in names, f"the message names no argument of {fn.__name__}: {exc}"
    event(f"raised {type(exc).__name__} naming {m.group(1)}")


def channel_view(a, ndim, axis):
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(a, dtype=np.float64).reshape(shape)


def channel_reduce(fn, a, axis):
    axes = tuple(i for i in range(a.ndim) if i != axis)
    return fn(a, axis=axes)


# ---- out= modes -----------------------------------------------------------------------------

def draw_out(data, S, x_values, dtype, name="out"):
    """A fresh out buffer (any layout, either byte order), filled with a recognizable value."""
    filler = np.full(x_values.shape, -7.25, dtype=dtype)
    return place(data, S, name, filler, writeable=True, byteorders=swappable(dtype))


def overlapping_pair(S, values_, dtype, name):
    """(a, b): two views of one buffer, one element apart, so they partially overlap."""
    n = values_.size
    store = np.zeros((n + 1) * dtype.itemsize + 8, np.uint8)
    S.add(name, store)
    flat = store[:(n + 1) * dtype.itemsize].view(dtype)
    a = flat[:n].reshape(values_.shape)
    a[...] = values_
    return a, flat[1:].reshape(values_.shape)


def draw_x_and_out(data, S, xv, dtype, name="x"):
    """(x, out, mode): mode is 'none', 'fresh', 'inplace' or 'overlap'."""
    modes = ["none", "none", "fresh", "fresh", "inplace", "overlap"]
    mode = data.draw(st.sampled_from(modes), label="out mode")
    if mode == "overlap" and xv.size < 2:
        mode = "fresh"
    if mode == "overlap":
        x, out = overlapping_pair(S, xv, dtype, name)
        return x, out, mode
    x = place(data, S, name, xv, writeable=(mode == "inplace"), byteorders=swappable(dtype))
    if mode == "none":
        return x, None, mode
    if mode == "inplace":
        same = data.draw(st.booleans(), label="out is x")
        return x, (x if same else x[...]), mode
    return x, draw_out(data, S, xv, dtype), mode


# ---- batch norm -----------------------------------------------------------------------------

def _vec(data, S, name, C, dtype, *, optional=True, writeable=False, nonfinite=False,
         byteorders=True):
    if optional and data.draw(st.booleans(), label=f"{name} given"):
        return None, None
    v = values(data, name, (C,), dtype, nonfinite=nonfinite)
    a = place(data, S, name, v, writeable=writeable, byteorders=byteorders)
    return a, np.array(a, dtype=dtype)    # a broadcast layout changes the values: read them back


def _skip_overflowed(x64, axis, mean, var):
    """Channels whose inputs are finite but whose reference statistics are not (float64 data so
    large that the reference's (x - mean)**2 overflows): not judged."""
    finite_in = channel_reduce(np.all, np.isfinite(x64), axis) if x64.size else np.ones(0, bool)
    return finite_in & ~(np.isfinite(mean) & np.isfinite(var))


def exact_stats(x64, axis):
    """Per channel, the mean and variance of ``x64`` in rational arithmetic, rounded once (NaN for
    channels holding NaN or +-inf).  The float64 reference's two-pass variance is off by
    (u |mean| / sd)^2 relative (its rounded mean), 1.0 at |mean| / sd ~ 1e16, where fastbn's is
    not: there the float64 reference is not sound, and fastbn is judged against these."""
    from fractions import Fraction
    C = x64.shape[axis]
    mean, var = np.full(C, np.nan), np.full(C, np.nan)
    for c, ch in enumerate(np.moveaxis(x64, axis, 0).reshape(C, x64.size // max(C, 1))):
        if ch.size and np.all(np.isfinite(ch)):
            vals = [Fraction(float(a)) for a in ch]
            m = sum(vals) / len(vals)
            mean[c] = float(m)
            try:
                var[c] = float(sum((a - m) ** 2 for a in vals) / len(vals))
            except OverflowError:      # beyond float64: the statistics are not finite
                var[c] = np.inf
    return mean, var


def _stat_tol(exp, dtype, terms):
    return ulp_tol(exp, dtype, extra=1e-12 * terms)


def draw_layout(data):
    """A fresh store, a dtype, a shape and a channel axis of it: every batch-norm case starts so."""
    S = Stores()
    dtype = draw_dtype(data)
    shape = shapes(data, "shape")
    nd = len(shape)
    return S, dtype, shape, data.draw(st.integers(-nd, nd - 1), label="axis")


def case_batch_norm_train(data):
    S, dtype, shape, axis = draw_layout(data)
    nd = len(shape)
    C = shape[axis]
    xv = values(data, "x", shape, dtype)
    x, out, mode = draw_x_and_out(data, S, xv, dtype)
    x_in = np.array(x)                            # the input's values, before any in-place write
    gamma, gv = _vec(data, S, "gamma", C, dtype)
    beta, bv = _vec(data, S, "beta", C, dtype)
    native_running = data.draw(st.sampled_from([True, True, True, False]), label="native running")
    rm, rmv = _vec(data, S, "running_mean", C, dtype, writeable=True, byteorders=not native_running)
    rv, rvv = _vec(data, S, "running_var", C, dtype, writeable=True, byteorders=not native_running)
    eps = data.draw(st.sampled_from(EPS), label="eps")
    momentum = data.draw(st.sampled_from([0.1] * 5 + [0.0, 1.0, 0.5, 1.5, math.nan]), label="momentum")
    rm_before, rv_before = (None if rm is None else np.array(rm)), (None if rv is None else np.array(rv))

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fastbn.batch_norm_train(x, gamma, beta, axis=axis, eps=eps, running_mean=rm,
                                           running_var=rv, momentum=momentum, out=out)

    def check(res):
        y, mean, invstd = res
        if out is not None:
            assert y is out
        ax = axis % nd
        x64 = f64(x_in)
        rm64, rv64 = f64(rm_before), f64(rv_before)
        with np.errstate(all="ignore"):
            ref = reference.batch_norm_train(x64, f64(gv), f64(bv), axis=ax, eps=eps,
                                             running_mean=rm64, running_var=rv64, momentum=momentum)
            refl = reference.batch_norm_train(ld(x_in), ld(gv), ld(bv), axis=ax, eps=eps)
            axes = tuple(i for i in range(nd) if i != ax)
            var = ((x64 - channel_view(ref.mean, nd, ax)) ** 2).mean(axis=axes)
            skip_ch = _skip_overflowed(x64, ax, ref.mean, var) | unjudged(ref.mean, refl.mean) \
                | unjudged(ref.invstd, refl.invstd)
            # far from zero the float64 reference's statistics are not sound: mean and invstd
            # are judged against the exact ones, y (formed from the reference's) is not judged
            mean_e, var_e = exact_stats(x64, ax)
            unsound = np.isfinite(var_e) & ~(np.abs(var - var_e) <= 1e-13 * var_e)
            ref_mean = np.where(unsound, mean_e, ref.mean)
            ref_invstd = np.where(unsound, 1.0 / np.sqrt(var_e + eps), ref.invstd)
            n = x64.size // max(C, 1)
            absx = np.where(np.isfinite(x64), np.abs(x64), 0)
            sum_abs = channel_reduce(np.sum, absx, ax) / max(n, 1)
            # A channel holding NaN or +-inf: its statistics are not finite (NaN or inf: the
            # docstring does not say which, and the shifted sums give NaN where the plain mean
            # is inf), and every y of it is NaN, as in the reference.
            nonfin_ch = ~channel_reduce(np.all, np.isfinite(x64), ax) if x64.size else np.zeros(C, bool)
            assert not np.isfinite(np.asarray(mean, np.float64)[nonfin_ch]).any(), "mean finite"
            skip_stat = skip_ch | nonfin_ch
            check_values(mean, ref_mean, _stat_tol(ref_mean, dtype, sum_abs), dtype, "mean",
                         skip=skip_stat)
            check_values(invstd, ref_invstd, ulp_tol(ref_invstd, dtype, rel=1e-11), dtype,
                         "invstd", skip=skip_stat)
            g = np.ones(C) if gv is None else f64(gv)
            b = np.zeros(C) if bv is None else f64(bv)
            s = g * f64(ref.invstd)
            tol = _forward_tol(x64, ref.mean, s, b, ax, dtype, sum_abs)
            over = unjudged(ref.y, refl.y)
            check_values(y, ref.y, tol, dtype, "y",
                         skip=(channel_view(skip_ch | unsound, nd, ax) > 0) | over)
            # The running statistics from the exact ones (the float64 reference's overflow
            # inside or lose the variance far from zero), PyTorch's update:
            # r = (1 - momentum) r + momentum stat, the variance unbiased (n / (n - 1)).  Allowed:
            # two ulps of the result plus momentum times the statistic's own error (the
            # accumulation term of the mean, 1e-11 relative for the variance).
            stat_ok = np.isfinite(mean_e) & np.isfinite(var_e)
            near_max = ~(var_e <= float(np.finfo(np.float64).max) / 16)   # (x - shift)^2 may overflow
            mom = abs(momentum) if math.isfinite(momentum) else 0.0
            unb = n / (n - 1) if n > 1 else np.inf
            for name, got, before, stat, stat_err in (
                    ("running_mean", rm, rm_before, mean_e, 1e-12 * sum_abs + 4 * U[np.dtype(np.float64)] * np.abs(mean_e)),
                    ("running_var", rv, rv_before, var_e * unb, 1e-11 * np.abs(var_e * unb))):
                if got is None:
                    continue
                exp = (1 - momentum) * f64(before) + momentum * stat
                judged = ~(skip_ch | (near_max & stat_ok))
                # unchanged where the statistics are not finite
                keep = judged & ~stat_ok
                assert np.array_equal(np.array(got)[keep], before[keep], equal_nan=True), name
                tol_r = ulp_tol(exp, dtype, rel=1e-11) * 2 + mom * np.nan_to_num(stat_err)
                check_values(np.array(got), exp, tol_r, dtype, name, skip=~stat_ok | ~judged)
        event(f"train ok, out={mode}")

    return S, call, check, _writes(mode, extra=("running_mean", "running_var")), \
        fastbn.batch_norm_train


def _forward_tol(x64, mean, s, c, ax, dtype, sum_abs):
    """The documented float32 bound (bn_helpers.forward_bound), the same form with float64's
    unit for float64, plus the float64 accumulation error of the statistics."""
    nd = x64.ndim
    if dtype == np.float32:
        base = forward_bound(x64, mean, s, c, ax)
    else:
        m, sv, cv = (channel_view(a, nd, ax) for a in (mean, s, c))
        u = U[dtype]
        base = 4 * u * np.abs((x64 - m) * sv) + 2 * u * np.abs(cv) + 4 * u * u * np.abs(m * sv)
    acc = 1e-12 * channel_view(np.abs(s) * sum_abs, nd, ax)
    d = np.abs(x64 - channel_view(mean, nd, ax))
    yscale = d * np.abs(channel_view(s, nd, ax))
    # Underflow: a subnormal coefficient or part of the split mean is rounded absolutely, not
    # relatively (half the smallest subnormal), and that error is then scaled by |x - mean| or s.
    under = TINY[dtype] * (d + np.abs(channel_view(s, nd, ax)))
    return np.nan_to_num(base, nan=0.0) + acc + 1e-12 * np.nan_to_num(yscale, nan=0.0) \
        + np.nan_to_num(under, nan=0.0)


def _writes(mode, name="x", extra=()):
    """Stores a successful call may change: out, the argument aliased by out, ``extra``."""
    w = set(extra)
    if mode == "fresh":
        w.add("out")
    if mode == "inplace":
        w.add(name)
    return w


def case_batch_norm_infer(data):
    S, dtype, shape, axis = draw_layout(data)
    nd = len(shape)
    C = shape[axis]
    xv = values(data, "x", shape, dtype)
    x, out, mode = draw_x_and_out(data, S, xv, dtype)
    x_in = np.array(x)
    rm, rmv = _vec(data, S, "running_mean", C, dtype, optional=False, nonfinite=True)
    rvv = np.abs(values(data, "running_var", (C,), dtype, nonfinite=True))
    if data.draw(st.booleans(), label="negative variance"):
        rvv = -rvv
    rv = place(data, S, "running_var", rvv, writeable=False)
    rvv = np.array(rv, dtype=dtype)
    gamma, gv = _vec(data, S, "gamma", C, dtype)
    beta, bv = _vec(data, S, "beta", C, dtype)
    eps = data.draw(st.sampled_from(EPS), label="eps")

    def call():
        return fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis, eps=eps, out=out)

    def check(y):
        if out is not None:
            assert y is out
        ax = axis % nd
        x64 = f64(x_in)
        with np.errstate(all="ignore"):
            ref = reference.batch_norm_infer(x64, f64(rmv), f64(rvv), f64(gv), f64(bv), axis=ax,
                                             eps=eps)
            g = np.ones(C) if gv is None else f64(gv)
            b = np.zeros(C) if bv is None else f64(bv)
            s = g / np.sqrt(f64(rvv) + eps)
            tol = _forward_tol(x64, f64(rmv), s, b, ax, dtype, np.zeros(C))
            refl = reference.batch_norm_infer(ld(x_in), ld(rmv), ld(rvv), ld(gv), ld(bv), axis=ax,
                                              eps=eps)
            check_values(y, ref, tol, dtype, "y", skip=unjudged(ref, refl))
        event(f"infer ok, out={mode}")

    return S, call, check, _writes(mode), fastbn.batch_norm_infer


def case_batch_norm_backward(data):
    S, dtype, shape, axis = draw_layout(data)
    nd = len(shape)
    ax = axis % nd
    C = shape[axis]
    xv = values(data, "x", shape, dtype)
    x = place(data, S, "x", xv, writeable=False)
    dyv = values(data, "dy", shape, dtype)
    dy, out, mode = draw_x_and_out(data, S, dyv, dtype, "dy")
    if mode == "overlap":   # out overlapping x rather than dy, half of the time
        if data.draw(st.booleans(), label="overlap x"):
            x, out = overlapping_pair(S, np.array(x), dtype, "x2")
            dy = place(data, S, "dy", dyv, writeable=False)
    dy_in, x_in = np.array(dy), np.array(x)
    if data.draw(st.booleans(), label="stats from train") and x_in.size and C and x_in.size > C:
        with np.errstate(all="ignore"):
            r = reference.batch_norm_train(f64(x_in), axis=ax)
        mv, iv = r.mean.astype(dtype), r.invstd.astype(dtype)
    else:
        mv = values(data, "mean", (C,), dtype, nonfinite=True)
        iv = values(data, "invstd", (C,), dtype, nonfinite=True)
    mean = place(data, S, "mean", mv, writeable=False)
    invstd = place(data, S, "invstd", iv, writeable=False)
    gamma, gv = _vec(data, S, "gamma", C, dtype)
    mv, iv = np.array(mean, dtype=dtype), np.array(invstd, dtype=dtype)

    def call():
        return fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, out=out)

    def check(res):
        dx, dgamma, dbeta = res
        if out is not None:
            assert dx is out
        x64, dy64 = f64(x_in), f64(dy_in)
        with np.errstate(all="ignore"):
            ref = reference.batch_norm_backward(dy64, x64, f64(mv), f64(iv), f64(gv), axis=ax)
            refl = reference.batch_norm_backward(ld(dy_in), ld(x_in), ld(mv), ld(iv), ld(gv), axis=ax)
            n = x64.size // max(C, 1)
            xhat = (x64 - channel_view(mv, nd, ax)) * channel_view(iv, nd, ax)
            fin = lambda a: np.where(np.isfinite(a), np.abs(a), 0)   # noqa: E731
            s_dy = channel_reduce(np.sum, fin(dy64), ax)
            s_dyx = channel_reduce(np.sum, fin(dy64 * xhat), ax)
            check_values(dbeta, ref.dbeta, ulp_tol(ref.dbeta, dtype, extra=1e-12 * s_dy), dtype,
                         "dbeta", skip=unjudged(ref.dbeta, refl.dbeta))
            # underflow: fastbn scales sum(dy * (x - mean)) by invstd once, the reference sums
            # dy * xhat whose factors may underflow: half a subnormal per term, times |dy|
            under = TINY[dtype] * (s_dy + n * np.abs(np.nan_to_num(f64(iv))))
            # fastbn sums dy * (x - mean), then scales by invstd: where that product overflows
            # (the intermediate-overflow class, see test_backward_intermediate_overflow) or the
            # float64 sum of such terms does (accuracy.rst's limit; dgamma inf * invstd) not judged
            dmax = float(np.finfo(dtype).max)
            prod_over = channel_reduce(np.any, np.abs(dy64) * np.abs(x64 - channel_view(mv, nd, ax))
                                       > dmax, ax) if x64.size else np.zeros(C, bool)
            sums_over = _sums_overflow(dy_in, x_in, mv, ax)
            check_values(dgamma, ref.dgamma, ulp_tol(ref.dgamma, dtype, extra=1e-12 * s_dyx + under),
                         dtype, "dgamma",
                         skip=prod_over | sums_over | unjudged(ref.dgamma, refl.dgamma))
            g = np.ones(C) if gv is None else f64(gv)
            base = 0.0 if not x64.size else backward_bound(dy64, x64, f64(mv), f64(iv), f64(gv), ax) \
                * (U[dtype] / 2.0 ** -24)   # the float32 bound, with float64's unit for float64
            gi = np.abs(g * f64(iv))
            acc = 1e-12 * channel_view(gi * (s_dy + fin(f64(iv)) * 0 + s_dyx) / max(n, 1), nd, ax) \
                * (1 + fin(xhat))
            # underflow: a subnormal g = gamma invstd errs by half a subnormal, scaled by dy and,
            # through the coefficients, by mean |dy| and |xhat| mean |dy xhat| of the channel
            g_under = channel_view(s_dy / max(n, 1), nd, ax) \
                + fin(xhat) * channel_view(s_dyx / max(n, 1), nd, ax)
            # and the float64 products dy (x - mean) of sum(dy (x - mean)) round absolutely (half
            # a float64 subnormal each), which s = -g invstd^2 sum / n scales, times |x - mean|
            t64 = float(np.finfo(np.float64).smallest_subnormal)
            sum_under = t64 * channel_view(gi * fin(f64(iv)) ** 2, nd, ax) \
                * fin(x64 - channel_view(mv, nd, ax))
            tol = np.nan_to_num(base, nan=0.0) + acc + 1e-12 * fin(f64(ref.dx)) \
                + np.nan_to_num(sum_under) \
                + TINY[dtype] * (fin(dy64) + g_under + fin(x64 - channel_view(mv, nd, ax)) + 1)
            # float64 data whose channel sums sum(dy), sum(dy * (x - mean)) overflow float64:
            # fastbn forms them (in float64), the reference does not; not judged (as in train)
            sums_over = channel_view(sums_over, nd, ax) > 0
            check_values(dx, ref.dx, tol, dtype, "dx", skip=unjudged(ref.dx, refl.dx) | sums_over)
        event(f"backward ok, out={mode}")

    return S, call, check, _writes(mode, "dy"), fastbn.batch_norm_backward


def _sums_overflow(dy, x, mean, ax):
    """Channels whose sums of |dy| or |dy (x - mean)| (in np.longdouble) pass float64's max."""
    if not np.size(x):
        return np.zeros(np.shape(x)[ax], bool)
    with np.errstate(all="ignore"):
        dyl, d = ld(dy), ld(x) - ld(mean).reshape([-1 if k == ax else 1 for k in range(np.ndim(x))])
        big = lambda a: channel_reduce(np.sum, np.where(np.isfinite(a), np.abs(a), 0), ax)  # noqa: E731
        fmax = np.finfo(np.float64).max
        return (big(dyl) > fmax) | (big(dyl * d) > fmax)


def case_BatchNorm(data):
    """The layer: a training forward (running statistics updated), an evaluation forward, and
    backward after each, against the reference functions."""
    S, dtype, shape, axis = draw_layout(data)
    nd = len(shape)
    ax = axis % nd
    C = shape[axis]
    momentum = data.draw(st.sampled_from([0.1, None, 1.0]), label="momentum")
    affine = data.draw(st.booleans(), label="affine")
    track = data.draw(st.booleans(), label="track")
    training = data.draw(st.booleans(), label="training")
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 1.0]), label="eps")
    xv = values(data, "x", shape, dtype)
    x = place(data, S, "x", xv, writeable=False)
    dyv = values(data, "dy", shape, dtype)
    dy = place(data, S, "dy", dyv, writeable=False)

    def call():
        if C < 1:
            fastbn.BatchNorm(C, axis=axis)      # raises: num_features >= 1
        layer = fastbn.BatchNorm(C, axis=axis, eps=eps, momentum=momentum, affine=affine,
                                 track_running_stats=track, dtype=dtype)
        if affine:
            layer.gamma[...] = np.linspace(0.5, 2.0, C)
            layer.beta[...] = np.linspace(-1.0, 1.0, C)
        layer.train(training)
        state = [None if a is None else a.copy() for a in
                 (layer.running_mean, layer.running_var)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            y = layer(x)
        dx = layer.backward(dy)
        return layer, state, y, dx

    def check(res):
        layer, (rm0, rv0), y, dx = res
        x64, dy64 = f64(np.array(x)), f64(np.array(dy))
        g = f64(layer.gamma) if affine else None
        b = f64(layer.beta) if affine else None
        with np.errstate(all="ignore"):
            if training or not track:
                ref = reference.batch_norm_train(x64, g, b, axis=ax, eps=eps)
                _, _, m_l, s_l = layer._cache     # backward is defined from the stats it got
                rdx = reference.batch_norm_backward(dy64, x64, f64(m_l), f64(s_l), g, axis=ax)
                refl = reference.batch_norm_train(ld(x64), ld(g), ld(b), axis=ax, eps=eps)
                rdxl = reference.batch_norm_backward(ld(dy64), ld(x64), ld(m_l), ld(s_l), ld(g), axis=ax)
                axes = tuple(i for i in range(nd) if i != ax)
                var = ((x64 - channel_view(ref.mean, nd, ax)) ** 2).mean(axis=axes)
                var_e = exact_stats(x64, ax)[1]
                bad = ~(np.isfinite(ref.mean) & np.isfinite(ref.invstd)) \
                    | _skip_overflowed(x64, ax, ref.mean, var) | unjudged(ref.mean, refl.mean) \
                    | unjudged(ref.invstd, refl.invstd) \
                    | (np.isfinite(var_e) & ~(np.abs(var - var_e) <= 1e-13 * var_e))  # unsound
                skip = channel_view(bad, nd, ax) > 0
                s = (1.0 if g is None else g) * ref.invstd
                bb = np.zeros(C) if b is None else b
                tol = _forward_tol(x64, ref.mean, s * np.ones(C), bb, ax, dtype,
                                   channel_reduce(np.sum, np.abs(np.nan_to_num(x64)), ax))
                check_values(y, ref.y, tol, dtype, "y", skip=skip | unjudged(ref.y, refl.y))
                btol = np.nan_to_num(backward_bound(dy64, x64, f64(m_l), f64(s_l), g, ax)) \
                    * (1 if dtype == np.float32 else 2.0 ** -29) + 1e-12 * np.nanmax(
                        np.abs(np.nan_to_num(rdx.dx, posinf=0, neginf=0)), initial=1.0) \
                    + TINY[dtype] * (np.abs(dy64) + 1)
                sums_over = channel_view(_sums_overflow(dy64, x64, f64(m_l), ax), nd, ax) > 0
                check_values(dx, rdx.dx, btol, dtype, "dx",
                             skip=skip | sums_over | unjudged(rdx.dx, rdxl.dx))
                if training and track:
                    assert layer.num_batches_tracked == 1
            else:
                ref = reference.batch_norm_infer(x64, f64(rm0), f64(rv0), g, b, axis=ax, eps=eps)
                s = (1.0 if g is None else g) / np.sqrt(f64(rv0) + eps)
                tol = _forward_tol(x64, f64(rm0), s * np.ones(C), np.zeros(C) if b is None else b,
                                   ax, dtype, np.zeros(C))
                refl = reference.batch_norm_infer(ld(x64), ld(rm0), ld(rv0), ld(g), ld(b), axis=ax,
                                                  eps=eps)
                check_values(y, ref, tol, dtype, "y", skip=unjudged(ref, refl))
                check_values(dx, dy64 * channel_view(s, nd, ax),
                             ulp_tol(dy64 * channel_view(s, nd, ax), dtype), dtype, "dx")
                assert np.array_equal(layer.running_mean, rm0) and np.array_equal(layer.running_var, rv0)
        event(f"layer ok training={training} track={track}")

    def fn(x, dy, num_features, training, mode):   # the names a layer's messages may use
        pass
    return S, call, check, set(), fn


# ---- clipping -------------------------------------------------------------------------------

def draw_grads(data, S, *, writeable, max_arrays=4, dtypes=FLOATS):
    """A list of arrays of mixed dtypes, shapes (0-d to 3-d) and layouts, and their values."""
    n = data.draw(st.integers(0, max_arrays), label="number of arrays")
    arrays, vals = [], []
    for k in range(n):
        dtype = draw_dtype(data, dtypes)
        shape = shapes(data, f"grads[{k}] shape", min_dims=0, max_dims=3, max_side=6)
        v = any_values(data, f"grads[{k}]", shape, dtype)
        a = place(data, S, f"grads[{k}]", v, writeable=writeable, byteorders=swappable(dtype))
        arrays.append(a)
        vals.append(np.array(a))
    if writeable and n and data.draw(st.integers(0, 9), label="alias") == 0:
        arrays.append(arrays[0][...])     # the same memory twice: must be refused
        vals.append(vals[0])
    return arrays, vals


def norm_tol(exp, p):
    return 2e-12 * max(1.0, 1.0 / p if p != math.inf else 1.0) * abs(exp)


def assert_norm(got, exp, p):
    assert type(got) is float
    if math.isnan(exp):
        assert math.isnan(got), (got, exp)
    elif math.isinf(exp):
        assert got == exp, (got, exp)
    else:
        assert abs(got - exp) <= norm_tol(exp, p), (got, exp)


def same_bits(a, b):
    """Equal values, NaN where NaN, and the same sign of zero."""
    a, b = np.asarray(a), np.asarray(b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (np.array_equal(a64, b64, equal_nan=True)
            and np.array_equal(np.signbit(a64[a64 == 0]), np.signbit(b64[a64 == 0])))


NORM_TYPES = [2.0, 1.0, 3.5, math.inf, 0.5, 0.0, -1.0, math.nan]


def case_global_norm(data, dtypes=FLOATS):
    S = Stores()
    grads, vals = draw_grads(data, S, writeable=False, dtypes=dtypes)
    bare = len(grads) == 1 and data.draw(st.booleans(), label="bare array")
    p = data.draw(st.sampled_from(NORM_TYPES), label="norm_type")

    def call():
        return fastbn.global_norm(grads[0] if bare else grads, norm_type=p)

    def check(total):
        with np.errstate(all="ignore"):
            assert_norm(total, reference.global_norm(vals, p), p)
        event("global_norm ok")

    return S, call, check, set(), fastbn.global_norm


def _expected_scaled(vals, total, max_norm):
    coef = max_norm / (total + 1e-6)
    if coef >= 1.0:
        return [v.copy() for v in vals]
    with np.errstate(all="ignore"):
        return [cast(v.astype(np.float64) * float(cast(coef, v.dtype)), v.dtype) for v in vals]


def case_clip_grad_norm(data, dtypes=FLOATS):
    S = Stores()
    grads, vals = draw_grads(data, S, writeable=True, dtypes=dtypes)
    p = data.draw(st.sampled_from(NORM_TYPES), label="norm_type")
    max_norm = data.draw(st.sampled_from([1.0, 0.0, 1e-3, 1e30, math.inf, -1.0, math.nan]),
                         label="max_norm")
    strict = data.draw(st.booleans(), label="error_if_nonfinite")

    def call():
        return fastbn.clip_grad_norm(grads, max_norm, norm_type=p, error_if_nonfinite=strict)

    def check(total):
        with np.errstate(all="ignore"):
            assert_norm(total, reference.global_norm(vals, p), p)
        for k, (a, e) in enumerate(zip(grads, _expected_scaled(vals, total, max_norm))):
            assert same_bits(a, e), f"grads[{k}] not scaled by the documented formula"
        event("clip_grad_norm ok")

    names = {f"grads[{k}]" for k in range(len(grads))}
    return S, call, check, names, fastbn.clip_grad_norm


def case_clip_grad_value(data, dtypes=FLOATS):
    S = Stores()
    grads, vals = draw_grads(data, S, writeable=True, dtypes=dtypes)
    c = data.draw(st.sampled_from([1.0, 0.0, 1e-40, 3.4e38, 1e300, math.inf, -1.0, math.nan]),
                  label="clip_value")

    def call():
        return fastbn.clip_grad_value(grads, c)

    def check(res):
        assert res is None
        for k, (a, v) in enumerate(zip(grads, vals)):
            t = cast(c, v.dtype)[()]     # 1e300 -> inf in float32, as documented
            e = np.where(v < -t, -t, np.where(v > t, t, v))
            assert same_bits(a, e), f"grads[{k}] not clamped as documented"
        event("clip_grad_value ok")

    names = {f"grads[{k}]" for k in range(len(grads))}
    return S, call, check, names, fastbn.clip_grad_value


def case_clip_by_norm(data, dtypes=FLOATS):
    S = Stores()
    dtype = draw_dtype(data, dtypes)
    shape = shapes(data, "shape", min_dims=0, max_dims=3, max_side=6)
    gv = any_values(data, "grad", shape, dtype)
    grad, out, mode = draw_x_and_out(data, S, gv, dtype, "grad")
    grad_in = np.array(grad)
    max_norm = data.draw(st.sampled_from([1.0, 0.0, 1e-3, 1e30, math.inf, -1.0, math.nan]),
                         label="max_norm")

    def call():
        return fastbn.clip_by_norm(grad, max_norm, out=out)

    def check(res):
        if out is not None:
            assert res is out
        else:
            assert res.dtype.isnative and res.shape == grad_in.shape
        norm = fastbn.global_norm(grad_in)
        with np.errstate(all="ignore"):
            assert_norm(norm, reference.global_norm(grad_in), 2.0)
            if norm <= max_norm:
                e = grad_in
            else:
                s = cast(max_norm / norm, dtype)
                e = cast(grad_in.astype(np.float64) * float(s), dtype)
        assert same_bits(res, e), "not the documented formula"
        event(f"clip_by_norm ok, out={mode}")

    return S, call, check, _writes(mode, "grad"), fastbn.clip_by_norm


# ---- initializers ---------------------------------------------------------------------------

def _fans(shape):
    return fastbn.init.compute_fans(shape) if len(shape) else (0, 0)


INITS = {   # name: (extra keyword strategies, range check(values, shape, kwargs) or None)
    "zeros": ({}, lambda w, s, kw: np.all(w == 0)),
    "ones": ({}, lambda w, s, kw: np.all(w == 1)),
    "constant": ({"value": st.sampled_from([0.5, -3.0, 1e300, math.inf, math.nan])}, None),
    "uniform": ({"low": st.sampled_from([0.0, -1.0, -3e38, 1e300]),
                 "high": st.sampled_from([1.0, 0.0, 3e38, 1e-300, math.inf])},
                lambda w, s, kw: np.all((w >= w.dtype.type(kw["low"])) & (w <= w.dtype.type(kw["high"])))),
    "normal": ({"mean": st.sampled_from([0.0, 1e3, math.nan]),
                "std": st.sampled_from([1.0, 0.0, 1e-3, 1e300, -1.0])},
               lambda w, s, kw: np.all(np.isfinite(w)) or kw["std"] >= 1e30),
    "truncated_normal": ({"a": st.sampled_from([-2.0, 0.0, 5.0, -40.0]),
                          "b": st.sampled_from([2.0, 0.5, 6.0, 40.0])},
                         lambda w, s, kw: np.all((w >= kw["a"] - 1e-6) & (w <= kw["b"] + 1e-6))),
    "glorot_uniform": ({"gain": st.sampled_from([1.0, 0.0, 3.0])},
                       lambda w, s, kw: np.all(np.abs(w) <= kw["gain"] * math.sqrt(6 / sum(_fans(s))) * (1 + 1e-6))),
    "glorot_normal": ({"gain": st.sampled_from([1.0, 0.0])}, lambda w, s, kw: np.all(np.isfinite(w))),
    "he_uniform": ({"mode": st.sampled_from(["fan_in", "fan_out", "bad"])},
                   lambda w, s, kw: np.all(np.abs(w) <= math.sqrt(6 / _fans(s)[kw["mode"] == "fan_out"]) * (1 + 1e-6))),
    "he_normal": ({"nonlinearity": st.sampled_from(["relu", "tanh", "leaky_relu", "nope"])},
                  lambda w, s, kw: np.all(np.isfinite(w))),
    "lecun_uniform": ({}, lambda w, s, kw: np.all(np.abs(w) <= math.sqrt(3 / _fans(s)[0]) * (1 + 1e-6))),
    "lecun_normal": ({}, lambda w, s, kw: np.all(np.isfinite(w))),
    "variance_scaling": ({"distribution": st.sampled_from(["truncated_normal", "normal", "uniform",
                                                           "untruncated_normal", "x"]),
                          "mode": st.sampled_from(["fan_in", "fan_out", "fan_avg"]),
                          "scale": st.sampled_from([1.0, 2.0, 0.0])},
                         lambda w, s, kw: np.all(np.isfinite(w))),
    "orthogonal": ({"gain": st.sampled_from([1.0, 2.0])}, None),
    "xavier_uniform": ({}, lambda w, s, kw: np.all(np.abs(w) <= math.sqrt(6 / sum(_fans(s))) * (1 + 1e-6))),
    "xavier_normal": ({}, lambda w, s, kw: np.all(np.isfinite(w))),
    "kaiming_uniform": ({}, lambda w, s, kw: np.all(np.isfinite(w))),
    "kaiming_normal": ({}, lambda w, s, kw: np.all(np.isfinite(w))),
}


def _orthogonal_ok(w, gain):
    rows = int(np.prod(w.shape[:-1]))
    m = w.reshape(rows, w.shape[-1]).astype(np.float64)
    # float16 (valid since issue 17): each entry rounded once, relative error u = 2**-11, moves
    # a Gram entry by at most (2u + u**2) gain**2 (tests/test_half.py derives it)
    tol = {2: 2.0**-10 + 2.0**-21, 4: 1e-4}.get(w.dtype.itemsize, 1e-10)
    if rows <= m.shape[1]:
        return np.allclose(m @ m.T, gain * gain * np.eye(rows), atol=tol * max(1, gain * gain))
    return np.allclose(m.T @ m, gain * gain * np.eye(m.shape[1]), atol=tol * max(1, gain * gain))


def make_init_case(name):
    fn = getattr(fastbn.init, name)
    strategies_, in_range = INITS[name]

    def case(data):
        S = Stores()
        dtype = data.draw(st.sampled_from(FLOATS + [np.dtype(np.int32), np.dtype(np.float16)]),
                          label="dtype")
        shape = shapes(data, "shape", min_dims=0, max_dims=4, max_side=6)
        kw = {k: data.draw(s, label=k) for k, s in strategies_.items()}
        if name == "truncated_normal" and kw["a"] >= kw["b"]:
            kw["b"] = kw["a"] + 1.0
        seed = data.draw(st.integers(0, 2**63), label="seed")
        given_out = data.draw(st.booleans(), label="out given")
        out = None
        if given_out:
            odt = dtype if dtype in FLOATS else np.dtype(np.float32)
            out = place(data, S, "out", np.full(shape, -7.25, odt), writeable=True)
        gen = np.random.default_rng(seed)
        gen_state = gen.bit_generator.state
        shape_arg = shape if data.draw(st.booleans(), label="tuple shape") else list(shape)

        def call():
            try:
                return fn(shape_arg, dtype=dtype, rng=gen, out=out, **kw)
            except BaseException:
                assert gen.bit_generator.state == gen_state, "rng advanced by a failing call"
                raise

        def check(w):
            assert w.shape == tuple(shape) and w.dtype.newbyteorder("=") == dtype
            if out is not None:
                assert w is out
            fresh = fn(shape, dtype=dtype, rng=np.random.default_rng(seed), **kw)
            assert fresh.dtype == dtype and fresh.dtype.isnative
            assert same_bits(w, fresh), "out= gave other bits than a new array"
            again = fn(shape, dtype=dtype, rng=np.random.default_rng(seed), **kw)
            assert same_bits(again, fresh), "the same seed gave other bits"
            if w.size and in_range is not None:
                assert in_range(np.array(w), shape, kw), f"{name}: values out of range"
            if name == "orthogonal" and w.size:
                assert _orthogonal_ok(np.array(w), kw["gain"])
            if name == "constant":
                assert same_bits(w, np.full(shape, kw["value"], dtype))
            event(f"{name} ok")

        return S, call, check, {"out"}, fn

    return case


# ---- the fused forms (relu, residual; y, dresidual): the unfused call composed, bit for bit --

def _bits(a):
    a = np.ascontiguousarray(a, dtype=native(a.dtype))
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def native(dtype):
    return np.dtype(dtype).newbyteorder("=")


def case_batch_norm_fused(data):
    """batch_norm_train or batch_norm_infer with relu and/or a residual of any layout and byte
    order (NaN, +-inf, -0 included): the unfused output t, then t + residual rounded once in
    x's dtype, then 0 where negative -- bit for bit."""
    S, dtype, shape, axis = draw_layout(data)
    C = shape[axis]
    x = place(data, S, "x", values(data, "x", shape, dtype), writeable=False)
    gamma, _ = _vec(data, S, "gamma", C, dtype)
    relu = data.draw(st.booleans(), label="relu")
    residual = None
    if data.draw(st.booleans(), label="residual given") or not relu:
        residual = place(data, S, "residual", values(data, "residual", shape, dtype),
                         writeable=False)
    train = data.draw(st.booleans(), label="train")
    rm = np.zeros(C, dtype)
    rv = np.ones(C, dtype)

    def unfused():
        if train:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return fastbn.batch_norm_train(x, gamma, axis=axis)
        return fastbn.batch_norm_infer(x, rm, rv, gamma, axis=axis)

    def call():
        if train:
            return fastbn.batch_norm_train(x, gamma, axis=axis, relu=relu, residual=residual)
        return fastbn.batch_norm_infer(x, rm, rv, gamma, axis=axis, relu=relu, residual=residual)

    def check(res):
        want = unfused()
        t = want.y if train else want
        with np.errstate(invalid="ignore"):
            s = t if residual is None else t + np.asarray(residual, native(dtype))
        if relu:
            s = np.where(s < 0, s.dtype.type(0), s)
        got = res.y if train else res
        assert np.array_equal(_bits(got), _bits(s)), "fused output is not the composition"
        if train:
            assert np.array_equal(_bits(res.mean), _bits(want.mean))
        event(f"fused {'train' if train else 'infer'} ok, relu={relu}, "
              f"residual={residual is not None}")

    return S, call, check, set(), fastbn.batch_norm_train if train else fastbn.batch_norm_infer


def case_batch_norm_backward_fused(data):
    """batch_norm_backward with y (any values, layout and byte order) and dresidual: the unfused
    backward of threshold_backward(dy, y, 0) bit for bit, and dresidual that masked dy."""
    S, dtype, shape, axis = draw_layout(data)
    C = shape[axis]
    x = place(data, S, "x", values(data, "x", shape, dtype), writeable=False)
    dy = place(data, S, "dy", values(data, "dy", shape, dtype), writeable=False)
    y = place(data, S, "y", values(data, "y", shape, dtype), writeable=False)
    mean, _ = _vec(data, S, "mean", C, dtype, optional=False)
    invstd, _ = _vec(data, S, "invstd", C, dtype, optional=False)
    gamma, _ = _vec(data, S, "gamma", C, dtype)
    dres = None
    if data.draw(st.booleans(), label="dresidual given"):
        dres = place(data, S, "dresidual", np.zeros(shape, dtype), writeable=True)

    def call():
        return fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, y=y,
                                          dresidual=dres)

    def check(res):
        yv, dyv = np.asarray(y, native(dtype)), np.asarray(dy, native(dtype))
        g = np.where(yv <= 0, dyv.dtype.type(0), dyv)
        want = fastbn.batch_norm_backward(g, x, mean, invstd, gamma, axis=axis)
        for a, b in zip(res, want):
            assert np.array_equal(_bits(a), _bits(b)), "fused backward is not the composition"
        if dres is not None:
            assert np.array_equal(_bits(dres), _bits(g))
        event("fused backward ok")

    return S, call, check, {"dresidual"}, fastbn.batch_norm_backward


# ---- the generic test -----------------------------------------------------------------------

CASES = {
    "batch_norm_train": case_batch_norm_train,
    "batch_norm_infer": case_batch_norm_infer,
    "batch_norm_backward": case_batch_norm_backward,
    "batch_norm_train+fused": case_batch_norm_fused,
    "batch_norm_backward+fused": case_batch_norm_backward_fused,
    "BatchNorm": case_BatchNorm,
    "global_norm": case_global_norm,
    "clip_grad_norm": case_clip_grad_norm,
    "clip_grad_value": case_clip_grad_value,
    "clip_by_norm": case_clip_by_norm,
    **{f"init.{n}": make_init_case(n) for n in fastbn.init.__all__ if n in INITS},
}


def test_every_public_function_has_a_case():
    public = set(fastbn.batchnorm.__all__) | set(fastbn.clip.__all__) | {"BatchNorm"}
    public -= {"BatchNormResult", "BatchNormGrads"}
    inits = {n for n in fastbn.init.__all__ if n not in ("compute_fans", "calculate_gain")}
    assert public | {f"init.{n}" for n in inits} <= set(CASES)


@pytest.mark.fuzz
@pytest.mark.slow_under_qemu      # .ci/run step 4 (-k "not qemu") deselects it: minutes natively
@pytest.mark.parametrize("name", list(CASES))
@FUZZ
@given(data=st.data())
def test_fuzz(name, data):
    run_case(CASES[name], data)


def run_case(make, data):
    """Draw a case with ``make`` and run it: the call matches the reference (its ``check``) with
    its inputs unchanged, or raises an error naming an argument with nothing written."""
    S, call, check, may_write, fn = make(data)
    snap = S.snapshot()
    try:
        result = call()
    except ERRORS as e:
        assert_named_error(e, fn)
        assert not S.changed(snap), f"a failing call wrote {S.changed(snap)}"
        return
    assert not S.changed(snap, ignore=may_write), f"inputs changed: {S.changed(snap, ignore=may_write)}"
    check(result)


# ---- bugs the fuzzing found, fixed: each example pinned ---------------------------------------

F32MAX = float(np.finfo(np.float32).max)
SLAB_AND_ROWS = [((2, 3, 80), 1, "slab"), ((40, 3), 1, "rows"), ((5, 2, 3), 1, "rows-inner3")]


def test_the_checkers_ulp_at_the_top_binade():
    # Found by a long run: rms_norm_backward's float32 dgamma = FLT_MAX * 77 / 77 rounds to FLT_MAX
    # (the exact 3.40282346e38 is within half an ulp of it), but the checker's ulp there was 0
    # (np.spacing(FLT_MAX) overflows), so the correctly rounded result failed.
    f32max = float(np.finfo(np.float32).max)
    assert ulp_tol(np.array([f32max - 1e30]), np.float32)[0] == 2.0 ** 104 + 1e-12 * (f32max - 1e30)
    assert ulp_tol(np.array([1.0]), np.float32)[0] == 2.0 ** -23 + 1e-12


def test_the_checkers_dgamma_skips_an_overflowing_channel_sum():
    # Found by a long run (avx512): float64 x holding DBL_MAX, statistics from the reference's
    # forward (mean 9e307, invstd 0: its variance overflows).  Each dy (x - mean) is finite but
    # their float64 sum is not, so dgamma = inf * 0 = NaN where the exact value is 0: the
    # backward's documented sum-overflow limit (accuracy.rst; PyTorch's native_batch_norm_backward
    # gives NaN there too), which the dx check skipped and the dgamma check did not.
    x = np.array([[0.1257302210933933, np.finfo(np.float64).max], [0.6404226504432821, 0.1049]])
    dy = np.array([[0.345584192064786, 0.8216181435011584],
                   [0.33043707618338714, -1.303157231604361]])
    with np.errstate(all="ignore"):
        r = reference.batch_norm_train(x)
        got = fastbn.batch_norm_backward(dy, x, r.mean, r.invstd)
        exact = reference.batch_norm_backward(ld(dy), ld(x), ld(r.mean), ld(r.invstd))
    assert r.invstd[1] == 0 and np.all(np.abs(dy[:, 1] * (x[:, 1] - r.mean[1])) < np.inf)
    assert list(_sums_overflow(dy, x, r.mean, 1)) == [False, True]
    assert np.isnan(got.dgamma[1]) and np.isnan(got.dx[:, 1]).all()
    np.testing.assert_allclose(got.dgamma[0], np.float64(exact.dgamma[0]), rtol=1e-14)
    np.testing.assert_allclose(got.dx[:, 0], np.asarray(exact.dx[:, 0], np.float64), rtol=1e-9)
    assert np.array_equal(got.dbeta, dy.sum(axis=0))


def test_backward_intermediate_overflow():
    """float32 dx = dy*g + (x - mean)*s + c: dy*g overflowed (|dy| gamma invstd > FLT_MAX) and
    gave NaN (inf - inf) where dx is representable (7.9e35 here)."""
    x = np.array([[0.12573022, -0.13210486]], np.float32)
    dy = np.array([[F32MAX, -0.13210486]], np.float32)
    _, mean, invstd = fastbn.batch_norm_train(x, axis=0)
    dx = fastbn.batch_norm_backward(dy, x, mean, invstd, axis=0).dx
    exact = reference.batch_norm_backward(f64(dy), f64(x), f64(mean), f64(invstd), axis=0).dx
    assert np.all(np.abs(exact) < 1e36)            # representable in float32
    bound = backward_bound(f64(dy), f64(x), f64(mean), f64(invstd), None, 0)
    assert np.all(np.abs(dx - exact) <= bound), (dx, exact)


@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
@pytest.mark.parametrize("shape, axis, path", SLAB_AND_ROWS, ids=[p for *_, p in SLAB_AND_ROWS])
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # dgamma
def test_backward_intermediate_overflow_in_vectors(shape, axis, path, inplace, threads):
    """The same inside the vector loops of both paths, the coefficients all finite in float32:
    with mean 0, invstd 2 (g = 2) and x = dy / (2 rms(dy)) per channel, x * s = -2 dy cancels
    dy * g, and a dy of 0.75 FLT_MAX makes both terms overflow (inf - inf = NaN) though dx is
    about FLT_MAX / n.  Also written over dy in place."""
    rng = np.random.default_rng(3)
    dyc = np.moveaxis(rng.standard_normal(shape), axis, 0).reshape(shape[axis], -1)
    for c in range(len(dyc)):
        dyc[c, (5 * c + 3) % dyc.shape[1]] = 0.75 * F32MAX
    xc = dyc / (2 * np.sqrt((dyc ** 2).mean(axis=1, keepdims=True)))
    moved = tuple(np.moveaxis(np.empty(shape), axis, 0).shape)
    dy = np.moveaxis(dyc.reshape(moved), 0, axis).astype(np.float32)
    x = np.moveaxis(xc.reshape(moved), 0, axis).astype(np.float32)
    mean, invstd = np.zeros(shape[axis], np.float32), np.full(shape[axis], 2.0, np.float32)
    exact = reference.batch_norm_backward(f64(dy), f64(x), f64(mean), f64(invstd), axis=axis).dx
    assert np.all(np.abs(exact) < F32MAX / 4)
    bound = backward_bound(f64(dy), f64(x), f64(mean), f64(invstd), None, axis)
    d = dy.copy()
    dx = fastbn.batch_norm_backward(d, x, mean, invstd, axis=axis, out=d if inplace else None).dx
    assert np.all(np.isfinite(dx)), dx
    assert np.all(np.abs(dx - exact) <= bound)


@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
def test_backward_float64_intermediate_overflow(inplace):
    """float64 (the fuzz's example, BatchNorm on batch statistics): dy = DBL_MAX with
    g = invstd > 1 overflows dy * g in float64 itself, so the float64 formula gave NaN where dx
    is -4.2e305; the fallback scales the factors by 2**-32 and the result by 2**64."""
    x = np.random.default_rng(0).standard_normal((1, 2))
    dy = np.array([[np.finfo(np.float64).max, 0.5]])
    _, mean, invstd = fastbn.batch_norm_train(x, axis=0)
    assert invstd[0] > 1
    with np.errstate(all="ignore"):
        exact = np.asarray(reference.batch_norm_backward(ld(dy), ld(x), ld(mean), ld(invstd),
                                                         axis=0).dx, np.float64)
    assert np.all(np.isfinite(exact))
    # the documented bound's terms |dy g|, |(x - mean) s|, |c| overflow float64 themselves:
    # 8u of them, with float64's u, in np.longdouble (|dy g| dominates; the others are as large)
    bound = np.asarray(8 * 2.0 ** -53 * 3 * np.abs(ld(dy)).max() * ld(invstd[0]), np.float64)
    d = dy.copy()
    with np.errstate(over="ignore"):
        dx = fastbn.batch_norm_backward(d, x, mean, invstd, axis=0, out=d if inplace else None).dx
    assert np.all(np.isfinite(dx)), dx
    assert np.all(np.abs(dx - exact) <= bound), (dx, exact, bound)


@pytest.mark.parametrize("shape, axis, path", SLAB_AND_ROWS, ids=[p for *_, p in SLAB_AND_ROWS])
def test_forward_intermediate_overflow(shape, axis, path):
    """float32 inference: the scale s = gamma / sqrt(var + eps) beyond FLT_MAX was rounded to inf
    and x == mean gave 0 * inf = NaN instead of beta; and (x - mean) * s beyond FLT_MAX with a
    beta that brings y back into range gave inf instead of y."""
    C = shape[axis]
    ch = [1] * len(shape)
    ch[axis] = C
    # channel 0: x == mean, s = 0.1257 / sqrt(FLT_MAX) * ... = inf in float32; y = beta = 0.5
    # channel 1: s = 3, x = FLT_MAX / 2: (x - mean) s = 1.5 FLT_MAX, beta = -FLT_MAX, y = FLT_MAX / 2
    x = np.zeros(shape, np.float32)
    xv = np.moveaxis(x, axis, 0)
    xv[1] = F32MAX / 2
    rm = np.zeros(C, np.float32)
    rv = np.ones(C, np.float32)
    rv[0] = np.finfo(np.float32).smallest_subnormal
    gamma = np.ones(C, np.float32)
    gamma[0], gamma[1] = F32MAX, 3.0
    beta = np.zeros(C, np.float32)
    beta[0], beta[1] = 0.5, -F32MAX
    y = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis, eps=1e-300)
    exact = reference.batch_norm_infer(f64(x), f64(rm), f64(rv), f64(gamma), f64(beta), axis=axis,
                                       eps=1e-300)
    assert np.all(np.isfinite(y)), y
    yv = np.moveaxis(y, axis, 0)
    assert np.all(yv[0] == 0.5) and np.all(yv[2:] == 0.0)
    bound = infer_bound(x, rm, rv, gamma, beta, 1e-300, axis)
    assert np.all(np.abs(y - exact) <= bound)


@pytest.mark.parametrize("shape, axis", [((4, 8, 70), 1), ((70, 40), 1), ((6, 50, 3), 1)],
                         ids=["slab", "rows", "rows-inner3"])
def test_outputs_near_float32_max_keep_their_bits(shape, axis):
    """Outputs near FLT_MAX, where two vectors' sum overflows (the elementwise passes then redo
    the pair element by element): with running mean 0 and beta 0, gamma scaled by 2**127 scales
    every output by exactly 2**127, whichever path computed it; layer norm's likewise."""
    rng = np.random.default_rng(7)
    x = rng.uniform(1.0, 1.5, shape).astype(np.float32)
    C = shape[axis]
    rm, rv, beta = np.zeros(C, np.float32), np.ones(C, np.float32), np.zeros(C, np.float32)
    gamma = rng.uniform(1.0, 1.1, C).astype(np.float32)
    y = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis)
    big = fastbn.batch_norm_infer(x, rm, rv, gamma * np.float32(2.0**127), beta, axis=axis)
    assert np.abs(big).min() > F32MAX / 2
    np.testing.assert_array_equal(big, y * np.float32(2.0**127))
    # layer norm: rows alternating 1, 2 normalize to about -+1, so with gamma times 2**127 each
    # output is beyond FLT_MAX / 2 and each pair of same-sign outputs sums beyond FLT_MAX
    D = 2 * shape[-1]
    xr = np.broadcast_to(1 + np.arange(D) % 2, shape[:-1] + (D,)).astype(np.float32)
    g = rng.uniform(1.01, 1.1, D).astype(np.float32)
    ln = fastbn.layer_norm(xr, g)[0]
    ln_big = fastbn.layer_norm(xr, g * np.float32(2.0**127))[0]
    assert np.abs(ln_big).min() > F32MAX / 2
    np.testing.assert_array_equal(ln_big, ln * np.float32(2.0**127))


@pytest.mark.parametrize("C", [64, 96])
def test_channels_last_outputs_near_float32_max_keep_their_bits(C):
    """Channels-last outputs streamed past the cache (over 4 MB) into a buffer that starts
    anywhere in a cache line: the elementwise pass's calls then start within a row, and the
    pairs redone element by element (every pair of same-sign outputs beyond FLT_MAX / 2
    overflows) take their own channels' coefficients.  Group norm and batch norm inference."""
    shape = (2, 80, 80, C) if C == 96 else (2, 96, 96, C)
    x = np.broadcast_to(1 + 2 * (np.arange(C) % 2), shape).astype(np.float32)   # xhat -+1, invstd 1
    g = np.random.default_rng(8).uniform(1.01, 1.1, C).astype(np.float32)
    twos, ones, zeros = (np.full(C, v, np.float32) for v in (2, 1, 0))
    norms = [lambda gamma, out: fastbn.group_norm(x, C // 2, gamma, axis=-1, out=out),
             lambda gamma, out: fastbn.batch_norm_infer(x, twos, ones, gamma, zeros, axis=-1,
                                                        out=out)]
    for norm in norms:
        for start in range(4):
            y = np.empty(x.size + 16, np.float32)[start:start + x.size].reshape(shape)
            big = np.empty(x.size + 16, np.float32)[start:start + x.size].reshape(shape)
            norm(g, y)
            norm(g * np.float32(2.0**127), big)
            assert np.abs(big).min() > F32MAX / 2
            np.testing.assert_array_equal(big, y * np.float32(2.0**127))


@pytest.mark.parametrize("shape, axis, path", SLAB_AND_ROWS, ids=[p for *_, p in SLAB_AND_ROWS])
def test_train_scale_beyond_float32(shape, axis, path):
    """Training: a constant channel with a tiny eps has invstd ~1e150, a float32 scale of inf:
    y is beta (x == mean), not NaN."""
    x = np.full(shape, 0.75, np.float32)
    beta = np.linspace(-1, 1, shape[axis]).astype(np.float32)
    y, mean, invstd = fastbn.batch_norm_train(x, None, beta, axis=axis, eps=1e-300)
    assert np.all(np.asarray(invstd) == np.float32(np.inf))     # 1e150 rounded to float32
    assert np.array_equal(y, np.broadcast_to(channel_view(beta, len(shape), axis), shape))


def test_backward_bound_holds_for_a_subnormal_coefficient():
    """The bound's underflow term: gamma * invstd subnormal in float32 rounds to 0 absolutely,
    and dx is off by |dy| * 2**-150 (6e-8 here): within e |dy| (bn_helpers.backward_bound), far
    beyond the relative terms (6e-14) alone."""
    x = np.array([[0.12573022]], np.float32)
    dy = np.array([[F32MAX]], np.float32)
    mean, invstd = x[0].copy(), np.array([0.12573022], np.float32)
    gamma = np.array([np.finfo(np.float32).smallest_subnormal], np.float32)
    dx = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=0).dx
    exact = reference.batch_norm_backward(f64(dy), f64(x), f64(mean), f64(invstd), f64(gamma),
                                          axis=0).dx
    bound = backward_bound(f64(dy), f64(x), f64(mean), f64(invstd), f64(gamma), 0)
    assert 1e-8 < abs(float(dx[0, 0]) - float(exact[0, 0])) <= bound[0, 0]


def test_backward_sum_products_underflow():
    # Found by a long run (the checker's model, fixed): float64 dy = 5e-324 times x - mean =
    # -0.1257 is below float64's subnormals and rounds to 0 in sum(dy (x - mean)); s = -g invstd^2
    # sum / n (g = gamma invstd = 2.3e307) scales that half-subnormal error to 2.8e-20 in dx, the
    # exact value, which the checker's underflow terms had left out (the norms' had it).
    x, dy = np.array([[0.00012573022109339]]), np.array([[5e-324]])
    mean, invstd = np.array([0.1257302210933933]), np.array([0.1257302210933933])
    gamma = np.array([np.finfo(np.float64).max])
    dx = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=0).dx
    exact = reference.batch_norm_backward(ld(dy), ld(x), ld(mean), ld(invstd), ld(gamma), axis=0).dx
    err = abs(float(dx[0, 0]) - float(exact[0, 0]))
    g = float(gamma[0] * invstd[0])
    t64 = float(np.finfo(np.float64).smallest_subnormal)
    assert err > 1e-20 and err <= t64 * g * invstd[0] ** 2 * abs(x[0, 0] - mean[0])


def test_forward_bound_holds_for_a_subnormal_scale():
    """Forward: s = gamma / sqrt(var + eps) = 8.1e-46 rounds to float32's 2**-149 (1.4e-45), an
    absolute error of 5.9e-46 times x = 1.1e38: y is off by 6.7e-8, within the underflow term
    e |x - mean| of bn_helpers.forward_bound, far beyond its relative terms (2e-14)."""
    x = np.array([[F32MAX / 3]], np.float32)
    rm, rv = np.zeros(1, np.float32), np.full(1, 3.0, np.float32)
    gamma = np.array([np.finfo(np.float32).smallest_subnormal], np.float32)
    y = fastbn.batch_norm_infer(x, rm, rv, gamma, axis=0)
    exact = reference.batch_norm_infer(f64(x), f64(rm), f64(rv), f64(gamma), axis=0)
    bound = infer_bound(x, rm, rv, gamma, None, 1e-5, 0)
    assert 1e-8 < abs(float(y[0, 0]) - float(exact[0, 0])) <= bound[0, 0], (y, exact, bound)


VARIANCE_LAYOUTS = [((1, 3), 0, "rows-one-row"), ((2, 1, 3), 1, "rows-inner3"),
                    ((1, 1, 30), 1, "rows-inner30"), ((5000, 1), 1, "rows-chunks"),
                    ((40, 3, 3), 1, "rows-NCHW"), ((2, 1, 8192), 1, "slab-segments")]


@pytest.mark.parametrize("loc, sd", [(1e4, 1e-3), (1e6, 1.0), (-3e8, 0.5), (3.0, 1.0)])
@pytest.mark.parametrize("shape, axis, path", VARIANCE_LAYOUTS, ids=[p for *_, p in VARIANCE_LAYOUTS])
def test_variance_far_from_zero(shape, axis, path, loc, sd, threads):
    """float64 variance (1 / invstd**2 - eps) within 1e-12 relative of the exact variance
    (rational arithmetic) for data far from zero, on every path that merges parts: the rows
    path's virtual channels and row chunks, the slab path's segments.  Was 2.5e-9 (mean 1e4,
    sd 1e-3): the rounded part means entered Chan's merge."""
    from fractions import Fraction
    x = np.random.default_rng(0).standard_normal(shape) * sd + loc
    r = fastbn.batch_norm_train(x, axis=axis, eps=1e-300)
    vals = [Fraction(float(a)) for a in np.moveaxis(x, axis, 0)[0].ravel()]
    m = sum(vals) / len(vals)
    exact = float(sum((a - m) ** 2 for a in vals) / len(vals))
    assert abs(1.0 / float(r.invstd[0]) ** 2 / exact - 1) <= 1e-12
    assert abs(float(r.mean[0]) - float(m)) <= 2.0 ** -52 * abs(float(m))


def test_constant_channel_far_from_zero_has_zero_variance():
    x = np.full((7, 2, 3), 1e6 + 0.125)
    r = fastbn.batch_norm_train(x, axis=1, eps=1.0)
    assert np.all(r.mean == 1e6 + 0.125) and np.all(r.invstd == 1.0)



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_arrays_reach_the_kernels_aligned(dtype):
    """The fuzz's unaligned layouts (a float view at an odd offset) reached the C code as they
    were -- C-contiguous and native -- and UBSan stopped at the first element read as T (.ci/run
    step 5).  The glue now refuses them and the Python path passes aligned copies: the same bits,
    in place too."""
    from fastbn import _batchnorm
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((6, 3, 5)).astype(dtype), rng.standard_normal((6, 3, 5)).astype(dtype)
    with pytest.raises(ValueError, match="aligned"):
        _batchnorm.train(unaligned_copy(x), np.empty_like(x), 6, 3, 5, None, None, 1e-5,
                         np.empty((3, 3)), 1)
    y, mean, invstd = fastbn.batch_norm_train(x, axis=1)
    for got in (fastbn.batch_norm_train(unaligned_copy(x), axis=1),
                fastbn.batch_norm_train(ux := unaligned_copy(x), axis=1, out=ux)):
        assert all(np.array_equal(a, b) for a, b in zip(got, (y, mean, invstd)))
    dx = fastbn.batch_norm_backward(dy, x, mean, invstd, axis=1).dx
    assert np.array_equal(fastbn.batch_norm_backward(unaligned_copy(dy), unaligned_copy(x), unaligned_copy(mean),
                                                     unaligned_copy(invstd), axis=1).dx, dx)
    rm, rv = np.zeros(3, dtype), np.ones(3, dtype)
    urm, urv = unaligned_copy(rm), unaligned_copy(rv)
    fastbn.batch_norm_train(x, axis=1, running_mean=rm, running_var=rv)
    fastbn.batch_norm_train(x, axis=1, running_mean=urm, running_var=urv)
    assert np.array_equal(urm, rm) and np.array_equal(urv, rv)
    g = [unaligned_copy(dy.ravel())]
    fastbn.clip_grad_value(g, 0.5)
    assert np.array_equal(g[0], np.clip(dy.ravel(), -0.5, 0.5))
