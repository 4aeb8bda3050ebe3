"""Property-based tests (hypothesis) of the functions that landed after tests/test_fuzz.py.

Issue 19 for batch norm's parts (src/fastbn/batchnorm_parts.py: ``batch_norm_stats``,
``merge_stats``, ``batch_norm_apply``, ``update_running_stats``, ``batch_norm_backward_reduce``,
``batch_norm_backward_apply``), ``fold_batch_norm`` and the clipping functions on float16 and
bfloat16 arrays, in the style of tests/test_fuzz.py, whose strategies, comparison, runner and
profiles this file reuses.  Each drawn call must either succeed and match its reference within
the bound below, every input unchanged byte for byte, or raise ValueError/TypeError naming an
argument with every buffer unchanged.

What matching means
-------------------
* ``batch_norm_stats``: count exact; mean and M2 of every channel of finite values against the
  exact (rational) ones, the mean within its float64 accumulation error, M2 within 1e-12
  relative (the kernel of batch_norm_train, whose variance the fuzz of test_fuzz.py judges so).
  A channel holding NaN or +-inf has a non-finite mean or M2.  Also: the same statistics
  through ``batch_norm_train`` give its mean and invstd bit for bit (documented).
* ``merge_stats``: against the whole-set formulas of ``reference.merge_stats``, with the
  rounding bound of Chan's update: 8 P u times the magnitudes it adds (the per-shard M2s,
  ``n_k delta_k**2``, and ``n_k |delta_k| max |mean_k|`` for the rounding of the running mean
  inside ``delta``), P the number of shards.  Shards of count 0 are skipped: a NaN there does
  not reach the result.
* ``batch_norm_apply``: y within the documented forward bound (tests/bn_helpers.py), and,
  given the statistics of ``x`` itself, bit for bit ``batch_norm_train``'s y (documented).
* ``update_running_stats``: the reference's update within two ulps plus the float64 rounding
  of its terms; channels whose statistics are not finite unchanged, with a RuntimeWarning.
* ``batch_norm_backward_reduce``: the sums as batch_norm_backward's dbeta and dgamma in
  tests/test_fuzz.py (float64 results: float64's ulps).
* ``batch_norm_backward_apply``: dx within bn_helpers.backward_bound for the given sums and
  count (float64's unit for float64 data).
* ``fold_batch_norm``: within one rounding to the weight's dtype (plus float64's) of the folded
  values in np.longdouble; a folded value beyond the dtype's range raises instead.
* clipping on float16/bfloat16 (mixed with float32/float64): test_fuzz.py's cases, whose
  expected bits ``T(float64(x) * float64(T(coef)))`` round float64 once to ``T``.

Bugs the fuzzing found in batchnorm_parts.py, not fixed here: each is pinned by a plain
``xfail(strict=True)`` test at the end of this file and its inputs are not judged above (merge_stats'
M2 of one shard with a non-finite mean; backward_apply with invstd 0 or subnormal;
backward_reduce of an empty batch with a non-finite invstd).  Not judged either, as in
test_fuzz.py's train case: channels of finite float64 data whose M2 overflows float64.

Running it: as tests/test_fuzz.py (``FASTBN_FUZZ=long`` / ``dev``, ``FASTBN_FUZZ_EXAMPLES``);
the "ci" profile runs 60 examples per function here.
"""
import functools
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fastbn
from bn_helpers import backward_bound
from fastbn import reference
from strategies import FLOATS, Stores, place, shapes, values
from test_fuzz import (EPS, FUZZ, PROFILE, TINY, U, _forward_tol, _sums_overflow, _vec, _writes,
                       any_values, case_clip_by_norm, case_clip_grad_norm, case_clip_grad_value,
                       case_global_norm, cast, channel_reduce, channel_view, check_values,
                       draw_layout, draw_x_and_out, exact_stats, f64, is_bfloat16, ld, run_case,
                       swappable, ulp_tol, unjudged)

# The ci profile's example count here: the CI budget of test_fuzz.py is spent; these functions
# are thin layers over kernels it fuzzes already.  FASTBN_FUZZ_EXAMPLES overrides every profile.
if PROFILE == "ci" and "FASTBN_FUZZ_EXAMPLES" not in os.environ:
    FUZZ = settings(FUZZ, max_examples=60)

