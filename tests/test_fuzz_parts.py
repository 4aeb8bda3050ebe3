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
The expected values are the reference's formulas (src/fastbn/reference.py) evaluated in
np.longdouble (x86-64: a 15-bit exponent), where nothing overflows inside for float32/float64
data -- the reference itself computes the parts in float64, whose own overflows (``n_k mean_k``,
``(x - mean) * invstd`` at DBL_MAX, ``sum_dy_xhat / invstd``) made it unsound near float64's
maximum.  Tolerances are computed in np.longdouble too.  Comparison (``judge``): NaN exactly
where the expected value is NaN, the same infinities, finite values within the bound (plus 4096
smallest normals: gradual underflow), values beyond the dtype's range +-max or +-inf of their
sign, and where the bound itself passes the range (the result is rounding noise of terms beyond
it) +-inf of either sign.  Where fastbn's float64 arithmetic *documents* an intermediate that
can pass float64's range though the result does not (listed per function), a non-finite result
is accepted and a finite one is judged all the same: never a finite wrong value.

* ``batch_norm_stats``: count exact; mean and M2 of every channel of finite values against the
  exact (rational) ones, the mean within its float64 accumulation error, M2 within 1e-12
  relative (the kernel of batch_norm_train, whose variance the fuzz of test_fuzz.py judges so).
  M2 above DBL_MAX / 16: the kernel's shifted sums may overflow (as batch_norm_train's), so the
  mean and M2 may be non-finite there.  A channel holding NaN or +-inf has a non-finite mean or
  M2.  Also: the same statistics through ``batch_norm_train`` give its mean and invstd bit for
  bit (documented).
* ``merge_stats``: against the whole-set formulas of ``reference.merge_stats`` in np.longdouble,
  with the rounding bound of Chan's update, P the number of shards: the mean within 8 P u of the
  largest shard mean (the update ``mean + delta * w`` rounds relative to the shards' means, not
  to the result: means 1 and 0 with weights 1 and 1000 cancel), M2 within 8 P u of the
  magnitudes it adds (the per-shard M2s, ``n_k delta_k**2``, and ``n_k |delta_k| max |mean_k|``
  for the running mean's rounding inside ``delta``).  Finite shards: the mean is finite (also
  for means more than DBL_MAX apart), M2 never NaN; M2 above DBL_MAX / 4 may be +inf (the step's
  ``delta**2``, up to twice the M2 it adds, overflows first).  Shards of count 0 are skipped: a
  NaN there does not reach the result.
* ``batch_norm_apply``: y within the documented forward bound (tests/bn_helpers.py); where
  ``gamma * invstd`` itself passes float64's range (float64 gamma near its max), non-finite
  accepted (its float64 coefficient is inf, as batch_norm_train's; an infinite x whose scale
  rounds to 0 in float64 gives NaN, inf * 0), and for an infinite mean
  NaN or the twin's infinity (the kernel splits the mean as ``T(mean)`` plus the rest: inf -
  inf, as batch_norm_infer's for an infinite running mean); given the statistics of ``x``
  itself, bit for bit ``batch_norm_train``'s y (documented).
* ``update_running_stats``: the reference's update within two ulps plus the float64 rounding
  of its terms; channels whose statistics are not finite unchanged, with a RuntimeWarning.
