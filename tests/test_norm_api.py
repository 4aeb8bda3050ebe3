"""The normalization family's API: bad input, out=, in place, strides, byte order, layers.

Specification:
- each bad argument (duplicate or out-of-range axes, an empty axis tuple, num_groups < 1 or not
  dividing C, axis 0 as a channel axis, gamma/beta/mean/invstd of the wrong shape or dtype,
  eps <= 0, normalized axes or groups holding no values, x of the wrong kind, out of the wrong
  shape or partly overlapping an input) raises ValueError/TypeError whose message starts with
  the argument's name, and `out` is left as it was;
- out=x (forward) and out=dy (backward) give bitwise the results of a new array; out= any
  other array receives bitwise the returned result; non-contiguous, Fortran-ordered and
  byte-swapped inputs give bitwise the results of their C-contiguous native copies;
- the layers LayerNorm, RMSNorm, GroupNorm, InstanceNorm give the functions' results, store
  dgamma/dbeta and pair them in parameters(); LayerNorm(bias=False) has gamma alone (PyTorch's
  bias=False), says so in its repr and keeps it through a pickle;
- rms_norm(eps=None), its reference twin and RMSNorm(eps=None) use the machine epsilon of x's
  dtype (PyTorch's default): 2**-23 float32, 2**-52 float64, 2**-10 float16, 2**-7 bfloat16.
"""
import pickle
import warnings

import numpy as np
import pytest

import fastbn
from strategies import unaligned_copy

X = np.random.default_rng(1).normal(2.0, 1.5, (4, 6, 5)).astype(np.float32)


BAD = [
    ("axis", ValueError, lambda out: fastbn.layer_norm(X, axis=(1, -2), out=out)),
    ("axis", ValueError, lambda out: fastbn.layer_norm(X, axis=3, out=out)),
    ("axis", ValueError, lambda out: fastbn.layer_norm(X, axis=(), out=out)),
    ("axis", TypeError, lambda out: fastbn.rms_norm(X, axis=1.0, out=out)),
    ("gamma", ValueError, lambda out: fastbn.layer_norm(X, np.ones(6, np.float32), out=out)),
    ("gamma", TypeError, lambda out: fastbn.layer_norm(X, np.ones(5), out=out)),
    ("beta", ValueError, lambda out: fastbn.layer_norm(X, None, np.ones((5, 1), np.float32), out=out)),
    ("eps", ValueError, lambda out: fastbn.layer_norm(X, eps=0.0, out=out)),
    ("eps", ValueError, lambda out: fastbn.rms_norm(X, eps=-1.0, out=out)),
    ("x", ValueError, lambda out: fastbn.layer_norm(np.ones((4, 0), np.float32), out=out)),
    ("x", TypeError, lambda out: fastbn.layer_norm(X.astype(np.int32), out=out)),
    ("num_groups", ValueError, lambda out: fastbn.group_norm(X, 4, out=out)),
    ("num_groups", ValueError, lambda out: fastbn.group_norm(X, 0, out=out)),
    ("num_groups", TypeError, lambda out: fastbn.group_norm(X, 2.0, out=out)),
    ("axis", ValueError, lambda out: fastbn.group_norm(X, 2, axis=0, out=out)),
    ("gamma", ValueError, lambda out: fastbn.group_norm(X, 2, np.ones(5, np.float32), out=out)),
    ("x", ValueError, lambda out: fastbn.instance_norm(np.ones((2, 3, 0), np.float32), out=out)),
    ("x", ValueError, lambda out: fastbn.instance_norm(X[0, 0], out=out)),
    ("out", ValueError, lambda out: fastbn.layer_norm(X, out=out[:, :, :4])),
    ("out", TypeError, lambda out: fastbn.layer_norm(X, out=out.astype(np.float64))),
    ("mean", ValueError, lambda out: fastbn.layer_norm_backward(X, X, np.zeros(4, np.float32),
                                                                np.ones((4, 6), np.float32), out=out)),
    ("invstd", TypeError, lambda out: fastbn.group_norm_backward(X, X, np.zeros((4, 2), np.float32),
                                                                 np.ones((4, 2)), 2, out=out)),
    ("invrms", ValueError, lambda out: fastbn.rms_norm_backward(X, X, np.ones(4, np.float32), out=out)),
    ("dy", ValueError, lambda out: fastbn.instance_norm_backward(X[:2], X, np.zeros((4, 6), np.float32),
                                                                 np.ones((4, 6), np.float32), out=out)),
]