U64 = 2.0 ** -53
F64 = np.dtype(np.float64)


try:                                   # bfloat16 is optional (ml_dtypes)
    import ml_dtypes
    HALVES = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
except ImportError:
    HALVES = [np.dtype(np.float16)]


def _stat_vec(data, S, name, C, *, nonfinite=True):
    """A per-channel statistic in float32 or float64 (the parts read either), any layout."""
    dtype = data.draw(st.sampled_from(FLOATS), label=f"{name} dtype")
    a = place(data, S, name, values(data, name, (C,), dtype, nonfinite=nonfinite), writeable=False)
    return a, np.array(a, dtype=np.float64)


# ---- batch_norm_stats -----------------------------------------------------------------------

def case_batch_norm_stats(data):
    S, dtype, shape, axis = draw_layout(data)
    nd, C = len(shape), shape[axis]
    x = place(data, S, "x", values(data, "x", shape, dtype), writeable=False)
    x_in = np.array(x)

    def call():
        return fastbn.batch_norm_stats(x, axis=axis)

    def check(res):
        count, mean, m2 = res
        ax = axis % nd
        n = x_in.size // max(C, 1)
        for a in res:
            assert a.dtype == F64 and a.shape == (C,)
        assert np.array_equal(count, np.full(C, float(n)))
        if n == 0:
            assert not mean.any() and not m2.any(), "an empty shard's mean and M2 are 0"
            return
        x64 = f64(x_in)
        mean_e, var_e = exact_stats(x64, ax)
        nonfin = ~channel_reduce(np.all, np.isfinite(x64), ax)
        assert not (np.isfinite(mean) & np.isfinite(m2))[nonfin].any(), "non-finite channel"
        sum_abs = channel_reduce(np.sum, np.where(np.isfinite(x64), np.abs(x64), 0), ax) / n
        with np.errstate(over="ignore"):
            m2_e = var_e * n
        # M2 whose squares (x - shift)**2 pass float64's max: its channel is not judged (as
        # batch_norm_train's in test_fuzz.py: its mean, too, may be inf there)
        near_max = ~(m2_e <= np.finfo(np.float64).max / 16)
        check_values(mean, mean_e, ulp_tol(mean_e, F64, extra=1e-12 * sum_abs), F64, "mean",
                     skip=nonfin | near_max)
        check_values(m2, m2_e, 1e-12 * np.abs(m2_e), F64, "m2", skip=nonfin | near_max)
        if n < 2:     # batch_norm_train refuses one value per channel
            return
        # the statistics of batch_norm_train, bit for bit
        eps = 1e-5
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = fastbn.batch_norm_train(x_in, axis=ax, eps=eps)
            invstd = (1.0 / np.sqrt(m2 / count + eps)).astype(dtype)
        assert np.array_equal(np.asarray(r.mean), mean.astype(dtype), equal_nan=True), "mean bits"
        assert np.array_equal(np.asarray(r.invstd), invstd, equal_nan=True), "invstd bits"
        event("batch_norm_stats ok")

    return S, call, check, set(), fastbn.batch_norm_stats


# ---- merge_stats ----------------------------------------------------------------------------