* ``batch_norm_backward_reduce``: the sums within 4 float64 ulps plus 1e-12 of the sums of
  magnitudes (their accumulation).  ``sum_dy_xhat`` is defined as sum(dy * xhat), computed as
  ``invstd * sum(dy * (x - mean))`` (batch_norm_backward's dgamma, the same kernel): the two
  differ only by 0 * inf (invstd inf at x == mean: NaN or +-inf), and either is accepted.
  Where sum |dy|, sum |dy (x - mean)| or |x - mean| pass DBL_MAX, the float64 accumulation may
  overflow (inf, or NaN from inf - inf) though the exact sum does not.  An empty batch gives 0.
* ``batch_norm_backward_apply``: dx within bn_helpers.backward_bound for the given sums and
  count (``dtype``'s unit), evaluated in np.longdouble (in float64 it collapsed to ~1e-26 where
  dx is rounding noise of 1e308-sized terms), plus gradual underflow of ``gamma * invstd`` in
  float64, which enters c and s times sum_dy / n and invstd sum_dy_xhat / n; where
  ``gamma * invstd`` passes float64's range, non-finite accepted, and for non-finite inputs
  (an inf in dy, x, the statistics or the sums) NaN or the twin's infinity (the kernel's
  fallback for an overflowing intermediate, the factored form, meets inf * 0: e.g. xhat inf
  times sum_dy_xhat 0).  Any invstd, subnormal too.
* ``fold_batch_norm``: within one rounding to the weight's dtype (plus float64's) of the folded
  values in np.longdouble, plus the gradual underflow of a subnormal float64 scale; a folded
  value beyond the dtype's range, or a scale
  ``gamma / sqrt(running_var + eps)`` beyond float64's, raises instead (the latter gave NaN for
  a zero weight, 0 * inf).
* clipping on float16/bfloat16 (mixed with float32/float64): test_fuzz.py's cases, whose
  expected bits ``T(float64(x) * float64(T(coef)))`` round float64 once to ``T``.

