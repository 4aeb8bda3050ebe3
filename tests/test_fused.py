"""Batch norm fused with a residual add and a ReLU (issue 17), forward and backward.

Specification:
- ``batch_norm_train`` and ``batch_norm_infer`` with ``relu`` and/or ``residual`` return
  ``relu(t + residual)`` where ``t`` is the unfused output in x's dtype, ``t + residual`` is
  rounded once in that dtype and ``relu(s)`` is ``torch.relu``'s: +0 where ``s < 0``, ``s``
  itself elsewhere (NaN and -0.0 kept).  Bit for bit that composition, on every layout, dtype,
  thread count and instruction set; the statistics are those of ``x`` alone.
- ``batch_norm_backward`` with ``y`` masks ``dy`` as PyTorch's ``threshold_backward(dy, y, 0)``:
  +0 where ``y <= 0`` (0.0 and -0.0), ``dy`` elsewhere -- also where ``y`` is NaN.  Its results
  are bit for bit the unfused backward of the masked ``dy``, and ``dresidual`` receives that
  masked ``dy`` (``dy`` itself without ``y``).
- Against PyTorch (when installed): ``relu(batch_norm(x) + r)`` and its autograd gradients
  (dx, dgamma, dbeta, and the residual's) within the bounds of tests/bn_helpers.py.
- Bad ``relu``, ``residual``, ``y`` or ``dresidual`` raise an error naming the argument, and
  nothing is written.  Any strides and byte order give the bits of the C-contiguous native call.
- ``BatchNorm(relu=True)``: ``forward(x, residual=...)`` is the fused function, ``backward``
  returns dx and stores ``dresidual`` (None when no residual was added).
- float16 and bfloat16 (x, residual, y, dy, dresidual of the half type): the fused output is the
  half composition as NumPy and PyTorch compute half operations -- ``t`` the unfused half
  output, ``t`` and ``residual`` widened to float32, added and relu'd in float32, rounded once to
  the half type -- bit for bit; the backward masks in the widened values (``dy`` where ``y > 0``
  or ``y`` is NaN) and is the unfused half backward of that masked ``dy``, bit for bit.
"""
import copy
import pickle

import numpy as np
import pytest

import fastbn
from fastbn import _batchnorm, reference
from bn_helpers import (DTYPES, LAYOUT_IDS, LAYOUT_PARAMS, U32, assert_close, backward_bound,
                        make_inputs, oracle_train, train_bound)

SENTINEL = -12345.0
FUSIONS = [(True, False), (False, True), (True, True)]   # (relu, with a residual)
FUSION_IDS = ["relu", "add", "add-relu"]


def bits(a):
    """The bytes of ``a`` as unsigned integers: equality of these is bitwise equality (NaN and
    -0.0 included)."""
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def assert_bitwise(actual, expected):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    differ = bits(actual) != bits(expected)
    assert not differ.any(), f"{differ.sum()} of {differ.size} values differ"


def composed(t, relu, residual):
    """The definition, step by step in t's dtype: the add rounded once, then torch.relu."""
    with np.errstate(invalid="ignore"):   # inf + -inf is NaN, as in the kernel
        s = t if residual is None else t + residual
    return np.where(s < 0, s.dtype.type(0), s) if relu else s


def relu_grad(dy, y):
    """threshold_backward(dy, y, 0): 0 where y <= 0, dy elsewhere (NaN y passes dy)."""
    return np.where(y <= 0, dy.dtype.type(0), dy)


# ---- the fused forward is the unfused composition, bit for bit ---------------------------------

@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_train_is_the_composition_bitwise(rng, shape, axis, dtype, affine, threads, isa):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    if not affine:
        gamma = beta = None
    r = rng.standard_normal(shape).astype(dtype)
    t, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis)
    for relu, add in FUSIONS:
        res = r if add else None
        got = fastbn.batch_norm_train(x, gamma, beta, axis=axis, relu=relu, residual=res)
        assert_bitwise(got.y, composed(t, relu, res))
        assert_bitwise(got.mean, mean)
        assert_bitwise(got.invstd, invstd)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_infer_is_the_composition_bitwise(rng, shape, axis, dtype, threads, isa):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    C = shape[axis]
    rm, rv = rng.uniform(-1, 1, C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    r = rng.standard_normal(shape).astype(dtype)
    t = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis)
    for relu, add in FUSIONS:
        res = r if add else None
        got = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis, relu=relu, residual=res)
        assert_bitwise(got, composed(t, relu, res))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((64, 5), 1), ((4, 3, 80), 1)], ids=["rows", "slab"])
