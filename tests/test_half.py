"""float16 and bfloat16 in the initializers and the clipping functions (issue 17).

Specification:
- Initializers, ``dtype=float16`` or ``bfloat16`` (``ml_dtypes.bfloat16``): the float32 values
  of the same stream rounded once to the half type, bit for bit ``init(..., float32)
  .astype(half)``; the truncated normal clamps those to its interval's ends rounded inwards in
  the half type (so no value leaves [mean + a*std, mean + b*std], where a plain rounding would);
  orthogonal rounds its float64 matrix once (orthonormal to within that rounding); the same bits
  for any thread count and instruction set; values that would overflow the half type are a
  ValueError naming the argument.
- Clipping: float16/bfloat16 gradients (mixed with float32/float64 in one list), norms
  accumulated in float64 from the exact values; clip_grad_value exact (the bound rounded to the
  half type); scaled values ``T(float64(x) * float64(T(coef)))``, rounded once; every path
  (threads, instruction sets, strides, byte order) gives the same bits.
- ``fastbn.reference`` twins take the same dtypes and give the same results.
- Without ml_dtypes everything else works, and asking for bfloat16 is a TypeError naming the
  argument and the fix.
"""
import math
import subprocess
import sys

import numpy as np
import pytest

import fastbn
from fastbn import _config, init, reference

# Statistics over a million draws take minutes under qemu: .ci/run step 4 deselects them.  The
# scalar path it runs gives the other paths' bits natively
# (test_half_init_same_bits_any_thread_count_and_isa).
large_sample = pytest.mark.slow_under_qemu

try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:
    BF16 = None

NO_ML_DTYPES = pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed (test extra)")
HALF = [pytest.param(np.dtype(np.float16), id="f16"),
        pytest.param(BF16, id="bf16", marks=NO_ML_DTYPES)]
UNIT = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}      # unit roundoff of each half type


def bits(a):
    return np.ascontiguousarray(a).view(np.uint16)


def inward(x, dtype, up):
    """x rounded to dtype towards the inside of an interval (up for the lower end)."""
    t = np.asarray(x).astype(dtype)
    if up and float(t) < x:
        t = np.nextafter(t, np.asarray(np.inf, dtype))
    if not up and float(t) > x:
        t = np.nextafter(t, np.asarray(-np.inf, dtype))
    return t


# ---- initializers ----------------------------------------------------------------------------

PLAIN_LAWS = {
    "uniform": lambda **k: init.uniform((70001,), -1.3, 2.7, **k),
    "normal": lambda **k: init.normal((70001,), 0.5, 2.0, **k),
    "glorot_uniform": lambda **k: init.glorot_uniform((3, 3, 64, 96), **k),
    "he_normal": lambda **k: init.he_normal((128, 64, 3, 3), in_axis=1, out_axis=0, **k),
    "lecun_uniform": lambda **k: init.lecun_uniform((500, 300), **k),
    "variance_scaling_normal": lambda **k: init.variance_scaling((400, 300), 2.0, "fan_avg",
                                                                 "normal", **k),
    "constant": lambda **k: init.constant((5, 7), 0.1, **k),
    "ones": lambda **k: init.ones((9,), **k),
}


@pytest.mark.parametrize("law", list(PLAIN_LAWS))
@pytest.mark.parametrize("dtype", HALF)
def test_half_init_is_the_float32_values_rounded_once(law, dtype):
    fn = PLAIN_LAWS[law]
    h = fn(dtype=dtype, rng=7)
    f = fn(dtype=np.float32, rng=7)
    assert h.dtype == dtype and h.shape == f.shape
    assert bits(h).tobytes() == bits(f.astype(dtype)).tobytes()


TRUNC = [  # (mean, std, a, b): ends that the half types hold exactly, and ends they do not
    (0.0, 1.0, -1.0, 3.0), (0.0, 0.3, -2.0, 2.0), (1.0, 0.7, -0.4, 1.9), (0.0, 1e-3, -2.0, 2.0)]