def case_merge_stats(data):
    S = Stores()
    P = data.draw(st.integers(0, 4), label="shards")
    C = data.draw(st.sampled_from([0, 1, 2, 3, 5]), label="C")
    cdt = data.draw(st.sampled_from(FLOATS + [np.dtype(np.int64)]), label="counts dtype")
    cv = np.array(data.draw(st.lists(st.sampled_from([0, 0, 1, 2, 3, 7, 1000, 2**40]),
                                     min_size=P * C, max_size=P * C), label="counts"),
                  dtype=np.float64).reshape(P, C)
    bad = data.draw(st.sampled_from([None] * 8 + ["negative", "fraction", "nan", "shape", "1-d",
                                                  "text"]), label="bad")
    inserted = bad in ("negative", "fraction", "nan") and cv.size > 0 and cdt != np.int64
    if inserted:
        cv.flat[data.draw(st.integers(0, cv.size - 1), label="bad at")] = \
            {"negative": -1.0, "fraction": 2.5, "nan": math.nan}[bad]
    counts = place(data, S, "counts", cv.astype(cdt), writeable=False)
    with np.errstate(invalid="ignore"):     # a broadcast layout may have dropped the bad count
        c_in = np.array(counts, dtype=np.float64)
        inserted = not np.all((c_in >= 0) & (c_in == np.floor(c_in)) & np.isfinite(c_in))
    means = place(data, S, "means", values(data, "means", (P, C), np.float64), writeable=False)
    mv = np.abs(values(data, "m2s", (P, C), np.float64))
    m2s = place(data, S, "m2s", mv, writeable=False)
    args = [counts, means, m2s]
    if bad == "shape":
        args[data.draw(st.integers(1, 2), label="bad shape at")] = np.zeros((P + 1, C))
    elif bad == "1-d":
        args[0] = np.zeros(C)
    elif bad == "text":
        args[data.draw(st.integers(0, 2), label="text at")] = "counts"
    ins = [np.array(a, dtype=np.float64) for a in (counts, means, m2s)]

    def call():
        return fastbn.merge_stats(*args)

    def check(res):
        assert not inserted and bad in (None, "negative", "fraction", "nan"), f"accepted {bad}"
        n_k, mu_k, q_k = ins
        count, mean, m2 = res
        with np.errstate(all="ignore"):
            rc, rm, rq = reference.merge_stats(n_k, mu_k, q_k)
            assert np.array_equal(count, rc), "count"
            used = n_k > 0
            delta = np.where(used, mu_k - rm, 0.0)
            big = np.max(np.where(used, np.abs(mu_k), 0), axis=0, initial=0.0)
            t_mean = np.sum(np.where(used, n_k * np.abs(mu_k), 0), axis=0) / np.maximum(rc, 1)
            t_m2 = np.sum(np.where(used, q_k + n_k * delta ** 2 + n_k * np.abs(delta) * big, 0),
                          axis=0)
            # a NaN or inf in a used shard: not finite; in a skipped shard: no effect
            nonfin = np.any(used & ~(np.isfinite(mu_k) & np.isfinite(q_k)), axis=0)
            nan_mean = np.any(used & np.isnan(mu_k), axis=0)
            assert np.all(np.isnan(mean[nan_mean])), "NaN mean lost"
            assert np.all(np.isnan(m2[nan_mean])), "NaN mean lost in m2"
            assert not (np.isfinite(mean) & np.isfinite(m2))[nonfin].any(), "non-finite lost"
            k = 8 * max(P, 1) * U64
            check_values(mean, rm, k * t_mean, F64, "mean", skip=nonfin)
            check_values(m2, rq, k * t_m2, F64, "m2", skip=nonfin)
        event(f"merge_stats ok, {P} shards")

    return S, call, check, set(), fastbn.merge_stats


# ---- batch_norm_apply -----------------------------------------------------------------------