def test_redone_and_nonfinite_outputs_are_the_composition(rng, shape, axis, dtype, isa):
    # a gamma near the dtype's largest value overflows (x - mean) * s in some elements: their
    # vectors are redone by element; NaN and inf residuals pass through the add and the relu as
    # the composition says
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    gamma = np.full_like(gamma, np.finfo(dtype).max / 2)
    r = rng.standard_normal(shape).astype(dtype)
    r.flat[::7], r.flat[3::11], r.flat[5::13] = np.nan, np.inf, -np.inf
    t = fastbn.batch_norm_train(x, gamma, beta, axis=axis).y
    assert not np.isfinite(t).all()   # the redo path was taken
    for relu, _ in FUSIONS:
        got = fastbn.batch_norm_train(x, gamma, beta, axis=axis, relu=relu, residual=r).y
        assert_bitwise(got, composed(t, relu, r))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 3), (4, 3, 80)], ids=["rows", "slab"])
def test_far_from_zero_channels_take_the_float64_path_with_the_same_epilogue(dtype, shape, isa):
    # |mean| >= 2**102: the elementwise pass runs in float64 (make_coef's `exact`).  A constant
    # channel there with gamma -1 and beta -0.0 gives t = 0 * (-s) + (-0.0) = -0.0, and
    # -0.0 + -0.0 = -0.0: relu keeps it, as torch.relu does
    x = np.full(shape, 2.0 ** 110, dtype)
    gamma, beta = -np.ones(3, dtype), np.full(3, -0.0, dtype)
    r = np.full(shape, -0.0, dtype)
    t = fastbn.batch_norm_train(x, gamma, beta).y
    assert np.signbit(t).all() and (t == 0).all()
    y = fastbn.batch_norm_train(x, gamma, beta, relu=True, residual=r).y
    assert_bitwise(y, composed(t, True, r))
    assert np.signbit(y).all()
    x.flat[::2] *= 2   # not constant: some outputs negative, some positive
    t = fastbn.batch_norm_train(x, gamma, beta).y
    r = np.linspace(-3, 3, x.size).reshape(shape).astype(dtype)
    assert_bitwise(fastbn.batch_norm_train(x, gamma, beta, relu=True, residual=r).y,
                   composed(t, True, r))


# ---- the fused backward is the unfused backward of the masked dy -------------------------------

@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_backward_is_the_backward_of_the_masked_dy_bitwise(rng, shape, axis, dtype, affine,
                                                          threads, isa):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    if not affine:
        gamma = beta = None
    r = rng.standard_normal(shape).astype(dtype)
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis, relu=True, residual=r)
    dy = rng.standard_normal(shape).astype(dtype)
    g = relu_grad(dy, y)
    want = fastbn.batch_norm_backward(g, x, mean, invstd, gamma, axis=axis)
    dres = np.full(shape, SENTINEL, dtype)
    got = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, y=y, dresidual=dres)
    for a, b in zip(got, want):
        assert_bitwise(a, b)
    assert_bitwise(dres, g)
    # either alone
    assert_bitwise(fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, y=y).dx,
                   want.dx)
    dres2 = np.full(shape, SENTINEL, dtype)
    plain = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, dresidual=dres2)
    assert_bitwise(plain.dx, fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis).dx)
    assert_bitwise(dres2, dy)


# The rows path with virtual channels a multiple of 8 keeps y's mask as bits between its two
# passes (float32, float64; the half types read y again): several row chunks, several column tiles
# (1024 + 1024 + 8), channels last, and outputs whose first whole cache line (where the
# elementwise pass starts its calls) falls anywhere.
BITS_LAYOUTS = [((9000, 8), 1), ((21, 2056), 1), ((3, 5, 7, 16), -1), ((6, 8, 5), 1)]
BITS_IDS = ["NC-chunked", "NC-tiled", "NHWC", "NCL-rows"]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("shape, axis", BITS_LAYOUTS, ids=BITS_IDS)
def test_backward_through_the_mask_as_bits_is_the_masked_backward(rng, shape, axis, dtype,
                                                                  threads, isa):
    dtype = half_dtype(dtype) if dtype in ("float16", "bfloat16") else np.dtype(dtype)
    x, gamma, _ = make_inputs(rng, shape, axis, np.float64 if dtype == np.float64 else np.float32)
    x = x.astype(dtype)
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, axis=axis, relu=True)
    y.flat[::7] = np.resize(np.array(MASK_Y, np.float64).astype(dtype), y.flat[::7].shape)
    dy = rng.standard_normal(shape).astype(dtype)
    wide = y.astype(np.float64)
    g = np.where(wide <= 0, dtype.type(0), dy)
    want = fastbn.batch_norm_backward(g, x, mean, invstd, gamma, axis=axis)
    for shift in range(4):   # dx and dresidual each in a buffer, `shift` elements in
        dx = np.empty(x.size + 4, dtype)[shift:shift + x.size].reshape(shape)
        dres = np.full(x.size + 4, SENTINEL, dtype)[3 - shift:3 - shift + x.size].reshape(shape)
        got = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, y=y, out=dx,
                                         dresidual=dres)
        for a, b in zip(got, want):
            assert_bitwise(a, b)
        assert_bitwise(dres, g)
        assert_bitwise(fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, y=y,
                                                  out=dx).dx, want.dx)