The bugs this fuzzing found are fixed and pinned in tests/test_distributed.py (section "bugs a
fuzz of the parts found"), their inputs judged here like any other: merge_stats' M2 of one
shard with a non-finite mean, and its mean of finite means more than DBL_MAX apart;
backward_apply with invstd 0, subnormal, or small enough that sum_dy_xhat / invstd overflows
(or large enough that it underflows), and its factored fallback's xhat * 0 with xhat overflowed;
backward_reduce of an empty batch with a non-finite invstd; and the backward coefficient
``-g invstd invstd sum / n`` that passed through a product below float64's normal range for
invstd < ~1e-103 (batch_norm_backward's too: float64 data of scale 1e103 and up), or above
float64's range for invstd > ~1e102 (NaN for a zero sum); fold_batch_norm's scale beyond
float64 (a zero weight folded to NaN).

Running it: as tests/test_fuzz.py (``FASTBN_FUZZ=long`` / ``dev``, ``FASTBN_FUZZ_EXAMPLES``): the
"ci" profile (derandomized) runs 300 examples per function, about 45 s on the shared 2-core
machine (.ci/run step 1), and 30 in step 5.  It was run green at
2000 examples per function (``FASTBN_FUZZ_EXAMPLES=2000``, about 10 minutes).
"""
import functools
import math
import warnings

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import fastbn
from fastbn import reference
from strategies import FLOATS, Stores, place, shapes, values
from test_fuzz import (EPS, FUZZ, TINY, U, _vec, _writes, rounded_beyond_range,
                       any_values, case_clip_by_norm, case_clip_grad_norm, case_clip_grad_value,
                       case_global_norm, cast, channel_reduce, check_values,
                       draw_layout, draw_x_and_out, exact_stats, f64, is_bfloat16, ld, run_case,
                       swappable, ulp_tol)

U64 = 2.0 ** -53
F64 = np.dtype(np.float64)


try:                                   # bfloat16 is optional (ml_dtypes)
    import ml_dtypes
    HALVES = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
except ImportError:
    HALVES = [np.dtype(np.float16)]


LD = np.longdouble
LDMAX64 = LD(np.finfo(np.float64).max)


def judge(got, exp, tol, dtype, what, *, alt=None, may_overflow=None):
    """``got`` (of ``dtype``) against ``exp``, the documented formula evaluated in np.longdouble
    (x86-64: a 15-bit exponent, so nothing overflows inside for float32/float64 data), element
    by element: NaN where ``exp`` is NaN, its infinities, finite values within ``tol`` (computed
    in np.longdouble too, plus 4096 smallest normals of ``dtype``: gradual underflow), values
    beyond ``dtype``'s range within ``tol`` +-max or +-inf on that side (test_fuzz's
    rounded_beyond_range; where ``tol`` itself passes the range, ``got`` is rounding noise of
    terms beyond it, of either sign).

    ``alt``: a second exact evaluation of the same definition, which differs from ``exp`` only
    by IEEE's 0 * inf (an undefined value; e.g. xhat = (x - mean) * inf at x == mean): matching
    either is accepted.  ``may_overflow``: positions where a float64 intermediate fastbn
    documents (its accumulation, a coefficient) passes float64's range though ``exp`` does not:
    a non-finite ``got`` is accepted there, a finite one is still judged.
    """
    got = np.asarray(got)
    assert got.dtype.newbyteorder("=") == dtype, (what, got.dtype, dtype)
    g = got.astype(LD)
    exp = np.broadcast_to(np.asarray(exp, LD), g.shape)
    with np.errstate(all="ignore"):
        tol = np.broadcast_to(np.nan_to_num(np.asarray(tol, LD), nan=0.0, posinf=np.inf), g.shape) \
            + 4096 * LD(np.finfo(dtype).tiny)

        def matches(e):
            fin = np.isfinite(e)
            return (np.isnan(e) & np.isnan(g)) | (np.isinf(e) & (g == e)) \
                | (fin & ((np.abs(g - e) <= tol) | rounded_beyond_range(g, e, tol, dtype)))

        ok = matches(exp)
        if alt is not None:
            ok |= matches(np.broadcast_to(np.asarray(alt, LD), g.shape))
    if may_overflow is not None:
        ok |= np.broadcast_to(may_overflow, g.shape) & ~np.isfinite(g)
    bad = ~ok
    assert not bad.any(), (f"{what}: {bad.sum()} of {bad.size} values off, e.g. got "
                           f"{g[bad][:4]} expected {exp[bad][:4]} tolerance {tol[bad][:4]}")


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
        # M2 above DBL_MAX / 16: the kernel's shifted sums, (x - shift)**2 and sum(x - shift),
        # may pass float64's max (as batch_norm_train's, the same kernel): the mean and M2 may
        # then be inf or NaN, or else they are judged; M2 beyond the range is +inf
        near_max = ~(m2_e <= np.finfo(np.float64).max / 16)
        fin = ~nonfin
        judge(mean[fin], mean_e[fin], ulp_tol(mean_e, F64, extra=1e-12 * sum_abs)[fin], F64,
              "mean", may_overflow=near_max[fin])
        judge(m2[fin], m2_e[fin], 1e-12 * np.abs(m2_e[fin]), F64, "m2",
              may_overflow=near_max[fin])
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
            used = n_k > 0
            assert np.array_equal(count, np.sum(np.where(used, n_k, 0), axis=0)), "count"
            # a NaN or inf in a used shard: not finite; in a skipped shard: no effect
            nonfin = np.any(used & ~(np.isfinite(mu_k) & np.isfinite(q_k)), axis=0)
            nan_mean = np.any(used & np.isnan(mu_k), axis=0)
            assert np.all(np.isnan(mean[nan_mean])), "NaN mean lost"
            assert np.all(np.isnan(m2[nan_mean])), "NaN mean lost in m2"
            assert not (np.isfinite(mean) & np.isfinite(m2))[nonfin].any(), "non-finite lost"
            # finite channels: the whole-set formulas in np.longdouble (n_k mean_k, squares of
            # differences up to 2 DBL_MAX: nothing overflows there, as it does in the float64 twin)
            fin = ~nonfin
            nl, ml, ql = (np.where(used, a, 0).astype(LD)[:, fin] for a in ins)
            rc = np.sum(nl, axis=0)
            rm = np.sum(nl * ml, axis=0) / np.maximum(rc, 1)
            dl = np.where(used[:, fin], ml - rm, 0)
            rq = np.sum(ql + nl * dl * dl, axis=0)
            # Chan's update rounds the running mean relative to the shards' means, not to the
            # result (mean + delta * w cancels: shards of mean 1 and 0, weights 1 and 1000), and
            # M2 relative to what it adds (the rounded mean inside delta: n_k |delta_k| big)
            big = np.max(np.abs(ml), axis=0, initial=0)
            k = 8 * max(P, 1) * U64
            t_m2 = np.sum(ql + nl * dl * dl + nl * np.abs(dl) * big, axis=0)
            judge(mean[fin], rm, k * big, F64, "mean")
            # M2 beyond DBL_MAX / 4: the step's delta**2 (up to twice the M2 it adds) may pass
            # float64's max first: +inf then, never NaN
            assert not np.isnan(m2[fin]).any(), "NaN M2 of finite shards"
            judge(m2[fin], rq, k * t_m2, F64, "m2", may_overflow=rq > LDMAX64 / 4)
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
        with np.errstate(all="ignore"):
            exp = _apply_ld(x_in, m64, i64, gv, bv, ax)
            # the forward bound (tests/bn_helpers.py) in np.longdouble, with the float64
            # rounding of s = gamma invstd (1e-12) and gradual underflow
            u = U[dtype]
            m = _ch(m64, nd, ax)
            sc = _ch(i64, nd, ax) * (1 if gv is None else _ch(gv, nd, ax))
            c = np.abs(0 if bv is None else _ch(bv, nd, ax))
            d = ld(x_in) - m
            tol = (4 * u + 1e-12) * np.abs(d * sc) + 2 * u * c + 4 * u * u * np.abs(m * sc) \
                + TINY[dtype] * (np.abs(d) + u * np.abs(m) + np.abs(sc) + 1)
            # s beyond float64's range (float64 gamma near its max times invstd > 1): fastbn's
            # float64 coefficient is inf, y not finite (as batch_norm_train's and _infer's);
            # an infinite mean: y not finite, NaN or the twin's infinity (the kernel splits
            # the mean as (T)mean + the rest, inf - inf, as batch_norm_infer's)
            # and an infinite x times a scale that rounds to 0 in float64 (|gamma invstd| below
            # half its smallest subnormal): NaN, inf * 0
            judge(y, exp, tol, dtype, "y",
                  may_overflow=(np.abs(sc) > LDMAX64) | np.isinf(_ch(m64, nd, ax))
                  | ((np.asarray(sc, np.float64) == 0) & (sc != 0) & np.isinf(ld(x_in))))
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

# The twins of fastbn.reference in np.longdouble (the reference's parts compute in float64,
# whatever their inputs): the same formulas, in the same order.

def _apply_ld(x, mean, invstd, gamma, beta, ax):
    nd = np.ndim(x)
    y = (ld(x) - _ch(mean, nd, ax)) * _ch(invstd, nd, ax)
    y = y if gamma is None else y * _ch(gamma, nd, ax)
    return y if beta is None else y + _ch(beta, nd, ax)


def _reduce_ld(dy, x, mean, invstd, ax):
    nd = np.ndim(x)
    xhat = (ld(x) - _ch(mean, nd, ax)) * _ch(invstd, nd, ax)
    return channel_reduce(np.sum, ld(dy), ax), channel_reduce(np.sum, ld(dy) * xhat, ax)


def _backward_apply_ld(dy, x, mean, invstd, gamma, sum_dy, sum_dy_xhat, n, ax):
    nd = np.ndim(x)
    inv = _ch(invstd, nd, ax)
    xhat = (ld(x) - _ch(mean, nd, ax)) * inv
    g = 1 if gamma is None else _ch(gamma, nd, ax)
    return g * inv * (ld(dy) - _ch(sum_dy, nd, ax) / n - xhat * _ch(sum_dy_xhat, nd, ax) / n)


def _ch(a, nd, ax):
    """A per-channel vector in np.longdouble, shaped to broadcast along axis ``ax``."""
    return ld(a).reshape([-1 if k == ax else 1 for k in range(nd)])


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
        n = x_in.size // max(C, 1)
        if not n:
            assert not sum_dy.any() and not sum_dy_xhat.any(), "an empty batch's sums are 0"
            return
        with np.errstate(all="ignore"):
            dyl, d = ld(dy_in), ld(x_in) - _ch(m64, nd, ax)
            sdy, sdyx = _reduce_ld(dy_in, x_in, m64, i64, ax)
            # fastbn's definition, invstd * sum(dy * (x - mean)) (batch_norm_backward's dgamma):
            # it differs from sum(dy * xhat) only by 0 * inf (invstd inf at x == mean)
            sdd = channel_reduce(np.sum, dyl * d, ax)
            factored = ld(i64) * sdd
            fin = lambda a: np.where(np.isfinite(a), np.abs(a), 0)   # noqa: E731
            s_dy = channel_reduce(np.sum, fin(dyl), ax)
            s_dyx = channel_reduce(np.sum, fin(dyl * d), ax)
            rel = 4 * 2.0 ** -52 + 1e-12
            # the float64 sums may overflow where sum |dy| (or |dy (x - mean)|, or x - mean
            # itself) passes float64's max though the sum does not: inf or NaN (inf - inf)
            # there, as batch_norm_backward's (the same kernel, bit for bit); a finite sum
            # is judged all the same
            judge(sum_dy, sdy, rel * fin(sdy) + 1e-12 * s_dy, F64, "sum_dy",
                  may_overflow=s_dy > LDMAX64)
            # underflow: fastbn scales sum(dy * (x - mean)) by invstd once, the reference sums
            # dy * xhat whose factors may underflow: half a subnormal per term, times |dy|
            under = TINY[F64] * (s_dy + n * fin(ld(i64)))
            over = (s_dyx > LDMAX64) | channel_reduce(np.any, np.abs(d) > LDMAX64, ax)
            # an infinite invstd times a sum(dy (x - mean)) within that float64 sum's rounding
            # (1e308-sized terms cancelling, or products below the subnormals, half a subnormal
            # each): its sign, or 0 (NaN), is rounding noise
            noise = np.isinf(ld(i64)) & (np.abs(sdd) <= 1e-12 * s_dyx + n * TINY[F64])
            judge(sum_dy_xhat, sdyx, rel * fin(sdyx) + 1e-12 * s_dyx * fin(ld(i64)) + under, F64,
                  "sum_dy_xhat", alt=factored, may_overflow=over | noise)
        event("batch_norm_backward_reduce ok")

    return S, call, check, set(), fastbn.batch_norm_backward_reduce


def _apply_grad_tol(dy, x, mean, invstd, gamma, sum_dy, sum_dy_xhat, n, ax, dtype):
    """(bound, g): bn_helpers.backward_bound's per-element bound of dx = dy g + ((x - mean) s
    + c) for the given (global) sums, in np.longdouble, where neither its terms (1e308-sized:
    dx is their rounding noise) nor sum_dy_xhat / invstd (a subnormal invstd) overflow, with
    ``dtype``'s unit; plus the float64 coefficients' rounding (1e-12 of the terms) and
    gradual underflow, of g in float64 too.  g = gamma invstd per channel."""
    nd = np.ndim(x)
    u, e = U[dtype], TINY[dtype]
    inv = _ch(invstd, nd, ax)
    g = (1 if gamma is None else _ch(gamma, nd, ax)) * inv
    d, m = ld(x) - _ch(mean, nd, ax), _ch(mean, nd, ax)
    s = -g * inv * (_ch(sum_dy_xhat, nd, ax) / n)  # -g invstd**2 sum(dy (x - mean)) / n
    c = -g * (_ch(sum_dy, nd, ax) / n)
    terms = np.abs(ld(dy) * g) + np.abs(d * s) + np.abs(c)
    bound = (8 * u + 8e-12) * terms + 4 * u * u * np.abs(m * s) \
        + e * (np.abs(ld(dy)) + np.abs(d) + u * np.abs(m) + 2)
    # g subnormal in float64 (a subnormal gamma or invstd): its absolute rounding, half of
    # float64's smallest subnormal, enters c = -g sum_dy / n and s = -g invstd sum_dy_xhat / n
    # too, times those factors (1e308-sized sums: an error far above the relative terms)
    under64 = TINY[F64] * (np.abs(_ch(sum_dy, nd, ax) / n)
                           + np.abs(d * inv * (_ch(sum_dy_xhat, nd, ax) / n)))
    return bound + under64, g


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
        with np.errstate(all="ignore"):
            exp = _backward_apply_ld(dy_in, x_in, m64, i64, gv, s0, s1, n, ax)
            tol, g = _apply_grad_tol(dy_in, x_in, m64, i64, gv, s0, s1, n, ax, dtype)
            # a coefficient beyond float64's range (float64 gamma near its max times invstd > 1:
            # g = gamma invstd is inf in float64, as in batch_norm_backward): dx not finite
            # non-finite inputs (a caller's inf in dy, x, the statistics or the sums): dx not
            # finite, NaN or the twin's infinity (the kernel's fallback for an overflowing
            # intermediate, the factored form, meets inf * 0 there)
            inputs_inf = ~np.isfinite(sum(_ch(a, np.ndim(x_in), ax) for a in (m64, i64, s0, s1))
                                      + ld(dy_in) + ld(x_in))
            judge(dx, exp, tol, dtype, "dx", may_overflow=(np.abs(g) > LDMAX64) | inputs_inf)
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
            # the float64 scale s subnormal (a subnormal gamma): its absolute rounding, half of
            # float64's smallest subnormal, times what it multiplies
            factor = {"weight": np.abs(w_in) + 0 * we,
                      "bias": np.abs((np.zeros(C, LD) if bl is None else bl) - rml)}
            # the bias's float64 steps round (b - mean) and its product with s at their own
            # magnitude, before beta is added: where beta cancels them, that is not |exact|'s
            terms = {"weight": 0 * we, "bias": factor["bias"] * np.abs(s)}
            for name, got, exact in (("weight", wf, we), ("bias", bf, be)):
                e = np.asarray(exact, np.float64)
                g64 = np.asarray(got, np.float64)
                # a folded value beyond float64 raises (a scale beyond it too): every one judged
                judged = np.isfinite(e) & (np.abs(np.asarray(exact)) <= np.finfo(np.float64).max)
                assert np.all(np.isfinite(g64[judged])), f"{name}: a finite fold gave inf/NaN"
                tol = (u + 8 * U64) * np.abs(e) + tiny / 2 + 8 * U64 * np.abs(e) \
                    + TINY[F64] * np.asarray(factor[name], np.float64) \
                    + 8 * U64 * np.asarray(terms[name], np.float64)
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


# ---- found by long runs (FASTBN_FUZZ=long), fixed ------------------------------------------

def test_infinite_x_with_a_subnormal_scale_stays_infinite():
    # y = (x - mean) s + c with s = gamma invstd = 1.3e-321: inf for x = inf, which the float64
    # redo (every factor times 2^-32, for an overflow inside) turned into NaN (s 2^-32 = 0)
    y = fastbn.batch_norm_apply(np.array([[np.inf], [1.0]]), np.array([0.1257]),
                                np.array([0.1257]), np.array([1e-320]), np.array([0.5]))
    assert y[0, 0] == np.inf and y[1, 0] == 0.5


def test_zero_gamma_gradient_with_an_overflowing_bracket():
    # gamma = -0: dx = 0 exactly, where the factored form's bracket dy - mdy - xhat q overflows
    # float64 even scaled by 2^-32 (x - mean = 2 DBL_MAX, xhat q ~ 8e317): was 0 * inf = NaN
    big = float(np.finfo(np.float64).max)
    dx = fastbn.batch_norm_backward_apply(np.array([[0.125]]), np.array([[big]]), np.array([-big]),
                                          np.array([0.125]), np.array([-0.0]), np.array([0.125]),
                                          np.array([1.7e10]), 1)
    assert dx[0, 0] == 0.0


def test_subnormal_scale_with_an_overflowing_centre():
    # x - mean = 2 DBL_MAX with s = gamma invstd = 5e-324: y = (x - mean) s = 1.8e-15 and
    # dx = g (dy - xhat sum_dy_xhat / n) = -1.8e-15, which the float64 redo (every factor times
    # 2^-32, s and g too) gave as 0: s 2^-32 underflowed.  Now s and g stay whole.
    big = float(np.finfo(np.float64).max)
    x, mean, invstd, gamma = np.array([[big]]), np.array([-big]), np.array([1.0]), np.array([5e-324])
    y = fastbn.batch_norm_apply(x, mean, invstd, gamma)
    assert y[0, 0] == big * 5e-324 * 2                    # 2^-49 (1 - 2^-53), exactly
    dx = fastbn.batch_norm_backward_apply(np.array([[0.125]]), x, mean, invstd, gamma,
                                          np.array([0.0]), np.array([1.0]), 1)
    assert dx[0, 0] == -big * 5e-324 * 2                  # the 0.125 g is below its ulp


def test_the_checkers_infinite_invstd_times_an_underflowed_sum():
    # Found by a long run (the checker's model, fixed): dy = 5e-324 times x - mean = 4.6e-9 is
    # below float64's subnormals, so sum(dy (x - mean)) is 0 and sum_dy_xhat = 0 * inf = NaN
    # where the exact product is +inf: within the underflow of the sum's products (half a
    # subnormal each), the sign of an infinite invstd's product is noise, as the checker already
    # accepted for 1e308-sized terms cancelling.
    dy, x = np.array([[5e-324]]), np.array([[0.1257302210933933]])
    mean, invstd = np.array([0.12573022], np.float32), np.array([np.inf], np.float32)
    assert 0 < abs(ld(dy[0, 0]) * (ld(x[0, 0]) - ld(mean[0]))) < ld(TINY[F64]) / 2
    with np.errstate(invalid="ignore"):
        sum_dy, sum_dy_xhat = fastbn.batch_norm_backward_reduce(dy, x, mean, invstd, axis=1)
    assert sum_dy[0] == 5e-324 and np.isnan(sum_dy_xhat[0])


def test_the_checkers_fold_bias_cancelling_beta():
    # Found by a long run (the checker's model, fixed): bias' = (b - mean) s + beta with
    # (0.1257 - 3) s = -2.87 and beta = 3 cancelling to 0.126: its float64 steps round at 2.87's
    # magnitude, 4.4e-16 here, beyond 17 float64 units of the result (2.4e-16), which the checker
    # had taken as the whole bound.
    f32 = lambda *v: np.array(v, np.float32)   # noqa: E731
    b, rm, rv, beta = f32(0.12573022), f32(3.0), f32(1.0003456), f32(3.0)
    _, bf = fastbn.fold_batch_norm(np.ones(1), b, rm, rv, None, beta, eps=1e-5)
    s = 1 / np.sqrt(ld(rv[0]) + ld(1e-5))
    exact = (ld(b[0]) - ld(rm[0])) * s + ld(beta[0])
    err = abs(ld(bf[0]) - exact)
    terms = abs((ld(b[0]) - ld(rm[0])) * s)
    assert 17 * 2.0 ** -53 * abs(exact) < err <= 8 * 2.0 ** -53 * (abs(exact) + terms)
