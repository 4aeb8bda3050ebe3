"""fastbn.init: each law against its exact distribution, the fan and gain rules of PyTorch and
Keras, reproducibility of the counter-based streams, orthogonality, and every bad input."""
import math

import numpy as np
import pytest
from scipy import special, stats

import fastbn
from fastbn import _random, init

# Statistics over a million draws take minutes under qemu: .ci/run step 4 deselects them.  The
# scalar path it runs gives the other paths' bits natively
# (test_same_bits_any_thread_count_and_isa).
large_sample = pytest.mark.slow_under_qemu

N = 1 << 20                      # samples per KS test
DTYPES = [np.float32, np.float64]
KS_P = 1e-3                      # a correct law fails a fixed-seed test with probability 1e-3


def ks(sample, cdf):
    return stats.kstest(np.asarray(sample, dtype=np.float64), cdf).pvalue


def mean_ok(x, mu, sigma):
    """|mean - mu| within 5 standard errors."""
    return abs(float(np.mean(x, dtype=np.float64)) - mu) < 5 * sigma / math.sqrt(x.size)


# ---- laws ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform_law(dtype):
    x = init.uniform((N,), -3.0, 5.0, dtype=dtype, rng=1)
    assert x.dtype == dtype and x.shape == (N,)
    assert x.min() >= -3.0 and x.max() <= 5.0
    assert ks(x, stats.uniform(-3.0, 8.0).cdf) > KS_P
    assert mean_ok(x, 1.0, 8.0 / math.sqrt(12))
    # the bits are fine-grained: float32 uses 24 bits, float64 53
    assert np.unique(x[:4096]).size == 4096


@large_sample
@pytest.mark.parametrize("dtype", DTYPES)
def test_normal_law(dtype):
    x = init.normal((N,), 2.0, 3.0, dtype=dtype, rng=2)
    assert x.dtype == dtype
    assert ks(x, stats.norm(2.0, 3.0).cdf) > KS_P
    assert mean_ok(x, 2.0, 3.0)
    z = (x.astype(np.float64) - 2.0) / 3.0
    assert abs(np.var(z) - 1.0) < 5 * math.sqrt(2.0 / N)
    assert abs(stats.kurtosis(z)) < 5 * math.sqrt(24.0 / N)