def case_batch_norm_apply(data):
    S, dtype, shape, axis = draw_layout(data)
    nd, C = len(shape), shape[axis]
    ax = axis % nd
    xv = values(data, "x", shape, dtype)
    x, out, mode = draw_x_and_out(data, S, xv, dtype)
    x_in = np.array(x)
    eps = data.draw(st.sampled_from([1e-5, 1.0, 1e-300]), label="eps")
    own = data.draw(st.booleans(), label="statistics of x") and x_in.size > 2 * max(C, 1) - 1
    if own:   # the documented composition: batch_norm_stats, then invstd in float64
        count, m64, m2 = fastbn.batch_norm_stats(x_in, axis=ax)
        with np.errstate(all="ignore"):
            i64 = 1.0 / np.sqrt(m2 / count + eps)
        mean, invstd = m64, i64
        S.add("mean", mean.view(np.uint8))
        S.add("invstd", invstd.view(np.uint8))
    else:
        mean, m64 = _stat_vec(data, S, "mean", C)
        invstd, i64 = _stat_vec(data, S, "invstd", C)
    gamma, gv = _vec(data, S, "gamma", C, dtype)
    beta, bv = _vec(data, S, "beta", C, dtype)

    def call():
        return fastbn.batch_norm_apply(x, mean, invstd, gamma, beta, axis=axis, out=out)

    def check(y):
        if out is not None:
            assert y is out
        assert y.dtype.newbyteorder("=") == dtype and y.shape == x_in.shape
        x64 = f64(x_in)
        with np.errstate(all="ignore"):
            ref = reference.batch_norm_apply(x64, m64, i64, f64(gv), f64(bv), axis=ax)
            refl = reference.batch_norm_apply(ld(x_in), ld(m64), ld(i64), ld(gv), ld(bv), axis=ax)
            g = np.ones(C) if gv is None else f64(gv)
            b = np.zeros(C) if bv is None else f64(bv)
            s = g * i64
            tol = _forward_tol(x64, m64, s, b, ax, dtype, np.zeros(C))
            check_values(y, ref, tol, dtype, "y", skip=unjudged(ref, refl))
            if own:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = fastbn.batch_norm_train(x_in, gamma, beta, axis=ax, eps=eps)
                assert np.array_equal(np.asarray(y), r.y, equal_nan=True), "not train's y"
        event(f"batch_norm_apply ok, out={mode}, own statistics={own}")

    return S, call, check, _writes(mode), fastbn.batch_norm_apply


# ---- update_running_stats -------------------------------------------------------------------

def _count_arg(data, n, C, minimum):
    """``count`` as a caller passes it: an int, a float, or one per channel; now and then a bad
    one (below ``minimum``, fractional, NaN, unequal, of another shape, a bool, a string)."""
    kind = data.draw(st.sampled_from(["int"] * 3 + ["float", "array", "array", "low", "fraction",
                                                     "nan", "unequal", "shape", "bool", "text"]),
                     label="count kind")
    if kind == "int":
        return n, True
    if kind == "float":
        return float(n), True
    if kind == "array":
        return np.full(C, float(n)), True
    return {"low": minimum - 1, "fraction": n + 0.5, "nan": math.nan,
            "unequal": np.arange(C, dtype=np.float64) + n, "shape": np.full(C + 1, float(n)),
            "bool": True, "text": "n"}[kind], kind == "unequal" and C < 2


def case_update_running_stats(data):
    S = Stores()
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    C = data.draw(st.sampled_from([0, 1, 2, 3, 7]), label="C")
    native = data.draw(st.sampled_from([True] * 5 + [False]), label="native running")
    rm, rmv = _vec(data, S, "running_mean", C, dtype, writeable=True, byteorders=not native)
    rv, rvv = _vec(data, S, "running_var", C, dtype, writeable=True, byteorders=not native)
    if rv is not None and rm is not None and data.draw(st.integers(0, 9), label="other dtype") == 0:
        other = FLOATS[1 - FLOATS.index(dtype)]
        rv = place(data, S, "running_var2", rvv.astype(other), writeable=True)
    n = data.draw(st.sampled_from([2, 3, 10, 2**31 + 5]), label="n")
    count, count_ok = _count_arg(data, n, C, 2)
    mean, m64 = _stat_vec(data, S, "mean", C)
    m2, q64 = _stat_vec(data, S, "m2", C)
    momentum = data.draw(st.sampled_from([0.1] * 4 + [0.0, 1.0, 0.5, 1.5, -0.1, math.nan]),
                         label="momentum")
    rm0 = None if rm is None else np.array(rm)
    rv0 = None if rv is None else np.array(rv)
    caught = []

    def call():
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            r = fastbn.update_running_stats(rm, rv, count, mean, m2, momentum=momentum)
        caught.extend(x for x in w if issubclass(x.category, RuntimeWarning)
                      and str(x.message).startswith("update_running_stats: "))
        return r

    def check(res):
        assert res is None
        assert count_ok and 0 <= momentum <= 1, "accepted a bad count or momentum"
        with np.errstate(all="ignore"):
            var = q64 / n
            stat_ok = np.isfinite(m64) & np.isfinite(var)
            assert bool(caught) == bool((~stat_ok).any()), "RuntimeWarning iff a channel skipped"
            for name, got, before, stat in (("running_mean", rm, rm0, m64),
                                            ("running_var", rv, rv0, var * (n / (n - 1)))):
                if got is None:
                    continue
                b64 = f64(before)
                exp = (1 - momentum) * b64 + momentum * stat
                got = np.array(got)
                assert np.array_equal(got[~stat_ok], before[~stat_ok], equal_nan=True), name
                terms = np.abs((1 - momentum) * b64) + np.abs(momentum * stat)
                tol = 2 * ulp_tol(exp, dtype) + 8 * U64 * terms
                check_values(got, exp, tol, dtype, name, skip=~stat_ok)
        event("update_running_stats ok")

    return S, call, check, {"running_mean", "running_var", "running_var2"}, \
        fastbn.update_running_stats


