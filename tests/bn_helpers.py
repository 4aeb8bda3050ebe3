"""Shared helpers of the batch-norm tests: the float64 oracle, tolerances, layouts.

The oracle is :mod:`fastbn.reference` evaluated on the float64 cast of every input, so it carries
no float32 rounding of its own; fastbn's float32 results are then checked to be that value rounded
to float32 (one unit in the last place, plus float64-level slack for results near zero).
"""
import numpy as np

from fastbn import reference

# (shape, channel axis, id).  `inner` is the product of the extents after the channel axis: the C
# code takes the "rows" path (virtual channels) when inner < 32 and the "slab" path otherwise.
LAYOUTS = [
    ((16, 5), 1, "NC"),
    ((16, 5), -1, "NC-last"),
    ((5, 16), 0, "CN-axis0"),
    ((8, 3, 1), 1, "NCL-L1"),
    ((8, 3, 7), 1, "NCL-rows"),
    ((4, 3, 40), 1, "NCL-slab"),
    ((3, 2, 4100), 1, "NCL-slab-multisegment"),
    ((4, 3, 6, 7), 1, "NCHW-slab"),
    ((4, 3, 2, 3), 1, "NCHW-rows"),
    ((4, 6, 7, 3), -1, "NHWC"),
    ((4, 6, 3, 7), 2, "middle-axis2"),
    ((2, 3, 2, 3, 4), 1, "NCDHW-rows"),
    ((2, 3, 4, 4, 3), 1, "NCDHW-slab"),
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


def f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def oracle_train(x, gamma=None, beta=None, **kw):
    return reference.batch_norm_train(f64(x), f64(gamma), f64(beta), **kw)


def oracle_infer(x, rm, rv, gamma=None, beta=None, **kw):
    return reference.batch_norm_infer(f64(x), f64(rm), f64(rv), f64(gamma), f64(beta), **kw)


def oracle_backward(dy, x, mean, invstd, gamma=None, **kw):
    return reference.batch_norm_backward(f64(dy), f64(x), f64(mean), f64(invstd), f64(gamma), **kw)


def assert_close(actual, expected, dtype, *, rel64=1e-12):
    """``actual`` (of ``dtype``) equals the float64 ``expected`` up to ``dtype``'s rounding.

    float32: within one float32 ulp of the exact value, plus 1e-12 of the array's scale for the
    float64 work inside.  float64: within ``rel64`` of the array's scale.
    """
    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, dtype)
    assert actual.shape == np.shape(expected)
    if actual.size == 0:
        return
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))), 1.0)
    if np.dtype(dtype) == np.float32:
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