@large_sample
@pytest.mark.parametrize("mean,std,a,b", TRUNC)
@pytest.mark.parametrize("dtype", HALF)
def test_half_truncated_normal_stays_in_its_interval(mean, std, a, b, dtype):
    n = 1 << 20
    h = init.truncated_normal((n,), mean, std, a, b, dtype=dtype, rng=8)
    f = init.truncated_normal((n,), mean, std, a, b, dtype=np.float32, rng=8)
    lo, hi = mean + a * std, mean + b * std
    h64 = h.astype(np.float64)
    assert h64.min() >= lo and h64.max() <= hi
    # The definition: the float32 values rounded once, clamped to the inward-rounded ends.
    lo_h, hi_h = inward(lo, dtype, True), inward(hi, dtype, False)
    plain = f.astype(dtype)
    clamped = np.clip(plain.astype(np.float64), float(lo_h), float(hi_h)).astype(dtype)   # exact
    assert bits(h).tobytes() == bits(clamped).tobytes()
    # Where the plain rounding stays inside, it is the value; the clamp acts only where it would
    # have left the interval -- which happens when an end is not a half value.
    inside = (plain.astype(np.float64) >= lo) & (plain.astype(np.float64) <= hi)
    assert np.array_equal(bits(h)[inside], bits(plain)[inside])
    if (mean, std, a, b) == (0.0, 0.3, -2.0, 2.0):     # +-0.6: not a value of either type
        assert np.count_nonzero(~inside) > 0, "the test case does not exercise the clamp"


@large_sample
@pytest.mark.parametrize("dtype", HALF)
def test_half_init_statistics(dtype):
    n = 1 << 20
    u = init.uniform((n,), -3.0, 5.0, dtype=dtype, rng=1).astype(np.float64)
    assert u.min() >= -3.0 and u.max() <= 5.0
    se = 8.0 / math.sqrt(12 * n)
    # Rounding to the half type moves each value by at most half an ulp (at most UNIT * 5 here)
    # and the mean by far less: 5 standard errors plus that bound.
    assert abs(u.mean() - 1.0) < 5 * se + UNIT[dtype.name] * 5
    z = init.normal((n,), 2.0, 3.0, dtype=dtype, rng=2).astype(np.float64)
    assert abs(z.mean() - 2.0) < 5 * 3.0 / math.sqrt(n) + UNIT[dtype.name] * 2
    rel_var_err = 5 * math.sqrt(2.0 / n) + 2 * UNIT[dtype.name]
    assert abs(np.var(z) / 9.0 - 1.0) < rel_var_err
    w = init.variance_scaling((1024, 1024), 2.0, "fan_in", "truncated_normal", dtype=dtype,
                              rng=3).astype(np.float64)
    sigma = math.sqrt(2.0 / 1024) / init.TRUNCATION_STD
    assert np.abs(w).max() <= 2 * sigma
    assert abs(w.var() / (2.0 / 1024) - 1) < 5 * math.sqrt(2.0 / w.size) + 2 * UNIT[dtype.name]


@pytest.mark.parametrize("law", ["uniform", "normal", "truncated"])
@pytest.mark.parametrize("dtype", HALF)
def test_half_init_same_bits_any_thread_count_and_isa(law, dtype, threads, isa):
    fn = {"uniform": lambda **k: init.uniform((300, 1001), -1.0, 2.0, **k),
          "normal": lambda **k: init.normal((300, 1001), 0.5, 2.0, **k),
          "truncated": lambda **k: init.truncated_normal((300, 1001), 0.0, 0.3, **k)}[law]
    got = fn(dtype=dtype, rng=123)
    saved = _config.get_isa()
    fastbn.set_num_threads(1)
    _config.set_isa("scalar")
    try:
        ref = fn(dtype=dtype, rng=123)
    finally:
        _config.set_isa(saved)
        fastbn.set_num_threads(threads)
    assert bits(got).tobytes() == bits(ref).tobytes()