# ---- the backward parts ---------------------------------------------------------------------

def _grad_layout(data):
    S, dtype, shape, axis = draw_layout(data)
    nd, C = len(shape), shape[axis]
    ax = axis % nd
    x = place(data, S, "x", values(data, "x", shape, dtype), writeable=False)
    x_in = np.array(x)
    if data.draw(st.booleans(), label="stats from train") and x_in.size > C > 0:
        with np.errstate(all="ignore"):
            r = reference.batch_norm_train(f64(x_in), axis=ax)
        mean = place(data, S, "mean", r.mean, writeable=False)
        invstd = place(data, S, "invstd", r.invstd, writeable=False)
        m64, i64 = np.array(mean), np.array(invstd)
    else:
        mean, m64 = _stat_vec(data, S, "mean", C)
        invstd, i64 = _stat_vec(data, S, "invstd", C)
    return S, dtype, shape, nd, C, ax, axis, x, x_in, mean, m64, invstd, i64


def case_batch_norm_backward_reduce(data):
    S, dtype, shape, nd, C, ax, axis, x, x_in, mean, m64, invstd, i64 = _grad_layout(data)
    dy = place(data, S, "dy", values(data, "dy", shape, dtype), writeable=False)
    if data.draw(st.integers(0, 19), label="other dy") == 0:
        dy = dy[..., :0] if shape[-1] else np.zeros(shape, FLOATS[1 - FLOATS.index(dtype)])
    dy_in = np.array(dy)

    def call():
        return fastbn.batch_norm_backward_reduce(dy, x, mean, invstd, axis=axis)

    def check(res):
        sum_dy, sum_dy_xhat = res
        assert sum_dy.dtype == F64 == sum_dy_xhat.dtype and sum_dy.shape == (C,)
        x64, dy64 = f64(x_in), f64(dy_in)
        n = x64.size // max(C, 1)
        with np.errstate(all="ignore"):
            ref = reference.batch_norm_backward_reduce(dy64, x64, m64, i64, axis=ax)
            refl = reference.batch_norm_backward_reduce(ld(dy_in), ld(x_in), ld(m64), ld(i64),
                                                        axis=ax)
            xhat = (x64 - channel_view(m64, nd, ax)) * channel_view(i64, nd, ax)
            fin = lambda a: np.where(np.isfinite(a), np.abs(a), 0)   # noqa: E731
            s_dy = channel_reduce(np.sum, fin(dy64), ax)
            s_dyx = channel_reduce(np.sum, fin(dy64 * xhat), ax)
            check_values(sum_dy, ref[0], ulp_tol(ref[0], F64, extra=1e-12 * s_dy), F64, "sum_dy",
                         skip=unjudged(ref[0], refl[0]))
            # as batch_norm_backward's dgamma (test_fuzz.py): fastbn sums dy * (x - mean), then
            # scales by invstd; where that product or its sum overflows float64, not judged
            under = TINY[F64] * (s_dy + n * fin(i64))
            dmax = float(np.finfo(np.float64).max)
            prod_over = channel_reduce(np.any, np.abs(dy64) * np.abs(
                x64 - channel_view(m64, nd, ax)) > dmax, ax) if x64.size else np.zeros(C, bool)
            check_values(sum_dy_xhat, ref[1], ulp_tol(ref[1], F64, extra=1e-12 * s_dyx + under),
                         F64, "sum_dy_xhat", skip=prod_over | unjudged(ref[1], refl[1])
                         | _sums_overflow(dy_in, x_in, m64, ax))
        event("batch_norm_backward_reduce ok")

    return S, call, check, set(), fastbn.batch_norm_backward_reduce


