"""Shared helpers of the batch-norm tests: the float64 oracle, tolerances, layouts.

The oracle is :mod:`fastbn.reference` evaluated on the float64 cast of every input, so it carries
no float32 rounding of its own.  Per-channel float32 results (mean, invstd, dgamma, dbeta) are
computed in float64 and rounded once: they must be within one float32 ulp.  Elementwise float32
outputs (y, dx) come from fastbn's float32 elementwise pass, whose documented error bound
(csrc/batchnorm_body.h, docs/accuracy.rst) is checked element by element, with u = 2^-24:

    forward, inference:  |y - y*|  <= 4u |(x - mean) s| + 2u |c| + 4u^2 |mean s|
                                       + e (|x - mean| + u |mean| + 1)
    backward:            |dx - dx*| <= 8u (|dy g| + |(x - mean) s| + |c|) + 4u^2 |mean s|
                                       + e (|dy| + m1 + |xhat| m2 + |x - mean| + u |mean| + 2)

where y* = (x - mean) s + c and dx* = dy g + (x - mean) s + c are the exact values (s, c, g the
per-channel coefficients of each pass) and e = 2^-149, float32's smallest subnormal: the
underflow term.  Below the smallest normal number rounding is absolute, at most e/2: once when
each coefficient g, s, c is rounded to float32 (then multiplied by |dy|, |x - mh| <= |x - mean| +
u |mean|, 1) and once when each product dy * g, (x - mh) * s is rounded (additions of subnormals
are exact).  That is e/2 (|dy| + |x - mean| + u |mean|)(1 + u) + 3 e/2 (backward), e/2 (|x - mean|
+ u |mean|)(1 + u) + e (forward): within the terms above.  A g below the normal range in the
float64 work (the float64 kernels' own coefficient) errs by e/2 in s and c as well, scaled there
by m1 and |xhat| m2, the channel's means of |dy| and |dy xhat|.  float64 results are checked to ~1e-12
of their scale.
"""
import numpy as np
import pytest

from fastbn import _config, reference

# (shape, channel axis, id).  `inner` is the product of the extents after the channel axis: the C
# code takes the "rows" path (virtual channels) when inner <= 64 and the "slab" path otherwise.
LAYOUTS = [
    ((16, 5), 1, "NC"),
    ((16, 5), -1, "NC-last"),
    ((5, 16), 0, "CN-axis0"),
    ((8, 3, 1), 1, "NCL-L1"),
    ((8, 3, 7), 1, "NCL-rows"),
    ((4, 3, 80), 1, "NCL-slab"),
    ((3, 2, 4100), 1, "NCL-slab-multisegment"),
    ((4, 3, 9, 9), 1, "NCHW-slab"),
    ((4, 3, 2, 3), 1, "NCHW-rows"),
    ((4, 6, 7, 3), -1, "NHWC"),
    ((4, 6, 3, 7), 2, "middle-axis2"),
    ((2, 3, 2, 3, 4), 1, "NCDHW-rows"),
    ((2, 3, 4, 4, 5), 1, "NCDHW-slab"),
    ((2, 4, 3, 5, 3), -2, "NCDHW-axis-2"),
    ((60, 1500), 1, "NC-wide-tiled"),      # rows path, several column tiles
    ((20000, 5), 1, "NC-tall-chunked"),    # rows path, several row chunks
]
LAYOUT_IDS = [name for _, _, name in LAYOUTS]
LAYOUT_PARAMS = [(shape, axis) for shape, axis, _ in LAYOUTS]

DTYPES = [np.float32, np.float64]


def channel_shape(ndim, axis, C):
    shape = [1] * ndim
    shape[axis] = C
    return tuple(shape)


def make_inputs(rng, shape, axis, dtype, *, offset=3.0, scale=2.0):
    """x with per-channel offsets and scales, gamma, beta, all of ``dtype``."""
    C = shape[axis]
    ch = channel_shape(len(shape), axis % len(shape), C)
    loc = rng.uniform(-offset, offset, C).reshape(ch)
    sd = rng.uniform(0.5, scale, C).reshape(ch)
    x = (rng.standard_normal(shape) * sd + loc).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, C).astype(dtype)
    beta = rng.uniform(-1.0, 1.0, C).astype(dtype)
    return x, gamma, beta