@pytest.mark.parametrize("dtype", HALF)
def test_half_init_into_out_any_layout(dtype):
    ref = init.normal((200, 301), dtype=dtype, rng=9)
    out = np.zeros((200, 301), dtype)
    assert init.normal((200, 301), dtype=dtype, rng=9, out=out) is out
    assert bits(out).tobytes() == bits(ref).tobytes()
    big = np.zeros((301, 200), dtype)
    assert init.normal((200, 301), dtype=dtype, rng=9, out=big.T) is not None
    assert bits(big.T).tobytes() == bits(ref).tobytes()


def test_float16_out_of_the_other_byte_order():
    ref = init.uniform((100, 33), dtype=np.float16, rng=4)
    out = np.zeros((100, 33), np.dtype(np.float16).newbyteorder())
    assert init.uniform((100, 33), dtype=np.float16, rng=4, out=out) is out
    assert bits(out.astype(np.float16)).tobytes() == bits(ref).tobytes()


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("shape,out_axis", [((64, 16), -1), ((16, 64), -1), ((32, 8, 3, 3), 0)])
def test_half_orthogonal_is_the_float64_matrix_rounded_once(dtype, shape, out_axis):
    gain = 1.3
    w = init.orthogonal(shape, gain, out_axis=out_axis, dtype=dtype, rng=11)
    w64 = init.orthogonal(shape, gain, out_axis=out_axis, dtype=np.float64, rng=11)
    assert w.dtype == dtype and bits(w).tobytes() == bits(w64.astype(dtype)).tobytes()
    m = np.moveaxis(w.astype(np.float64), out_axis, -1).reshape(-1, shape[out_axis])
    g = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    # Each entry is the exact one times (1 + d), |d| <= u: an entry of the Gram matrix moves by
    # at most (2u + u^2) |m_i| |m_j| = (2u + u^2) gain^2 (Cauchy-Schwarz), plus float64 rounding.
    u = UNIT[dtype.name]
    tol = ((2 * u + u * u) * (1 + 1e-9) + 64 * 2.0 ** -53) * gain ** 2
    assert np.abs(g - gain ** 2 * np.eye(g.shape[0])).max() <= tol


@pytest.mark.parametrize("dtype", HALF)
def test_half_constants(dtype):
    assert np.array_equal(init.zeros((2, 3), dtype=dtype).astype(np.float64), np.zeros((2, 3)))
    c = init.constant((4,), -1.25, dtype=dtype)
    assert c.dtype == dtype and np.all(c.astype(np.float64) == -1.25)


def raises(exc, name, fn, *args, **kwargs):
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert str(info.value).startswith(name + ":"), str(info.value)


def test_values_beyond_the_half_range_are_errors():
    f16 = np.float16
    out = np.full(4, 7.0, f16)
    raises(ValueError, "value", init.constant, (4,), 7e4, dtype=f16, out=out)
    raises(ValueError, "value", init.constant, (4,), 1e39)            # float32 too
    raises(ValueError, "high", init.uniform, (4,), -1e5, 1.0, dtype=f16, out=out)
    raises(ValueError, "std", init.normal, (4,), 0.0, 1e4, dtype=f16, out=out)
    raises(ValueError, "std", init.normal, (4,), 65510.0, 2.0, dtype=f16, out=out)
    raises(ValueError, "std", init.truncated_normal, (4,), 0.0, 4e4, dtype=f16, out=out)
    assert np.all(out == 7.0)
    # just inside: fine
    assert np.isfinite(init.normal((1000,), 0.0, 9000.0, dtype=f16, rng=0)).all()
    assert np.isfinite(init.normal((1000,), 65500.0, 1.0, dtype=f16, rng=0)).all()
    assert np.isfinite(init.uniform((1000,), -65504.0, 65504.0, dtype=f16, rng=0)).all()


