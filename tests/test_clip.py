"""Specification of gradient clipping: fastbn.global_norm, clip_grad_norm, clip_grad_value
(PyTorch's semantics, one C call over a list of float32/float64 arrays) and clip_by_norm
(TensorFlow's: returns the clipped array).

Tolerances: totals are sums of non-negative terms accumulated in float64; fastbn (32 lanes,
16384-element blocks) and the reference (NumPy's pairwise sum) each err by at most about
(terms per partial sum) * 2**-53 ~ 1e-13 relative here, so rtol=1e-12 is the analysis' bound, not
a loosening.  Scaled values are checked bit for bit against the documented formula
T(float64(x) * float64(T(coef))) with coef computed from the returned total.
"""
import math
import re

import numpy as np
import pytest

import fastbn
from fastbn import _clip, _config, reference

NORMS = [1.0, 2.0, 3.5, math.inf, 0.5]
RTOL = 1e-12


def make_grads(rng, dtypes=(np.float32, np.float64), scale=1.0):
    """A small model's worth of gradients: varied shapes (a conv kernel, a matrix, vectors, a
    single value, an empty array), alternating dtypes, sizes spanning several blocks."""
    shapes = [(16, 3, 7, 7), (300, 200), (64,), (1,), (0,), (40000,), (5, 1, 3), ()]
    return [np.asarray(rng.standard_normal(s) * scale, dtype=dtypes[k % len(dtypes)])
            for k, s in enumerate(shapes)]


def copies(grads):
    return [g.copy() for g in grads]


def expected_scaled(originals, total, max_norm):
    """The documented arithmetic: coef = max_norm / (total + 1e-6); when coef < 1 each element
    becomes T(float64(x) * float64(T(coef))), T the array's dtype."""
    coef = max_norm / (total + 1e-6)
    if coef >= 1.0:
        return copies(originals)
    return [(g.astype(np.float64) * float(g.dtype.type(coef))).astype(g.dtype) for g in originals]


def assert_bitwise(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        assert a.tobytes() == e.tobytes()


# ---- global_norm ----------------------------------------------------------------------------

@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("dtypes", [(np.float32,), (np.float64,), (np.float32, np.float64)],
                         ids=["f32", "f64", "mixed"])
def test_global_norm_matches_reference(rng, p, dtypes):
    grads = make_grads(rng, dtypes)
    got = fastbn.global_norm(grads, norm_type=p)
    assert type(got) is float
    assert got == pytest.approx(reference.global_norm(grads, p), rel=RTOL, abs=0)


def test_global_norm_is_the_norm_of_the_concatenation(rng):
    grads = make_grads(rng)
    flat = np.concatenate([g.astype(np.float64).ravel() for g in grads])
    assert fastbn.global_norm(grads) == pytest.approx(np.linalg.norm(flat), rel=RTOL, abs=0)
    assert fastbn.global_norm(grads, norm_type=math.inf) == np.max(np.abs(flat))


def test_default_norm_type_is_2(rng):
    grads = make_grads(rng)
    assert fastbn.global_norm(grads) == fastbn.global_norm(grads, norm_type=2.0)


def test_a_bare_array_is_a_list_of_one(rng):
    a = rng.standard_normal((30, 7))
    assert fastbn.global_norm(a) == fastbn.global_norm([a])


def test_any_sequence_or_iterable_of_arrays(rng):
    grads = make_grads(rng)
    assert fastbn.global_norm(tuple(grads)) == fastbn.global_norm(grads)
    assert fastbn.global_norm(g for g in grads) == fastbn.global_norm(grads)


@pytest.mark.parametrize("p", NORMS)
def test_empty_list_and_empty_arrays_have_norm_zero(p):
    assert fastbn.global_norm([], norm_type=p) == 0.0
    assert fastbn.global_norm([np.zeros(0, np.float32), np.zeros((3, 0))], norm_type=p) == 0.0
    assert fastbn.clip_grad_norm([], 1.0, norm_type=p) == 0.0
    fastbn.clip_grad_value([], 1.0)


@pytest.mark.parametrize("p", NORMS)
def test_single_element_arrays(rng, p):
    grads = [np.array([x], dtype=np.float32) for x in rng.standard_normal(100)]
    grads += [np.array(x) for x in rng.standard_normal(50)]          # 0-d float64 arrays
    assert fastbn.global_norm(grads, p) == pytest.approx(reference.global_norm(grads, p),
                                                         rel=RTOL, abs=0)


@pytest.mark.parametrize("x", [3.0, -0.1, 1e-30, 7e20])
def test_norm_of_one_value_is_its_magnitude(x):
    # sqrt(fl(x*x)) == |x| in binary floating point (no over/underflow here)
    for p in (1.0, 2.0, math.inf):
        assert fastbn.global_norm(np.array([x]), norm_type=p) == abs(x)


def test_precision_on_1e7_equal_float32_values():
    n = 10_000_000
    v = np.float32(0.1)
    a = np.full(n, v, dtype=np.float32)
    # 1-norm: every partial sum is a multiple of v with < 53 significant bits: exact.
    assert fastbn.global_norm(a, norm_type=1.0) == n * float(v)
    # 2-norm: sqrt(n) * v to float64 rounding (a float32 accumulator would be off by ~1e-3).
    assert fastbn.global_norm(a) == pytest.approx(math.sqrt(n) * float(v), rel=RTOL, abs=0)
    # A dyadic value makes every square and every sum exact: the 2-norm is sqrt(n * 2.25).
    a[:] = 1.5
    assert fastbn.global_norm(a) == math.sqrt(n * 2.25)
    assert fastbn.global_norm(a, norm_type=math.inf) == 1.5


# ---- clip_grad_norm -------------------------------------------------------------------------

@pytest.mark.parametrize("p", NORMS)
def test_clip_grad_norm_scales_by_the_documented_coefficient(rng, p):
    grads = make_grads(rng)
    originals = copies(grads)
    total = reference.global_norm(originals, p)
    max_norm = 0.25 * total
    got = fastbn.clip_grad_norm(grads, max_norm, norm_type=p)
    assert type(got) is float
    assert got == pytest.approx(total, rel=RTOL, abs=0)
    assert_bitwise(grads, expected_scaled(originals, got, max_norm))
    # and the result has norm max_norm (to the 1e-6 guard and dtype rounding)
    assert fastbn.global_norm(grads, p) == pytest.approx(max_norm, rel=1e-5)


@pytest.mark.parametrize("p", NORMS)
def test_clip_grad_norm_matches_reference(rng, p):
    grads = make_grads(rng, (np.float64,))
    ref = copies(grads)
    max_norm = 0.5 * reference.global_norm(ref, p)
    assert fastbn.clip_grad_norm(grads, max_norm, norm_type=p) == pytest.approx(
        reference.clip_grad_norm(ref, max_norm, norm_type=p), rel=RTOL, abs=0)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g, r, rtol=RTOL, atol=0)


