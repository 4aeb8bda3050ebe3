"""The plain-case path of the batch-norm functions (checked and run in Cython) and the general
path (validated in Python) are one function.

Specification:
- A plain call -- C-contiguous ndarrays of one float dtype in native byte order (float32
  per-channel arrays beside float16/bfloat16 tensors; tests/test_norm_paths.py), a Python int
  axis, Python floats (eps > 0), no fused part, ``out`` absent or a plain array that shares no
  memory with the inputs or is x itself (dy for the backward) -- takes the Cython path
  (``fastbn._batchnorm.*_plain`` returns a result, and the ``out`` given), and gives exactly the
  bits the general path gives (forced with a NumPy float ``eps``), including the running
  buffers' update.
- Neither the Cython paths nor the C glue under them take an array of non-native byte order:
  ``PyArray_TYPE`` is NPY_FLOAT for '<f4' and '>f4' alike, so each check also asks for it.
- Anything outside the plain case makes the Cython path decline (return None) before it writes
  anything; the general path then validates it (tests/test_batchnorm_errors.py checks that every
  bad argument is named and nothing is written).
"""
import numpy as np
import pytest

import fastbn
from bn_helpers import DTYPES, LAYOUT_IDS, LAYOUT_PARAMS, make_inputs
from fastbn import _batchnorm


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUT_PARAMS, ids=LAYOUT_IDS)
def test_plain_and_general_paths_give_the_same_bits(rng, shape, axis, dtype):
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    C = shape[axis]
    rm1, rv1 = np.zeros(C, dtype), np.ones(C, dtype)
    rm2, rv2 = rm1.copy(), rv1.copy()
    plain = fastbn.batch_norm_train(x, gamma, beta, axis=axis, running_mean=rm1, running_var=rv1)
    general = fastbn.batch_norm_train(x, gamma, beta, axis=axis, running_mean=rm2, running_var=rv2,
                                      eps=GENERAL_EPS)
    for p, g in zip(plain, general):
        same_bits(p, g)
    same_bits(rm1, rm2)
    same_bits(rv1, rv2)

    same_bits(fastbn.batch_norm_infer(x, rm1, rv1, gamma, beta, axis=axis),
              fastbn.batch_norm_infer(x, rm1, rv1, gamma, beta, axis=axis, eps=GENERAL_EPS))

    dy = rng.standard_normal(shape).astype(dtype)
    _, mean, invstd = plain
    plain_grads = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis)
    general_grads = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis,
                                               out=np.asfortranarray(np.empty_like(x)))
    for p, g in zip(plain_grads, general_grads):
        same_bits(p, g)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_takes_the_cython_path_and_gets_the_same_bits(rng, dtype):
    """``out`` a new array, or x itself (dy for the backward): written by the Cython path, which
    returns that very array, holding the bits of a call without ``out``."""
    shape, axis = (6, 5, 4), 1
    x, gamma, beta = make_inputs(rng, shape, axis, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    want, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis)
    want_infer = fastbn.batch_norm_infer(x, mean, invstd, gamma, beta, axis=axis)
    want_grads = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis)

    out = np.full_like(x, np.nan)
    got = _batchnorm.train_plain(x, gamma, beta, axis, 1e-5, None, None, 0.1, 1, out)
    assert got[0] is out
    same_bits(out, want)
    assert _batchnorm.infer_plain(x, mean, invstd, gamma, beta, axis, 1e-5, 1, out) is out
    same_bits(out, want_infer)
    grads = _batchnorm.backward_plain(dy, x, mean, invstd, gamma, axis, 1, out)
    assert grads[0] is out
    for g, w in zip(grads, want_grads):
        same_bits(g, w)

    xi = x.copy()
    assert _batchnorm.train_plain(xi, gamma, beta, axis, 1e-5, None, None, 0.1, 1, xi)[0] is xi
    same_bits(xi, want)
    xi = x.copy()
    assert _batchnorm.infer_plain(xi, mean, invstd, gamma, beta, axis, 1e-5, 1, xi) is xi
    same_bits(xi, want_infer)
    dyi = dy.copy()
    assert _batchnorm.backward_plain(dyi, x, mean, invstd, gamma, axis, 1, dyi)[0] is dyi
    same_bits(dyi, want_grads.dx)


