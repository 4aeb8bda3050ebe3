"""Specification of gradient clipping: fastbn.global_norm, clip_grad_norm, clip_grad_value and
clip_by_norm (PyTorch's semantics, one C call over a list of float32/float64 arrays).

Tolerances: totals are sums of non-negative terms accumulated in float64; fastbn (16 lanes,
16384-element blocks) and the reference (NumPy's pairwise sum) each err by at most about
(terms per partial sum) * 2**-53 ~ 1e-13 relative here, so rtol=1e-12 is the analysis' bound, not
a loosening.  Scaled values are checked bit for bit against the documented formula
T(float64(x) * float64(T(coef))) with coef computed from the returned total.
"""
import math

import numpy as np
import pytest

import fastbn
from fastbn import _config, reference

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


def test_clip_by_norm_is_clip_grad_norm_of_one_array(rng):
    a = rng.standard_normal((50, 40)).astype(np.float32)
    b = a.copy()
    n = fastbn.clip_by_norm(a, 1.0)
    assert n == fastbn.clip_grad_norm([b], 1.0)
    assert a.tobytes() == b.tobytes()
    assert fastbn.global_norm(a) == pytest.approx(1.0, rel=1e-5)


def test_clip_by_norm_matches_reference(rng):
    a = rng.standard_normal(1000)
    r = a.copy()
    assert fastbn.clip_by_norm(a, 2.0) == pytest.approx(reference.clip_by_norm(r, 2.0),
                                                        rel=RTOL, abs=0)
    np.testing.assert_allclose(a, r, rtol=RTOL, atol=0)


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
    (lambda rng: np.arange(4), TypeError, "float32 or float64 array, got dtype int64"),
    (lambda rng: np.zeros(3, np.float16), TypeError, "got dtype float16"),
    (lambda rng: np.zeros(3, np.complex128), TypeError, "got dtype complex128"),
    (lambda rng: np.zeros(3, ">f8" if np.little_endian else "<f8"), TypeError, "float32 or float64"),
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
    with pytest.raises(ValueError, match=r"^grad: expected a writeable array"):
        fastbn.clip_by_norm(grads[2], 1e-3)


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
    with pytest.raises(TypeError, match="^grad: expected a float32 or float64 array"):
        fastbn.clip_by_norm(np.zeros(3, np.int32), 1.0)