@pytest.mark.parametrize("name, exc, call", BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
def test_bad_argument_is_named_and_nothing_is_written(name, exc, call):
    out = np.full(X.shape, 7.0, np.float32)
    with pytest.raises(exc) as info:
        call(out)
    assert str(info.value).startswith(name + ":"), str(info.value)
    assert np.all(out == 7.0)


def test_out_partly_overlapping_x_is_rejected_and_x_kept():
    x = np.random.default_rng(2).normal(size=(5, 8)).astype(np.float32)
    keep = x.copy()
    with pytest.raises(ValueError, match="^out: must not share memory with x"):
        fastbn.layer_norm(x[:4], out=x[1:])
    assert np.array_equal(x, keep)


CALLS = [("layer_norm", {"axis": (0, 2)}), ("rms_norm", {}), ("group_norm", {"num_groups": 3}),
         ("instance_norm", {"axis": -1})]


def _fwd(name, x, kw, **extra):
    kw = dict(kw)
    pos = [kw.pop("num_groups")] if "num_groups" in kw else []
    return getattr(fastbn, name)(x, *pos, **kw, **extra)


def _bwd(name, dy, x, stats, kw, **extra):
    kw = dict(kw)
    pos = [kw.pop("num_groups")] if "num_groups" in kw else []
    return getattr(fastbn, name + "_backward")(dy, x, *stats, *pos, **kw, **extra)


@pytest.mark.parametrize("name, kw", CALLS, ids=[c[0] for c in CALLS])
def test_out_and_in_place_give_the_same_bits(name, kw):
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 2.0, (4, 6, 6)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    fwd = _fwd(name, x, kw)
    bwd = _bwd(name, dy, x, fwd[1:], kw)
    out = np.empty_like(x)
    assert _fwd(name, x, kw, out=out)[0] is out and out.tobytes() == fwd[0].tobytes()
    xi = x.copy()
    assert _fwd(name, xi, kw, out=xi)[0] is xi and xi.tobytes() == fwd[0].tobytes()
    dyi = dy.copy()
    assert _bwd(name, dyi, x, fwd[1:], kw, out=dyi)[0] is dyi
    assert dyi.tobytes() == bwd[0].tobytes()


@pytest.mark.parametrize("name, kw", CALLS, ids=[c[0] for c in CALLS])
def test_strides_and_byte_order_give_the_contiguous_bits(name, kw):
    rng = np.random.default_rng(4)
    x = rng.normal(1.0, 2.0, (4, 6, 6))
    dy = rng.standard_normal(x.shape)
    want = list(_fwd(name, x, kw))
    want_b = list(_bwd(name, dy, x, want[1:], kw))
    for variant in (np.asfortranarray(x), x.astype(">f8"), np.repeat(x, 2, axis=2)[:, :, ::2]):
        dv = np.asfortranarray(dy)
        got = _fwd(name, variant, kw)
        got_b = _bwd(name, dv, variant, got[1:], kw)
        for g, w in zip(list(got) + list(got_b), want + want_b):
            assert g.tobytes() == w.tobytes()


def test_layers_give_the_functions_results_and_pair_their_gradients():
    rng = np.random.default_rng(5)
    x = rng.normal(1.0, 2.0, (3, 4, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layers = [(fastbn.LayerNorm((4, 5)), lambda g, b: fastbn.layer_norm(x, g, b, axis=(1, 2)),
               lambda s, g: fastbn.layer_norm_backward(dy, x, *s, g, axis=(1, 2))),
              (fastbn.LayerNorm(5, bias=False), lambda g, b: fastbn.layer_norm(x, g),
               lambda s, g: fastbn.layer_norm_backward(dy, x, *s, g)),
              (fastbn.RMSNorm(5), lambda g, b: fastbn.rms_norm(x, g),
               lambda s, g: fastbn.rms_norm_backward(dy, x, *s, g)),
              (fastbn.GroupNorm(2, 4), lambda g, b: fastbn.group_norm(x, 2, g, b),
               lambda s, g: fastbn.group_norm_backward(dy, x, *s, 2, g)),
              (fastbn.InstanceNorm(4, affine=True), lambda g, b: fastbn.instance_norm(x, g, b),
               lambda s, g: fastbn.instance_norm_backward(dy, x, *s, g))]
    for layer, fwd, bwd in layers:
        layer.gamma[...] = rng.uniform(0.5, 2.0, layer.gamma.shape)
        if layer.beta is not None:
            layer.beta[...] = rng.uniform(-1, 1, layer.beta.shape)
        want = fwd(layer.gamma, layer.beta)
        assert layer(x).tobytes() == want[0].tobytes()
        grads = bwd(want[1:], layer.gamma)
        assert layer.backward(dy).tobytes() == grads[0].tobytes()
        params = layer.parameters()
        assert params[0][0] is layer.gamma and params[0][1].tobytes() == grads[1].tobytes()
        if layer.beta is not None:
            assert params[1][0] is layer.beta and params[1][1].tobytes() == grads[2].tobytes()
        else:
            assert len(params) == 1
    assert fastbn.InstanceNorm(4).parameters() == []
    with pytest.raises(ValueError, match="^x:"):
        fastbn.GroupNorm(2, 4)(x[:, :3])
    with pytest.raises(ValueError, match="^num_groups:"):
        fastbn.GroupNorm(3, 4)
    with pytest.raises(RuntimeError):
        fastbn.LayerNorm(5).backward(dy)


def test_layer_norm_without_bias_learns_gamma_alone():
    ln = fastbn.LayerNorm((2, 3), bias=False)
    assert ln.beta is None and ln.gamma.shape == (2, 3) and ln.bias is False
    assert repr(ln) == ("LayerNorm((2, 3), eps=1e-05, elementwise_affine=True, bias=False, "
                        "dtype='float32')")
    assert "bias" not in repr(fastbn.LayerNorm(3)) and "bias" not in repr(fastbn.RMSNorm(3))
    x = np.random.default_rng(2).normal(1.0, 2.0, (4, 2, 3)).astype(np.float32)
    back = pickle.loads(pickle.dumps(ln))
    assert back.beta is None and back(x).tobytes() == ln(x).tobytes()
    assert ln.backward(np.ones_like(x)).shape == x.shape and ln.dbeta is None
    old = fastbn.LayerNorm(3).__getstate__()   # a pickle from before bias=
    del old["bias"]
    restored = fastbn.LayerNorm.__new__(fastbn.LayerNorm)
    restored.__setstate__(old)
    assert restored.bias is True and restored.beta is not None
    with pytest.raises(TypeError, match="^bias:"):
        fastbn.LayerNorm(3, bias=1)


@pytest.mark.parametrize("dtype, eps", [("float32", 2.0 ** -23), ("float64", 2.0 ** -52),
                                        ("float16", 2.0 ** -10), ("bfloat16", 2.0 ** -7)])
def test_rms_norm_eps_none_is_the_machine_epsilon_of_x(dtype, eps):
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    # values of order 1e-2: mean(x**2) ~ 1e-4, where each of these eps moves invrms
    x = (np.random.default_rng(3).standard_normal((4, 6)) * 1e-2).astype(dtype)
    want = fastbn.rms_norm(x, eps=eps)
    got = fastbn.rms_norm(x, eps=None)
    assert all(g.tobytes() == w.tobytes() for g, w in zip(got, want))
    assert fastbn.rms_norm(x, eps=None)[1].tobytes() != fastbn.rms_norm(x, eps=1e-6)[1].tobytes()
    ref = fastbn.reference.rms_norm(x, eps=None)
    assert all(r.tobytes() == w.tobytes()
               for r, w in zip(ref, fastbn.reference.rms_norm(x, eps=eps)))
    layer = fastbn.RMSNorm(6, eps=None, dtype=dtype)
    assert layer.eps is None and "eps=None" in repr(layer)
    assert layer(x).tobytes() == fastbn.rms_norm(x, layer.gamma, eps=eps)[0].tobytes()


def test_an_empty_batch_gives_empty_results_and_zero_parameter_gradients():
    x = np.ones((0, 4, 3), np.float32)
    y, mean, invstd = fastbn.group_norm(x, 2)
    assert y.shape == x.shape and mean.shape == invstd.shape == (0, 2)
    dx, dgamma, dbeta = fastbn.group_norm_backward(x, x, mean, invstd, 2, np.ones(4, np.float32))
    assert dx.shape == x.shape and np.array_equal(dgamma, np.zeros(4, np.float32))
    assert np.array_equal(dbeta, np.zeros(4, np.float32))
    y, invrms = fastbn.rms_norm(np.ones((0, 5)))
    assert y.shape == (0, 5) and invrms.shape == (0,)


def test_a_1d_input_has_0d_statistics():
    y, mean, invstd = fastbn.layer_norm(np.array([1.0, 2.0, 3.0]))
    assert mean.shape == invstd.shape == () and float(mean) == 2.0
    np.testing.assert_allclose(y, (np.array([1.0, 2.0, 3.0]) - 2.0) / np.sqrt(2.0 / 3.0 + 1e-5),
                               rtol=1e-15)


def test_rms_norm_backward_warns_of_nothing():
    # RMS norm has no shift: no beta gradient is computed, so none is cast (an uninitialized one
    # used to be, and a RuntimeWarning "overflow encountered in cast" reached the caller).
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for shape in [(3, 5), (64, 96), (2, 3, 700)]:
            x = rng.standard_normal(shape, dtype=np.float32)
            _, invrms = fastbn.rms_norm(x)
            dx, dgamma = fastbn.rms_norm_backward(np.ones_like(x), x, invrms, np.ones(shape[-1], np.float32))
            assert dx.dtype == dgamma.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_arrays_give_the_bits_of_aligned_ones(dtype):
    # The C code reads whole elements: unaligned views reach it as aligned copies (the glue
    # refuses them), in place too.
    from fastbn import _norm
    rng = np.random.default_rng(3)
    x, dy = (rng.standard_normal((4, 6, 5)).astype(dtype) for _ in range(2))
    g = rng.standard_normal(5).astype(dtype)
    with pytest.raises(ValueError, match="aligned"):
        _norm.norm_forward(unaligned_copy(x), np.empty_like(x), (4 * 6, 1, 1, 5, 1), None, None, 1e-5,
                      True, np.empty(24), np.empty(24), 1)
    y, mean, invstd = fastbn.layer_norm(x, g)
    for got in (fastbn.layer_norm(unaligned_copy(x), unaligned_copy(g)),
                fastbn.layer_norm(ux := unaligned_copy(x), g, out=ux)):
        assert all(np.array_equal(a, b) for a, b in zip(got, (y, mean, invstd)))
    grads = fastbn.layer_norm_backward(dy, x, mean, invstd, g)
    got = fastbn.layer_norm_backward(unaligned_copy(dy), unaligned_copy(x), unaligned_copy(mean),
                                     unaligned_copy(invstd), g, out=unaligned_copy(dy))
    assert all(np.array_equal(a, b) for a, b in zip(got, grads))
    ys = fastbn.group_norm(x.reshape(4, 6, 5), 3, axis=1)
    assert all(np.array_equal(a, b) for a, b in zip(fastbn.group_norm(unaligned_copy(x), 3, axis=1), ys))