@pytest.mark.parametrize("fn", [init.zeros, init.uniform, init.normal, init.truncated_normal,
                                init.he_uniform, init.orthogonal])
def test_other_dtypes_are_still_rejected(fn):
    for dt in (np.int16, np.complex64, np.float128 if hasattr(np, "float128") else np.int8):
        raises(TypeError, "dtype", fn, (4, 4), dtype=dt)
    raises(TypeError, "out", fn, (4, 4), dtype=np.float16, out=np.zeros((4, 4), np.float32))


@pytest.mark.parametrize("dtype", HALF)
def test_reference_initializers_take_half_dtypes(dtype):
    rng = np.random.default_rng(0)
    for name in ("uniform", "normal", "truncated_normal", "glorot_uniform", "he_normal"):
        fn = getattr(reference, name)
        args = {"uniform": ((50, 40), -1.0, 1.0), "normal": ((50, 40), 0.0, 1.0),
                "truncated_normal": ((50, 40), 0.0, 1.0, -2.0, 2.0)}.get(name, ((50, 40),))
        w = fn(*args, rng=rng, dtype=dtype)
        assert w.dtype == dtype and w.shape == (50, 40) and np.isfinite(w.astype(float)).all()
    w = reference.orthogonal((8, 4), rng, dtype=dtype)
    assert w.dtype == dtype


# ---- without ml_dtypes -----------------------------------------------------------------------