MASK_Y = [0.0, -0.0, np.nan, 1e-30, -1e-30, np.inf, -np.inf, 1.0, -1.0]
MASK_SHAPES = pytest.mark.parametrize("shape", [(72, 3), (72, 8), (4, 3, 72)],
                                      ids=["rows", "rows-bits", "slab"])


def mask_inputs(rng, shape, dtype):
    """x, gamma and x's batch statistics; y cycling through MASK_Y; dy finite."""
    x, gamma, _ = make_inputs(rng, shape, 1, dtype)
    _, mean, invstd = fastbn.batch_norm_train(x, gamma)
    y = np.resize(np.array(MASK_Y, dtype), shape)
    return x, gamma, mean, invstd, y, rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@MASK_SHAPES
def test_mask_is_threshold_backward_at_zero_minus_zero_and_nan(rng, shape, dtype, isa):
    x, gamma, mean, invstd, y, dy = mask_inputs(rng, shape, dtype)
    dy.flat[1::5] = np.nan    # masked away where y <= 0: the mask replaces, it does not multiply
    dres = np.empty(shape, dtype)
    got = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, y=y, dresidual=dres)
    kept = ~(y <= 0)          # y > 0, and NaN
    assert_bitwise(dres, np.where(kept, dy, dtype(0)))
    assert not np.signbit(dres[~kept]).any()   # +0, never -0.0
    assert_bitwise(got.dx, fastbn.batch_norm_backward(dres.copy(), x, mean, invstd, gamma).dx)
    torch = pytest.importorskip("torch")
    want = torch.ops.aten.threshold_backward(torch.from_numpy(dy), torch.from_numpy(y), 0)
    assert_bitwise(dres, want.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@MASK_SHAPES
def test_sums_see_dy_where_y_is_positive_or_nan(rng, shape, dtype, isa):
    # dy finite here, so that dgamma, dbeta and dx show each value the sums took or left out
    x, gamma, mean, invstd, y, dy = mask_inputs(rng, shape, dtype)
    got = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, y=y)
    masked = np.where(~(y <= 0), dy, dtype(0))
    for a, b in zip(got, fastbn.batch_norm_backward(masked, x, mean, invstd, gamma)):
        assert_bitwise(a, b)


def test_relu_matches_torch_relu_at_nan_and_negative_values():
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 10.0], [3.0, 30.0]] * 4, np.float32)
    r = np.array([np.nan, -5.0, 5.0, -np.inf, np.inf, 0.0, -0.5, 0.5], np.float32)
    r = np.stack([r, r[::-1]], axis=1)
    t = fastbn.batch_norm_train(x).y
    y = fastbn.batch_norm_train(x, relu=True, residual=r).y
    assert_bitwise(y, torch.relu(torch.from_numpy(t) + torch.from_numpy(r)).numpy())


# ---- the split kernels (sync batch norm's parts) fuse the same way -----------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", [(64, 5, 1), (3, 4, 100), (1100, 3, 1)],
                         ids=["rows", "slab", "chunks"])
def test_apply_grad_sums_and_grad_apply_fuse_as_train_and_backward(rng, view, dtype, threads, isa):
    outer, C, inner = view
    x, gamma, beta = make_inputs(rng, (outer, C, inner), 1, dtype)
    r, dy = rng.standard_normal((2, outer, C, inner)).astype(dtype)
    n = threads
    y, stats = np.empty_like(x), np.empty((3, C))
    _batchnorm.train(x, y, *view, gamma, beta, 1e-5, stats, n, r, True)
    mean, invstd = stats[0].copy(), stats[2].copy()
    ya = np.empty_like(x)
    _batchnorm.apply(x, ya, *view, mean, invstd, gamma, beta, n, r, True)
    assert_bitwise(ya, y)
    dx, grads, dres = np.empty_like(x), np.empty((2, C)), np.empty_like(x)
    _batchnorm.backward(dy, x, dx, *view, mean, invstd, gamma, grads, n, y, dres)
    s1, s2 = np.empty(C), np.empty(C)
    _batchnorm.grad_sums(dy, x, *view, mean, invstd, s1, s2, n, y)
    assert_bitwise(s1, grads[1])   # sum of the masked dy: dbeta
    g = relu_grad(dy, y)
    w1, w2 = np.empty(C), np.empty(C)
    _batchnorm.grad_sums(g, x, *view, mean, invstd, w1, w2, n)
    assert_bitwise(s1, w1)
    assert_bitwise(s2, w2)
    dx2, dres2 = np.empty_like(x), np.empty_like(x)
    _batchnorm.grad_apply(dy, x, dx2, *view, mean, invstd, gamma, s1, s2, outer * inner, n, y,
                          dres2)
    assert_bitwise(dx2, dx)
    assert_bitwise(dres2, g)
    assert_bitwise(dres, g)


