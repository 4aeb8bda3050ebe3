"""The normalization family's plain-case path (checked and run in Cython) and its general path
(validated in Python) are one function, as batch norm's (tests/test_batchnorm_paths.py).

Specification:
- A plain call -- x a C-contiguous float32/float64 ndarray in native byte order; layer and RMS
  norm over its last axis (``axis`` a Python int, -1 or ndim - 1), group and instance norm on a
  channel axis other than 0 (a Python int; ``num_groups`` a Python int dividing the channels);
  gamma, beta and the statistics plain arrays of x's dtype and their shapes, eps a Python
  float > 0, no fused part, ``out`` absent or a plain array sharing no memory with the inputs or
  x itself (dy for the backward) -- takes the Cython path (``fastbn._norm.*_plain`` returns a
  result, and the ``out`` given) and gives exactly the bits of the general path.
- Anything else makes the Cython path decline (return None) before it writes anything; the
  general path then validates it (tests/test_norm_api.py checks the errors).
"""
import numpy as np
import pytest

import fastbn
from fastbn import _batchnorm, _norm

SHAPES = [(7,), (5, 33), (3, 4, 65)]
DTYPES = [np.float32, np.float64]


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def strided_out(x):
    """An ``out`` for x that is not C-contiguous: the general path writes it."""
    return np.empty(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)[..., ::2]


def inputs(rng, shape, dtype, affine):
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    D = shape[-1]
    g = rng.uniform(0.5, 2, D).astype(dtype) if affine else None
    b = rng.standard_normal(D).astype(dtype) if affine else None
    return x, dy, g, b


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_plain_and_general_paths_give_the_same_bits(rng, shape, dtype, affine):
    x, dy, g, b = inputs(rng, shape, dtype, affine)
    plain = fastbn.layer_norm(x, g, b)
    general = fastbn.layer_norm(x, g, b, eps=np.float64(1e-5))   # not a Python float
    for p, q in zip(plain, general):
        same_bits(p, q)
    _, mean, invstd = plain
    for p, q in zip(fastbn.layer_norm_backward(dy, x, mean, invstd, g),
                    fastbn.layer_norm_backward(dy, x, mean, invstd, g, out=strided_out(x))):
        same_bits(p, q)

    plain = fastbn.rms_norm(x, g)
    for p, q in zip(plain, fastbn.rms_norm(x, g, eps=np.float64(1e-6))):
        same_bits(p, q)
    for p, q in zip(fastbn.rms_norm_backward(dy, x, plain[1], g),
                    fastbn.rms_norm_backward(dy, x, plain[1], g, out=strided_out(x))):
        same_bits(p, q)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_takes_the_cython_path_and_gets_the_same_bits(rng, dtype):
    """out a new array, or x itself (dy for the backward): written by the Cython path, which
    returns that very array, holding the bits of a call without out."""
    x, dy, g, b = inputs(rng, (5, 33), dtype, True)
    want, mean, invstd = fastbn.layer_norm(x, g, b)
    want_grads = fastbn.layer_norm_backward(dy, x, mean, invstd, g)
    for centered in (True, False):
        out = np.full_like(x, np.nan)
        got = _norm.trailing_forward_plain(x, g, b if centered else None, -1, 1e-5, centered, 1,
                                           out)
        assert got[0] is out and (got[1] is None) == (not centered)
        if centered:
            same_bits(out, want)
    xi = x.copy()
    assert _norm.trailing_forward_plain(xi, g, b, 1, 1e-5, True, 1, xi)[0] is xi
    same_bits(xi, want)
    out = np.full_like(x, np.nan)
    grads = _norm.trailing_backward_plain(dy, x, mean, invstd, g, -1, True, 1, out)
    assert grads[0] is out
    for p, q in zip(grads, want_grads):
        same_bits(p, q)
    dyi = dy.copy()
    assert _norm.trailing_backward_plain(dyi, x, mean, invstd, g, -1, True, 1, dyi)[0] is dyi
    same_bits(dyi, want_grads[0])


