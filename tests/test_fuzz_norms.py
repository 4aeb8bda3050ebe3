"""Property-based tests (hypothesis) of the normalization family against :mod:`fastbn.reference`.

Issue 19 for layer, RMS, group and instance norm (forward and backward: 8 functions), in the
style of tests/test_fuzz.py, whose profiles, comparison and out= helpers this file reuses.  Each
function has a *case maker* that draws a complete call -- shapes with 0 and 1 along each axis (and
now and then one long axis, so that every layout of csrc/norm_body.h is reached: one run per group,
whole-channel runs, the columns layout), every axis or tuple of axes (layer/RMS, in any order and
sign) and ``num_groups`` dividing C or not (group), any strides (C, Fortran, permuted, negative,
strided, zero-stride broadcast views, unaligned), float32/float64 in both byte orders, ``out=``
absent / fresh / exactly ``x`` (or ``dy``) / partially overlapping, NaN, +-inf, subnormals, values
at the dtype's maximum, tiny and huge (and invalid) ``eps`` -- and a checker.  Each drawn call
must either

* succeed and match the reference within the per-element bound documented in csrc/norm.h
  (tests/norm_helpers.py), every input unchanged byte for byte (only ``out`` or the argument it
  aliases may change), or
* raise ValueError or TypeError whose message starts with the name of one of the function's
  arguments, with *every* buffer (``out`` included) unchanged byte for byte.

What matching means
-------------------
With u the unit roundoff of the dtype, s the element's scale and c its shift (forward:
``s = invstd * gamma``, ``c = beta``; backward: ``dx = dy g + (x - mean) s + c``, the coefficients
of norm_helpers.check_backward_bound), every output obeys

    forward:  |y - y*|   <= 4u |(x - mean) s| + 2u |c| + 4u^2 |mean s|
    backward: |dx - dx*| <= 8u (|dy g| + |(x - mean) s| + |c|) + 4u^2 |mean s|

plus the float64 rounding of the statistics and sums (1e-12 of the same terms and of the sums of
magnitudes) and an absolute 4096 times the smallest normal number (gradual underflow), as in
test_fuzz.py.  The statistics (mean, invstd/invrms) are within one ulp of the float64 reference
(plus its accumulation error); dgamma and dbeta likewise.  Non-finite values are compared by
position (check_values).  Not judged: positions where the float64 reference and the same
reference in np.longdouble disagree on NaN/finiteness (the reference overflowed inside), groups
of finite float64 data whose sums of squares overflow float64 (|x| beyond ~1e154: documented in
csrc/norm.h), positions where a coefficient underflows in the dtype (the bound of csrc/norm.h
has no underflow term yet), positions where the float64 reference's scale gamma invstd is beyond
float64's range (where only the exact one is, the bound is taken in long double), and the dx of
groups of finite inputs whose float64 backward sums (of |dy (x - mean)|) overflow.  Gradual
underflow elsewhere is modelled as docs/accuracy.rst states it: each product of the backward's
sums, a subnormal xhat that gamma scales (layer and RMS norm, channels-last group and instance
norm), and the subnormal squares of float64 data within ~1e-154 of its mean.  An intermediate of the dtype's elementwise pass that
overflows is judged: a vector whose result is not finite is redone in float64, as batch norm's
(csrc/norm_common.h); coefficients that round to inf in the dtype take the float64 formula (the
tests at the end).

Running it: as tests/test_fuzz.py (``FASTBN_FUZZ=long`` / ``dev``, ``FASTBN_FUZZ_EXAMPLES``);
the default "ci" profile is derandomized and runs 150 examples per function (about 30 s on a
2-core machine).  .ci/run runs it as test_fuzz.py: in step 1, and with 30 examples in step 5
(ASan + UBSan); step 4 (qemu) deselects "slow_under_qemu".
"""
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fastbn
from fastbn import reference
from strategies import Stores, place, shapes, values
from test_fuzz import (EPS, FUZZ, PROFILE, TINY, U, _writes, check_values, draw_dtype,
                       draw_x_and_out, f64, ld, overlapping_pair, run_case, ulp_tol, unjudged)

# The ci profile's example count here (test_fuzz.py's 300 per function would take minutes for
# eight functions on a loaded 2-core machine); FASTBN_FUZZ_EXAMPLES overrides every profile.
if PROFILE == "ci" and "FASTBN_FUZZ_EXAMPLES" not in os.environ:
    FUZZ = settings(FUZZ, max_examples=150)

F64MAX = float(np.finfo(np.float64).max)


# ---- shapes, axes, groups -------------------------------------------------------------------

def draw_shape(data, min_dims):
    """tests/strategies.shapes, and one time in three one axis made long (16 to 40): inner
    extents >= 32 take whole-channel runs, >= 16 runs per group the columns layout."""
    shape = list(shapes(data, "shape", min_dims=min_dims, max_dims=4, max_side=5))
    if data.draw(st.integers(0, 2), label="long axis") == 0:
        k = data.draw(st.integers(0, len(shape) - 1), label="long axis index")
        n = data.draw(st.sampled_from([16, 17, 33, 40]), label="long axis size")
        if math.prod(shape[:k] + shape[k + 1:]) * n <= 4000:
            shape[k] = n
    return tuple(shape)


BAD_AXES = ["out of range", "below range", "repeated", "empty", "float", "bool"]


