"""The plain-case path of the batch-norm functions (checked and run in Cython) and the general
path (validated in Python) are one function.

Specification:
- A plain call -- C-contiguous ndarrays of one float dtype, a Python int axis, Python floats,
  no ``out`` -- takes the Cython path (``fastbn._batchnorm.*_plain`` returns a result), and gives
  exactly the bits the general path gives (the general path is forced with ``out=``), including
  the running buffers' update.
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
                                      out=np.empty_like(x))
    for p, g in zip(plain, general):
        same_bits(p, g)
    same_bits(rm1, rm2)
    same_bits(rv1, rv2)

    same_bits(fastbn.batch_norm_infer(x, rm1, rv1, gamma, beta, axis=axis),
              fastbn.batch_norm_infer(x, rm1, rv1, gamma, beta, axis=axis, out=np.empty_like(x)))

    dy = rng.standard_normal(shape).astype(dtype)
    _, mean, invstd = plain
    plain_grads = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis)
    general_grads = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis,
                                               out=np.empty_like(x))
    for p, g in zip(plain_grads, general_grads):
        same_bits(p, g)


def _train_args(rng, dtype=np.float32):
    x = rng.standard_normal((16, 8)).astype(dtype)
    return dict(x=x, gamma=np.ones(8, dtype), beta=np.zeros(8, dtype), axis=1, eps=1e-5,
                running_mean=np.zeros(8, dtype), running_var=np.ones(8, dtype), momentum=0.1)


def _train_plain(a):
    return _batchnorm.train_plain(a["x"], a["gamma"], a["beta"], a["axis"], a["eps"],
                                  a["running_mean"], a["running_var"], a["momentum"], 1)


def test_a_plain_call_takes_the_cython_path(rng):
    a = _train_args(rng)
    y, mean, invstd, skipped = _train_plain(a)
    assert y.shape == a["x"].shape and mean.shape == invstd.shape == (8,) and skipped == 0
    assert _batchnorm.infer_plain(a["x"], mean, invstd, None, None, -1, 0.0, 1) is not None
    assert _batchnorm.backward_plain(a["x"], a["x"], mean, invstd, None, 1, 1) is not None


class _Sub(np.ndarray):
    pass


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


DECLINED = {
    "x a list": lambda a: a.update(x=a["x"].tolist()),
    "x a subclass": lambda a: a.update(x=a["x"].view(_Sub)),
    "x not contiguous": lambda a: a.update(x=a["x"][::2]),
    "x float16": lambda a: a.update(x=a["x"].astype(np.float16)),
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
    "eps NaN": lambda a: a.update(eps=float("nan")),
    "momentum above 1": lambda a: a.update(momentum=1.5),
    "running_mean read-only": lambda a: a.update(running_mean=_readonly(a["running_mean"])),
    "running_mean inside x": lambda a: a.update(running_mean=a["x"][0]),
    "running_var is running_mean": lambda a: a.update(running_var=a["running_mean"]),
}


@pytest.mark.parametrize("change", DECLINED.values(), ids=DECLINED.keys())
def test_the_cython_path_declines_anything_else_and_writes_nothing(rng, change):
    a = _train_args(rng)
    change(a)
    before = {k: np.array(v, copy=True) for k, v in a.items() if isinstance(v, np.ndarray)}
    assert _train_plain(a) is None
    for k, v in before.items():
        assert np.asarray(a[k]).tobytes() == v.tobytes(), k