GENERAL_EPS = np.float64(1e-5)   # not a Python float: the Cython paths decline it


def _train_args(rng, dtype=np.float32):
    x = rng.standard_normal((16, 8)).astype(dtype)
    return dict(x=x, gamma=np.ones(8, dtype), beta=np.zeros(8, dtype), axis=1, eps=1e-5,
                running_mean=np.zeros(8, dtype), running_var=np.ones(8, dtype), momentum=0.1)


def _train_plain(a):
    return _batchnorm.train_plain(a["x"], a["gamma"], a["beta"], a["axis"], a["eps"],
                                  a["running_mean"], a["running_var"], a["momentum"], 1,
                                  a.get("out"))


def test_a_plain_call_takes_the_cython_path(rng):
    a = _train_args(rng)
    y, mean, invstd, pending = _train_plain(a)
    assert y.shape == a["x"].shape and mean.shape == invstd.shape == (8,) and pending is None
    assert _batchnorm.infer_plain(a["x"], mean, invstd, None, None, -1, 1e-5, 1) is not None
    assert _batchnorm.backward_plain(a["x"], a["x"], mean, invstd, None, 1, 1) is not None


class _Sub(np.ndarray):
    pass


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _holding(a, name):
    """``out`` a new array and a[name] one of its rows (C values)."""
    out = np.zeros((16, 8), np.float32)
    out[3] = a[name]
    a.update(out=out, **{name: out[3]})


def _shifted(a):
    """x and ``out`` two views of one buffer, a row apart."""
    buf = np.zeros((17, 8), np.float32)
    buf[:16] = a["x"]
    a.update(x=buf[:16], out=buf[1:])


DECLINED = {
    "x a list": lambda a: a.update(x=a["x"].tolist()),
    "x a subclass": lambda a: a.update(x=a["x"].view(_Sub)),
    "x not contiguous": lambda a: a.update(x=a["x"][::2]),
    "x float16, gamma float16": lambda a: a.update(x=a["x"].astype(np.float16),
                                                   gamma=a["gamma"].astype(np.float16)),
    "x big-endian": lambda a: a.update(x=a["x"].astype(">f4")),
    "gamma big-endian": lambda a: a.update(gamma=a["gamma"].astype(">f4")),
    "beta big-endian": lambda a: a.update(beta=a["beta"].astype(">f4")),
    "running_mean big-endian": lambda a: a.update(running_mean=a["running_mean"].astype(">f4")),
    "running_var big-endian": lambda a: a.update(running_var=a["running_var"].astype(">f4")),
    "x 1-d": lambda a: a.update(x=a["x"][0]),
    "x one row": lambda a: a.update(x=a["x"][:1]),
    "gamma float64": lambda a: a.update(gamma=a["gamma"].astype(np.float64)),
    "beta a list": lambda a: a.update(beta=a["beta"].tolist()),
    "gamma too short": lambda a: a.update(gamma=a["gamma"][:4]),
    "axis a bool": lambda a: a.update(axis=True),
    "axis a numpy int": lambda a: a.update(axis=np.int64(1)),
    "axis out of range": lambda a: a.update(axis=2),
    "eps a numpy float": lambda a: a.update(eps=np.float64(1e-5)),
    "eps negative": lambda a: a.update(eps=-1.0),
    "eps zero": lambda a: a.update(eps=0.0),
    "eps NaN": lambda a: a.update(eps=float("nan")),
    "momentum above 1": lambda a: a.update(momentum=1.5),
    "running_mean read-only": lambda a: a.update(running_mean=_readonly(a["running_mean"])),
    "running_mean inside x": lambda a: a.update(running_mean=a["x"][0]),
    "running_var is running_mean": lambda a: a.update(running_var=a["running_mean"]),
    "out a list": lambda a: a.update(out=np.zeros((16, 8)).tolist()),
    "out a subclass": lambda a: a.update(out=np.zeros((16, 8), np.float32).view(_Sub)),
    "out float64": lambda a: a.update(out=np.zeros((16, 8))),
    "out big-endian": lambda a: a.update(out=np.zeros((16, 8), ">f4")),
    "out Fortran-ordered": lambda a: a.update(out=np.zeros((16, 8), np.float32, order="F")),
    "out of another shape": lambda a: a.update(out=np.zeros((8, 16), np.float32)),
    "out read-only": lambda a: a.update(out=_readonly(np.zeros((16, 8), np.float32))),
    "out x shifted by a row": lambda a: _shifted(a),
    "out holding gamma": lambda a: _holding(a, "gamma"),
    "out holding running_mean": lambda a: _holding(a, "running_mean"),
}