def scalar_one_thread_of(outputs):
    """outputs() on the scalar path on one thread, the settings restored afterwards"""
    saved_isa, saved_n = _config.get_isa(), _config.get_num_threads()
    try:
        _config.set_isa("scalar")
        _config.set_num_threads(1)
        return outputs()
    finally:
        _config.set_isa(saved_isa)
        _config.set_num_threads(saved_n)


def spread_wide(x, rng):
    """x's values scaled by 2^-40 to 2^40: float64 sums of float32 values within a few binades of
    each other are exact in any order, of these they round (so another order would show)."""
    return (x * 2.0 ** rng.integers(-40, 40, x.shape)).astype(x.dtype)


def with_non_finite(a, seed):
    """a, in place, with +-inf and NaN of both signs at 8 scattered places: whole channels' or
    groups' statistics, and every output that depends on them, turn NaN."""
    flat = a.reshape(-1)
    at = np.random.default_rng(seed).choice(flat.size, 8, replace=False)
    flat[at] = np.array([np.inf, -np.inf, np.nan, -np.nan] * 2, a.dtype)
    return a


def with_dense_non_finite(a):
    """a, in place, with NaN of both signs and +-inf every few values in its first quarter: the
    groups there meet non-finite values in several lanes of their sums (inf - inf, NaN + NaN)."""
    head = a.reshape(-1)[: a.size // 4]
    for start, step, v in [(0, 37, np.nan), (3, 41, -np.nan), (5, 43, np.inf), (7, 47, -np.inf)]:
        head[start::step] = v
    return a


def f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def oracle_train(x, gamma=None, beta=None, **kw):
    return reference.batch_norm_train(f64(x), f64(gamma), f64(beta), **kw)


def oracle_infer(x, rm, rv, gamma=None, beta=None, **kw):
    return reference.batch_norm_infer(f64(x), f64(rm), f64(rv), f64(gamma), f64(beta), **kw)


def oracle_backward(dy, x, mean, invstd, gamma=None, **kw):
    return reference.batch_norm_backward(f64(dy), f64(x), f64(mean), f64(invstd), f64(gamma), **kw)


U32 = 2.0 ** -24
E32 = 2.0 ** -149   # float32's smallest subnormal: the bounds' underflow term


def _per_channel(a, x, axis):
    return np.asarray(a, dtype=np.float64).reshape(channel_shape(x.ndim, axis % x.ndim, x.shape[axis]))


def forward_bound(x, mean, scale, shift, axis):
    """The float32 bound of y = (x - mean) * scale + shift (see the module docstring)."""
    m, s = _per_channel(mean, x, axis), _per_channel(scale, x, axis)
    c = _per_channel(shift, x, axis)
    d = f64(x) - m
    return 4 * U32 * np.abs(d * s) + 2 * U32 * np.abs(c) + 4 * U32 ** 2 * np.abs(m * s) \
        + E32 * (np.abs(d) + U32 * np.abs(m) + 1)


def train_bound(x, gamma, beta, mean, invstd, axis):
    C = x.shape[axis]
    g = np.ones(C) if gamma is None else f64(gamma)
    b = np.zeros(C) if beta is None else f64(beta)
    return forward_bound(x, mean, g * f64(invstd), b, axis)


def infer_bound(x, rm, rv, gamma, beta, eps, axis):
    return train_bound(x, gamma, beta, rm, 1.0 / np.sqrt(f64(rv) + eps), axis)


def backward_bound(dy, x, mean, invstd, gamma, axis, *, sums=None, count=None):
    """The float32 bound of dx = dy * g + ((x - mean) * s + c) (see the module docstring).

    ``sums`` (sum_dy, sum_dy_xhat) and ``count``: those of a whole batch of which ``x`` is a
    shard (batch_norm_backward_apply); by default those of ``x`` itself.
    """
    axis = axis % x.ndim
    axes = tuple(i for i in range(x.ndim) if i != axis)
    m, inv = _per_channel(mean, x, axis), _per_channel(invstd, x, axis)
    g = inv * (1.0 if gamma is None else _per_channel(gamma, x, axis))
    d, gy = f64(x) - m, f64(dy)
    if sums is None:
        n = x.size // x.shape[axis]
        sdy = gy.sum(axis=axes, keepdims=True)
        sdyx = (gy * d).sum(axis=axes, keepdims=True)
    else:   # sum(dy * (x - mean)) = sum_dy_xhat / invstd
        n = count
        sdy, sdyx = _per_channel(sums[0], x, axis), _per_channel(sums[1], x, axis) / inv
    s, c = -g * inv * inv * sdyx / n, -g * sdy / n
    # the e terms: g below the normal range errs by up to e/2 absolutely, which dy, and through
    # s and c the channel's mean |dy| and |xhat| mean |dy xhat|, scale
    with np.errstate(over="ignore", invalid="ignore"):
        g_under = np.abs(sdy) / n + np.abs(d) * inv * inv * np.abs(sdyx) / n
    return 8 * U32 * (np.abs(gy * g) + np.abs(d * s) + np.abs(c)) + 4 * U32 ** 2 * np.abs(m * s) \
        + E32 * (np.abs(gy) + g_under + np.abs(d) + U32 * np.abs(m) + 2)


def assert_close(actual, expected, dtype, *, rel64=1e-12, bound32=None):
    """``actual`` (of ``dtype``) equals the float64 ``expected`` up to ``dtype``'s rounding.

    float32: within ``bound32`` (an elementwise error bound, see the module docstring) when given,
    else within one float32 ulp of the exact value; plus 1e-12 of the array's scale for the
    float64 work inside.  float64: within ``rel64`` of the array's scale.
    """
    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, dtype)
    assert actual.shape == np.shape(expected)
    if actual.size == 0:
        return
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))), 1.0)
    if np.dtype(dtype) == np.float32 and bound32 is not None:
        tol = np.broadcast_to(bound32, expected.shape) + 1e-12 * scale
    elif np.dtype(dtype) == np.float32:
        tol = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64) + 1e-12 * scale
    else:
        tol = rel64 * scale
    err = np.abs(actual.astype(np.float64) - expected)
    bad = ~(err <= tol)
    assert not bad.any(), (f"{bad.sum()} of {bad.size} values off; worst error "
                           f"{np.nanmax(err):.3g} vs tolerance {np.max(tol):.3g}")