def test_without_ml_dtypes_everything_else_works_and_bfloat16_is_a_named_error():
    code = """
import sys
sys.modules["ml_dtypes"] = None          # import ml_dtypes now raises ImportError
import numpy as np, fastbn
from fastbn import init
g = [np.ones(10, np.float16), np.ones(3, np.float32)]
assert fastbn.global_norm(g) == 13 ** 0.5
assert fastbn.clip_by_norm(g[0], 1.0).dtype == np.float16
assert init.normal((5,), dtype=np.float16, rng=0).dtype == np.float16
try:
    init.normal((5,), dtype="bfloat16", rng=0)
except TypeError as e:
    print(e)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    msg = proc.stdout.strip()
    assert msg.startswith("dtype:") and "ml_dtypes" in msg and "pip install" in msg, msg


# ---- clipping --------------------------------------------------------------------------------

NORMS = [1.0, 2.0, 3.5, math.inf, 0.5]
RTOL = 1e-12     # as tests/test_clip.py: float64 sums of non-negative terms, both sides


def half_grads(rng, dtypes, scale=1.0):
    shapes = [(16, 3, 7, 7), (300, 200), (64,), (1,), (0,), (40000,), (5, 1, 3), ()]
    with np.errstate(over="ignore"):    # a large scale makes some float16 values infinite
        return [np.asarray(rng.standard_normal(s) * scale).astype(dtypes[k % len(dtypes)])
                for k, s in enumerate(shapes)]


HALF_LISTS = [pytest.param((np.dtype(np.float16),), id="f16"),
              pytest.param((BF16,), id="bf16", marks=NO_ML_DTYPES),
              pytest.param((np.dtype(np.float16), BF16, np.dtype(np.float32),
                            np.dtype(np.float64)), id="mixed", marks=NO_ML_DTYPES)]


def scaled(g, coef):
    """The documented value of a scaled element: T(float64(x) * float64(T(coef))), rounded
    once from float64 (NumPy's float16 and ml_dtypes' bfloat16 casts round float64 directly)."""
    c = float(np.asarray(coef).astype(g.dtype))
    with np.errstate(invalid="ignore", over="ignore"):
        return (g.astype(np.float64) * c).astype(g.dtype)


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("dtypes", HALF_LISTS)
def test_half_global_norm_is_the_float64_norm_of_the_exact_values(p, dtypes):
    grads = half_grads(np.random.default_rng(0), dtypes)
    want = reference.global_norm(grads, p)      # float64 of the exact values
    assert fastbn.global_norm(grads, p) == pytest.approx(want, rel=RTOL)


@pytest.mark.parametrize("dtype", HALF)
def test_half_sums_do_not_stall(dtype):
    # A half-precision running sum stops growing at 2048 (float16) or 256 (bfloat16) when adding
    # ones; accumulated in float64, 10^6 ones sum to 10^6 exactly.
    g = np.ones(10 ** 6, dtype)
    assert fastbn.global_norm(g, 1.0) == 1e6
    assert fastbn.global_norm(g) == 1e3


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("dtypes", HALF_LISTS)
@pytest.mark.parametrize("max_norm", [1.0, 1e-6])      # 1e-6: results deep in the subnormals
def test_half_clip_grad_norm_rounds_each_product_once(p, dtypes, max_norm):
    grads = half_grads(np.random.default_rng(1), dtypes)
    originals = [g.copy() for g in grads]
    total = fastbn.clip_grad_norm(grads, max_norm, norm_type=p)
    coef = max_norm / (total + 1e-6)
    assert coef < 1
    for g, o in zip(grads, originals):
        same_bits(g, scaled(o, coef))


@pytest.mark.parametrize("dtype", HALF)
def test_every_half_value_scales_to_its_correct_rounding(dtype, isa):
    """All 65536 bit patterns, scaled by coefficients that give halfway cases, subnormals and
    zeros: the C conversions (F16C or portable) agree with NumPy / ml_dtypes everywhere."""
    u = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    exp_mask = 0x7C00 if dtype == np.float16 else 0x7F80
    x = u[(u & exp_mask) != exp_mask].view(dtype)           # every finite value
    for s in (0.75, 0.5 + 2.0 ** -9, 1 / 3, 2.0 ** -10, 2.0 ** -20, 1e-30):
        norm = fastbn.global_norm(x)
        out = fastbn.clip_by_norm(x, norm * s)
        s_used = (norm * s) / norm
        same_bits(out, scaled(x, s_used))


@pytest.mark.parametrize("dtypes", HALF_LISTS)
@pytest.mark.parametrize("c", [0.0, 0.1, 1.0, 65519.0, 65520.0, math.inf])
def test_half_clip_grad_value_is_exact(dtypes, c):
    grads = half_grads(np.random.default_rng(2), dtypes, scale=3e4)
    grads[0].flat[:3] = [np.nan, np.inf, -np.inf]
    originals = [g.copy() for g in grads]
    fastbn.clip_grad_value(grads, c)
    for g, o in zip(grads, originals):
        with np.errstate(over="ignore"):
            bound = float(np.asarray(c).astype(o.dtype)) if o.dtype != np.float32 or \
                c <= np.finfo(np.float32).max else math.inf
        o64 = o.astype(np.float64)
        want = np.where(o64 < -bound, -bound, np.where(o64 > bound, bound, o64))   # NaN kept
        same_bits(g, want.astype(o.dtype))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("max_norm", [0.0, 0.3, 5.0, 1e9])
def test_half_clip_by_norm(dtype, max_norm):
    rng = np.random.default_rng(3)
    g = rng.standard_normal((60, 70)).astype(dtype)
    before = g.copy()
    norm = fastbn.global_norm(g)
    want = g.copy() if norm <= max_norm else scaled(g, max_norm / norm)
    same_bits(fastbn.clip_by_norm(g, max_norm), want)
    same_bits(g, before)
    same_bits(fastbn.clip_by_norm(g[:, ::3], max_norm),
              (g[:, ::3].copy() if fastbn.global_norm(g[:, ::3]) <= max_norm else
               scaled(g[:, ::3], max_norm / fastbn.global_norm(g[:, ::3]))))
    out = np.empty((70, 60), dtype).T                       # another layout
    assert fastbn.clip_by_norm(g, max_norm, out=out) is out
    same_bits(out, want)
    assert fastbn.clip_by_norm(g, max_norm, out=g) is g      # in place
    same_bits(g, want)


def test_float16_of_the_other_byte_order():
    rng = np.random.default_rng(4)
    g = rng.standard_normal(1000).astype(np.float16)
    sw = g.astype(g.dtype.newbyteorder())
    assert fastbn.global_norm(sw) == fastbn.global_norm(g)
    out = np.empty(1000, sw.dtype)
    fastbn.clip_by_norm(sw, 1.0, out=out)
    same_bits(out.astype(np.float16), fastbn.clip_by_norm(g, 1.0))
    fastbn.clip_grad_norm([sw], 1.0)
    fastbn.clip_grad_norm([g], 1.0)
    same_bits(sw.astype(np.float16), g)


@pytest.mark.parametrize("dtypes", HALF_LISTS)
def test_half_clipping_same_bits_any_thread_count_and_isa(dtypes, threads, isa):
    def run():
        rng = np.random.default_rng(7)
        grads = [(rng.standard_normal(n) * 4.0).astype(dtypes[k % len(dtypes)])
                 for k, n in enumerate([300000, 16384, 16385, 3, 400000, 1])]
        norms = [fastbn.global_norm(grads, p).hex() for p in NORMS]
        fastbn.clip_grad_norm(grads, 1.0)
        clipped = [g.copy() for g in grads]
        fastbn.clip_grad_value(grads, 1e-3)
        return norms, clipped, grads
    got = run()
    saved_threads, saved_isa = fastbn.get_num_threads(), _config.get_isa()
    try:
        fastbn.set_num_threads(1)
        _config.set_isa("scalar")
        ref = run()
    finally:
        fastbn.set_num_threads(saved_threads)
        _config.set_isa(saved_isa)
    assert got[0] == ref[0]
    for a, b in zip(got[1] + got[2], ref[1] + ref[2]):
        same_bits(a, b)


@pytest.mark.parametrize("dtypes", HALF_LISTS)
def test_reference_clipping_twins_take_half_dtypes(dtypes):
    rng = np.random.default_rng(5)
    a, b = half_grads(rng, dtypes), None
    b = [g.copy() for g in a]
    assert fastbn.clip_grad_norm(a, 0.5) == pytest.approx(reference.clip_grad_norm(b, 0.5),
                                                          rel=RTOL)
    for x, y in zip(a, b):
        same_bits(x, y)
    fastbn.clip_grad_value(a, 0.01)
    reference.clip_grad_value(b, 0.01)
    for x, y in zip(a, b):
        same_bits(x, y)
    g = (rng.standard_normal(500) * 9).astype(dtypes[0])
    same_bits(fastbn.clip_by_norm(g, 2.0), reference.clip_by_norm(g, 2.0))


@pytest.mark.parametrize("fn", ["clip_grad_norm", "clip_grad_value", "global_norm"])
def test_other_dtypes_are_named_errors_and_nothing_is_written(fn):
    rng = np.random.default_rng(6)
    good = [rng.standard_normal(10).astype(np.float16), rng.standard_normal(4)]
    grads = good + [np.ones(3, np.uint16)]
    before = [g.copy() for g in good]
    call = {"clip_grad_norm": lambda g: fastbn.clip_grad_norm(g, 1e-3),
            "clip_grad_value": lambda g: fastbn.clip_grad_value(g, 1e-3),
            "global_norm": lambda g: fastbn.global_norm(g)}[fn]
    with pytest.raises(TypeError, match=r"^grads\[2\]: expected a float32, float64, float16 or "
                                        r"bfloat16 array, got dtype uint16"):
        call(grads)
    for g, o in zip(good, before):
        same_bits(g, o)
    with pytest.raises(TypeError, match="^grad: expected a float32, float64, float16 or bfloat16"):
        fastbn.clip_by_norm(np.ones(3, np.uint16), 1.0)
