"""Bad input to the batch-norm functions, and the inputs that are fine however odd they look.

Specification:
- Every bad argument raises TypeError (wrong kind or dtype) or ValueError (wrong value, shape,
  writeability or overlap) whose message starts with the argument's name.
- A call that fails writes nothing: ``out`` and the running buffers keep their sentinel values.
- eps must be > 0.  Running buffers (updated in place) must be in native byte order; every other
  array may have either (tests/test_batchnorm_byteorder.py).  ``out`` may be exactly ``x``
  (train, infer) or ``dy`` (backward) -- in place, tests/test_batchnorm_inplace.py -- and overlap
  nothing else.
- A call never modifies its inputs; read-only inputs are accepted.
- Empty arrays where they make sense, C = 0, and zero-stride (broadcast) views do not crash.
"""
import re

import numpy as np
import pytest

import fastbn
from fastbn import reference

SENTINEL = -12345.0
SHAPE = (6, 3, 4)
C = 3


def train_args():
    rng = np.random.default_rng(3)
    return dict(x=rng.standard_normal(SHAPE).astype(np.float32),
                gamma=np.full(C, 1.5, np.float32), beta=np.full(C, 0.5, np.float32),
                running_mean=np.full(C, SENTINEL, np.float32),
                running_var=np.full(C, SENTINEL, np.float32),
                out=np.full(SHAPE, SENTINEL, np.float32))


def infer_args():
    a = train_args()
    return dict(x=a["x"], running_mean=np.zeros(C, np.float32), running_var=np.ones(C, np.float32),
                gamma=a["gamma"], beta=a["beta"], out=a["out"])


def backward_args():
    a = train_args()
    rng = np.random.default_rng(4)
    return dict(dy=rng.standard_normal(SHAPE).astype(np.float32), x=a["x"],
                mean=np.zeros(C, np.float32), invstd=np.ones(C, np.float32), gamma=a["gamma"],
                out=a["out"])


def call(fn, a):
    if fn == "train":
        return fastbn.batch_norm_train(**a)
    if fn == "infer":
        return fastbn.batch_norm_infer(**a)
    return fastbn.batch_norm_backward(**a)


ARGS = {"train": train_args, "infer": infer_args, "backward": backward_args}


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _shared(n1, n2, shape1, shape2):
    """Two views of one buffer that overlap."""
    buf = np.full(1 + max(np.prod(shape1), np.prod(shape2)), SENTINEL, np.float32)
    return buf[:np.prod(shape1)].reshape(shape1), buf[1:1 + np.prod(shape2)].reshape(shape2)


def _strided_shared():
    """A strided vector and a contiguous one that share memory."""
    buf = np.full(2 * C, SENTINEL, np.float32)
    return buf[::2], buf[:C]