def case_batch_norm_backward_apply(data):
    S, dtype, shape, nd, C, ax, axis, x, x_in, mean, m64, invstd, i64 = _grad_layout(data)
    dyv = values(data, "dy", shape, dtype)
    dy, out, mode = draw_x_and_out(data, S, dyv, dtype, "dy")
    dy_in = np.array(dy)
    gamma, gv = _vec(data, S, "gamma", C, dtype)
    n_x = x_in.size // max(C, 1)
    if data.draw(st.booleans(), label="sums of x") and x_in.size:   # one process
        with np.errstate(all="ignore"):
            s0, s1 = reference.batch_norm_backward_reduce(f64(dy_in), f64(x_in), m64, i64, axis=ax)
        sum_dy = place(data, S, "sum_dy", s0, writeable=False)
        sum_dy_xhat = place(data, S, "sum_dy_xhat", s1, writeable=False)
        s0, s1 = np.array(sum_dy), np.array(sum_dy_xhat)
    else:                                                             # a shard of a larger batch
        sum_dy, s0 = _stat_vec(data, S, "sum_dy", C)
        sum_dy_xhat, s1 = _stat_vec(data, S, "sum_dy_xhat", C)
    total = n_x + data.draw(st.sampled_from([0, 0, 0, 1, 7, 1000]), label="more values")
    count, count_ok = _count_arg(data, max(total, 1), C, max(n_x, 1))

    def call():
        return fastbn.batch_norm_backward_apply(dy, x, mean, invstd, gamma, sum_dy, sum_dy_xhat,
                                                count, axis=axis, out=out)

    def check(dx):
        assert count_ok, "accepted a bad count"
        if out is not None:
            assert dx is out
        n = float(np.asarray(count, np.float64).flat[0]) if C else 1.0
        x64, dy64 = f64(x_in), f64(dy_in)
        with np.errstate(all="ignore"):
            ref = reference.batch_norm_backward_apply(dy64, x64, m64, i64, f64(gv), s0, s1, n,
                                                      axis=ax)
            refl = reference.batch_norm_backward_apply(ld(dy_in), ld(x_in), ld(m64), ld(i64),
                                                       ld(gv), ld(s0), ld(s1), n, axis=ax)
            base = 0.0 if not x64.size else backward_bound(
                dy64, x64, m64, i64, f64(gv), ax, sums=(s0, s1), count=n) * (U[dtype] / 2.0 ** -24)
            fin = lambda a: np.where(np.isfinite(a), np.abs(a), 0)   # noqa: E731
            # the float64 coefficients' rounding (1e-12 of the terms) and gradual underflow
            tol = np.nan_to_num(base, nan=0.0, posinf=np.inf) + 1e-12 * fin(f64(ref)) \
                + 1e-12 * np.nan_to_num(base / U[dtype], nan=0.0) \
                + TINY[dtype] * (fin(dy64) + fin(x64 - channel_view(m64, nd, ax)) + 1)
            check_values(dx, ref, tol, dtype, "dx", skip=unjudged(ref, refl))
        event(f"batch_norm_backward_apply ok, out={mode}")

    return S, call, check, _writes(mode, "dy"), fastbn.batch_norm_backward_apply


# ---- fold_batch_norm ------------------------------------------------------------------------

FOLD_DTYPES = FLOATS + HALVES


def _fold_vec(data, S, name, C, *, optional, positive=False):
    if optional and data.draw(st.booleans(), label=f"{name} None"):
        return None, None
    dtype = data.draw(st.sampled_from(FOLD_DTYPES), label=f"{name} dtype")
    v = any_values(data, name, (C,), dtype, nonfinite=False)
    if positive:
        v = np.abs(v)
        if C and data.draw(st.integers(0, 9), label=f"{name} negative") == 0:
            v[0] = -v[0] if v[0] else -1
    a = place(data, S, name, v, writeable=False, byteorders=swappable(dtype))
    return a, np.array(a, dtype=np.longdouble)