def _args(rng):
    x, dy, g, b = inputs(rng, (6, 8), np.float32, True)
    _, mean, invstd = fastbn.layer_norm(x, g, b)
    return dict(x=x, dy=dy, gamma=g, beta=b, axis=-1, eps=1e-5, mean=mean, invstd=invstd,
                out=np.zeros((6, 8), np.float32))


def _shifted(a):
    """x and out two views of one buffer, a row apart."""
    buf = np.zeros((7, 8), np.float32)
    buf[:6] = a["x"]
    a.update(x=buf[:6], out=buf[1:])


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


DECLINED = {
    "x float16": lambda a: a.update(x=a["x"].astype(np.float16)),
    "x big-endian": lambda a: a.update(x=a["x"].astype(">f4")),
    "x not contiguous": lambda a: a.update(x=np.asfortranarray(a["x"])),
    "x a list": lambda a: a.update(x=a["x"].tolist()),
    "x empty": lambda a: a.update(x=np.zeros((0, 8), np.float32)),
    "axis 0": lambda a: a.update(axis=0),
    "axis a tuple": lambda a: a.update(axis=(-1,)),
    "axis a numpy int": lambda a: a.update(axis=np.int64(-1)),
    "eps a numpy float": lambda a: a.update(eps=np.float64(1e-5)),
    "eps zero": lambda a: a.update(eps=0.0),
    "gamma float64": lambda a: a.update(gamma=a["gamma"].astype(np.float64)),
    "gamma too short": lambda a: a.update(gamma=a["gamma"][:4]),
    "beta a list": lambda a: a.update(beta=a["beta"].tolist()),
    "out float64": lambda a: a.update(out=np.zeros((6, 8))),
    "out Fortran-ordered": lambda a: a.update(out=np.zeros((6, 8), np.float32, order="F")),
    "out read-only": lambda a: a.update(out=_readonly(a["out"])),
    "out x shifted by a row": _shifted,
    "out holding gamma": lambda a: a.update(gamma=a["out"][2]),
}

DECLINED_BACKWARD = {
    "dy of another shape": lambda a: a.update(dy=a["dy"][:5]),
    "dy float64": lambda a: a.update(dy=a["dy"].astype(np.float64)),
    "mean of another shape": lambda a: a.update(mean=a["mean"][:5]),
    "invstd float64": lambda a: a.update(invstd=a["invstd"].astype(np.float64)),
    "invstd a list": lambda a: a.update(invstd=a["invstd"].tolist()),
    "out holding invstd": lambda a: a.update(invstd=a["out"][1, :6]),
    "out is x": lambda a: a.update(out=a["x"]),
}


def _unchanged(a, before):
    for k, v in before.items():
        assert np.asarray(a[k]).tobytes() == v.tobytes(), k


@pytest.mark.parametrize("change", DECLINED.values(), ids=DECLINED.keys())
def test_the_forward_declines_anything_else_and_writes_nothing(rng, change):
    a = _args(rng)
    change(a)
    before = {k: np.array(v, copy=True) for k, v in a.items() if isinstance(v, np.ndarray)}
    for centered in (True, False):
        assert _norm.trailing_forward_plain(a["x"], a["gamma"], a["beta"], a["axis"], a["eps"],
                                            centered, 1, a["out"]) is None
    _unchanged(a, before)


BACKWARD = {**{k: f for k, f in DECLINED.items() if not k.startswith(("eps", "beta"))},
            **DECLINED_BACKWARD}   # eps and beta are not arguments of the backward


@pytest.mark.parametrize("change", BACKWARD.values(), ids=BACKWARD.keys())
def test_the_backward_declines_anything_else_and_writes_nothing(rng, change):
    a = _args(rng)
    change(a)
    before = {k: np.array(v, copy=True) for k, v in a.items() if isinstance(v, np.ndarray)}
    assert _norm.trailing_backward_plain(a["dy"], a["x"], a["mean"], a["invstd"], a["gamma"],
                                         a["axis"], True, 1, a["out"]) is None
    _unchanged(a, before)