def draw_axes(data, nd):
    """Layer/RMS ``axis``: an int, a tuple or list of distinct axes in any order and sign, or
    (one draw in eight) an invalid one; and the normalized axes (sorted) when valid."""
    kind = data.draw(st.sampled_from(["int"] * 3 + ["tuple"] * 3 + ["list", "bad"]), label="axis kind")
    if kind == "int":
        a = data.draw(st.integers(-nd, nd - 1), label="axis")
        return a, [a % nd]
    if kind in ("tuple", "list"):
        axes = data.draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                                  unique_by=lambda a: a % nd), label="axes")
        return (tuple(axes) if kind == "tuple" else axes), sorted(a % nd for a in axes)
    bad = data.draw(st.sampled_from(BAD_AXES), label="bad axis")
    return {"out of range": nd, "below range": -nd - 1, "repeated": (0, -nd), "empty": (),
            "float": 1.0, "bool": True}[bad], None


def draw_groups(data, C):
    """``num_groups``: a divisor of C mostly, else any small int (0 and non-divisors refused)."""
    divisors = [g for g in range(1, C + 1) if C % g == 0] or [1]
    kind = data.draw(st.sampled_from(["divisor"] * 4 + ["any", "odd type"]), label="groups kind")
    if kind == "divisor":
        return data.draw(st.sampled_from(divisors), label="num_groups")
    if kind == "any":
        return data.draw(st.integers(-1, C + 2), label="num_groups")
    return data.draw(st.sampled_from([2.0, True, np.int64(1), None]), label="num_groups")


# ---- the family's geometry: statistics and parameters spread over the elements of x ----------