def _unit(dtype):
    """(unit roundoff, smallest subnormal) of a float dtype, bfloat16 included."""
    return {2: (2.0 ** -11, 2.0 ** -24), 4: (2.0 ** -24, 2.0 ** -149),
            8: (2.0 ** -53, 2.0 ** -1074)}[dtype.itemsize] if not is_bfloat16(dtype) \
        else (2.0 ** -8, 2.0 ** -133)


def case_fold_batch_norm(data):
    S = Stores()
    dtype = data.draw(st.sampled_from(FOLD_DTYPES), label="dtype")
    shape = shapes(data, "shape", min_dims=1, max_dims=4, max_side=5)
    nd = len(shape)
    axis = data.draw(st.integers(-nd - 1, nd), label="axis")
    C = shape[axis] if -nd <= axis < nd else 1
    w = place(data, S, "weight", any_values(data, "weight", shape, dtype, nonfinite=False),
              writeable=False, byteorders=swappable(dtype))
    w_in = np.array(w, dtype=np.longdouble)
    bias, bl = _fold_vec(data, S, "bias", C, optional=True)
    rm, rml = _fold_vec(data, S, "running_mean", C, optional=False)
    rv, rvl = _fold_vec(data, S, "running_var", C, optional=False, positive=True)
    gamma, gl = _fold_vec(data, S, "gamma", C, optional=True)
    beta, tl = _fold_vec(data, S, "beta", C, optional=True)
    eps = data.draw(st.sampled_from(EPS), label="eps")

    def call():
        return fastbn.fold_batch_norm(w, bias, rm, rv, gamma, beta, eps=eps, axis=axis)

    def check(res):
        wf, bf = res
        assert wf.dtype == dtype and bf.dtype == dtype and wf.dtype.isnative
        assert wf.shape == shape and bf.shape == (C,)
        assert not np.shares_memory(wf, w), "the folded weight is the input's memory"
        ax = axis % nd
        with np.errstate(all="ignore"):
            g = np.ones(C, np.longdouble) if gl is None else gl
            s = g / np.sqrt(rvl + np.longdouble(eps))
            we = w_in * s.reshape([C if k == ax else 1 for k in range(nd)])
            be = ((np.zeros(C, np.longdouble) if bl is None else bl) - rml) * s \
                + (0 if tl is None else tl)
            u, tiny = _unit(dtype)
            for name, got, exact in (("weight", wf, we), ("bias", bf, be)):
                e = np.asarray(exact, np.float64)
                g64 = np.asarray(got, np.float64)
                # float64 overflowed inside (gamma / sqrt(var) or a product): not judged
                judged = np.isfinite(e) & (np.abs(np.asarray(exact)) <= np.finfo(np.float64).max)
                assert np.all(np.isfinite(g64[judged])), f"{name}: a finite fold gave inf/NaN"
                tol = (u + 8 * U64) * np.abs(e) + tiny / 2 + 8 * U64 * np.abs(e)
                bad = judged & ~(np.abs(g64 - e) <= tol)
                assert not bad.any(), f"{name}: got {g64[bad][:4]}, expected {e[bad][:4]}"
        event(f"fold_batch_norm ok, {dtype}")

    return S, call, check, set(), fastbn.fold_batch_norm


# ---- the generic test -----------------------------------------------------------------------

MIXED = HALVES + HALVES + FLOATS      # half-precision arrays, now and then among float32/64

CASES = {
    "batch_norm_stats": case_batch_norm_stats,
    "merge_stats": case_merge_stats,
    "batch_norm_apply": case_batch_norm_apply,
    "update_running_stats": case_update_running_stats,
    "batch_norm_backward_reduce": case_batch_norm_backward_reduce,
    "batch_norm_backward_apply": case_batch_norm_backward_apply,
    "fold_batch_norm": case_fold_batch_norm,
    "global_norm[half]": functools.partial(case_global_norm, dtypes=MIXED),
    "clip_grad_norm[half]": functools.partial(case_clip_grad_norm, dtypes=MIXED),
    "clip_grad_value[half]": functools.partial(case_clip_grad_value, dtypes=MIXED),
    "clip_by_norm[half]": functools.partial(case_clip_by_norm, dtypes=HALVES),
}