# (id, function, argument name in the message, exception, change to the valid arguments)
CASES = [
    # --- shapes and axes
    ("x-1d", "train", "x", ValueError, lambda a: a.update(x=np.ones(5, np.float32))),
    ("x-0d", "train", "x", ValueError, lambda a: a.update(x=np.float32(1.0))),
    ("x-1d-infer", "infer", "x", ValueError, lambda a: a.update(x=np.ones(3, np.float32))),
    ("x-1d-backward", "backward", "x", ValueError,
     lambda a: a.update(x=np.ones(3, np.float32), dy=np.ones(3, np.float32))),
    ("axis-too-big", "train", "axis", ValueError, lambda a: a.update(axis=3)),
    ("axis-too-small", "train", "axis", ValueError, lambda a: a.update(axis=-4)),
    ("axis-float", "train", "axis", TypeError, lambda a: a.update(axis=1.0)),
    ("axis-bool", "train", "axis", TypeError, lambda a: a.update(axis=True)),
    ("axis-infer", "infer", "axis", ValueError, lambda a: a.update(axis=5)),
    ("axis-backward", "backward", "axis", ValueError, lambda a: a.update(axis=-7)),
    # --- per-channel vectors of the wrong length or shape
    ("gamma-length", "train", "gamma", ValueError, lambda a: a.update(gamma=np.ones(4, np.float32))),
    ("gamma-2d", "train", "gamma", ValueError, lambda a: a.update(gamma=np.ones((C, 1), np.float32))),
    ("gamma-scalar", "train", "gamma", ValueError, lambda a: a.update(gamma=np.float32(1.0))),
    ("beta-length", "train", "beta", ValueError, lambda a: a.update(beta=np.ones(2, np.float32))),
    ("running_mean-length", "train", "running_mean", ValueError,
     lambda a: a.update(running_mean=np.full(4, SENTINEL, np.float32))),
    ("running_var-length", "train", "running_var", ValueError,
     lambda a: a.update(running_var=np.full(2, SENTINEL, np.float32))),
    ("infer-running_mean-length", "infer", "running_mean", ValueError,
     lambda a: a.update(running_mean=np.zeros(4, np.float32))),
    ("infer-running_var-length", "infer", "running_var", ValueError,
     lambda a: a.update(running_var=np.ones(1, np.float32))),
    ("infer-gamma-length", "infer", "gamma", ValueError, lambda a: a.update(gamma=np.ones(4, np.float32))),
    ("infer-beta-length", "infer", "beta", ValueError, lambda a: a.update(beta=np.ones(4, np.float32))),
    ("mean-length", "backward", "mean", ValueError, lambda a: a.update(mean=np.zeros(4, np.float32))),
    ("invstd-length", "backward", "invstd", ValueError, lambda a: a.update(invstd=np.ones(2, np.float32))),
    ("backward-gamma-length", "backward", "gamma", ValueError,
     lambda a: a.update(gamma=np.ones(4, np.float32))),
    ("dy-shape", "backward", "dy", ValueError, lambda a: a.update(dy=np.ones((6, 3, 5), np.float32))),
    ("dy-transposed-shape", "backward", "dy", ValueError,
     lambda a: a.update(dy=np.ones((4, 3, 6), np.float32))),
    # --- dtypes: non-float and mixed
    ("x-int", "train", "x", TypeError, lambda a: a.update(x=np.ones(SHAPE, np.int64))),
    ("x-bool", "train", "x", TypeError, lambda a: a.update(x=np.ones(SHAPE, bool))),
    ("x-complex", "train", "x", TypeError, lambda a: a.update(x=np.ones(SHAPE, np.complex128))),
    ("x-object", "train", "x", TypeError, lambda a: a.update(x=np.ones(SHAPE, object))),
    ("x-uint16", "train", "x", TypeError, lambda a: a.update(x=np.ones(SHAPE, np.uint16))),
    ("x-int-infer", "infer", "x", TypeError, lambda a: a.update(x=np.ones(SHAPE, np.int32))),
    ("x-complex-backward", "backward", "x", TypeError,
     lambda a: a.update(x=np.ones(SHAPE, np.complex64))),
    ("dy-int", "backward", "dy", TypeError, lambda a: a.update(dy=np.ones(SHAPE, np.int32))),
    ("dy-float64", "backward", "dy", TypeError, lambda a: a.update(dy=np.ones(SHAPE, np.float64))),
    ("gamma-float64", "train", "gamma", TypeError, lambda a: a.update(gamma=np.ones(C))),
    ("gamma-int", "train", "gamma", TypeError, lambda a: a.update(gamma=np.ones(C, np.int64))),
    ("beta-float64", "train", "beta", TypeError, lambda a: a.update(beta=np.zeros(C))),
    ("running_mean-float64", "train", "running_mean", TypeError,
     lambda a: a.update(running_mean=np.full(C, SENTINEL))),
    ("running_var-float64", "train", "running_var", TypeError,
     lambda a: a.update(running_var=np.full(C, SENTINEL))),
    ("x-float64-params-float32", "train", "gamma", TypeError,
     lambda a: a.update(x=a["x"].astype(np.float64), out=None)),
    ("infer-running_mean-float64", "infer", "running_mean", TypeError,
     lambda a: a.update(running_mean=np.zeros(C))),
    ("infer-gamma-float64", "infer", "gamma", TypeError, lambda a: a.update(gamma=np.ones(C))),
    ("mean-float64", "backward", "mean", TypeError, lambda a: a.update(mean=np.zeros(C))),
    ("invstd-complex", "backward", "invstd", TypeError,
     lambda a: a.update(invstd=np.ones(C, np.complex64))),
    # --- batch sizes
    ("empty-batch", "train", "x", ValueError,
     lambda a: a.update(x=np.ones((0, 3, 4), np.float32), out=None)),
    ("one-value-per-channel", "train", "x", ValueError,
     lambda a: a.update(x=np.ones((1, 3), np.float32), out=None)),
    ("one-value-per-channel-3d", "train", "x", ValueError,
     lambda a: a.update(x=np.ones((1, 3, 1), np.float32), out=None)),
    ("empty-batch-backward", "backward", "x", ValueError,
     lambda a: a.update(x=np.ones((0, 3, 4), np.float32), dy=np.ones((0, 3, 4), np.float32),
                        out=None)),
    # --- scalars
    ("eps-negative", "train", "eps", ValueError, lambda a: a.update(eps=-1e-5)),
    ("eps-zero", "train", "eps", ValueError, lambda a: a.update(eps=0.0)),
    ("eps-zero-plain", "train", "eps", ValueError, lambda a: a.update(eps=0.0, out=None)),
    ("eps-int-zero", "train", "eps", ValueError, lambda a: a.update(eps=0, out=None)),
    ("infer-eps-zero", "infer", "eps", ValueError, lambda a: a.update(eps=0.0)),
    ("infer-eps-zero-plain", "infer", "eps", ValueError, lambda a: a.update(eps=0.0, out=None)),
    ("eps-nan", "train", "eps", ValueError, lambda a: a.update(eps=float("nan"))),
    ("eps-string", "train", "eps", TypeError, lambda a: a.update(eps="1e-5")),
    ("eps-none", "train", "eps", TypeError, lambda a: a.update(eps=None)),
    ("eps-array", "train", "eps", TypeError, lambda a: a.update(eps=np.array([1e-5]))),
    ("infer-eps-negative", "infer", "eps", ValueError, lambda a: a.update(eps=-1.0)),
    ("infer-eps-nan", "infer", "eps", ValueError, lambda a: a.update(eps=float("nan"))),
    ("momentum-negative", "train", "momentum", ValueError, lambda a: a.update(momentum=-0.1)),
    ("momentum-above-one", "train", "momentum", ValueError, lambda a: a.update(momentum=1.1)),
    ("momentum-nan", "train", "momentum", ValueError, lambda a: a.update(momentum=float("nan"))),
    ("momentum-bool", "train", "momentum", TypeError, lambda a: a.update(momentum=True)),
    # --- running buffers must be writeable ndarrays
    ("running_mean-read-only", "train", "running_mean", ValueError,
     lambda a: a.update(running_mean=_readonly(a["running_mean"]))),
    ("running_var-read-only", "train", "running_var", ValueError,
     lambda a: a.update(running_var=_readonly(a["running_var"]))),
    ("running_var-broadcast", "train", "running_var", ValueError,
     lambda a: a.update(running_var=np.broadcast_to(np.float32(SENTINEL), (C,)))),
    ("running_mean-list", "train", "running_mean", TypeError,
     lambda a: a.update(running_mean=[0.0] * C)),
    # --- byte order: buffers updated in place must be native (inputs and out may be either)
    ("running_mean-big-endian", "train", "running_mean", TypeError,
     lambda a: a.update(running_mean=a["running_mean"].astype(">f4"))),
    ("running_var-big-endian", "train", "running_var", TypeError,
     lambda a: a.update(running_var=a["running_var"].astype(">f4"), out=None)),
    ("running_mean-big-endian-x-too", "train", "running_mean", TypeError,
     lambda a: a.update(x=a["x"].astype(">f4"), running_mean=a["running_mean"].astype(">f4"))),
    ("running_var-big-endian-float64", "train", "running_var", TypeError,
     lambda a: a.update(running_var=a["running_var"].astype(">f8"))),
    ("gamma-big-endian-float64", "train", "gamma", TypeError,
     lambda a: a.update(gamma=a["gamma"].astype(">f8"))),
    ("dy-big-endian-float64", "backward", "dy", TypeError,
     lambda a: a.update(dy=a["dy"].astype(">f8"))),
    ("out-big-endian-float64", "infer", "out", TypeError,
     lambda a: a.update(out=a["out"].astype(">f8"))),
    ("out-big-endian-shape", "train", "out", ValueError,
     lambda a: a.update(out=np.full((6, 3, 5), SENTINEL, ">f4"))),
    # --- out
    ("out-shape", "train", "out", ValueError,
     lambda a: a.update(out=np.full((6, 3, 5), SENTINEL, np.float32))),
    ("out-dtype", "train", "out", TypeError, lambda a: a.update(out=np.full(SHAPE, SENTINEL))),
    ("out-read-only", "train", "out", ValueError, lambda a: a.update(out=_readonly(a["out"]))),
    ("out-list", "train", "out", TypeError, lambda a: a.update(out=a["out"].tolist())),
    ("infer-out-shape", "infer", "out", ValueError,
     lambda a: a.update(out=np.full((6, 4, 3), SENTINEL, np.float32))),
    ("infer-out-dtype", "infer", "out", TypeError, lambda a: a.update(out=np.full(SHAPE, SENTINEL))),
    ("infer-out-read-only", "infer", "out", ValueError, lambda a: a.update(out=_readonly(a["out"]))),
    ("backward-out-shape", "backward", "out", ValueError,
     lambda a: a.update(out=np.full((6, 3), SENTINEL, np.float32))),
    ("backward-out-dtype", "backward", "out", TypeError,
     lambda a: a.update(out=np.full(SHAPE, SENTINEL))),
    ("backward-out-read-only", "backward", "out", ValueError,
     lambda a: a.update(out=_readonly(a["out"]))),
    # --- overlap: outputs with inputs and with each other
    # out=x exactly (train, infer) and out=dy (backward) are in place (test_batchnorm_inplace.py);
    # any other overlap with them is not
    ("out-is-reversed-x", "train", "out", ValueError, lambda a: a.update(out=a["x"][::-1])),
    ("out-is-x-other-byte-order", "train", "out", ValueError,
     lambda a: a.update(out=a["x"].view(">f4"))),
    ("out-is-x-reshaped", "train", "out", ValueError,
     lambda a: a.update(out=a["x"].reshape(3, 6, 4).transpose(1, 0, 2))),
    ("out-overlaps-x", "train", "out", ValueError,
     lambda a: a.update(**dict(zip(("out", "x"), _shared("out", "x", SHAPE, SHAPE))))),
    ("out-overlaps-gamma", "train", "out", ValueError,
     lambda a: a.update(gamma=a["out"].reshape(-1)[5:5 + C])),
    ("out-overlaps-beta", "train", "out", ValueError,
     lambda a: a.update(beta=a["out"].reshape(-1)[-C:])),
    ("out-overlaps-running_mean", "train", "out", ValueError,
     lambda a: a.update(running_mean=a["out"].reshape(-1)[:C])),
    ("running_mean-overlaps-running_var", "train", "running_mean", ValueError,
     lambda a: a.update(**dict(zip(("running_mean", "running_var"),
                                   _shared("running_mean", "running_var", (C,), (C,)))))),
    ("running_mean-is-running_var", "train", "running_mean", ValueError,
     lambda a: a.update(running_var=a["running_mean"])),
    ("running_mean-overlaps-x", "train", "running_mean", ValueError,
     lambda a: a.update(running_mean=a["x"][0, 0, :C])),
    ("running_var-is-gamma", "train", "running_var", ValueError,
     lambda a: a.update(running_var=a["gamma"])),
    ("running_mean-overlaps-strided-gamma", "train", "running_mean", ValueError,
     lambda a: a.update(**dict(zip(("gamma", "running_mean"), _strided_shared())))),
    ("out-overlaps-strided-beta", "train", "out", ValueError,
     lambda a: a.update(beta=a["out"].reshape(-1)[::5][:C])),
    ("infer-out-is-reversed-x", "infer", "out", ValueError, lambda a: a.update(out=a["x"][:, ::-1])),
    ("infer-out-overlaps-x", "infer", "out", ValueError,
     lambda a: a.update(**dict(zip(("out", "x"), _shared("out", "x", SHAPE, SHAPE))))),
    ("infer-out-overlaps-running_mean", "infer", "out", ValueError,
     lambda a: a.update(running_mean=a["out"].reshape(-1)[:C])),
    ("infer-out-overlaps-strided-running_var", "infer", "out", ValueError,
     lambda a: a.update(running_var=a["out"].reshape(-1)[::7][:C])),
    ("infer-out-overlaps-gamma", "infer", "out", ValueError,
     lambda a: a.update(gamma=a["out"].reshape(-1)[3:3 + C])),
    ("backward-out-is-reversed-dy", "backward", "out", ValueError,
     lambda a: a.update(out=a["dy"][..., ::-1])),
    ("backward-out-overlaps-dy", "backward", "out", ValueError,
     lambda a: a.update(**dict(zip(("out", "dy"), _shared("out", "dy", SHAPE, SHAPE))))),
    ("backward-out-is-x", "backward", "out", ValueError, lambda a: a.update(out=a["x"])),
    ("backward-out-overlaps-mean", "backward", "out", ValueError,
     lambda a: a.update(mean=a["out"].reshape(-1)[:C])),
    ("backward-out-overlaps-strided-gamma", "backward", "out", ValueError,
     lambda a: a.update(gamma=a["out"].reshape(-1)[::5][:C])),
]