def test_no_write_when_within_the_bound(rng):
    grads = make_grads(rng)
    originals = copies(grads)
    total = fastbn.global_norm(grads)
    # coef = max_norm / (total + 1e-6) >= 1: nothing changes, not even by a rounding
    assert fastbn.clip_grad_norm(grads, total + 1e-6) == total
    assert fastbn.clip_grad_norm(grads, math.inf) == total
    assert_bitwise(grads, originals)


def test_max_norm_zero_zeroes_everything(rng):
    grads = make_grads(rng)
    fastbn.clip_grad_norm(grads, 0.0)
    for g in grads:
        assert not np.any(g)


# ---- clip_by_norm (TensorFlow's tf.clip_by_norm) --------------------------------------------

def tf_rule_float64(grad, max_norm):
    """TensorFlow's rule, grad * max_norm / max(norm, max_norm), all in float64 NumPy."""
    g = grad.astype(np.float64)
    return g * max_norm / max(np.linalg.norm(g.ravel()), max_norm)


def documented_clip(grad, max_norm):
    """The documented arithmetic: norm = global_norm(grad); unchanged if norm <= max_norm, else
    each x becomes T(float64(x) * float64(T(max_norm / norm))), T the dtype of grad."""
    norm = fastbn.global_norm(grad)
    if norm <= max_norm:
        return grad.copy()
    s = float(grad.dtype.type(max_norm / norm))
    with np.errstate(invalid="ignore"):
        return (grad.astype(np.float64) * s).astype(grad.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_by_norm_returns_a_new_clipped_array_and_leaves_grad_unchanged(rng, dtype):
    grad = rng.standard_normal((50, 40)).astype(dtype)
    before = grad.copy()
    got = fastbn.clip_by_norm(grad, 1.0)
    assert isinstance(got, np.ndarray) and got.dtype == dtype and got.shape == grad.shape
    assert not np.shares_memory(got, grad)
    assert grad.tobytes() == before.tobytes()
    assert fastbn.global_norm(got) == pytest.approx(1.0, rel=10 * float(np.finfo(dtype).eps))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ratio", [0.001, 0.5, 0.999999])
def test_clip_by_norm_scales_by_the_documented_rounding(rng, dtype, ratio):
    grad = (rng.standard_normal(40000) * 3.0).astype(dtype)
    max_norm = ratio * fastbn.global_norm(grad)
    assert_bitwise([fastbn.clip_by_norm(grad, max_norm)], [documented_clip(grad, max_norm)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_norm", [0.01, 1.0, 30.0, 1e3])
def test_clip_by_norm_is_tensorflows_rule_against_float64_numpy(rng, dtype, max_norm):
    grad = rng.standard_normal((120, 70)).astype(dtype)          # norm about 92
    expected = tf_rule_float64(grad, max_norm)
    # T(s) and the product are each rounded once to T (eps/2 relative each); the two float64
    # norms differ by at most RTOL (see the module docstring).
    np.testing.assert_allclose(fastbn.clip_by_norm(grad, max_norm), expected,
                               rtol=np.finfo(dtype).eps + RTOL, atol=0)


def test_clip_by_norm_matches_reference(rng):
    for grad in (rng.standard_normal(1000), rng.standard_normal((30, 30)).astype(np.float32)):
        for max_norm in (0.0, 2.0, 1e9):
            assert_bitwise([fastbn.clip_by_norm(grad, max_norm)],
                           [reference.clip_by_norm(grad, max_norm)])


def test_clip_by_norm_within_the_bound_returns_the_same_bits(rng):
    grad = rng.standard_normal(1000).astype(np.float32)
    norm = fastbn.global_norm(grad)
    for max_norm in (norm, np.nextafter(norm, math.inf), 1e30, math.inf):
        got = fastbn.clip_by_norm(grad, max_norm)
        assert got is not grad and got.tobytes() == grad.tobytes()
    assert fastbn.clip_by_norm(grad, norm * (1 - 1e-6)).tobytes() != grad.tobytes()   # scaled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_by_norm_out_grad_is_in_place_and_bitwise_the_returned_array(rng, dtype):
    grad = rng.standard_normal((64, 33)).astype(dtype)
    expected = fastbn.clip_by_norm(grad, 0.5)
    assert fastbn.clip_by_norm(grad, 0.5, out=grad) is grad
    assert grad.tobytes() == expected.tobytes()
    view = grad[:, ::2]                        # a strided view, in place: the rest untouched
    rest = grad[:, 1::2].copy()
    expected = fastbn.clip_by_norm(view, 0.1)
    assert fastbn.clip_by_norm(view, 0.1, out=grad[:, ::2]).tobytes() == expected.tobytes()
    assert grad[:, ::2].tobytes() == expected.tobytes()
    assert grad[:, 1::2].tobytes() == rest.tobytes()


def test_clip_by_norm_writes_into_out(rng):
    grad = rng.standard_normal((20, 30)).astype(np.float32)
    before = grad.copy()
    for max_norm in (0.5, 1e6):             # scaled, then copied unchanged
        out = np.full((20, 30), np.nan, np.float32)
        assert fastbn.clip_by_norm(grad, max_norm, out=out) is out
        assert out.tobytes() == fastbn.clip_by_norm(grad, max_norm).tobytes()
    out = np.zeros((30, 20), np.float32).T     # a Fortran-ordered out
    fastbn.clip_by_norm(grad, 0.5, out=out)
    assert np.ascontiguousarray(out).tobytes() == fastbn.clip_by_norm(grad, 0.5).tobytes()
    assert grad.tobytes() == before.tobytes()


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_by_norm_keeps_the_memory_order_of_grad(rng, max_norm):
    grad = np.asfortranarray(rng.standard_normal((40, 30)))
    got = fastbn.clip_by_norm(grad, max_norm)
    assert got.flags.f_contiguous and not got.flags.c_contiguous
    assert got.strides == grad.strides
    assert_bitwise([np.ascontiguousarray(got)],
                   [fastbn.clip_by_norm(np.ascontiguousarray(grad), max_norm)])
    assert fastbn.clip_by_norm(grad[::2], max_norm).shape == (20, 30)


def test_clip_by_norm_max_norm_zero_gives_signed_zeros(rng):
    grad = rng.standard_normal(100)
    got = fastbn.clip_by_norm(grad, 0.0)
    assert not np.any(got) and np.array_equal(np.signbit(got), np.signbit(grad))
    zeros = np.array([0.0, -0.0, 0.0], np.float32)        # norm 0 <= 0: TF's 0/0 avoided
    assert fastbn.clip_by_norm(zeros, 0.0).tobytes() == zeros.tobytes()


def test_clip_by_norm_nan_norm_gives_nan_everywhere_like_tensorflow(rng):
    grad = rng.standard_normal(100).astype(np.float32)
    grad[17] = np.nan
    assert np.all(np.isnan(fastbn.clip_by_norm(grad, 1.0)))
    assert np.all(np.isnan(fastbn.clip_by_norm(grad, math.inf)))   # NaN <= inf is false


def test_clip_by_norm_inf_norm_scales_by_zero_like_tensorflow(rng):
    grad = rng.standard_normal(100)
    grad[[3, 4]] = [np.inf, -np.inf]
    got = fastbn.clip_by_norm(grad, 1.0)
    finite = np.isfinite(grad)
    assert np.all(np.isnan(got[~finite]))
    assert not np.any(got[finite])
    assert np.array_equal(np.signbit(got[finite]), np.signbit(grad[finite]))
    assert fastbn.clip_by_norm(grad, math.inf).tobytes() == grad.tobytes()   # inf never clips


def test_clip_by_norm_of_empty_and_0d_arrays():
    assert fastbn.clip_by_norm(np.zeros((0, 3), np.float32), 1.0).shape == (0, 3)
    assert fastbn.clip_by_norm(np.array(-4.0), 2.0) == -2.0


def test_clip_by_norm_reads_read_only_and_broadcast_arrays():
    grad = np.broadcast_to(np.float32(2.0), (100,))       # norm 20, read-only, stride 0
    got = fastbn.clip_by_norm(grad, 2.0)
    assert got.flags.writeable and got.flags.c_contiguous
    assert np.all(got == np.float32(0.2))


@pytest.mark.parametrize("make_out, exc, message", [
    (lambda g: [0.0] * 12, TypeError, "out: expected a numpy ndarray, got list"),
    (lambda g: np.zeros((3, 4), np.float32), TypeError, "out: expected dtype float64"),
    (lambda g: np.zeros((4, 3)), ValueError, r"out: expected shape \(3, 4\)"),
    (lambda g: _readonly(np.zeros((3, 4))), ValueError, "out: expected a writeable array"),
    (lambda g: _readonly(g), ValueError, "out: expected a writeable array"),
    (lambda g: g[::-1], ValueError, "out: must not share memory with grad"),
    (lambda g: g.T.T[:, ::-1], ValueError, "out: must not share memory with grad"),
])
def test_clip_by_norm_bad_out_is_named_and_nothing_is_written(rng, make_out, exc, message):
    grad = rng.standard_normal((3, 4))
    before = grad.copy()
    out = make_out(grad)
    out_before = np.array(out, copy=True)
    with pytest.raises(exc, match="^" + message):
        fastbn.clip_by_norm(grad, 1e-3, out=out)
    assert grad.tobytes() == before.tobytes()
    assert np.asarray(out).tobytes() == out_before.tobytes()


# ---- clip_grad_value ------------------------------------------------------------------------

@pytest.mark.parametrize("c", [0.0, 0.1, 1.0, math.inf])
def test_clip_grad_value_matches_reference(rng, c):
    grads = make_grads(rng, scale=2.0)
    grads[2][:3] = [np.nan, np.inf, -np.inf]
    ref = copies(grads)
    assert fastbn.clip_grad_value(grads, c) is None
    reference.clip_grad_value(ref, c)
    assert_bitwise(grads, ref)


def test_clip_grad_value_keeps_nan_and_rounds_the_bound_to_the_dtype():
    a = np.array([np.nan, 5.0, -5.0, 0.05], dtype=np.float32)
    fastbn.clip_grad_value(a, 0.1)
    assert np.isnan(a[0])
    assert a[1] == np.float32(0.1) and a[2] == -np.float32(0.1) and a[3] == np.float32(0.05)


# ---- non-finite values ----------------------------------------------------------------------

@pytest.mark.parametrize("p", NORMS)
def test_nan_and_inf_propagate_to_the_norm(rng, p):
    grads = make_grads(rng)
    grads[5][123] = np.inf
    assert fastbn.global_norm(grads, p) == math.inf
    grads[1][7, 7] = np.nan
    assert math.isnan(fastbn.global_norm(grads, p))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_error_if_nonfinite_names_the_first_bad_array_and_changes_nothing(rng, bad):
    grads = make_grads(rng)
    grads[2][5] = bad
    grads[5][0] = np.inf
    originals = copies(grads)
    with pytest.raises(ValueError, match=r"^grads\[2\]: .*non-finite"):
        fastbn.clip_grad_norm(grads, 1e-3, error_if_nonfinite=True)
    assert_bitwise(grads, originals)


def test_error_if_nonfinite_with_a_finite_norm_clips(rng):
    grads = make_grads(rng)
    originals = copies(grads)
    total = fastbn.clip_grad_norm(grads, 1.0, error_if_nonfinite=True)
    assert_bitwise(grads, expected_scaled(originals, total, 1.0))


def test_without_error_a_nan_norm_makes_every_value_nan_like_torch(rng):
    grads = make_grads(rng)
    grads[1][0, 0] = np.nan
    assert math.isnan(fastbn.clip_grad_norm(grads, 1.0))
    for g in grads:
        assert np.all(np.isnan(g))


def test_without_error_an_inf_norm_scales_by_zero_like_torch(rng):
    grads = make_grads(rng)
    grads[1][0, 0] = -np.inf
    originals = copies(grads)
    assert fastbn.clip_grad_norm(grads, 1.0) == math.inf
    # coef = 1 / inf = 0: finite values become signed zeros, infinities become NaN
    with np.errstate(invalid="ignore"):
        assert_bitwise(grads, [(g.astype(np.float64) * 0.0).astype(g.dtype) for g in originals])
    assert np.isnan(grads[1][0, 0])


# ---- layouts --------------------------------------------------------------------------------

VIEWS = [np.s_[::3], np.s_[:, ::3], np.s_[::-2], "T", np.s_[1::2, :, 2:7]]


def _view(a, key):
    return a.T if isinstance(key, str) else a[key]


def strided_views(rng):
    """(parent arrays, views of them): 1-d strided, single-stride 2-d, negative stride,
    transposed (needs a copy), and a non-uniform 3-d slice (needs a copy)."""
    parents = [rng.standard_normal(50001).astype(np.float32), rng.standard_normal((30, 60)),
               rng.standard_normal(999).astype(np.float32), rng.standard_normal((70, 50)),
               rng.standard_normal((6, 7, 8)).astype(np.float32)]
    return parents, [_view(par, key) for par, key in zip(parents, VIEWS)]


def _outside(par, key):
    """Mask of the elements of ``par`` that its view does not cover."""
    touched = np.zeros(par.size, bool)
    touched[_view(np.arange(par.size).reshape(par.shape), key).ravel()] = True
    return ~touched.reshape(par.shape)


@pytest.mark.parametrize("p", NORMS)
def test_non_contiguous_arrays_give_the_bits_of_their_contiguous_copies(rng, p):
    parents, views = strided_views(rng)
    contiguous = [np.ascontiguousarray(w) for w in views]
    assert fastbn.global_norm(views, p) == fastbn.global_norm(contiguous, p)
    before = [par.copy() for par in parents]
    total = fastbn.clip_grad_norm(views, 0.5, norm_type=p)
    assert total == fastbn.clip_grad_norm(contiguous, 0.5, norm_type=p)
    assert_bitwise([np.ascontiguousarray(w) for w in views], contiguous)
    for par, old, key in zip(parents, before, VIEWS):      # elements outside the views: as before
        out = _outside(par, key)
        assert par[out].tobytes() == old[out].tobytes()
        assert not np.array_equal(par[~out], old[~out])     # and the views were scaled


def test_clip_grad_value_on_non_contiguous_arrays(rng):
    parents, views = strided_views(rng)
    contiguous = [np.ascontiguousarray(w) for w in views]
    fastbn.clip_grad_value(views, 0.5)
    fastbn.clip_grad_value(contiguous, 0.5)
    assert_bitwise([np.ascontiguousarray(w) for w in views], contiguous)
    assert np.abs(parents[0][1::3]).max() > 0.5          # between the strided elements: untouched


def test_global_norm_accepts_read_only_and_broadcast_arrays():
    a = np.arange(6.0)
    a.flags.writeable = False
    b = np.broadcast_to(np.float32(2.0), (1000,))       # stride 0, read-only
    assert fastbn.global_norm([a, b], norm_type=1.0) == 15.0 + 2000.0


# ---- byte order -----------------------------------------------------------------------------
# An array of the other byte order ('>f4' on a little-endian machine) holds the same values with
# swapped bytes; NumPy's C type number is NPY_FLOAT for both, so only the dtype tells them apart.

def swapped(a):
    """``a``'s values in the other byte order."""
    return a.astype(a.dtype.newbyteorder("S"))


def native(a):
    return a.astype(a.dtype.newbyteorder("="))


def mixed_orders(grads):
    """Every other array byte-swapped (so the list mixes orders and dtypes)."""
    return [swapped(g) if k % 2 else g.copy() for k, g in enumerate(grads)]


@pytest.mark.parametrize("p", NORMS)
def test_global_norm_reads_either_byte_order_with_the_same_bits(rng, p):
    grads = make_grads(rng)
    total = fastbn.global_norm(grads, p)
    assert fastbn.global_norm([swapped(g) for g in grads], p).hex() == total.hex()
    assert fastbn.global_norm(mixed_orders(grads), p).hex() == total.hex()
    parents, views = strided_views(rng)
    assert fastbn.global_norm([_view(swapped(par), key) for par, key in zip(parents, VIEWS)],
                              p).hex() == fastbn.global_norm(views, p).hex()


@pytest.mark.parametrize("fn", [lambda g: fastbn.clip_grad_norm(g, 1.0),
                                lambda g: fastbn.clip_grad_norm(g, 1.0, norm_type=math.inf),
                                lambda g: fastbn.clip_grad_value(g, 0.3)],
                         ids=["clip_grad_norm", "clip_grad_norm_inf", "clip_grad_value"])
@pytest.mark.parametrize("orders", ["swapped", "mixed"])
def test_in_place_clipping_of_swapped_arrays_writes_the_native_bits(rng, fn, orders):
    grads = make_grads(rng, scale=2.0)
    expected = copies(grads)
    result = fn(expected)
    got = [swapped(g) for g in grads] if orders == "swapped" else mixed_orders(grads)
    got_orders = [g.dtype for g in got]
    assert fn(got) == result
    assert [g.dtype for g in got] == got_orders                 # still byte-swapped, in place
    assert_bitwise([native(g) for g in got], expected)
    assert not all(native(g).tobytes() == o.tobytes() for g, o in zip(got, grads))


def test_in_place_clipping_of_swapped_strided_views(rng):
    parents, views = strided_views(rng)
    swapped_parents = [swapped(par) for par in parents]
    swapped_views = [_view(par, key) for par, key in zip(swapped_parents, VIEWS)]
    assert fastbn.clip_grad_norm(swapped_views, 0.5) == fastbn.clip_grad_norm(views, 0.5)
    fastbn.clip_grad_value(swapped_views, 0.01)
    fastbn.clip_grad_value(views, 0.01)
    assert_bitwise([native(par) for par in swapped_parents], parents)   # outside views too


def test_swapped_arrays_are_not_written_when_the_call_fails(rng):
    grads = mixed_orders(make_grads(rng))
    grads[3][0] = np.nan
    originals = copies(grads)
    with pytest.raises(ValueError, match=r"^grads\[3\]: .*non-finite"):
        fastbn.clip_grad_norm(grads, 1e-3, error_if_nonfinite=True)
    with pytest.raises(TypeError, match=r"^grads\[8\]: "):
        fastbn.clip_grad_value(grads + [np.zeros(2, np.int16)], 1e-3)
    assert_bitwise(grads, originals)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_by_norm_of_a_swapped_array(rng, dtype):
    grad = rng.standard_normal((30, 20)).astype(dtype)
    expected = fastbn.clip_by_norm(grad, 0.5)
    sw = swapped(grad)
    got = fastbn.clip_by_norm(sw, 0.5)
    assert got.dtype == dtype and got.dtype.isnative          # a new array: native order
    assert got.tobytes() == expected.tobytes()
    assert native(sw).tobytes() == grad.tobytes()             # the input is unchanged
    out = swapped(np.zeros_like(grad))                        # a swapped out, written
    assert fastbn.clip_by_norm(grad, 0.5, out=out) is out
    assert native(out).tobytes() == expected.tobytes()
    assert fastbn.clip_by_norm(sw, 0.5, out=sw) is sw         # in place, swapped
    assert sw.dtype == grad.dtype.newbyteorder("S") and native(sw).tobytes() == expected.tobytes()
    assert fastbn.clip_by_norm(sw, 1e9).tobytes() == native(sw).tobytes()


@pytest.mark.parametrize("a", [np.ones(4, ">f4" if np.little_endian else "<f4"),
                               np.ones(4, ">f8" if np.little_endian else "<f8"),
                               np.ones(4, np.int32), np.ones(4, np.int64)],
                         ids=["swapped_f4", "swapped_f8", "int32", "int64"])
def test_the_glue_lets_only_native_floats_reach_c(a):
    # fastbn.clip converts or rejects these first; _clip checks again (by the buffer format, not
    # the itemsize), so a byte-swapped or integer array can never reach a kernel as floats.
    acc = np.zeros(1)
    with pytest.raises(ValueError, match="native byte order"):
        _clip.norm([a], 2.0, 0, 0.0, acc, 1)
    before = a.copy()
    with pytest.raises(ValueError, match="native byte order"):
        _clip.value([a], 0.5, 1)
    assert a.tobytes() == before.tobytes()


# ---- documentation matches the code ---------------------------------------------------------

def test_stated_lane_count_and_block_size_are_the_codes():
    lanes, block = _clip.LANES, _clip.BLOCK
    doc = " ".join(fastbn.global_norm.__doc__.split())
    assert f"blocks of {block} elements" in doc
    assert f"sums over {lanes} float64 lanes" in doc
    assert re.findall(r"(\d+) float64 lanes", doc) == [str(lanes)]
    assert f"fastbn ({lanes} lanes, {block}-element blocks)" in " ".join(__doc__.split())


# ---- determinism ----------------------------------------------------------------------------

def _determinism_input():
    rng = np.random.default_rng(7)
    sizes = [300000, 16384, 16385, 3, 200000, 1]   # in all above FB_PAR_MIN_ELEMS = 2^19
    grads = [(rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(
        np.float32 if k % 2 else np.float64) for k, n in enumerate(sizes)]
    grads.append(rng.standard_normal((400, 300))[:, ::2])            # strided
    return grads


def _run_all():
    grads = _determinism_input()
    norms = [fastbn.global_norm(grads, p) for p in NORMS]
    fastbn.clip_grad_norm(grads, 1.0)
    clipped = copies(grads)
    fastbn.clip_grad_value(grads, 1e-3)
    return norms, clipped, grads


def test_bitwise_identical_for_every_thread_count_and_isa(threads, isa):
    got_norms, got_clipped, got_valued = _run_all()
    saved_threads, saved_isa = fastbn.get_num_threads(), _config.get_isa()
    try:
        fastbn.set_num_threads(1)
        _config.set_isa("scalar")
        norms, clipped, valued = _run_all()
    finally:
        fastbn.set_num_threads(saved_threads)
        _config.set_isa(saved_isa)
    assert [n.hex() for n in got_norms] == [n.hex() for n in norms]
    assert_bitwise(got_clipped, clipped)
    assert_bitwise(got_valued, valued)


# ---- against PyTorch ------------------------------------------------------------------------

def nonempty(grads):
    """torch's foreach max-norm rejects empty tensors (no identity); fastbn gives them 0."""
    return [g for g in grads if g.size]


def _torch_params(torch, grads):
    params = []
    for g in grads:
        prm = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64 if g.dtype == np.float64
                                             else torch.float32))
        prm.grad = torch.from_numpy(g.copy())
        params.append(prm)
    return params


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("max_norm", [0.1, 1e6])
def test_clip_grad_norm_matches_torch_float64(rng, p, max_norm):
    torch = pytest.importorskip("torch")
    grads = nonempty(make_grads(rng, (np.float64,)))
    params = _torch_params(torch, grads)
    t_total = float(torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=p))
    assert fastbn.clip_grad_norm(grads, max_norm, norm_type=p) == pytest.approx(t_total, rel=RTOL)
    for g, prm in zip(grads, params):
        np.testing.assert_allclose(g, prm.grad.numpy(), rtol=RTOL, atol=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_clipping_matches_torch(rng, bad):
    torch = pytest.importorskip("torch")
    grads = nonempty(make_grads(rng, (np.float64,)))
    grads[1][3, 4] = bad
    params = _torch_params(torch, grads)
    t_total = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
    total = fastbn.clip_grad_norm(grads, 1.0)
    assert (math.isnan(total) and math.isnan(t_total)) or total == t_total
    for g, prm in zip(grads, params):
        np.testing.assert_array_equal(g, prm.grad.numpy())
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(_torch_params(torch, grads), 1.0, error_if_nonfinite=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [0.0, 0.1, 0.7])
def test_clip_grad_value_matches_torch(rng, dtype, c):
    torch = pytest.importorskip("torch")
    grads = nonempty(make_grads(rng, (dtype,)))
    grads[0].flat[:2] = [np.nan, -np.inf]
    params = _torch_params(torch, grads)
    torch.nn.utils.clip_grad_value_(params, c)
    fastbn.clip_grad_value(grads, c)
    assert_bitwise(grads, [prm.grad.numpy() for prm in params])


# ---- bad input: named, and nothing is written -----------------------------------------------

def _good(rng):
    return [rng.standard_normal(10), rng.standard_normal((3, 4)).astype(np.float32)]


@pytest.mark.parametrize("call, exc, message", [
    (lambda g: fastbn.clip_grad_norm(g, -1.0), ValueError, "max_norm"),
    (lambda g: fastbn.clip_grad_norm(g, math.nan), ValueError, "max_norm"),
    (lambda g: fastbn.clip_grad_norm(g, "1"), TypeError, "max_norm"),
    (lambda g: fastbn.clip_grad_norm(g, None), TypeError, "max_norm"),
    (lambda g: fastbn.clip_grad_norm(g, 1.0, norm_type=0), ValueError, "norm_type"),
    (lambda g: fastbn.clip_grad_norm(g, 1.0, norm_type=-2.0), ValueError, "norm_type"),
    (lambda g: fastbn.clip_grad_norm(g, 1.0, norm_type=math.nan), ValueError, "norm_type"),
    (lambda g: fastbn.clip_grad_norm(g, 1.0, norm_type=-math.inf), ValueError, "norm_type"),
    (lambda g: fastbn.clip_grad_norm(g, 1.0, norm_type="inf"), TypeError, "norm_type"),
    (lambda g: fastbn.clip_grad_norm(g, 1.0, error_if_nonfinite="yes"), TypeError,
     "error_if_nonfinite"),
    (lambda g: fastbn.global_norm(g, norm_type=0.0), ValueError, "norm_type"),
    (lambda g: fastbn.global_norm(g, norm_type=None), TypeError, "norm_type"),
    (lambda g: fastbn.clip_grad_value(g, -0.5), ValueError, "clip_value"),
    (lambda g: fastbn.clip_grad_value(g, math.nan), ValueError, "clip_value"),
    (lambda g: fastbn.clip_grad_value(g, [1.0]), TypeError, "clip_value"),
    (lambda g: fastbn.clip_by_norm(g[0], -1.0), ValueError, "max_norm"),
])
def test_bad_scalars_are_named_and_nothing_is_written(rng, call, exc, message):
    grads = _good(rng)
    originals = copies(grads)
    with pytest.raises(exc, match="^" + message + ":"):
        call(grads)
    assert_bitwise(grads, originals)


def _readonly(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("bad, exc, message", [
    (lambda rng: [1.0, 2.0], TypeError, "expected a numpy ndarray, got list"),
    (lambda rng: np.arange(4), TypeError, "float16 or bfloat16 array, got dtype int64"),
    (lambda rng: np.zeros(3, np.uint16), TypeError, "got dtype uint16"),
    (lambda rng: np.zeros(3, np.complex128), TypeError, "got dtype complex128"),
    (lambda rng: np.zeros(3, ">i4" if np.little_endian else "<i4"), TypeError, "got dtype >i4"
     if np.little_endian else "got dtype <i4"),
    (lambda rng: None, TypeError, "expected a numpy ndarray, got NoneType"),
])
@pytest.mark.parametrize("fn", ["clip_grad_norm", "clip_grad_value", "global_norm"])
def test_bad_elements_are_named_by_index_and_nothing_is_written(rng, bad, exc, message, fn):
    grads = _good(rng) + [bad(rng)] + _good(rng)
    originals = copies(grads[:2] + grads[3:])
    call = {"clip_grad_norm": lambda g: fastbn.clip_grad_norm(g, 1e-3),
            "clip_grad_value": lambda g: fastbn.clip_grad_value(g, 1e-3),
            "global_norm": lambda g: fastbn.global_norm(g)}[fn]
    with pytest.raises(exc, match=r"^grads\[2\]: .*" + message):
        call(grads)
    assert_bitwise(grads[:2] + grads[3:], originals)


@pytest.mark.parametrize("fn", [lambda g: fastbn.clip_grad_norm(g, 1e-3),
                                lambda g: fastbn.clip_grad_value(g, 1e-3)],
                         ids=["clip_grad_norm", "clip_grad_value"])
def test_read_only_arrays_are_rejected_in_place(rng, fn):
    grads = _good(rng) + [_readonly(rng.standard_normal(5))]
    originals = copies(grads)
    with pytest.raises(ValueError, match=r"^grads\[2\]: expected a writeable array"):
        fn(grads)
    assert_bitwise(grads, originals)


@pytest.mark.parametrize("fn", [lambda g: fastbn.clip_grad_norm(g, 1e-3),
                                lambda g: fastbn.clip_grad_value(g, 1e-3)],
                         ids=["clip_grad_norm", "clip_grad_value"])
def test_arrays_sharing_memory_are_rejected_in_place(rng, fn):
    a = rng.standard_normal(100)
    b = rng.standard_normal(10)
    originals = [a.copy(), b.copy()]
    with pytest.raises(ValueError, match=r"^grads\[2\]: must not share memory with grads\[0\]"):
        fn([a, b, a[10:20]])
    assert_bitwise([a, b], originals)
    fn([a[::2], a[1::2]])                       # interleaved but disjoint: fine


@pytest.mark.parametrize("grads", [5, "abc", 3.0, {"w": np.zeros(3)}])
def test_grads_must_be_an_array_or_a_sequence_of_arrays(grads):
    with pytest.raises(TypeError, match="^grads: expected an ndarray or a sequence"):
        fastbn.global_norm(grads)


def test_clip_by_norm_takes_one_array():
    with pytest.raises(TypeError, match="^grad: expected a numpy ndarray"):
        fastbn.clip_by_norm([np.zeros(3)], 1.0)
    with pytest.raises(TypeError, match="^grad: expected a float32, float64, float16 or bfloat16 array"):
        fastbn.clip_by_norm(np.zeros(3, np.int32), 1.0)
    with pytest.raises(TypeError, match="^grad: expected a float32, float64, float16 or bfloat16 array"):
        fastbn.clip_by_norm(np.zeros(3, ">i4" if np.little_endian else "<i4"), 1.0)