# ---- the PyTorch oracle ------------------------------------------------------------------------

TORCH_LAYOUTS = [((16, 5), 1), ((4, 3, 9, 9), 1), ((4, 3, 2, 3), 1), ((4, 6, 7, 3), -1),
                 ((2, 3, 4, 4, 5), 1), ((2, 3, 2, 3, 4), 1)]
TORCH_IDS = ["NC", "NCHW-slab", "NCHW-rows", "NHWC", "NCDHW-slab", "NCDHW-rows"]


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", TORCH_LAYOUTS, ids=TORCH_IDS)
def test_against_torch_relu_of_batch_norm_plus_residual(rng, shape, axis, dtype, affine):
    torch = pytest.importorskip("torch")
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    if not affine:
        gamma = beta = None
    # the residual keeps relu's argument away from 0 (|y*| >= 0.05, far beyond any rounding
    # error): the masks of the exact and the rounded computations agree
    t_exact = oracle_train(x, gamma, beta, axis=axis).y
    side = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    r = (side * rng.uniform(0.05, 2.0, shape) - t_exact).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)

    def to_torch(a):   # float64, channels at axis 1 as torch wants them
        return None if a is None else torch.tensor(np.moveaxis(np.asarray(a, np.float64), axis, 1)
                                                   if np.ndim(a) > 1 else np.asarray(a, np.float64),
                                                   requires_grad=True)
    tx, tr, tg, tb = to_torch(x), to_torch(r), to_torch(gamma), to_torch(beta)
    ty = torch.relu(torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True,
                                                   eps=1e-5) + tr)
    ty.backward(torch.from_numpy(np.moveaxis(dy.astype(np.float64), axis, 1)))

    def back(a):
        return np.moveaxis(a.detach().numpy(), 1, axis)
    y_exact = back(ty)

    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis, relu=True, residual=r)
    ref = oracle_train(x, gamma, beta, axis=axis)
    # t's bound, then the add's rounding (half an ulp of the sum) and the relu (1-Lipschitz)
    assert_close(y, y_exact, dtype, bound32=train_bound(x, gamma, beta, ref.mean, ref.invstd, axis)
                 + U32 * np.abs(y_exact))
    dres = np.empty(shape, dtype)
    dx, dgamma, dbeta = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, y=y,
                                                   dresidual=dres)
    assert_bitwise(dres.astype(np.float64), back(tr.grad))   # the masked dy, exactly
    if dtype == np.float64:
        assert_close(dx, back(tx.grad), dtype)
        if affine:
            assert_close(dgamma, tg.grad.numpy(), dtype)
            assert_close(dbeta, tb.grad.numpy(), dtype)
    else:
        # torch's float64 autograd differentiates with unrounded statistics; the float32 API
        # hands back mean and invstd rounded to float32, which the backward then uses (fused or
        # not).  So, as the unfused tests: the float64 oracle at those statistics and the masked
        # dy, within bn_helpers' bounds
        g = relu_grad(dy, y)
        want = reference.batch_norm_backward(*(a if a is None else a.astype(np.float64)
                                               for a in (g, x, mean, invstd, gamma)), axis=axis)
        assert_close(dx, want.dx, dtype, bound32=backward_bound(g, x, mean, invstd, gamma, axis))
        assert_close(dgamma, want.dgamma, dtype)
        assert_close(dbeta, want.dbeta, dtype)


# ---- the reference twins define the same thing -------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_twins_take_the_same_arguments(rng, dtype):
    x, gamma, beta = make_inputs(rng, (8, 3, 5), 1, dtype)
    r = rng.standard_normal(x.shape).astype(dtype)
    t = reference.batch_norm_train(x, gamma, beta).y
    fused = reference.batch_norm_train(x, gamma, beta, relu=True, residual=r)
    assert_bitwise(fused.y, composed(t, True, r))
    rm, rv = np.zeros(3, dtype), np.ones(3, dtype)
    assert_bitwise(reference.batch_norm_infer(x, rm, rv, relu=True, residual=r),
                   composed(reference.batch_norm_infer(x, rm, rv), True, r))
    dy = rng.standard_normal(x.shape).astype(dtype)
    dres = np.empty_like(x)
    got = reference.batch_norm_backward(dy, x, fused.mean, fused.invstd, gamma, y=fused.y,
                                        dresidual=dres)
    assert_bitwise(dres, relu_grad(dy, fused.y))
    assert_bitwise(got.dx, reference.batch_norm_backward(dres, x, fused.mean, fused.invstd,
                                                         gamma).dx)