class Geometry:
    """Where each element's group statistics and channel parameters are: ``stat(a)`` and
    ``param(a)`` broadcast a (stat_shape) or (param_shape) array to the shape of x."""

    def __init__(self, shape, *, axes=None, axis=None, groups=None):
        self.shape, self.nd = shape, len(shape)
        self.axes, self.axis, self.groups = axes, axis, groups

    @property
    def grouped(self):
        return self.axes is None

    def stat(self, a):
        a = np.asarray(a)
        if not self.grouped:
            return np.broadcast_to(np.expand_dims(a, tuple(self.axes)), self.shape)
        C = self.shape[self.axis]
        per_ch = np.repeat(a.reshape(self.shape[0], self.groups), C // self.groups, axis=1)
        view = [1] * self.nd
        view[0], view[self.axis] = self.shape[0], C
        return np.broadcast_to(per_ch.reshape(view), self.shape)

    def param(self, a):
        a = np.asarray(a)
        if not self.grouped:
            rest = tuple(i for i in range(self.nd) if i not in self.axes)
            return np.broadcast_to(np.expand_dims(a, rest), self.shape)
        view = [1] * self.nd
        view[self.axis] = -1
        return np.broadcast_to(a.reshape(view), self.shape)

    def group_reduce(self, fn, a):
        """fn over each group of the elementwise array a, broadcast back to the elements."""
        a = np.asarray(a)
        if not a.size:
            return np.zeros(a.shape, a.dtype)
        if not self.grouped:
            return np.broadcast_to(fn(a, axis=tuple(self.axes), keepdims=True), self.shape)
        N, C = self.shape[0], self.shape[self.axis]
        mid = math.prod(self.shape[1:self.axis])
        inner = math.prod(self.shape[self.axis + 1:])
        a5 = a.reshape(N, mid, self.groups, C // self.groups, inner)
        return np.broadcast_to(fn(a5, axis=(1, 3, 4), keepdims=True), a5.shape).reshape(self.shape)

    def channel_reduce(self, fn, a):
        """fn over everything but the channel (layer/RMS: the normalized positions), as
        dgamma's shape."""
        a = np.asarray(a)
        if not self.grouped:
            rest = tuple(i for i in range(self.nd) if i not in self.axes)
            return fn(a, axis=rest)
        return fn(a, axis=tuple(i for i in range(self.nd) if i != self.axis))


def exact_of(rld):
    """The long-double reference as the expected value (float64): the float64 reference loses
    digits where its own intermediates are subnormal (x * invrms before gamma scales it up);
    where the two disagree on NaN or finiteness nothing is judged (test_fuzz.unjudged)."""
    with np.errstate(all="ignore"):
        return np.asarray(rld).astype(np.float64)


def _fin(a):
    a = np.asarray(a, np.float64)
    return np.where(np.isfinite(a), np.abs(a), 0.0)


def _huge_groups(geo, x64):
    """Groups of finite data whose float64 sums of squares may overflow (|x| ~1e154 and up, the
    limit csrc/norm.h documents): not judged."""
    if not x64.size:
        return np.zeros(x64.shape, bool)
    big = geo.group_reduce(np.max, _fin(x64))
    count = geo.group_reduce(np.sum, np.ones_like(x64))
    with np.errstate(all="ignore"):
        return ~(4.0 * big * big * count <= F64MAX)


# ---- forward --------------------------------------------------------------------------------

def _param_arg(data, S, name, shape, dtype):
    """(array or None, values read back): a parameter of ``shape``, or (one in fifteen) of a
    wrong shape, to be refused naming it."""
    if data.draw(st.booleans(), label=f"{name} given"):
        return None, None
    if data.draw(st.integers(0, 14), label=f"{name} wrong shape") == 0:
        shape = shape[::-1] + (1,) if len(shape) else (2,)
    v = values(data, name, shape, dtype, nonfinite=False)
    a = place(data, S, name, v, writeable=False)
    return a, np.array(a, dtype=dtype)


def _forward_tol(geo, x64, mean, s, c, dtype, two_step_g=None):
    """The documented bound per element, with the float64 rounding of the statistics (1e-12 of
    the terms and of mean |x| times s) and underflow (a subnormal coefficient; where xhat and
    gamma are two steps, two_step_g: gamma, which scales a subnormal xhat's error)."""
    u = U[dtype]
    m, sv = geo.stat(mean), s
    d = np.abs(x64 - m)
    a, cm, ms = d * np.abs(sv), np.abs(c), np.abs(m * sv)
    base = 4 * u * a + 2 * u * cm + 4 * u * u * ms
    acc = 1e-12 * (a + cm + ms + np.abs(sv) * geo.group_reduce(np.mean, _fin(x64)))
    under = TINY[dtype] * (d + np.abs(sv) + (0 if two_step_g is None else np.abs(two_step_g)))
    return sum(np.nan_to_num(t, nan=0.0) for t in (base, acc, under))


def _apply_unjudged(geo, x64, mean, s, dtype):
    """Where the scale s of the dtype's elementwise pass is subnormal in the dtype, or beyond
    float64's range: not judged (see the module docstring)."""
    sv = np.abs(s)
    with np.errstate(all="ignore"):
        return ((sv < float(np.finfo(dtype).tiny)) & (sv > 0)) | ~np.isfinite(sv)


def make_forward_case(name):
    fn = getattr(fastbn, name)
    ref_fn = getattr(reference, name)
    centered, has_beta = name != "rms_norm", name in ("layer_norm", "group_norm", "instance_norm")
    grouped = name in ("group_norm", "instance_norm")

    def case(data):
        S = Stores()
        dtype = draw_dtype(data)
        shape = draw_shape(data, 2 if grouped else 1)
        nd = len(shape)
        kw, pos = {}, []
        if grouped:
            axis = data.draw(st.integers(-nd, nd - 1), label="axis")
            if data.draw(st.integers(0, 3), label="default axis") == 0 and nd > 1:
                axis = None
            ax = 1 if axis is None else axis % nd
            if axis is not None:
                kw["axis"] = axis
            C = shape[ax]
            G = C if name == "instance_norm" else draw_groups(data, C)
            if name == "group_norm":
                pos = [G]
            valid_groups = isinstance(G, (int, np.integer)) and not isinstance(G, bool) and \
                G >= 1 and C % G == 0
            valid = valid_groups and ax != 0 and math.prod(shape[1:]) > 0
            geo = Geometry(shape, axis=ax, groups=G) if valid else None
            pshape = (C,)
        else:
            axis, axes = draw_axes(data, nd)
            kw["axis"] = axis
            geo = None if axes is None else Geometry(shape, axes=axes)
            pshape = () if axes is None else tuple(shape[a] for a in axes)
        xv = values(data, "x", shape, dtype)
        x, out, mode = draw_x_and_out(data, S, xv, dtype)
        x_in = np.array(x)
        gamma, gv = _param_arg(data, S, "gamma", pshape, dtype)
        beta, bv = _param_arg(data, S, "beta", pshape, dtype) if has_beta else (None, None)
        eps = data.draw(st.sampled_from(EPS), label="eps")
        if has_beta:
            args = (x, *pos, gamma, beta)
        else:
            args = (x, *pos, gamma)

        def call():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return fn(*args, **kw, eps=eps, out=out)

        def check(res):
            assert geo is not None, "a call the checks would refuse succeeded"
            y, stats = res[0], res[1:]
            if out is not None:
                assert y is out
            else:
                assert y.dtype == dtype and y.shape == shape
            x64 = f64(x_in)
            refargs = dict(kw)
            refargs.setdefault("axis", 1 if grouped else -1)
            rpos = [geo.groups] if name == "group_norm" else []
            with np.errstate(all="ignore"):
                if has_beta:
                    r64 = ref_fn(x64, *rpos, f64(gv), f64(bv), **refargs, eps=eps)
                    rld = ref_fn(ld(x_in), *rpos, ld(gv), ld(bv), **refargs, eps=eps)
                else:
                    r64 = ref_fn(x64, *rpos, f64(gv), **refargs, eps=eps)
                    rld = ref_fn(ld(x_in), *rpos, ld(gv), **refargs, eps=eps)
                mean = r64[1] if centered else np.zeros(geo_stat_shape(geo))
                inv = r64[-1]
                huge = _huge_groups(geo, x64)
                # statistics, per group
                nonfin = ~geo.group_reduce(np.all, np.isfinite(x64)) if x64.size else huge
                # float64 data within ~1e-154 of the mean: the squares of the statistics are
                # subnormal and round absolutely (M2 to n e/2), so invstd errs relatively by up to
                # e / (4 (var + eps)) (docs/accuracy.rst); taken as e / (2 (var + eps))
                sq_under = 0.0
                if dtype == np.float64:
                    var_eps = 1.0 / np.asarray(rld[-1], np.longdouble) ** 2
                    sq_under = np.nan_to_num(np.asarray(TINY[dtype] / (2 * var_eps), np.float64),
                                             nan=0.0, posinf=0.0)
                for k, (got, exp, lexp) in enumerate(zip(stats, r64[1:], rld[1:])):
                    assert got.shape == exp.shape and got.dtype == dtype, (got.shape, got.dtype)
                    if not got.size:
                        continue
                    skip_el = huge | unjudged(geo.stat(exp), geo.stat(lexp))
                    if centered:
                        skip_el = skip_el | nonfin
                    skip = ~geo_stat_any(geo, ~skip_el)
                    tol = ulp_tol(exp, dtype, rel=1e-11,
                                  extra=1e-12 * geo_stat_of(geo, geo.group_reduce(np.mean, _fin(x64)))
                                  + (sq_under * np.abs(exp) if k == len(stats) - 1 else 0.0))
                    check_values(got, exact_of(lexp), tol, dtype,
                                 ["mean", "invstd"][k] if centered else "invrms", skip=skip)
                if centered and x64.size:   # a group holding NaN or +-inf: its mean is not finite
                    assert not np.isfinite(geo.stat(f64(stats[0]))[nonfin & ~huge]).any(), "mean finite"
                g = np.ones(shape) if gv is None else geo.param(f64(gv))
                s = geo.stat(inv) * g
                c = np.zeros(shape) if bv is None else geo.param(f64(bv))
                # layer and RMS norm, and channels-last group and instance norm, apply xhat and
                # gamma as two steps (docs/accuracy.rst: their e terms carry |gamma|); the
                # latter's columns layout (16 positions a sample and more) in one step, within
                # the same (looser) bound
                two_step = not grouped or geo.axis == len(shape) - 1
                # a scale beyond float64 with the exact invstd (every path applies invstd and
                # gamma apart there) is bounded in long double: the kernel's statistics are
                # exact, the float64 reference's may be far off (a constant group's var 1e-3
                # from a rounded mean where it is 0, and invstd 32 where it is 1/sqrt(eps))
                with np.errstate(all="ignore"):
                    s_ld = geo.stat(np.asarray(rld[-1], np.longdouble)) * ld(g)
                    s_tol = np.where(np.abs(s_ld) < F64MAX * (1 - 2.0 ** -50), s, s_ld)
                    tol = _forward_tol(geo, x64, mean, s_tol, c, dtype, g if two_step else None)
                    if dtype == np.float64:   # invstd's underflow error, which s carries
                        tol = tol + geo.stat(sq_under) * np.abs((x64 - geo.stat(mean)) * s_tol)
                    tol = np.asarray(tol, np.float64)   # inf where the bound is beyond float64
                skip = huge | unjudged(r64[0], rld[0]) | _apply_unjudged(geo, x64, mean, s, dtype)
                check_values(y, exact_of(rld[0]), tol, dtype, "y", skip=skip)
            event(f"{name} ok, out={mode}")

        return S, call, check, _writes(mode), fn

    return case


def geo_stat_shape(geo):
    if not geo.grouped:
        return tuple(n for i, n in enumerate(geo.shape) if i not in geo.axes)
    return (geo.shape[0], geo.groups)


def geo_stat_of(geo, per_element):
    """A per-element array that is constant over each group, back to the statistics' shape."""
    return geo_stat_any(geo, per_element, np.max)


def geo_stat_any(geo, per_element, fn=np.any):
    """fn over each group of a per-element array, in the statistics' shape."""
    a = np.asarray(per_element)
    if not geo.grouped:
        return fn(a, axis=tuple(geo.axes)) if a.size else np.zeros(geo_stat_shape(geo), a.dtype)
    N, C = geo.shape[0], geo.shape[geo.axis]
    mid, inner = math.prod(geo.shape[1:geo.axis]), math.prod(geo.shape[geo.axis + 1:])
    if not a.size:
        return np.zeros(geo_stat_shape(geo), a.dtype)
    return fn(a.reshape(N, mid, geo.groups, C // geo.groups, inner), axis=(1, 3, 4))


# ---- backward -------------------------------------------------------------------------------

def _grad_unjudged(geo, dy64, x64, mean, inv, g, s, c, dtype):
    """Where a coefficient g, s or c of the dtype's gradient pass is subnormal in the dtype (the
    bound in csrc/norm.h has no underflow term yet) or beyond float64's range: not judged."""
    tiny = float(np.finfo(dtype).tiny)
    bad = np.zeros(x64.shape, bool)
    with np.errstate(all="ignore"):
        for coef in (g, s, c):
            a = np.abs(coef)
            bad |= ((a > 0) & (a < tiny)) | ~np.isfinite(a)
    return bad


def make_backward_case(name):
    fn = getattr(fastbn, name + "_backward")
    ref_fn = getattr(reference, name + "_backward")
    centered, has_beta = name != "rms_norm", name != "rms_norm"
    grouped = name in ("group_norm", "instance_norm")

    def case(data):
        S = Stores()
        dtype = draw_dtype(data)
        shape = draw_shape(data, 2 if grouped else 1)
        nd = len(shape)
        kw, pos = {}, []
        if grouped:
            axis = data.draw(st.integers(-nd, nd - 1), label="axis")
            ax = axis % nd
            kw["axis"] = axis
            C = shape[ax]
            G = C if name == "instance_norm" else draw_groups(data, C)
            if name == "group_norm":
                pos = [G]
            valid = isinstance(G, (int, np.integer)) and not isinstance(G, bool) and G >= 1 \
                and C % G == 0 and ax != 0 and math.prod(shape[1:]) > 0
            geo = Geometry(shape, axis=ax, groups=G) if valid else None
            pshape = (C,)
            sshape = (shape[0], int(G)) if valid else (shape[0], 1)
        else:
            axis, axes = draw_axes(data, nd)
            kw["axis"] = axis
            valid = axes is not None and math.prod(shape[a] for a in axes) > 0
            geo = Geometry(shape, axes=axes) if valid else None
            pshape = () if axes is None else tuple(shape[a] for a in axes)
            sshape = () if axes is None else tuple(n for i, n in enumerate(shape) if i not in axes)
        xv = values(data, "x", shape, dtype)
        x = place(data, S, "x", xv, writeable=False)
        dyv = values(data, "dy", shape, dtype)
        dy, out, mode = draw_x_and_out(data, S, dyv, dtype, "dy")
        if mode == "overlap" and data.draw(st.booleans(), label="overlap x"):
            x, out = overlapping_pair(S, np.array(x), dtype, "x2")   # out overlapping x
            dy = place(data, S, "dy", dyv, writeable=False)
        dy_in, x_in = np.array(dy), np.array(x)
        # the statistics: the forward pass's (the usual call), or any values
        if valid and x_in.size and data.draw(st.booleans(), label="stats from forward"):
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                fwd = getattr(fastbn, name)(np.array(x_in), *pos, **kw)
            svals = list(fwd[1:])
        else:
            if data.draw(st.integers(0, 14), label="stats wrong shape") == 0:
                sshape = sshape + (1,)
            svals = [values(data, "mean", sshape, dtype, nonfinite=True)] if centered else []
            iv = values(data, "invstd", sshape, dtype, nonfinite=True)
            svals.append(np.abs(iv) if data.draw(st.booleans(), label="invstd >= 0") else iv)
        snames = ["mean", "invstd"] if centered else ["invrms"]
        stats = [place(data, S, n, v, writeable=False) for n, v in zip(snames, svals)]
        svals = [np.array(a, dtype=dtype) for a in stats]
        gamma, gv = _param_arg(data, S, "gamma", pshape, dtype)

        def call():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return fn(dy, x, *stats, *pos, gamma, **kw, out=out)

        def check(res):
            assert geo is not None, "a call the checks would refuse succeeded"
            dx, dgamma = res[0], res[1]
            if out is not None:
                assert dx is out
            assert len(res) == (3 if has_beta else 2)
            x64, dy64 = f64(x_in), f64(dy_in)
            rpos = [geo.groups] if name == "group_norm" else []
            with np.errstate(all="ignore"):
                r64 = ref_fn(dy64, x64, *map(f64, svals), *rpos, f64(gv), **kw)
                rld = ref_fn(ld(dy_in), ld(x_in), *map(ld, svals), *rpos, ld(gv), **kw)
                mean = f64(svals[0]) if centered else np.zeros(geo_stat_shape(geo))
                r = geo.stat(f64(svals[-1]))
                m = geo.stat(mean)
                gm = np.ones(shape) if gv is None else geo.param(f64(gv))
                w = dy64 * gm
                d = x64 - m
                n = geo.group_reduce(np.sum, np.ones(shape)) if x64.size else np.ones(shape)
                A = geo.group_reduce(np.sum, w)
                B = geo.group_reduce(np.sum, w * d)
                s = -r ** 3 * B / n
                c = -r * A / n if centered else np.zeros(shape)
                g = r * gm
                u = U[dtype]
                t1, t2, t3, ms = _fin(dy64 * g), _fin(d * s), _fin(c), _fin(m * s)
                sw, swd = geo.group_reduce(np.sum, _fin(w)), geo.group_reduce(np.sum, _fin(w * d))
                acc = 1e-12 * (t1 + t2 + t3 + ms + _fin(r) * (sw + _fin(d) * _fin(r) ** 2 * swd) / n)
                # gradual underflow: the float64 products w = gamma dy and w (x - mean) of the sums
                # A, B round absolutely (half a float64 subnormal each; w's error enters B times
                # |x - mean|), which s = -r^3 B / n and c = -r A / n scale
                t64 = float(np.finfo(np.float64).smallest_subnormal)
                sum_under = t64 * (_fin(r) ** 3 * (geo.group_reduce(np.mean, _fin(d)) + 1) * _fin(d)
                                   + _fin(r))
                # the two-step paths round gamma dy to the dtype, then scale it by invstd: a
                # subnormal gamma dy's underflow error times |invstd| (accuracy.rst's e |invstd|)
                two_step = not grouped or geo.axis == len(shape) - 1
                tol = 8 * u * (t1 + t2 + t3) + 4 * u * u * ms + acc + np.nan_to_num(sum_under) \
                    + TINY[dtype] * (_fin(dy64) + _fin(d) + 1 + two_step * _fin(r)) \
                    + 1e-12 * _fin(r64[0])
                # a group of finite inputs whose float64 sum of |dy (x - mean)| (gamma dy (x - mean)
                # where gamma is per element) overflows: the kernel's statistics overflow, as the
                # forward's beyond ~1e154 (docs/accuracy.rst); dx is inf or NaN there
                fin = geo.group_reduce(np.all, np.isfinite(dy64) & np.isfinite(x64))
                terms = np.abs((dy64 if grouped else w) * d)
                sums_over = fin & ~(geo.group_reduce(np.sum, np.where(fin, terms, 0.0)) <= F64MAX)
                skip = unjudged(r64[0], rld[0]) | _grad_unjudged(geo, dy64, x64, mean, r, g, s, c, dtype) \
                    | sums_over
                check_values(dx, exact_of(rld[0]), tol, dtype, "dx", skip=skip)
                # dgamma = sum(dy * (x - mean)) * invstd, dbeta = sum(dy), per channel
                xhat = d * r
                assert dgamma.shape == r64[1].shape and dgamma.dtype == dtype
                s_dy = geo.channel_reduce(np.sum, _fin(dy64))
                s_dyx = geo.channel_reduce(np.sum, _fin(dy64 * xhat))
                under = TINY[dtype] * (s_dy + geo.channel_reduce(np.sum, _fin(r)))
                dmax = float(np.finfo(dtype).max)
                over = geo.channel_reduce(np.any, ~(np.abs(dy64 * d) <= F64MAX)
                                          | ~(np.abs(dy64 * d) <= dmax * _fin(1 / r))) \
                    if x64.size else np.zeros(r64[1].shape, bool)
                check_values(dgamma, exact_of(rld[1]), ulp_tol(r64[1], dtype, extra=1e-12 * s_dyx + under),
                             dtype, "dgamma", skip=over | unjudged(r64[1], rld[1]))
                if has_beta:
                    assert res[2].shape == r64[2].shape and res[2].dtype == dtype
                    check_values(res[2], exact_of(rld[2]), ulp_tol(r64[2], dtype, extra=1e-12 * s_dy), dtype,
                                 "dbeta", skip=unjudged(r64[2], rld[2]))
            event(f"{name}_backward ok, out={mode}")

        return S, call, check, _writes(mode, "dy"), fn

    return case


# ---- the generic test -----------------------------------------------------------------------

NAMES = ["layer_norm", "rms_norm", "group_norm", "instance_norm"]
CASES = {**{n: make_forward_case(n) for n in NAMES},
         **{n + "_backward": make_backward_case(n) for n in NAMES}}


def test_every_norm_function_has_a_case():
    assert set(fastbn.norm.__all__) == set(CASES)


@pytest.mark.fuzz
@pytest.mark.slow_under_qemu      # as test_fuzz: .ci/run's qemu step deselects it (minutes there)
@pytest.mark.parametrize("name", list(CASES))
@FUZZ
@given(data=st.data())
def test_fuzz_norms(name, data):
    run_case(CASES[name], data)


# ---- bugs the fuzzing found, fixed: numerics ------------------------------------------------

def test_backward_coefficient_underflow():
    # Found by the fuzzing: s = -invstd**3 * mean(gamma dy (x - mean)) was evaluated as
    # (g * invstd) * invstd * ..., subnormal for invstd < ~1e-103 (data beyond ~1e103): dx lost its
    # digits where dy g and (x - mean) s cancel (5.9e-117 for 1.1e-121, the bound 3e-121).
    x = np.array([[0.0, 2e104]])
    dy = np.array([[0.125, -0.125]])
    _, invrms = fastbn.rms_norm(x)
    dx = fastbn.rms_norm_backward(dy, x, invrms)[0]
    exact = exact_of(reference.rms_norm_backward(ld(dy), ld(x), ld(invrms))[0])
    r = float(invrms[0])
    bound = 8 * 2.0 ** -53 * (np.abs(dy) * r + np.abs(exact - dy * r))   # |dy g| + |x s|
    assert np.all(np.abs(dx - exact) <= bound), (dx, exact, bound)       # was 5.9e-117



def test_backward_sum_products_underflow():
    # Found by the fuzzing (the checker's model, fixed): with dy = 2.2e-309 and x - mean = -6.1e-5,
    # each product dy (x - mean) of the sum B is subnormal and rounds absolutely; s = -r^3 B / n
    # (r = 9.1e7) scales that to 1.2e-304 in dx (1.8e-11 relative), which the checker's underflow
    # term had left out (it had w = gamma dy's rounding alone).  The bound with it holds.
    x = (np.random.default_rng(0).standard_normal((16, 1)) * 1e-6)
    dy = np.full((16, 1), 2.225073858507203e-309)
    mean, invstd = np.array([6.103515625e-05]), np.array([90638135.0])
    dx = fastbn.layer_norm_backward(dy, x, mean, invstd, axis=0)[0]
    exact = exact_of(reference.layer_norm_backward(ld(dy), ld(x), ld(mean), ld(invstd), axis=0)[0])
    d, r, t64 = np.abs(x - mean[0]), invstd[0], float(np.finfo(np.float64).smallest_subnormal)
    err = np.abs(dx - exact)
    assert err.max() > 2.0 ** -53 * np.abs(exact).max()         # not float64 rounding alone
    assert np.all(err <= t64 * (r ** 3 * (d.mean() + 1) * d + r) + 8 * 2.0 ** -53 * np.abs(exact))


def test_forward_two_step_xhat_underflow():
    # Found by the fuzzing (the checker's model, fixed): RMS norm applies xhat = x invrms, then
    # gamma.  x = 2.3e-173 with eps = 1e300 gives xhat = 2.3e-323, a float64 subnormal, whose
    # rounding (half of 4.9e-324) gamma = 6.6e19 scales to 9e-305 in y = 1.5e-303 (6 %): the e
    # |gamma| term docs/accuracy.rst gives these paths, which the checker had left out.
    x, gamma = np.array([[2.33196659e-173]]), np.array([6.58701529e19])
    y = fastbn.rms_norm(x, gamma, axis=0, eps=1e300)[0]
    exact = exact_of(reference.rms_norm(ld(x), ld(gamma), axis=0, eps=1e300)[0])
    e = float(np.finfo(np.float64).smallest_subnormal)
    err = float(np.abs(y - exact)[0, 0])
    assert err > 0.05 * abs(float(exact[0, 0]))                 # the underflow, not rounding
    assert err <= e * gamma[0] / 2 + 4 * 2.0 ** -53 * abs(float(exact[0, 0]))


def test_backward_two_step_dy_gamma_underflow():
    # Found by a long run (the checker's model, fixed): channels-last instance norm's float32
    # backward rounds gamma dy first: 1.4e-45 * 0.1257 = 1.8e-46 rounds to 0, and invstd =
    # 2.7e11 scales that error to 4.8e-35 in dx, where the exact dx is 0 (one value a group: dy
    # minus its mean).  That is docs/accuracy.rst's e |invstd| term, which the backward checker
    # had left out (its 4096 FLT_MIN floor, 4.81482945e-35, missed by one float32 rounding).
    dy, x = np.array([[2.0 ** -149]], np.float32), np.zeros((1, 1), np.float32)
    mean, invstd = np.array([[-0.0]], np.float32), np.array([[2.7328176e11]], np.float32)
    gamma = np.array([0.12573022], np.float32)
    assert np.float32(dy[0, 0] * gamma[0]) == 0              # the first step underflows
    dx = fastbn.instance_norm_backward(dy, x, mean, invstd, gamma, axis=1)[0]
    e = float(np.finfo(np.float32).smallest_subnormal)
    assert 4096 * float(np.finfo(np.float32).tiny) < abs(float(dx[0, 0])) <= e * float(invstd[0, 0])


def test_scale_beyond_float64_of_a_constant_group():
    # Found by a long run (fixed): a constant float64 group with eps = 5e-324 has invstd 4.5e161,
    # and gamma = 4e146 makes gamma invstd overflow; the one-step paths (batch norm, channels-first
    # group and instance norm) gave 0 * inf = NaN where the exact y is beta (as torch 2.13's
    # batch_norm and group_norm do), and now apply invstd and gamma apart there.  The float64
    # reference's invstd is 32 (its rounded mean leaves a variance of 1e-3).
    x = np.full((1, 33, 2), 1.38572296226785e14)
    gamma, beta = np.zeros(33), np.zeros(33)
    gamma[0], beta[0] = 3.99583814440447e146, 2.5
    y, _, invstd = fastbn.group_norm(x, 1, gamma, beta, eps=5e-324)
    ref_invstd = reference.group_norm(x, 1, gamma, beta, eps=5e-324)[2]
    y_last = fastbn.group_norm(np.moveaxis(x, 1, -1), 1, gamma, beta, axis=-1, eps=5e-324)[0]
    with np.errstate(over="ignore"):
        assert np.isinf(gamma[0] * invstd[0, 0])
    assert invstd[0, 0] == 1 / np.sqrt(5e-324) and ref_invstd[0, 0] == 32.0
    assert np.all(y[0, 0] == 2.5) and np.all(y[0, 1:] == 0) and np.all(y_last[0, :, 0] == 2.5)


def test_statistics_of_subnormal_squares():
    # Found by a long run (the checker's model, fixed): float64 values 6.4e-161 apart from their
    # mean have squares of 4e-321, subnormal, whose rounding costs M2 up to n e / 2; with
    # eps = 5e-324 invstd errs by 0.24 % (docs/accuracy.rst: up to e / (4 (var + eps))).
    x = np.array([-0.0] + [6.3778012220438704e-161] * 15)
    _, mean, invstd = fastbn.layer_norm(x, eps=5e-324)
    exact = exact_of(reference.layer_norm(ld(x), eps=5e-324)[2])
    var_eps = 1.0 / np.longdouble(exact) ** 2    # 2.4e-322 (in long double: exact**2 overflows)
    err = abs(float(invstd) / float(exact) - 1.0)
    assert 1e-4 < err <= np.longdouble(np.finfo(np.float64).smallest_subnormal) / (4 * var_eps)


def test_backward_scale_intermediate_underflow():
    # Found by the fuzzing (fixed): s = -(g invstd) (invstd sum/n), with invstd = 8.3e-182 (a
    # mean of DBL_MAX passed in), had g invstd = 6.8e-363 underflow to 0: s = 0 and dx = 0 where
    # it is -4.4e72.  Where that product leaves the normal range, the exponents are added apart.
    x, dy = np.array([[0.5]]), np.array([[0.3]])
    mean, invstd = np.array([[np.finfo(np.float64).max]]), np.array([[8.26e-182]])
    gamma = np.array([0.8])
    for dx in (fastbn.instance_norm_backward(dy, x, mean, invstd, gamma)[0],
               fastbn.group_norm_backward(dy, x, mean, invstd, 1, gamma)[0],
               fastbn.batch_norm_backward(dy, x, mean[0], invstd[0], gamma, axis=1).dx):
        exact = exact_of(reference.instance_norm_backward(ld(dy), ld(x), ld(mean), ld(invstd),
                                                          ld(gamma))[0])
        assert abs(float(exact[0, 0]) + 4.4e72) < 0.1e72
        assert np.all(np.abs(dx - exact) <= 1e-13 * np.abs(exact)), (dx, exact)     # was 0


# Found by the fuzzing (fixed): a float32 scale gamma * invstd beyond FLT_MAX rounded to inf and
# x equal to the mean gave 0 * inf = NaN instead of y = beta; such a group takes the float64 formula.
@pytest.mark.parametrize("shape, G, axis", [((1, 1, 32), 1, 1), ((1, 20, 2), 2, -1)],
                         ids=["whole-channel runs", "columns"])
def test_forward_scale_overflow(shape, G, axis):
    x = np.zeros(shape, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = fastbn.group_norm(x, G, axis=axis, eps=1e-300)[0]
    assert np.all(y == 0.0), y                     # was NaN


# Fixed: the float32 coefficient g = gamma * invstd beyond FLT_MAX gave dy g = inf and
# dx = inf - inf = NaN where the exact dx is 0; such a group takes the float64 formula.
def test_backward_coefficient_overflow():
    x, dy = np.zeros((1, 1, 32), np.float32), np.ones((1, 1, 32), np.float32)
    mean, invstd = np.zeros((1, 1), np.float32), np.array([[1e30]], np.float32)
    dx = fastbn.group_norm_backward(dy, x, mean, invstd, 1, np.array([1e10], np.float32))[0]
    exact = exact_of(reference.group_norm_backward(ld(dy), ld(x), ld(mean), ld(invstd), 1,
                                                  ld(np.array([1e10], np.float32)))[0])
    assert np.all(exact == 0.0)
    assert np.all(dx == 0.0), dx                    # was NaN


# ---- bugs the fuzzing found, fixed: arguments -----------------------------------------------

@pytest.mark.parametrize("call", [
    lambda x: fastbn.group_norm(x, None),
    lambda x: fastbn.group_norm_backward(x, x, np.zeros((2, 3)), np.ones((2, 3)), None),
], ids=["group_norm", "group_norm_backward"])
def test_group_norm_refuses_num_groups_none(call):
    """num_groups=None was instance norm in disguise (the internal marker of instance norm):
    a bad argument must be refused, naming it."""
    with pytest.raises(TypeError, match=r"^num_groups: expected an integer, got NoneType"):
        call(np.ones((2, 3, 4)))


def test_constant_groups_with_a_tiny_eps_have_a_finite_gradient():
    # Found reviewing a fuzzing fix (fixed): constant rows with eps = 5e-324 have invstd 4.5e161,
    # so g invstd^2 overflows, and their zero sum(dy (x - mean)) made s = inf * 0 = NaN: dx NaN
    # where it is invstd (dy - mean(dy)).  A zero sum gives s = 0, as batch norm's.
    x = np.full((2, 3), 7.0)
    dy = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    _, mean, invstd = fastbn.layer_norm(x, eps=5e-324)
    exact = invstd[:, None] * (dy - dy.mean(axis=1, keepdims=True))
    for dx in (fastbn.layer_norm_backward(dy, x, mean, invstd)[0],
               fastbn.group_norm_backward(dy[..., None], x[..., None], mean[:, None],
                                          invstd[:, None], 1)[0][..., 0],
               fastbn.instance_norm_backward(dy[:, None], x[:, None], mean[:, None],
                                             invstd[:, None])[0][:, 0]):
        np.testing.assert_allclose(dx, exact, rtol=1e-15)     # was NaN


def test_backward_mean_below_the_normal_range():
    # Found by a long run of test_fuzz_parts (fixed): c = -g (sum(dy) / n) with sum(dy) = 5e-324
    # and n = 2: the mean rounded to 0 (half the smallest subnormal, to even) and dx was twice
    # the exact 2.5e-324 g; where that mean is subnormal, c = -(g sum(dy)) / n.
    dy, x = np.array([[5e-324, 0.0]]), np.zeros((1, 2))
    g = 1e300
    exact = g * 5e-324 / 2                                         # 2.47e-24, exactly
    for dx in (fastbn.layer_norm_backward(dy, x, np.zeros(1), np.array([g]))[0][0],
               fastbn.batch_norm_backward(dy.T, x.T, np.zeros(1), np.array([g]), axis=1).dx[:, 0]):
        assert dx.tolist() == [exact, -exact]                      # was [2 exact, 0] or NaN
    dx = fastbn.batch_norm_backward_apply(np.array([[5e-324]]), np.array([[0.0]]),
                                          np.array([-0.0], np.float32),
                                          np.array([3.4028235e38], np.float32), np.array([1.0]),
                                          np.array([5e-324]), np.array([0.0]), 2, axis=0)
    assert dx[0, 0] == float(np.float32(3.4028235e38)) * 5e-324 / 2   # was twice that