GROUP_CASES = [((2, 6, 5), 1, 3), ((3, 4, 5, 6), 1, 2), ((3, 5, 6, 4), -1, 4), ((2, 8), 1, 8),
               ((2, 8), -1, None)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis, groups", GROUP_CASES, ids=str)
def test_group_and_instance_norm_paths_give_the_same_bits(rng, shape, axis, groups, dtype):
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    C = shape[axis]
    g, b = rng.uniform(0.5, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    if groups is None:
        fwd = lambda **kw: fastbn.instance_norm(x, g, b, axis=axis, **kw)
        bwd = lambda m, s, **kw: fastbn.instance_norm_backward(dy, x, m, s, g, axis=axis, **kw)
    else:
        fwd = lambda **kw: fastbn.group_norm(x, groups, g, b, axis=axis, **kw)
        bwd = lambda m, s, **kw: fastbn.group_norm_backward(dy, x, m, s, groups, g, axis=axis,
                                                            **kw)
    plain = fwd()
    assert _norm.group_forward_plain(x, groups, g, b, axis, 1e-5, 1) is not None
    for p, q in zip(plain, fwd(eps=np.float64(1e-5))):
        same_bits(p, q)
    _, mean, invstd = plain
    assert _norm.group_backward_plain(dy, x, mean, invstd, groups, g, axis, 1) is not None
    for p, q in zip(bwd(mean, invstd), bwd(mean, invstd, out=strided_out(x))):
        same_bits(p, q)

    xi, dyi = x.copy(), dy.copy()
    assert _norm.group_forward_plain(xi, groups, g, b, axis, 1e-5, 1, xi)[0] is xi
    same_bits(xi, plain[0])
    assert _norm.group_backward_plain(dyi, x, mean, invstd, groups, g, axis, 1, dyi)[0] is dyi
    same_bits(dyi, bwd(mean, invstd)[0])


def _group_args(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    g, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    _, mean, invstd = fastbn.group_norm(x, 2, g, b)
    return dict(x=x, dy=x.copy(), groups=2, gamma=g, beta=b, axis=1, eps=1e-5, mean=mean,
                invstd=invstd, out=np.zeros_like(x))


GROUP_DECLINED = {
    "groups a numpy int": lambda a: a.update(groups=np.int64(2)),
    "groups a bool": lambda a: a.update(groups=True),
    "groups 3 of 4 channels": lambda a: a.update(groups=3),
    "groups 0": lambda a: a.update(groups=0),
    "axis 0": lambda a: a.update(axis=0),
    "axis out of range": lambda a: a.update(axis=3),
    "x 1-d": lambda a: a.update(x=a["x"][0, 0], dy=a["dy"][0, 0]),
    "x no samples": lambda a: a.update(x=np.zeros((0, 4, 5), np.float32)),
    "gamma too short": lambda a: a.update(gamma=a["gamma"][:2]),
    "out holding gamma": lambda a: a.update(gamma=a["out"][0, 0, :4]),
}
GROUP_FORWARD = {**GROUP_DECLINED,
                 "out holding beta": lambda a: a.update(beta=a["out"][0, 0, :4])}
GROUP_BACKWARD = {**GROUP_DECLINED,
                  "out is x": lambda a: a.update(out=a["x"]),
                  "mean (N, C)": lambda a: a.update(mean=np.zeros((3, 4), np.float32)),
                  "invstd float64": lambda a: a.update(invstd=a["invstd"].astype(np.float64))}


def _before(a):
    return {k: np.array(v, copy=True) for k, v in a.items() if isinstance(v, np.ndarray)}


GROUP_CALLS = {
    "forward": (GROUP_FORWARD, lambda a: _norm.group_forward_plain(
        a["x"], a["groups"], a["gamma"], a["beta"], a["axis"], a["eps"], 1, a["out"])),
    "backward": (GROUP_BACKWARD, lambda a: _norm.group_backward_plain(
        a["dy"], a["x"], a["mean"], a["invstd"], a["groups"], a["gamma"], a["axis"], 1,
        a["out"])),
}


@pytest.mark.parametrize("which, name", [(w, n) for w, (cases, _) in GROUP_CALLS.items()
                                         for n in cases])
def test_the_group_paths_decline_anything_else_and_write_nothing(rng, which, name):
    cases, call = GROUP_CALLS[which]
    a = _group_args(rng)
    cases[name](a)
    before = _before(a)
    assert call(a) is None
    _unchanged(a, before)


@pytest.mark.parametrize("axis", [2**70, -2**70, 2**40])
def test_an_axis_of_any_size_is_declined_and_named(rng, axis):
    """Compared as Python ints, not converted to C: no OverflowError, the general path's
    ValueError naming axis."""
    x = rng.standard_normal((4, 6)).astype(np.float32)
    assert _norm.trailing_forward_plain(x, None, None, axis, 1e-5, True, 1) is None
    assert _norm.group_forward_plain(x, 2, None, None, axis, 1e-5, 1) is None
    for call in (lambda: fastbn.layer_norm(x, axis=axis), lambda: fastbn.rms_norm(x, axis=axis),
                 lambda: fastbn.group_norm(x, 2, axis=axis),
                 lambda: fastbn.instance_norm(x, axis=axis),
                 lambda: fastbn.batch_norm_train(x, axis=axis)):
        with pytest.raises(ValueError, match="^axis: "):
            call()


try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:
    BF16 = None
HALF = [pytest.param(np.dtype(np.float16), id="f16"),
        pytest.param(BF16, id="bf16",
                     marks=pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed"))]


@pytest.mark.parametrize("dtype", HALF)
def test_half_tensors_take_the_cython_paths_with_float32_parameters(rng, dtype):
    """float16 / bfloat16 x, dy, out with float32 gamma, beta, running buffers and statistics:
    plain, the same bits as the general path; a half gamma is declined (the general path raises
    its TypeError)."""
    x = (rng.standard_normal((6, 4, 5)) * 2 + 1).astype(dtype)
    dy = rng.standard_normal((6, 4, 5)).astype(dtype)
    g4, b4 = rng.uniform(0.5, 2, 4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    g5, b5 = rng.uniform(0.5, 2, 5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    general = dict(eps=np.float64(1e-5))   # a NumPy float: the general path

    def both(fwd, bwd, eps=1e-5):
        """The plain forward and backward against the general ones, bit for bit."""
        plain = fwd()
        assert plain[0].dtype == dtype and all(p.dtype == np.float32 for p in plain[1:])
        for p, q in zip(plain, fwd(eps=np.float64(eps))):
            same_bits(p, q)
        grads = bwd(plain, {})
        assert grads[0].dtype == dtype and all(q.dtype == np.float32 for q in grads[1:])
        for p, q in zip(grads, bwd(plain, {"out": strided_out(x)})):
            same_bits(p, q)

    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    assert _batchnorm.train_plain(x, g4, b4, 1, 1e-5, rm, rv, 0.1, 1) is not None
    assert _batchnorm.infer_plain(x, rm, rv, g4, b4, 1, 1e-5, 1) is not None
    both(lambda **kw: fastbn.batch_norm_train(x, g4, b4, **kw),
         lambda p, kw: fastbn.batch_norm_backward(dy, x, p[1], p[2], g4, **kw))
    same_bits(fastbn.batch_norm_infer(x, rm, rv, g4, b4),
              fastbn.batch_norm_infer(x, rm, rv, g4, b4, **general))
    assert _norm.trailing_forward_plain(x, g5, b5, -1, 1e-5, True, 1) is not None
    both(lambda **kw: fastbn.layer_norm(x, g5, b5, **kw),
         lambda p, kw: fastbn.layer_norm_backward(dy, x, p[1], p[2], g5, **kw))
    both(lambda **kw: fastbn.rms_norm(x, g5, **kw),
         lambda p, kw: fastbn.rms_norm_backward(dy, x, p[1], g5, **kw), eps=1e-6)
    assert _norm.group_forward_plain(x, 2, g4, b4, 1, 1e-5, 1) is not None
    both(lambda **kw: fastbn.group_norm(x, 2, g4, b4, **kw),
         lambda p, kw: fastbn.group_norm_backward(dy, x, p[1], p[2], 2, g4, **kw))

    gh = g5.astype(dtype)
    assert _norm.trailing_forward_plain(x, gh, None, -1, 1e-5, True, 1) is None
    with pytest.raises(TypeError, match="^gamma: "):
        fastbn.layer_norm(x, gh)