# ---- strides, byte order, in place -------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_y_and_dresidual_of_any_strides_and_byte_order(rng, dtype):
    shape = (6, 3, 5, 7)
    x, gamma, beta = make_inputs(rng, shape, 1, dtype)
    r = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, relu=True, residual=r)
    dres = np.empty_like(x)
    dx = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, y=y, dresidual=dres).dx
    swapped = np.dtype(dtype).newbyteorder()
    rm, rv = np.zeros(3, dtype), np.full(3, 2.0, dtype)
    inferred = fastbn.batch_norm_infer(x, rm, rv, relu=True, residual=r)
    for view in [np.asfortranarray(r), np.repeat(r, 2, -1)[..., ::2], r.astype(swapped)]:
        assert_bitwise(fastbn.batch_norm_train(x, gamma, beta, relu=True, residual=view).y, y)
        assert_bitwise(fastbn.batch_norm_infer(x, rm, rv, relu=True, residual=view), inferred)
    for yv in [np.asfortranarray(y), y.astype(swapped)]:
        for dv in [np.empty(shape, dtype, order="F"), np.empty(shape, swapped),
                   np.empty(shape + (2,), dtype)[..., 0]]:
            got = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, y=yv, dresidual=dv).dx
            assert_bitwise(got, dx)
            assert_bitwise(dv.astype(dtype), dres)


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_fused_calls_give_the_same_bits(rng, dtype):
    x, gamma, beta = make_inputs(rng, (8, 3, 80), 1, dtype)
    r = rng.standard_normal(x.shape).astype(dtype)
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, relu=True, residual=r)
    xc = x.copy()
    assert fastbn.batch_norm_train(xc, gamma, beta, relu=True, residual=r, out=xc).y is xc
    assert_bitwise(xc, y)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dres = np.empty_like(x)
    dx = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, y=y, dresidual=dres).dx
    dyc, dres2 = dy.copy(), np.empty_like(x)
    fastbn.batch_norm_backward(dyc, x, mean, invstd, gamma, out=dyc, y=y, dresidual=dres2)
    assert_bitwise(dyc, dx)
    assert_bitwise(dres2, dres)


# ---- bad input: named, nothing written ----------------------------------------------------------

SHAPE = (6, 3, 4)


def _arrays():
    rng = np.random.default_rng(7)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    y = np.abs(rng.standard_normal(SHAPE)).astype(np.float32)
    return dict(x=x, dy=rng.standard_normal(SHAPE).astype(np.float32), y=y,
                mean=np.zeros(3, np.float32), invstd=np.ones(3, np.float32),
                residual=rng.standard_normal(SHAPE).astype(np.float32),
                out=np.full(SHAPE, SENTINEL, np.float32),
                dresidual=np.full(SHAPE, SENTINEL, np.float32),
                running_mean=np.full(3, SENTINEL, np.float32),
                running_var=np.full(3, SENTINEL, np.float32))


def _train(a, **kw):
    args = dict(residual=a["residual"], relu=True, out=a["out"], running_mean=a["running_mean"],
                running_var=a["running_var"])
    args.update(kw)
    return fastbn.batch_norm_train(a["x"], **args)


def _infer(a, **kw):
    args = dict(residual=a["residual"], relu=True, out=a["out"])
    args.update(kw)
    return fastbn.batch_norm_infer(a["x"], np.zeros(3, np.float32), np.ones(3, np.float32), **args)


def _backward(a, **kw):
    args = dict(y=a["y"], dresidual=a["dresidual"], out=a["out"])
    args.update(kw)
    return fastbn.batch_norm_backward(a["dy"], a["x"], a["mean"], a["invstd"], **args)


BAD = [
    (_train, "relu", TypeError, lambda a: dict(relu=1)),
    (_train, "relu", TypeError, lambda a: dict(relu="yes")),
    (_train, "residual", ValueError, lambda a: dict(residual=a["residual"][:3])),
    (_train, "residual", TypeError, lambda a: dict(residual=a["residual"].astype(np.float64))),
    (_train, "residual", TypeError, lambda a: dict(residual=a["residual"].astype(np.int32))),
    (_train, "out", ValueError, lambda a: dict(residual=a["out"])),
    (_train, "running_mean", ValueError, lambda a: dict(running_mean=a["residual"][0, :, 0])),
    (_infer, "relu", TypeError, lambda a: dict(relu=None)),
    (_infer, "residual", ValueError, lambda a: dict(residual=a["residual"].reshape(3, 6, 4))),
    (_infer, "residual", TypeError, lambda a: dict(residual=a["residual"].astype(np.float64))),
    (_infer, "out", ValueError, lambda a: dict(residual=a["out"][::-1])),
    (_backward, "y", ValueError, lambda a: dict(y=a["y"][:, :2])),
    (_backward, "y", TypeError, lambda a: dict(y=a["y"].astype(np.float64))),
    (_backward, "y", TypeError, lambda a: dict(y="a string")),
    (_backward, "dresidual", ValueError, lambda a: dict(dresidual=a["dresidual"][:2])),
    (_backward, "dresidual", TypeError,
     lambda a: dict(dresidual=a["dresidual"].astype(np.float64))),
    (_backward, "dresidual", TypeError, lambda a: dict(dresidual=a["dresidual"].tolist())),
    (_backward, "dresidual", ValueError, lambda a: dict(dresidual=_read_only(a["dresidual"]))),
    (_backward, "dresidual", ValueError, lambda a: dict(dresidual=a["dy"])),
    (_backward, "dresidual", ValueError, lambda a: dict(dresidual=a["x"])),
    (_backward, "dresidual", ValueError, lambda a: dict(dresidual=a["y"])),
    (_backward, "out", ValueError, lambda a: dict(dresidual=a["out"])),
    (_backward, "out", ValueError, lambda a: dict(out=a["y"])),
]