def strided_variants(x):
    """Views of arrays equal to ``x`` (same shape and values) with other strides.

    Returns (name, view) pairs: Fortran order, a transposed view of a reversed-axes array,
    negative steps along every axis, a slice of a bigger array, and a every-other-element view.
    """
    out = [("fortran", np.asfortranarray(x))]
    perm = tuple(reversed(range(x.ndim)))
    out.append(("transposed", np.ascontiguousarray(x.transpose(perm)).transpose(perm)))
    neg = np.ascontiguousarray(x[(slice(None, None, -1),) * x.ndim])[(slice(None, None, -1),) * x.ndim]
    out.append(("negative-steps", neg))
    big = np.zeros(tuple(n + 2 for n in x.shape), dtype=x.dtype)
    inner = (slice(1, -1),) * x.ndim
    big[inner] = x
    out.append(("slice", big[inner]))
    every_other = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
    every_other[..., ::2] = x
    out.append(("step2", every_other[..., ::2]))
    for name, view in out:
        assert np.array_equal(view, x) and view.shape == x.shape
    return out


def x86_cpu():
    """This CPU's (vendor_id, cpu family, model) from /proc/cpuinfo, for the per-CPU choices of
    csrc/cpu.c; skips where there is none or where qemu-user emulates an older CPU (its
    /proc/cpuinfo describes the host)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines()
                        if ":" in line)
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    info = {k.strip(): v.strip() for k, v in info.items()}
    if "vendor_id" not in info or "cpu family" not in info:
        pytest.skip("not an x86 /proc/cpuinfo")
    if "avx2" in info.get("flags", "").split() and "avx2" not in _config.available_isas():
        pytest.skip("an emulated CPU (qemu-user): /proc/cpuinfo describes the host")
    return info["vendor_id"], int(info["cpu family"]), int(info.get("model", "-1"))