@large_sample
@pytest.mark.parametrize("dtype", DTYPES)
def test_normal_pairs_are_independent(dtype):
    """Box-Muller pairs (values 16j + l and 16(j+1) + l of a chunk) are uncorrelated, also in
    their squares (a wrong angle would correlate them)."""
    z = init.normal((N,), dtype=dtype, rng=3).astype(np.float64)
    chunk = 16 * (4 if dtype == np.float32 else 2)
    v = z.reshape(-1, chunk // 16, 16)
    a, b = v[:, 0::2, :].ravel(), v[:, 1::2, :].ravel()
    bound = 5 / math.sqrt(a.size)
    assert abs(np.corrcoef(a, b)[0, 1]) < bound
    assert abs(np.corrcoef(a * a, b * b)[0, 1]) < bound


@large_sample
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a,b", [(-2.0, 2.0), (-0.5, 3.0), (1.0, 1.5), (-6.0, -4.5), (4.0, 9.0)])
def test_truncated_normal_law(dtype, a, b):
    mean, std = 0.5, 2.0
    x = init.truncated_normal((N,), mean, std, a, b, dtype=dtype, rng=4)
    lo, hi = mean + a * std, mean + b * std
    assert x.min() >= dtype(lo) and x.max() <= dtype(hi)
    law = stats.truncnorm(a, b, loc=mean, scale=std)
    assert ks(x, law.cdf) > KS_P
    assert mean_ok(x, law.mean(), law.std())


@large_sample
def test_truncated_normal_does_not_pile_mass_on_the_ends():
    x = init.truncated_normal((N,), 0.0, 1.0, -2.0, 2.0, rng=5)
    # P(an end value) for a continuous law: only the float32 cell at the end (width 2^-23 * 2)
    assert np.count_nonzero((x == -2.0) | (x == 2.0)) <= 5


@pytest.mark.parametrize("dtype", DTYPES)
def test_constants(dtype):
    assert np.array_equal(init.zeros((2, 3), dtype=dtype), np.zeros((2, 3), dtype))
    assert np.array_equal(init.ones((4,), dtype=dtype), np.ones(4, dtype))
    c = init.constant((3, 2), -1.25, dtype=dtype)
    assert c.dtype == dtype and np.all(c == -1.25)


# ---- fan-based scales ------------------------------------------------------------------------

SHAPE = (3, 3, 96, 128)          # (kh, kw, in, out): fan_in 864, fan_out 1152
FAN_IN, FAN_OUT = 864, 1152


@pytest.mark.parametrize("fn,std", [
    (init.glorot_uniform, math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    (init.glorot_normal, math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    (init.he_uniform, math.sqrt(2.0 / FAN_IN)),
    (init.he_normal, math.sqrt(2.0 / FAN_IN)),
    (init.lecun_uniform, math.sqrt(1.0 / FAN_IN)),
    (init.lecun_normal, math.sqrt(1.0 / FAN_IN)),
])
def test_fan_based_std(fn, std):
    w = fn(SHAPE, rng=6).astype(np.float64)
    assert abs(w.std() / std - 1) < 5 * math.sqrt(0.5 / w.size)   # 5 standard errors (normal)
    if "uniform" in fn.__name__:
        assert np.abs(w).max() <= math.sqrt(3) * std * (1 + 1e-6)
        assert ks(w.ravel(), stats.uniform(-math.sqrt(3) * std, 2 * math.sqrt(3) * std).cdf) > KS_P
    else:
        assert ks(w.ravel(), stats.norm(0, std).cdf) > KS_P


def test_he_mode_nonlinearity_gain():
    w = init.he_normal((400, 600), mode="fan_out", nonlinearity="tanh", rng=7).astype(float)
    assert abs(w.std() / ((5 / 3) / math.sqrt(600)) - 1) < 0.01
    w = init.he_uniform((400, 600), a=0.2, nonlinearity="leaky_relu", rng=7).astype(float)
    bound = math.sqrt(3) * math.sqrt(2 / 1.04) / math.sqrt(400)
    assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.99 * bound
    w = init.glorot_uniform((400, 600), gain=2.0, rng=7)
    assert np.abs(w).max() <= 2 * math.sqrt(6 / 1000) * (1 + 1e-6)


@pytest.mark.parametrize("mode,fan", [("fan_in", FAN_IN), ("fan_out", FAN_OUT),
                                      ("fan_avg", (FAN_IN + FAN_OUT) / 2)])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
def test_variance_scaling_variance(mode, fan, distribution):
    w = init.variance_scaling(SHAPE, 2.0, mode, distribution, rng=8).astype(np.float64)
    assert abs(w.var() / (2.0 / fan) - 1) < 5 * math.sqrt(2.0 / w.size)   # 5 standard errors
    if distribution == "truncated_normal":
        sigma = math.sqrt(2.0 / fan) / init.TRUNCATION_STD
        assert np.abs(w).max() <= 2 * sigma * (1 + 1e-6)


def test_truncation_constant_is_the_std_of_the_truncated_unit_normal():
    assert init.TRUNCATION_STD == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-15)


def test_aliases():
    assert init.xavier_uniform is init.glorot_uniform and init.xavier_normal is init.glorot_normal
    assert init.kaiming_uniform is init.he_uniform and init.kaiming_normal is init.he_normal
    assert fastbn.init is init


# ---- fans and gains against PyTorch and Keras ------------------------------------------------

@pytest.mark.parametrize("shape", [(7, 5), (32, 16, 3, 3), (8, 4, 5), (6, 2, 3, 4, 5), (1, 9)])
def test_fans_match_pytorch_layout(shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.compute_fans(shape, in_axis=1, out_axis=0) == tuple(expected)


def keras_fans(shape):
    """Keras' _compute_fans, written out: (..., in, out), receptive field = product of the rest."""
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


@pytest.mark.parametrize("shape", [(11,), (7, 5), (3, 3, 16, 32), (5, 8, 4), (2, 3, 4, 6, 5)])
def test_fans_match_keras_layout(shape):
    assert init.compute_fans(shape) == keras_fans(shape)


@pytest.mark.parametrize("name,param", [("linear", None), ("conv2d", None), ("sigmoid", None),
                                        ("tanh", None), ("relu", None), ("leaky_relu", None),
                                        ("leaky_relu", 0.2), ("selu", None)])
def test_gains_match_pytorch(name, param):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(name, param) == pytest.approx(
        torch.nn.init.calculate_gain(name, param), rel=1e-15)


def test_gains_from_the_formulas():
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("selu") == 0.75
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01 ** 2))


# ---- reproducibility -------------------------------------------------------------------------

LAWS = [
    lambda s, **k: init.uniform(s, -1.0, 2.0, **k),
    lambda s, **k: init.normal(s, 0.5, 2.0, **k),
    lambda s, **k: init.truncated_normal(s, 0.0, 1.0, -1.0, 3.0, **k),
]
LAW_IDS = ["uniform", "normal", "truncnorm"]
DET_SHAPE = (300, 1001)          # odd size: a partial chunk, several tasks, threaded (> 2^18)


@pytest.mark.parametrize("law", LAWS, ids=LAW_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_bits_any_thread_count_and_isa(law, dtype, threads, isa):
    ref = law(DET_SHAPE, dtype=dtype, rng=123)
    fastbn.set_num_threads(1)
    from fastbn import _config
    saved = _config.get_isa()
    _config.set_isa("scalar")
    try:
        scalar_one_thread = law(DET_SHAPE, dtype=dtype, rng=123)
    finally:
        _config.set_isa(saved)
        fastbn.set_num_threads(threads)
    assert ref.tobytes() == scalar_one_thread.tobytes()


@pytest.mark.parametrize("law", LAWS, ids=LAW_IDS)
def test_out_gives_the_same_bits(law):
    ref = law(DET_SHAPE, rng=9)
    out = np.full(DET_SHAPE, np.nan, np.float32)
    assert law(DET_SHAPE, rng=9, out=out) is out
    assert out.tobytes() == ref.tobytes()
    big = np.full((DET_SHAPE[1], DET_SHAPE[0]), np.nan, np.float32)
    strided = big.T                                  # not C-contiguous
    assert law(DET_SHAPE, rng=9, out=strided) is strided
    assert np.array_equal(strided, ref)


SWAPPED = {np.float32: ">f4" if np.little_endian else "<f4",
           np.float64: ">f8" if np.little_endian else "<f8"}
OUT_FILLERS = LAWS + [
    lambda s, **k: init.constant(s, 0.1, **k),
    lambda s, **k: init.glorot_uniform(s, **k),
    lambda s, **k: init.orthogonal(s, 0.5, **k),
]


@pytest.mark.parametrize("fill", OUT_FILLERS, ids=LAW_IDS + ["constant", "glorot", "orthogonal"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_of_the_other_byte_order_gets_the_native_bits(fill, dtype):
    shape = (300, 101)
    ref = fill(shape, dtype=dtype, rng=9)
    out = np.full(shape, np.nan, SWAPPED[dtype])              # same values, bytes swapped
    assert fill(shape, dtype=dtype, rng=9, out=out) is out
    assert out.dtype == np.dtype(SWAPPED[dtype])
    assert out.astype(dtype).tobytes() == ref.tobytes()
    big = np.full((shape[1], shape[0]), np.nan, SWAPPED[dtype])
    assert fill(shape, dtype=dtype, rng=9, out=big.T) is not None      # swapped and strided
    assert big.T.astype(dtype).tobytes() == ref.tobytes()


@pytest.mark.parametrize("x", [np.ones(8, SWAPPED[np.float32]), np.ones(8, SWAPPED[np.float64]),
                               np.ones(8, np.int32)], ids=["swapped_f4", "swapped_f8", "int32"])
def test_the_glue_lets_only_native_floats_reach_c(x):
    # fastbn.init never passes such a buffer; _random's typed memoryviews check the buffer
    # format, byte order included, so a swapped array cannot reach a kernel either way.
    # (A fused-type dispatch raises TypeError for a dtype it has no kernel for at all.)
    before = x.copy()
    with pytest.raises((ValueError, TypeError), match="endian|No matching signature"):
        _random.fill(x, "uniform", np.zeros(4, np.uint32), (0.0, 1.0), 1)
    with pytest.raises((ValueError, TypeError), match="endian|No matching signature"):
        _random.eval_math("log", x, np.empty(8, x.dtype.newbyteorder("=")))
    assert x.tobytes() == before.tobytes()


@pytest.mark.parametrize("law", LAWS, ids=LAW_IDS)
def test_value_depends_only_on_position(law):
    """A prefix of a longer output is the shorter output (the stream is indexed, not consumed)."""
    long = law((10_000,), rng=10)
    for n in (1, 63, 64, 65, 4095, 4097):
        assert law((n,), rng=10).tobytes() == long[:n].tobytes()


def test_generator_is_advanced_deterministically():
    g1, g2 = np.random.default_rng(77), np.random.default_rng(77)
    a1, a2 = init.normal((1000,), rng=g1), init.normal((1000,), rng=g2)
    assert a1.tobytes() == a2.tobytes()
    b1 = init.normal((1000,), rng=g1)
    assert b1.tobytes() != a1.tobytes()
    assert init.normal((1000,), rng=g2).tobytes() == b1.tobytes()
    assert g1.bit_generator.state != np.random.default_rng(77).bit_generator.state


def test_failed_call_does_not_advance_generator():
    g = np.random.default_rng(5)
    state = g.bit_generator.state
    with pytest.raises(ValueError):
        init.normal((10,), std=-1.0, rng=g)
    assert g.bit_generator.state == state


def test_none_gives_fresh_streams():
    assert init.uniform((64,), rng=None).tobytes() != init.uniform((64,), rng=None).tobytes()


@large_sample
@pytest.mark.parametrize("law", LAWS, ids=LAW_IDS)
def test_different_seeds_are_uncorrelated(law):
    n = 1 << 18
    xs = [law((n,), rng=s).astype(np.float64) for s in (0, 1, 2)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert abs(np.corrcoef(xs[i], xs[j])[0, 1]) < 5 / math.sqrt(n)


def test_dtypes_are_generated_natively():
    """float32 is not a rounded float64 stream: the two dtypes use the bits differently."""
    a = init.uniform((1000,), dtype=np.float32, rng=3)
    b = init.uniform((1000,), dtype=np.float64, rng=3)
    assert not np.array_equal(a, b.astype(np.float32))


# ---- orthogonal ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,out_axis", [((64, 16), -1), ((16, 64), -1), ((3, 3, 8, 32), -1),
                                            ((3, 3, 64, 16), -1), ((32, 8, 3, 3), 0),
                                            ((8, 32, 3, 3), 0)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_orthogonal(shape, out_axis, dtype):
    gain = 1.7
    w = init.orthogonal(shape, gain, out_axis=out_axis, dtype=dtype, rng=11)
    assert w.shape == shape and w.dtype == dtype
    m = np.moveaxis(w.astype(np.float64), out_axis, -1).reshape(-1, shape[out_axis])
    g = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    tol = 50 * np.finfo(dtype).eps * gain ** 2
    assert np.abs(g - gain ** 2 * np.eye(g.shape[0])).max() < tol


def test_orthogonal_pytorch_layout_matches_pytorch_flattening():
    w = init.orthogonal((16, 8, 3, 3), out_axis=0, dtype=np.float64, rng=12)
    flat = w.reshape(16, -1)             # PyTorch: rows = shape[0]
    assert np.allclose(flat @ flat.T, np.eye(16), atol=1e-12)


def test_orthogonal_is_reproducible():
    a = init.orthogonal((20, 30), rng=13)
    out = np.empty((20, 30), np.float32)
    assert init.orthogonal((20, 30), rng=13, out=out) is out
    assert a.tobytes() == out.tobytes()


# m x n: n below, at and across the QR's blocks of 32 reflectors; tails of rows under 16
QR_SHAPES = [(1, 1), (9, 1), (7, 7), (40, 3), (33, 32), (64, 33), (100, 64), (257, 65),
             (300, 300), (515, 97)]


@pytest.mark.parametrize("m,n", QR_SHAPES)
def test_orthogonal_qr_is_lapacks_q_to_rounding(m, n):
    a = np.random.default_rng(m * 1000 + n).standard_normal((m, n))
    q = a.copy()
    _random.orthogonal_q(q, 2)
    eps = np.finfo(np.float64).eps
    assert np.abs(q.T @ q - np.eye(n)).max() < 10 * n * eps          # orthonormal columns
    r = q.T @ a                                                      # R, upper triangular
    assert np.abs(np.tril(r, -1)).max() <= 10 * m * eps * np.abs(a).max()
    assert np.all(np.diagonal(r) > 0)                                 # the sign convention
    ql, rl = np.linalg.qr(a)
    ql *= np.sign(np.diagonal(rl))
    assert np.abs(q - ql).max() < 1e-12                               # Q of a well-conditioned a


@pytest.mark.parametrize("dtype", DTYPES)
def test_orthogonal_same_bits_any_thread_count_and_isa(dtype, threads, isa):
    shape = (700, 300)                  # 10 blocks of reflectors, updates threaded (> 2^19)
    ref = init.orthogonal(shape, rng=21, dtype=dtype)
    fastbn.set_num_threads(1)
    from fastbn import _config
    saved = _config.get_isa()
    _config.set_isa("scalar")
    try:
        scalar_one_thread = init.orthogonal(shape, rng=21, dtype=dtype)
    finally:
        _config.set_isa(saved)
        fastbn.set_num_threads(threads)
    assert ref.tobytes() == scalar_one_thread.tobytes()


def test_orthogonal_bits_are_pinned():
    # Recorded on x86-64 (AVX2 and scalar paths alike); the same on any machine, as the other
    # initializers' bits: the QR's operations and their order are fixed (csrc/qr_body.h).
    import hashlib
    w = init.orthogonal((300, 100), 1.5, rng=5, dtype=np.float64)
    assert hashlib.sha256(w.tobytes()).hexdigest()[:16] == "7d86cd6b4c8ce470"


# ---- the in-house functions behind the laws --------------------------------------------------

def ulps(got, ref, dtype):
    return np.max(np.abs(got.astype(np.float64) - ref) / np.spacing(np.abs(ref).astype(dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_inhouse_log_sin_cos_within_one_ulp(dtype, isa):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0, 1, 100_000), 2.0 ** -rng.uniform(0, 60, 100_000),
                        1 - rng.uniform(0, 1e-3, 50_000)]).astype(dtype)
    x = x[x > 0]
    y = np.empty_like(x)
    _random.eval_math("log", x, y)
    assert ulps(y, np.log(x.astype(np.float64)), dtype) <= 1.0
    t = rng.uniform(-math.pi / 4, math.pi / 4, 200_000).astype(dtype)
    for name, f in (("sin", np.sin), ("cos", np.cos)):
        y = np.empty_like(t)
        _random.eval_math(name, t, y)
        assert ulps(y, f(t.astype(np.float64)), dtype) <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_inhouse_normal_quantile_within_8_ulps(dtype):
    rng = np.random.default_rng(1)
    tiny_exp = 37 if dtype == np.float32 else 300
    p = np.concatenate([rng.uniform(0, 0.49, 200_000),
                        10.0 ** -rng.uniform(0.5, tiny_exp, 200_000)]).astype(dtype)
    p = p[p > 0]
    y = np.empty_like(p)
    _random.eval_math("ndtri_lower", p, y)
    assert ulps(y, special.ndtri(p.astype(np.float64)), dtype) <= 8.0


# ---- bad input -------------------------------------------------------------------------------

def raises(exc, name, fn, *args, **kwargs):
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert str(info.value).startswith(name + ":"), str(info.value)


@pytest.mark.parametrize("fn", [init.zeros, init.uniform, init.normal, init.truncated_normal,
                                init.glorot_uniform, init.he_normal, init.orthogonal])
def test_bad_shapes(fn):
    raises(ValueError, "shape", fn, (3, -1))
    raises(TypeError, "shape", fn, (3, 2.5))
    raises(TypeError, "shape", fn, "abc")
    raises(TypeError, "shape", fn, (3, True))
    raises(ValueError, "shape", fn, (2**40, 2**40))      # more bytes than an array can hold


@pytest.mark.parametrize("fn", [init.zeros, init.uniform, init.normal, init.truncated_normal,
                                init.glorot_normal, init.lecun_uniform, init.orthogonal])
def test_bad_dtype_and_out(fn):
    raises(TypeError, "dtype", fn, (4, 4), dtype=np.int32)
    raises(TypeError, "dtype", fn, (4, 4), dtype=np.complex64)
    raises(TypeError, "dtype", fn, (4, 4), dtype="nonsense")
    raises(ValueError, "out", fn, (4, 4), out=np.empty((4, 5), np.float32))
    raises(TypeError, "out", fn, (4, 4), out=np.empty((4, 4), np.float64))
    raises(TypeError, "out", fn, (4, 4), out=np.empty((4, 4), SWAPPED[np.float64]))
    raises(TypeError, "out", fn, (4, 4), out=np.empty((4, 4), np.int32))
    ro = np.zeros((4, 4), np.float32)
    ro.flags.writeable = False
    raises(ValueError, "out", fn, (4, 4), out=ro)
    assert np.all(ro == 0)
    raises(TypeError, "out", fn, (4, 4), out=[[0.0] * 4] * 4)
    raises(TypeError, "rng", fn, (4, 4), rng="seed")
    raises(ValueError, "rng", fn, (4, 4), rng=-1)


EMPTY_WEIGHTS = [(init.glorot_uniform, (0, 0), {}), (init.he_uniform, (0, 5), {}),
                 (init.he_normal, (5, 0), {"mode": "fan_out"}), (init.lecun_uniform, (0, 5), {}),
                 (init.lecun_normal, (3, 3, 0, 4), {}), (init.glorot_normal, (0,), {}),
                 (init.variance_scaling, (4, 0), {"mode": "fan_out"}),
                 (init.orthogonal, (0, 5), {}), (init.orthogonal, (3, 3, 4, 0), {}),
                 (init.zeros, (0, 5), {}), (init.truncated_normal, (2, 0, 3), {})]


@pytest.mark.parametrize("fn, shape, kw", EMPTY_WEIGHTS,
                         ids=[f"{f.__name__}{s}" for f, s, _ in EMPTY_WEIGHTS])
def test_empty_weight_is_an_empty_array(fn, shape, kw):
    """A zero-sized weight (a fan of 0) is no error: an empty array, as PyTorch's initializers
    and Keras' give; out is returned untouched, and a Generator advances as on any call."""
    w = fn(shape, **kw, dtype=np.float64, rng=3)
    assert w.shape == shape and w.dtype == np.float64
    out = np.empty(shape, np.float32)
    assert fn(shape, **kw, rng=3, out=out) is out
    g_empty, g_full = np.random.default_rng(9), np.random.default_rng(9)
    fn(shape, **kw, rng=g_empty)
    fn(tuple(d or 2 for d in shape), **kw, rng=g_full)
    assert g_empty.bit_generator.state == g_full.bit_generator.state
    raises(ValueError, "out", fn, shape, **kw, out=np.empty((1,) + shape, np.float32))
    raises(TypeError, "dtype", fn, shape, **kw, dtype=np.int32)


def test_empty_weight_arguments_still_checked():
    raises(ValueError, "gain", init.glorot_uniform, (0, 5), gain=-1.0)
    raises(ValueError, "mode", init.he_normal, (0, 5), mode="fan_sideways")
    raises(ValueError, "out_axis", init.orthogonal, (0, 5), out_axis=2)
    raises(ValueError, "shape", init.orthogonal, (0,))          # 2 dimensions, as PyTorch asks
    raises(ValueError, "shape", init.compute_fans, ())
    assert init.compute_fans((0, 5)) == (0, 5)


def test_bad_parameters():
    raises(ValueError, "std", init.normal, (3,), 0.0, -1.0)
    raises(ValueError, "std", init.truncated_normal, (3,), 0.0, -0.5)
    raises(ValueError, "low", init.uniform, (3,), 2.0, 1.0)
    raises(ValueError, "a", init.truncated_normal, (3,), 0.0, 1.0, 2.0, 2.0)
    raises(ValueError, "a", init.truncated_normal, (3,), 0.0, 1.0, 3.0, -3.0)
    raises(ValueError, "a", init.truncated_normal, (3,), 0.0, 1.0, 60.0, 70.0)
    raises(TypeError, "mean", init.normal, (3,), "0")
    raises(ValueError, "value", init.constant, (3,), float("nan"))
    raises(ValueError, "mode", init.he_uniform, (3, 3), mode="fan_avg")
    raises(ValueError, "mode", init.variance_scaling, (3, 3), mode="avg")
    raises(ValueError, "distribution", init.variance_scaling, (3, 3), distribution="gauss")
    raises(ValueError, "nonlinearity", init.he_normal, (3, 3), nonlinearity="swish")
    raises(ValueError, "nonlinearity", init.calculate_gain, "gelu")
    raises(ValueError, "gain", init.glorot_uniform, (3, 3), gain=-1.0)
    raises(ValueError, "scale", init.variance_scaling, (3, 3), 0.0)
    raises(ValueError, "shape", init.orthogonal, (5,))
    raises(ValueError, "out_axis", init.compute_fans, (3, 4), in_axis=0, out_axis=0)
    raises(ValueError, "in_axis", init.compute_fans, (3, 4), in_axis=2)


def test_failed_call_writes_nothing():
    out = np.full((4, 4), 7.0, np.float32)
    with pytest.raises(ValueError):
        init.truncated_normal((4, 4), 0.0, 1.0, 1.0, 0.0, out=out)
    assert np.all(out == 7.0)
