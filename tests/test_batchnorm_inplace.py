"""In place: ``out=x`` for batch_norm_train and batch_norm_infer, ``out=dy`` for batch_norm_backward.

Specification:
- The output may be exactly the input it replaces -- the same array, or a view with the same data
  pointer, shape, strides and dtype.  The call then returns ``out`` holding bitwise the values of
  the out-of-place call (y, and also mean, invstd, the running buffers, dgamma, dbeta), for every
  layout, both dtypes, 1 and 2 threads, and strided (non-contiguous) aliases.
- Any other overlap of ``out`` with an input (reversed, shifted, reshaped views; ``out=x`` in
  backward) stays a ValueError (tests/test_batchnorm_errors.py).
"""
import numpy as np
import pytest

import fastbn
from bn_helpers import DTYPES, LAYOUT_IDS, LAYOUT_PARAMS, make_inputs, strided_variants

# Above 2^19 elements, where the kernels start threads (FB_PAR_MIN_ELEMS); float64 ones are
# above 4 MiB, where outputs are written with non-temporal stores.
BIG = [((131072, 5), 1, "big-NC-rows"), ((16, 8, 64, 72), 1, "big-NCHW-slab"),
       ((32, 32, 24, 24), -1, "big-NHWC"), ((64, 24, 16, 24), 2, "big-middle-axis2")]
PARAMS = LAYOUT_PARAMS + [(s, a) for s, a, _ in BIG]
IDS = LAYOUT_IDS + [name for _, _, name in BIG]


def same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def _inputs(rng, shape, axis, dtype):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    C = shape[axis]
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype)
    return x, dy, gamma, beta, rm, rv


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", PARAMS, ids=IDS)
def test_in_place_gives_the_bits_of_the_out_of_place_call(rng, shape, axis, dtype, threads):
    x, dy, gamma, beta, rm, rv = _inputs(rng, shape, axis, dtype)

    rm1, rv1, rm2, rv2 = rm.copy(), rv.copy(), rm.copy(), rv.copy()
    want = fastbn.batch_norm_train(x, gamma, beta, axis=axis, running_mean=rm1, running_var=rv1)
    xi = x.copy()
    got = fastbn.batch_norm_train(xi, gamma, beta, axis=axis, running_mean=rm2, running_var=rv2,
                                  out=xi)
    assert got.y is xi
    for g, w in zip(got, want):
        same_bits(g, w)
    same_bits(rm2, rm1)
    same_bits(rv2, rv1)

    want_y = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis)
    xi = x.copy()
    assert fastbn.batch_norm_infer(xi, rm, rv, gamma, beta, axis=axis, out=xi) is xi
    same_bits(xi, want_y)

    _, mean, invstd = want
    want_g = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis)
    dyi = dy.copy()
    got_g = fastbn.batch_norm_backward(dyi, x, mean, invstd, gamma, axis=axis, out=dyi)
    assert got_g.dx is dyi
    for g, w in zip(got_g, want_g):
        same_bits(g, w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((16, 5), 1), ((4, 3, 80), 1), ((4, 6, 7, 3), -1),
                                         ((4, 6, 3, 7), 2)],
                         ids=["NC", "NCL-slab", "NHWC", "middle-axis2"])
def test_strided_aliases_are_in_place_too(rng, shape, axis, dtype):
    x, dy, gamma, beta, rm, rv = _inputs(rng, shape, axis, dtype)
    want = fastbn.batch_norm_train(x, gamma, beta, axis=axis)
    want_y = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis)
    want_g = fastbn.batch_norm_backward(dy, x, want.mean, want.invstd, gamma, axis=axis)
    for (name, xv), (_, dyv) in zip(strided_variants(x), strided_variants(dy)):
        got = fastbn.batch_norm_train(xv, gamma, beta, axis=axis, out=xv)
        assert got.y is xv, name
        same_bits(np.ascontiguousarray(xv), want.y)
        same_bits(got.mean, want.mean)
        same_bits(got.invstd, want.invstd)

        xv[...] = x
        alias = xv[...]                      # another view object of the same memory
        assert alias is not xv
        assert fastbn.batch_norm_infer(xv, rm, rv, gamma, beta, axis=axis, out=alias) is alias
        same_bits(np.ascontiguousarray(xv), want_y)

        xv[...] = x
        got_g = fastbn.batch_norm_backward(dyv, xv, want.mean, want.invstd, gamma, axis=axis,
                                           out=dyv)
        assert got_g.dx is dyv, name
        same_bits(np.ascontiguousarray(dyv), want_g.dx)
        same_bits(got_g.dgamma, want_g.dgamma)
        same_bits(got_g.dbeta, want_g.dbeta)


def test_in_place_training_then_backward_is_a_layer_step(rng):
    """The memory-saving pattern: normalize x in place, then overwrite dy with dx.  backward
    needs the forward's input, so this is for callers that keep it elsewhere (here: x0)."""
    x0, gamma, beta = make_inputs(rng, (8, 4, 9), 1, np.float32)
    x, dy = x0.copy(), rng.standard_normal(x0.shape).astype(np.float32)
    dy0 = dy.copy()
    _, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, out=x)
    dx, _, _ = fastbn.batch_norm_backward(dy, x0, mean, invstd, gamma, out=dy)
    assert dx is dy
    same_bits(x, fastbn.batch_norm_train(x0, gamma, beta).y)
    same_bits(dy, fastbn.batch_norm_backward(dy0, x0, mean, invstd, gamma).dx)