def _snapshot(a):
    return {k: v.copy() for k, v in a.items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("fn, name, exc, change", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_is_named_and_nothing_is_written(fn, name, exc, change):
    a = ARGS[fn]()
    change(a)
    before = _snapshot(a)
    with pytest.raises(exc, match="^" + re.escape(name) + ":"):
        call(fn, a)
    for key, want in before.items():
        assert np.array_equal(a[key], want, equal_nan=want.dtype.kind == "f"), f"{key} was written"


def test_no_cython_signature_error_reaches_users():
    """Whatever the dtype mix, the message names an argument, never 'No matching signature'."""
    dtypes = [np.float32, np.float64, np.int32, np.complex64, bool]
    for xd in dtypes:
        for gd in dtypes:
            x = np.ones((4, 2), xd)
            try:
                fastbn.batch_norm_train(x, np.ones(2, gd))
            except (TypeError, ValueError) as e:
                assert re.match(r"^(x|gamma):", str(e)), str(e)


# ---- inputs are never modified; read-only inputs work ----------------------------------------

def _valid_calls(rng, dtype):
    x = rng.standard_normal((5, 3, 7)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    g, b = rng.uniform(0.5, 2, 3).astype(dtype), rng.uniform(-1, 1, 3).astype(dtype)
    rm, rv = rng.standard_normal(3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    mean, invstd = rng.standard_normal(3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    return [
        (fastbn.batch_norm_train, (x, g, b), {}),
        (fastbn.batch_norm_infer, (x, rm, rv, g, b), {}),
        (fastbn.batch_norm_backward, (dy, x, mean, invstd, g), {}),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_are_not_modified(rng, dtype):
    for fn, args, kw in _valid_calls(rng, dtype):
        copies = [a.copy() for a in args]
        fn(*args, **kw)
        for a, c in zip(args, copies):
            assert np.array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_inputs_are_accepted(rng, dtype):
    for fn, args, kw in _valid_calls(rng, dtype):
        want = fn(*args, **kw)
        got = fn(*[_readonly(a) for a in args], **kw)
        for w, g in zip(want if isinstance(want, tuple) else (want,),
                        got if isinstance(got, tuple) else (got,)):
            assert np.array_equal(w, g)


def test_train_inputs_unchanged_when_running_buffers_and_out_are_given(rng):
    x = rng.standard_normal((8, 3, 40))
    g, b = np.ones(3), np.zeros(3)
    xc, gc, bc = x.copy(), g.copy(), b.copy()
    fastbn.batch_norm_train(x, g, b, running_mean=np.zeros(3), running_var=np.ones(3),
                            out=np.empty_like(x))
    assert np.array_equal(x, xc) and np.array_equal(g, gc) and np.array_equal(b, bc)


# ---- empty and degenerate arrays ------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_channels(dtype):
    x = np.ones((5, 0, 4), dtype)
    y, mean, invstd = fastbn.batch_norm_train(x, np.ones(0, dtype), np.zeros(0, dtype),
                                              running_mean=np.zeros(0, dtype),
                                              running_var=np.ones(0, dtype))
    assert y.shape == x.shape and mean.shape == invstd.shape == (0,) and y.dtype == np.dtype(dtype)
    assert fastbn.batch_norm_infer(x, np.zeros(0, dtype), np.ones(0, dtype)).shape == x.shape
    dx, dgamma, dbeta = fastbn.batch_norm_backward(x, x.copy(), mean, invstd)
    assert dx.shape == x.shape and dgamma.shape == dbeta.shape == (0,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_reference_twin_also_takes_zero_channels(dtype):
    x, none = np.ones((5, 0, 4), dtype), np.zeros(0, dtype)
    for impl in (fastbn, reference):
        y, mean, invstd = impl.batch_norm_train(x, none, none, running_mean=none.copy(),
                                                running_var=none.copy())
        dx, dgamma, dbeta = impl.batch_norm_backward(x, x, mean, invstd, none)
        assert y.shape == dx.shape == x.shape and y.dtype == dx.dtype == np.dtype(dtype), impl
        assert mean.shape == invstd.shape == dgamma.shape == dbeta.shape == (0,), impl


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 5), (4, 3, 0)])
def test_inference_on_an_empty_batch_returns_an_empty_array(shape):
    x = np.ones(shape, np.float32)
    y = fastbn.batch_norm_infer(x, np.zeros(3, np.float32), np.ones(3, np.float32))
    assert y.shape == shape and y.dtype == np.float32


def test_huge_but_empty_zero_stride_views_are_cheap():
    x = np.broadcast_to(np.float32(1.0), (10 ** 6, 0, 10 ** 6))
    y, mean, _ = fastbn.batch_norm_train(x)
    assert y.shape == x.shape and mean.shape == (0,)
    C = 10 ** 6
    x = np.broadcast_to(np.float64(1.0), (0, C, 10 ** 6))
    assert fastbn.batch_norm_infer(x, np.zeros(C), np.ones(C)).shape == x.shape


def test_zero_stride_inputs_match_their_copy(rng):
    base = rng.standard_normal((1, 16, 48)).astype(np.float32)
    x = np.broadcast_to(base, (200, 16, 48))     # 150k elements, 3k bytes of data
    assert x.strides[0] == 0
    rm = np.broadcast_to(np.float32(0.5), (16,))
    rv = np.broadcast_to(np.float32(2.0), (16,))
    y, mean, invstd = fastbn.batch_norm_train(x)
    y2, mean2, invstd2 = fastbn.batch_norm_train(x.copy())
    assert np.array_equal(y, y2) and np.array_equal(mean, mean2) and np.array_equal(invstd, invstd2)
    assert np.array_equal(fastbn.batch_norm_infer(x, rm, rv), fastbn.batch_norm_infer(x.copy(), rm, rv))
