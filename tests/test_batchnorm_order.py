"""Memory order of the arrays the batch-norm functions allocate.

Specification (NumPy's ``order='K'``):
- A new ``y`` (train, infer) or ``dx`` (backward) has the strides ``np.empty_like(x)`` would have:
  a Fortran-ordered ``x`` gives a Fortran-ordered result, a transposed view a result transposed
  the same way, a slice or a reversed view a C-contiguous result.
- Whatever the strides, the values are bitwise those of the C-contiguous copy of the inputs.
"""
import numpy as np
import pytest

import fastbn
from bn_helpers import DTYPES, make_inputs, strided_variants


def same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


def assert_order_of(result, x):
    assert result.strides == np.empty_like(x).strides, (result.strides, x.strides)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((16, 5), 1), ((5, 3, 7), 1), ((4, 3, 80), 1),
                                         ((4, 6, 7, 3), -1), ((4, 6, 3, 7), 2)],
                         ids=["NC", "NCL-rows", "NCL-slab", "NHWC", "middle-axis2"])
def test_results_keep_the_memory_order_of_x(rng, shape, axis, dtype):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    C = shape[axis]
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype)
    want = fastbn.batch_norm_train(x, gamma, beta, axis=axis)
    want_y = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis)
    want_g = fastbn.batch_norm_backward(dy, x, want.mean, want.invstd, gamma, axis=axis)
    for (name, xv), (_, dyv) in zip(strided_variants(x), strided_variants(dy)):
        got = fastbn.batch_norm_train(xv, gamma, beta, axis=axis)
        assert_order_of(got.y, xv)
        for g, w in zip(got, want):
            same_bits(g, w)
        y = fastbn.batch_norm_infer(xv, rm, rv, gamma, beta, axis=axis)
        assert_order_of(y, xv)
        same_bits(y, want_y)
        got_g = fastbn.batch_norm_backward(dyv, xv, want.mean, want.invstd, gamma, axis=axis)
        assert_order_of(got_g.dx, xv)
        for g, w in zip(got_g, want_g):
            same_bits(g, w)


def test_fortran_in_fortran_out(rng):
    x = np.asfortranarray(rng.standard_normal((32, 6, 5)))
    assert not x.flags.c_contiguous
    assert fastbn.batch_norm_train(x).y.flags.f_contiguous
    assert fastbn.batch_norm_infer(x, np.zeros(6), np.ones(6)).flags.f_contiguous
    dx = fastbn.batch_norm_backward(x, x, np.zeros(6), np.ones(6)).dx
    assert dx.flags.f_contiguous


def test_dx_follows_x_not_dy(rng):
    x = rng.standard_normal((32, 6))
    dy = np.asfortranarray(rng.standard_normal((32, 6)))
    dx = fastbn.batch_norm_backward(dy, x, np.zeros(6), np.ones(6)).dx
    assert dx.flags.c_contiguous
    dx = fastbn.batch_norm_backward(dy.copy(order="C"), np.asfortranarray(x), np.zeros(6),
                                    np.ones(6)).dx
    assert dx.flags.f_contiguous and not dx.flags.c_contiguous


class _Subclass(np.ndarray):
    pass


def test_subclasses_give_plain_arrays(rng):
    """Like every fastbn result: a base ndarray, not the input's subclass (masked arrays, whose
    masks the kernels would ignore, are refused: tests/test_array_forms.py)."""
    x = np.asfortranarray(rng.standard_normal((8, 3))).view(_Subclass)
    y = fastbn.batch_norm_train(x).y
    assert type(y) is np.ndarray and y.flags.f_contiguous


# Large results start on a 64-byte line (NumPy's own start 16 bytes into a page, and each row's
# partial last line slows the streamed stores); small ones are plain np.empty.
_NEW_OUTPUTS = {
    "bn train": lambda x: fastbn.batch_norm_train(x, axis=-1).y,
    "bn infer": lambda x: fastbn.batch_norm_infer(x, np.zeros(64, x.dtype), np.ones(64, x.dtype),
                                                  axis=-1),
    "bn backward": lambda x: fastbn.batch_norm_backward(x, x, np.zeros(64, x.dtype),
                                                        np.ones(64, x.dtype), axis=-1).dx,
    "layer norm": lambda x: fastbn.layer_norm(x)[0],
    "layer norm backward": lambda x: fastbn.layer_norm_backward(
        x, x, np.zeros(x.shape[:-1], x.dtype), np.ones(x.shape[:-1], x.dtype))[0],
    "group norm": lambda x: fastbn.group_norm(x, 4, axis=-1)[0],
    "clip_by_norm": lambda x: fastbn.clip_by_norm(x, 1.0),
    "BatchNorm dresidual": lambda x: _layer_dresidual(x),
}


def _layer_dresidual(x):
    layer = fastbn.BatchNorm(64, axis=-1, relu=True, dtype=x.dtype)
    layer.forward(x, residual=x)
    layer.backward(x)
    return layer.dresidual


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("what", list(_NEW_OUTPUTS))
def test_large_new_results_start_on_a_line_in_the_order_of_x(rng, what, order):
    x = np.array(rng.standard_normal((512, 64)), dtype=np.float32, order=order)
    assert x.nbytes >= 1 << 17
    out = _NEW_OUTPUTS[what](x)
    assert out.ctypes.data % 64 == 0
    assert out.strides == np.empty_like(x).strides
    small = _NEW_OUTPUTS[what](np.array(x[:8], order=order))
    assert small.strides == np.empty_like(x[:8]).strides