@pytest.mark.parametrize("change", DECLINED.values(), ids=DECLINED.keys())
def test_the_cython_path_declines_anything_else_and_writes_nothing(rng, change):
    a = _train_args(rng)
    change(a)
    before = {k: np.array(v, copy=True) for k, v in a.items() if isinstance(v, np.ndarray)}
    assert _train_plain(a) is None
    for k, v in before.items():
        assert np.asarray(a[k]).tobytes() == v.tobytes(), k


def _swapped(a):
    """``a`` with the same values in the other byte order."""
    return a.astype(a.dtype.newbyteorder("S"))


def test_the_cython_paths_decline_non_native_byte_order(rng):
    """PyArray_TYPE is NPY_FLOAT for '<f4' and '>f4' alike: each check must also ask for native
    order, else the swapped bytes reach C as numbers."""
    x = rng.standard_normal((16, 8)).astype(np.float32)
    mean, invstd = np.zeros(8, np.float32), np.ones(8, np.float32)
    g = np.ones(8, np.float32)
    assert _batchnorm.infer_plain(x, mean, invstd, g, g, 1, 1e-5, 1) is not None
    assert _batchnorm.backward_plain(x, x, mean, invstd, g, 1, 1) is not None
    for args in [(_swapped(x), mean, invstd, g, g), (x, _swapped(mean), invstd, g, g),
                 (x, mean, _swapped(invstd), g, g), (x, mean, invstd, _swapped(g), g),
                 (x, mean, invstd, g, _swapped(g))]:
        assert _batchnorm.infer_plain(*args, 1, 1e-5, 1) is None
    for args in [(_swapped(x), x, mean, invstd, g), (x, _swapped(x), mean, invstd, g),
                 (x, x, _swapped(mean), invstd, g), (x, x, mean, _swapped(invstd), g),
                 (x, x, mean, invstd, _swapped(g))]:
        assert _batchnorm.backward_plain(*args, 1, 1) is None


def test_the_c_glue_rejects_non_native_byte_order(rng):
    """The low-level entry points re-check byte order, so no caller can pass swapped bytes."""
    x = rng.standard_normal((16, 8)).astype(np.float32)
    y = np.full_like(x, -7.0)
    stats = np.zeros((3, 8))
    with pytest.raises(TypeError, match="byte order"):
        _batchnorm.train(_swapped(x), y, 16, 8, 1, None, None, 1e-5, stats, 1)
    with pytest.raises(ValueError, match="byte order"):
        _batchnorm.train(x, _swapped(y), 16, 8, 1, None, None, 1e-5, stats, 1)
    with pytest.raises(ValueError, match="byte order"):
        _batchnorm.infer(x, y, 16, 8, 1, _swapped(np.zeros(8, np.float32)),
                         np.ones(8, np.float32), None, None, 1e-5, 1)
    with pytest.raises(ValueError, match="byte order"):
        _batchnorm.backward(_swapped(x), x, y, 16, 8, 1, np.zeros(8), np.ones(8), None,
                            np.zeros((2, 8)), 1)
    rm = _swapped(np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="byte order"):
        _batchnorm.update_running(rm, None, stats, 16, 0.1, x.dtype.num)
    assert np.all(y == -7.0) and np.all(rm == 0.0)