def test_every_new_function_has_a_case():
    import fastbn.batchnorm_parts
    assert set(fastbn.batchnorm_parts.__all__) | {"fold_batch_norm"} <= set(CASES)
    assert {n + "[half]" for n in fastbn.clip.__all__} <= set(CASES)


@pytest.mark.fuzz
@pytest.mark.slow_under_qemu      # as test_fuzz: .ci/run's qemu step deselects it
@pytest.mark.parametrize("name", list(CASES))
@FUZZ
@given(data=st.data())
def test_fuzz_parts(name, data):
    run_case(CASES[name], data)


@pytest.mark.skipif(len(HALVES) < 2, reason="needs ml_dtypes")
def test_bfloat16_cast_rounds_once():
    """The clipping cases' expected bits T(float64(x) * float64(T(coef))) need float64 rounded
    once to bfloat16: 1 + 2**-8 + 2**-30 is above the tie, so 1 + 2**-7 (through float32 it
    would be the tie 1 + 2**-8, rounded to even: 1)."""
    v = np.array([1 + 2.0 ** -8 + 2.0 ** -30, -(1 + 2.0 ** -8 + 2.0 ** -30)])
    assert np.array_equal(cast(v, HALVES[1]).astype(np.float64), [1 + 2.0 ** -7, -1 - 2.0 ** -7])
    assert cast(v, np.float32).astype(HALVES[1])[0] == 1.0      # what twice would give


# ---- bugs the fuzzing found, fixed in src/fastbn/batchnorm_parts.py: pinned --------------------

@pytest.mark.parametrize("bad_mean", [math.nan, math.inf])
def test_merge_one_shard_nonfinite_mean(bad_mean):
    """One shard with a non-finite mean: its merged M2 is not finite, as the reference's
    ``q + n (mean_k - mean)**2`` (NaN) and as it is with two shards (NaN or inf)."""
    counts, means, m2s = [[3.0]], [[bad_mean]], [[2.0]]
    ref = reference.merge_stats(counts, means, m2s)
    assert np.isnan(ref[2][0])
    two = fastbn.merge_stats([[3.0], [2.0]], [[bad_mean], [1.0]], [[2.0], [1.0]])
    assert not np.isfinite(two[2][0])
    count, mean, m2 = fastbn.merge_stats(counts, means, m2s)
    assert np.array_equal(mean, ref[1], equal_nan=True)
    assert not np.isfinite(m2[0]), m2


@pytest.mark.parametrize("sum_dy_xhat, invstd", [(0.0, 0.0), (1.5, 0.0), (1.5, 5e-324)])
def test_backward_apply_tiny_invstd(sum_dy_xhat, invstd):
    """invstd 0 (a channel of infinite variance, e.g. reference.batch_norm_train of
    [[0, 1.9e154]]) or subnormal: dx = gamma * invstd * (...) is 0 or about invstd, as
    batch_norm_backward gives; sum_dy_xhat / invstd (0 / 0 or an overflow) must not enter."""
    x, dy = np.array([[1.0, 3.0]]), np.array([[1.0, 2.0]])
    mean, invstd = np.array([2.0]), np.array([invstd])
    exp = reference.batch_norm_backward_apply(dy, x, mean, invstd, None, [3.0], [sum_dy_xhat], 2,
                                              axis=0)
    assert np.all(np.abs(exp) <= 1e-300)
    dx = fastbn.batch_norm_backward_apply(dy, x, mean, invstd, None, [3.0], [sum_dy_xhat], 2,
                                          axis=0)
    assert np.all(np.abs(dx - exp) <= 1e-300), dx


@pytest.mark.parametrize("invstd", [math.nan, math.inf])
def test_backward_reduce_empty_nonfinite_invstd(invstd):
    x = np.zeros((0, 2))
    sums = fastbn.batch_norm_backward_reduce(x, x, [0.0, 0.0], [1.0, invstd])
    assert np.array_equal(sums[0], [0.0, 0.0]) and np.array_equal(sums[1], [0.0, 0.0]), sums