def _read_only(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("fn, name, exc, change", BAD,
                         ids=[f"{fn.__name__[1:]}-{name}-{i}"
                              for i, (fn, name, _, _) in enumerate(BAD)])
def test_bad_fused_argument_is_named_and_nothing_is_written(fn, name, exc, change):
    a = _arrays()
    before = {k: v.copy() for k, v in a.items()}
    kw = change(a)
    with pytest.raises(exc, match=rf"^{name}: "):
        fn(a, **kw)
    for k, v in a.items():   # outputs, running buffers and inputs as they were
        assert_bitwise(v, before[k])


# ---- the layer ---------------------------------------------------------------------------------

@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_forward_and_backward_are_the_fused_functions(rng, dtype, training):
    x, _, _ = make_inputs(rng, (8, 3, 5), 1, dtype)
    r = rng.standard_normal(x.shape).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    bn = fastbn.BatchNorm(3, relu=True, dtype=dtype, momentum=0.5)
    bn.gamma[:] = [0.5, 1.5, -1.0]
    bn.beta[:] = [0.1, -0.2, 0.3]
    bn(x)   # running statistics that are not the initial ones
    bn.train(training)
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    y = bn(x, residual=r)
    if training:
        want = fastbn.batch_norm_train(x, bn.gamma, bn.beta, relu=True, residual=r,
                                       running_mean=rm, running_var=rv, momentum=0.5)
        assert_bitwise(y, want.y)
        assert_bitwise(bn.running_mean, rm)
        dx = bn.backward(dy)
        wdx, wdg, wdb = fastbn.batch_norm_backward(relu_grad(dy, want.y), x, want.mean,
                                                   want.invstd, bn.gamma)
        assert_bitwise(dx, wdx)
        assert_bitwise(bn.dgamma, wdg)
        assert_bitwise(bn.dbeta, wdb)
    else:
        assert_bitwise(y, fastbn.batch_norm_infer(x, rm, rv, bn.gamma, bn.beta, relu=True,
                                                  residual=r))
        dx = bn.backward(dy)
        plain = fastbn.BatchNorm(3, dtype=dtype).eval()
        for k in ("gamma", "beta", "running_mean", "running_var"):
            getattr(plain, k)[:] = getattr(bn, k)
        plain(x)
        assert_bitwise(dx, plain.backward(relu_grad(dy, y)))   # affine in x: masked dy through
    assert_bitwise(bn.dresidual, relu_grad(dy, y))
    bn(x)                      # no residual this time: no gradient of one
    bn.backward(dy)
    assert bn.dresidual is None


def test_layer_with_a_residual_and_no_relu_passes_dy_to_the_residual(rng):
    x, _, _ = make_inputs(rng, (8, 3), 1, np.float32)
    r, dy = rng.standard_normal((2, 8, 3)).astype(np.float32)
    bn = fastbn.BatchNorm(3)
    y = bn(x, residual=r)
    assert_bitwise(y, fastbn.batch_norm_train(x, bn.gamma, bn.beta).y + r)
    dx = bn.backward(dy)
    assert_bitwise(bn.dresidual, dy)
    assert bn.dresidual is not dy
    assert_bitwise(dx, fastbn.batch_norm_backward(dy, x, *fastbn.batch_norm_train(x)[1:]).dx)


def test_layer_bad_residual_is_named_and_changes_nothing(rng):
    bn = fastbn.BatchNorm(3, relu=True)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    for bad, exc in [(np.zeros((4, 2), np.float32), ValueError), (np.zeros((4, 3)), TypeError)]:
        with pytest.raises(exc, match="^residual: "):
            bn(x, residual=bad)
        assert bn.num_batches_tracked == 0 and (bn.running_mean == 0).all() and bn._cache is None
    with pytest.raises(TypeError, match="^relu: "):
        fastbn.BatchNorm(3, relu=1)


def test_layer_pickle_and_repr_keep_relu(rng):
    bn = fastbn.BatchNorm(3, relu=True)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    bn.backward(np.ones_like(bn(x, residual=x)))
    assert repr(bn).endswith(", relu=True)")
    assert repr(eval(repr(bn), {"BatchNorm": fastbn.BatchNorm})) == repr(bn)
    assert "relu" not in repr(fastbn.BatchNorm(3))
    for clone in (pickle.loads(pickle.dumps(bn)), copy.deepcopy(bn)):
        assert clone.relu is True
        assert_bitwise(clone.dresidual, bn.dresidual)
        assert_bitwise(clone(x, residual=x), fastbn.BatchNorm(3, relu=True)(x, residual=x))
    old = pickle.loads(pickle.dumps(fastbn.BatchNorm(3)))
    del old.__dict__["relu"], old.__dict__["dresidual"]   # a pickle from before the fusion
    restored = pickle.loads(pickle.dumps(old))
    assert restored.relu is False and restored.dresidual is None


# ---- float16 and bfloat16 ----------------------------------------------------------------------

HALF = [pytest.param("float16", id="f16"), pytest.param("bfloat16", id="bf16")]


def half_dtype(name):
    if name == "bfloat16":
        return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    return np.dtype(np.float16)


def half_composed(t, relu, residual):
    """The half definition: t (the unfused half output) and the residual widened to float32 (exact),
    added and relu'd there, then rounded once to the half type."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = t.astype(np.float32)
        if residual is not None:
            s = s + residual.astype(np.float32)
        if relu:
            s = np.where(s < 0, np.float32(0), s)
        return s.astype(t.dtype)


def half_inputs(rng, shape, axis, dt):
    """x of the half type with float32 gamma, beta, and a residual of the half type: random, with
    some elements -t exactly (sums of 0), and NaN, +-inf and -0.0 among them."""
    x, gamma, beta = make_inputs(rng, shape, axis, np.float32)
    r = rng.standard_normal(shape).astype(dt)
    flat = r.reshape(-1)
    flat[3::17], flat[5::23], flat[7::29], flat[11::31] = np.nan, np.inf, -np.inf, -0.0
    return x.astype(dt), gamma, beta, r


@pytest.mark.parametrize("half", HALF)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_half_train_and_infer_are_the_half_composition_bitwise(rng, shape, axis, half, threads,
                                                                isa):
    dt = half_dtype(half)
    x, gamma, beta, r = half_inputs(rng, shape, axis, dt)
    t, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis)
    r.reshape(-1)[13::19] = -t.reshape(-1)[13::19]   # exact cancellations: +0, relu keeps it
    rm = rng.uniform(-1, 1, gamma.shape).astype(np.float32)
    rv = rng.uniform(0.5, 2, gamma.shape).astype(np.float32)
    ti = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis)
    for relu, add in FUSIONS:
        res = r if add else None
        got = fastbn.batch_norm_train(x, gamma, beta, axis=axis, relu=relu, residual=res)
        assert_bitwise(got.y, half_composed(t, relu, res))
        assert_bitwise(got.mean, mean)
        assert_bitwise(got.invstd, invstd)
        yi = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis, relu=relu, residual=res)
        assert_bitwise(yi, half_composed(ti, relu, res))


@pytest.mark.parametrize("shape", [(64, 4), (4, 4, 80)], ids=["rows", "slab"])
def test_bf16_channels_on_the_float64_path_keep_the_half_composition(rng, shape, isa):
    # mean ~1.5e38 and x - mean beyond FLT_MAX (bfloat16 reaches 3.4e38): the float64 path
    dt = half_dtype("bfloat16")
    rows = np.resize([3e38, 3e38, 3e38, -3e38], shape[0]).reshape(-1, *[1] * (len(shape) - 1))
    x = np.broadcast_to(rows, shape).astype(dt)
    gamma = np.full(shape[1], 1e38, dtype=np.float32)
    r = rng.standard_normal(shape).astype(dt) * dt.type(1e37)
    t, _, _ = fastbn.batch_norm_train(x, gamma)
    assert np.isfinite(t.astype(np.float32)).all()
    for relu, add in FUSIONS:
        res = r if add else None
        assert_bitwise(fastbn.batch_norm_train(x, gamma, relu=relu, residual=res).y,
                       half_composed(t, relu, res))


@pytest.mark.parametrize("half", HALF)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_half_backward_is_the_backward_of_the_masked_dy_bitwise(rng, shape, axis, half, threads,
                                                                 isa):
    dt = half_dtype(half)
    x, gamma, beta, r = half_inputs(rng, shape, axis, dt)
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis, relu=True, residual=r)
    flat = y.reshape(-1)   # the mask at its edges too: 0, -0.0, NaN, tiny and infinite values
    for k, value in enumerate(MASK_Y):
        flat[k::41] = value
    dy = rng.standard_normal(shape).astype(dt)
    wide = y.astype(np.float32)
    masked = np.where((wide > 0) | np.isnan(wide), dy, dt.type(0))
    want = fastbn.batch_norm_backward(masked, x, mean, invstd, gamma, axis=axis)
    dres = np.full(shape, SENTINEL, dtype=dt)
    got = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis, y=y, dresidual=dres)
    assert_bitwise(got.dx, want.dx)
    assert_bitwise(got.dgamma, want.dgamma)
    assert_bitwise(got.dbeta, want.dbeta)
    assert_bitwise(dres, masked)


@pytest.mark.parametrize("half", HALF)
@pytest.mark.parametrize("view", [(64, 5, 1), (3, 4, 100), (1100, 3, 1)],
                         ids=["rows", "slab", "chunks"])
def test_half_split_kernels_fuse_as_train_and_backward(rng, view, half, threads, isa):
    dt = half_dtype(half)
    outer, C, inner = view
    x, gamma, beta, r = half_inputs(rng, view, 1, dt)
    dy = rng.standard_normal(view).astype(dt)
    n = threads
    t, y, stats = np.empty_like(x), np.empty_like(x), np.empty((3, C))
    _batchnorm.train(x, t, *view, gamma, beta, 1e-5, stats, n)
    _batchnorm.train(x, y, *view, gamma, beta, 1e-5, stats, n, r, True)
    assert_bitwise(y, half_composed(t, True, r))
    mean, invstd = stats[0].copy(), stats[2].copy()
    ya = np.empty_like(x)
    _batchnorm.apply(x, ya, *view, mean, invstd, gamma, beta, n, r, True)
    assert_bitwise(ya, y)
    dx, grads, dres = np.empty_like(x), np.empty((2, C)), np.empty_like(x)
    _batchnorm.backward(dy, x, dx, *view, mean, invstd, gamma, grads, n, y, dres)
    g = relu_grad(dy, y)   # in the half type: y <= 0 compares the widened values
    dx1, grads1 = np.empty_like(x), np.empty((2, C))
    _batchnorm.backward(g, x, dx1, *view, mean, invstd, gamma, grads1, n)
    assert_bitwise(dx, dx1)
    assert_bitwise(grads, grads1)
    assert_bitwise(dres, g)
    s1, s2 = np.empty(C), np.empty(C)
    _batchnorm.grad_sums(dy, x, *view, mean, invstd, s1, s2, n, y)
    assert_bitwise(s1, grads[1])   # sum of the masked dy: dbeta
    dx2, dres2 = np.empty_like(x), np.empty_like(x)
    _batchnorm.grad_apply(dy, x, dx2, *view, mean, invstd, gamma, s1, s2, outer * inner, n, y,
                          dres2)
    assert_bitwise(dx2, dx)
    assert_bitwise(dres2, g)


@pytest.mark.parametrize("half", HALF)
def test_half_fused_arguments_of_another_dtype_are_named(rng, half):
    dt = half_dtype(half)
    x, gamma, beta, r = half_inputs(rng, (6, 3, 4), 1, dt)
    y = fastbn.batch_norm_train(x, gamma, beta, relu=True, residual=r)
    for bad in (r.astype(np.float32), r.astype(np.float64)):
        with pytest.raises(TypeError, match="^residual: expected dtype"):
            fastbn.batch_norm_train(x, gamma, beta, relu=True, residual=bad)
        with pytest.raises(TypeError, match="^residual: expected dtype"):
            fastbn.batch_norm_infer(x, gamma, gamma, relu=True, residual=bad)
    dres = np.full(x.shape, SENTINEL, dtype=dt)
    with pytest.raises(TypeError, match="^y: expected dtype"):
        fastbn.batch_norm_backward(x, x, y.mean, y.invstd, y=y.y.astype(np.float32),
                                   dresidual=dres)
    assert (dres.astype(np.float32) == np.float32(dt.type(SENTINEL))).all()   # nothing written
    with pytest.raises(TypeError, match="^dresidual:"):
        fastbn.batch_norm_backward(x, x, y.mean, y.invstd, y=y.y,
                                   dresidual=np.empty(x.shape, np.float32))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("half", HALF)
def test_half_layer_is_the_fused_functions(rng, half, training):
    dt = half_dtype(half)
    x, _, _, r = half_inputs(rng, (8, 3, 5), 1, dt)
    bn = fastbn.BatchNorm(3, dtype=dt, relu=True)
    bn.training = training
    y = bn(x, residual=r)
    if training:
        t = fastbn.batch_norm_train(x, bn.gamma, bn.beta).y
    else:
        t = fastbn.batch_norm_infer(x, bn.running_mean, bn.running_var, bn.gamma, bn.beta)
    assert_bitwise(y, half_composed(t, True, r))
    dy = rng.standard_normal(x.shape).astype(dt)
    bn.backward(dy)
    wide = y.astype(np.float32)
    assert_bitwise(bn.dresidual, np.where((wide > 0) | np.isnan(wide), dy, dt.type(0)))
