"""The normalization family against its oracle, one harness for every norm.

Specification (for layer_norm, rms_norm, group_norm and instance_norm alike, over the layouts of
tests/norm_helpers.py: trailing and leading axes, several axes, NCHW, NHWC, a middle channel
axis, whole-channel runs and short ones, multi-segment groups, one-value groups):
- y and dx within the documented per-element bound (tests/norm_helpers.py) of their exact
  values, in both dtypes; float64 y also within 1e-12 of fastbn.reference's; the statistics
  equal to the reference's float64 values rounded once (float32) or within 1e-12 (float64);
  dgamma, dbeta within 1e-5 (float32) or 1e-12 (float64) of the reference's scale.
- without gamma/beta, the same as with ones and zeros, bit for bit;
- results have x's dtype and the documented shapes.
"""
import numpy as np
import pytest

from norm_helpers import CASE_IDS, CASES, check_backward_bound, check_forward_bound, make

DTYPES = [np.float32, np.float64]
EPS = 1e-5


def _close(got, want, dtype, what, scale=None):
    got64 = np.asarray(got, dtype=np.float64)
    scale = np.max(np.abs(want)) if scale is None else scale
    tol = (1e-12 if dtype == np.float64 else 1e-5) * max(scale, 1e-300)
    assert np.max(np.abs(got64 - want), initial=0.0) <= tol, f"{what}: {np.max(np.abs(got64 - want))}"


def _run(norm, shape, kw, dtype, rng, affine=True):
    x, gamma, beta = make(norm, shape, kw, dtype, rng, affine=affine)
    fwd = norm.forward(norm.fb(), x, gamma, beta, kw, eps=EPS)
    g64 = None if gamma is None else gamma.astype(np.float64)
    b64 = None if beta is None else beta.astype(np.float64)
    ref = norm.forward(norm.ref(), x.astype(np.float64), g64, b64, kw, eps=EPS)
    return x, gamma, beta, fwd, ref


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm, shape, kw", CASES, ids=CASE_IDS)
def test_forward_matches_the_oracle(norm, shape, kw, dtype, rng):
    x, gamma, beta, fwd, ref = _run(norm, shape, kw, dtype, rng)
    y, stats = fwd[0], fwd[1:]
    assert y.shape == x.shape and y.dtype == x.dtype
    for got, want in zip(stats, ref[1:]):
        assert got.dtype == x.dtype and got.shape == want.shape
        if dtype == np.float32:   # float64 statistics rounded once
            assert np.array_equal(got, want.astype(np.float64).astype(np.float32))
        else:
            _close(got, want, dtype, "stat")
    check_forward_bound(norm, x, y, gamma, beta, kw, EPS)
    if dtype == np.float64:
        _close(y, ref[0], dtype, "y", scale=np.abs(ref[0]).max() + 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm, shape, kw", CASES, ids=CASE_IDS)
def test_backward_matches_the_oracle(norm, shape, kw, dtype, rng):
    x, gamma, beta, fwd, ref = _run(norm, shape, kw, dtype, rng)
    dy = rng.standard_normal(shape).astype(dtype)
    got = norm.backward(norm.fb(True), dy, x, fwd[1:], gamma, kw)
    want = norm.backward(norm.ref(True), dy.astype(np.float64), x.astype(np.float64),
                         [s.astype(np.float64) for s in fwd[1:]], gamma.astype(np.float64), kw)
    assert len(got) == len(want) == (3 if norm.has_beta else 2)
    assert got[0].shape == x.shape and all(a.dtype == x.dtype for a in got)
    check_backward_bound(norm, dy, x, got[0], gamma, kw, EPS, fwd[1:])
    for g, w in zip(got[1:], want[1:]):
        assert g.shape == gamma.shape
        # a sum of n terms: float32's single rounding, or float64 sums to n * eps of the terms
        _close(g, w, dtype, "param grad", scale=np.abs(w).max() + np.sqrt(x.size))


@pytest.mark.parametrize("norm, shape, kw", CASES, ids=CASE_IDS)
def test_no_affine_is_ones_and_zeros_bitwise(norm, shape, kw, rng):
    x, gamma, beta = make(norm, shape, kw, np.float32, rng)
    ones, zeros = np.ones_like(gamma), (None if beta is None else np.zeros_like(beta))
    plain = norm.forward(norm.fb(), x, None, None, kw)
    unit = norm.forward(norm.fb(), x, ones, zeros, kw)
    for a, b in zip(plain, unit):
        assert a.tobytes() == b.tobytes()
    dy = rng.standard_normal(shape).astype(np.float32)
    for a, b in zip(norm.backward(norm.fb(True), dy, x, plain[1:], None, kw),
                    norm.backward(norm.fb(True), dy, x, plain[1:], ones, kw)):
        assert a.tobytes() == b.tobytes()
