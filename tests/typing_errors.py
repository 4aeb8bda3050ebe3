"""Mistakes ``mypy --strict`` must report, checked by tests/test_typing.py (never run).

Each line ending in ``# E: <code> <text>`` must get a mypy error with that error code (``a|b``:
either; mypy reports a bad argument to an overloaded function as one or the other, depending on
how many overloads nearly match) whose message contains ``<text>``; no other line may get an
error.
"""
from typing import Any

import numpy as np
from numpy.typing import NDArray

import fastbn
from fastbn import init


def batch_norm(x32: NDArray[np.float32], x64: NDArray[np.float64], xi: NDArray[np.int64]) -> None:
    fastbn.batch_norm_train(x32, axis="one")  # E: call-overload "str"
    fastbn.batch_norm_train("x")  # E: call-overload|arg-type "str"
    fastbn.batch_norm_infer(x32, [0.0], [1.0], eps="0")  # E: call-overload "str"
    fastbn.batch_norm_train(xi)  # E: type-var|call-overload "batch_norm_train"
    y64: NDArray[np.float64] = fastbn.batch_norm_train(x32).y  # E: assignment in assignment
    fastbn.batch_norm_backward(x32, x32, [0.0], [1.0], axis=1.5)  # E: call-overload "float"


def layer(x32: NDArray[np.float32], x64: NDArray[np.float64]) -> None:
    fastbn.BatchNorm(3).forward(x32, training="yes")  # E: arg-type "training"
    fastbn.BatchNorm(3)(x64)  # E: arg-type "__call__"
    fastbn.BatchNorm(3, momentum="0.1")  # E: call-overload "str"
    fastbn.BatchNorm(3).train(mode=None)  # E: arg-type "mode"
    fastbn.BatchNorm(3).reset_parameters(x32)  # E: call-arg reset_parameters


def clipping(g: NDArray[np.float32]) -> None:
    norm: float = fastbn.clip_by_norm(g, 1.0)  # E: assignment "float"
    fastbn.clip_by_norm(g, 1.0).is_integer()  # E: attr-defined "is_integer"
    fastbn.global_norm("grads")  # E: arg-type "global_norm"
    fastbn.clip_grad_norm([g], max_norm="1")  # E: arg-type "max_norm"
    fastbn.clip_by_norm([1.0, 2.0], 1.0)  # E: arg-type "clip_by_norm"
    fastbn.clip_by_norm(np.zeros(3, dtype=np.int32), 1.0)  # E: type-var "clip_by_norm"


def results_that_are_none(g: NDArray[np.float32]) -> None:
    clipped = fastbn.clip_grad_value(g, 1.0)  # E: func-returns-value clip_grad_value
    threads = fastbn.set_num_threads(2)  # E: func-returns-value set_num_threads
    shown = fastbn.show_config()  # E: func-returns-value show_config
    reset = fastbn.BatchNorm(3).reset_running_stats()  # E: func-returns-value reset_running_stats


def configuration_and_init(out64: NDArray[np.float64]) -> None:
    fastbn.set_num_threads(2.5)  # E: arg-type "set_num_threads"
    n: str = fastbn.get_num_threads()  # E: assignment "int"
    init.he_normal((3, 3), nonlinearity="rellu")  # E: call-overload "he_normal"
    init.calculate_gain("tanhh")  # E: arg-type "calculate_gain"
    w32: NDArray[np.float32] = init.zeros(3, dtype=np.float64)  # E: assignment in assignment
    w: NDArray[np.float32] = init.zeros(3, out=out64)  # E: arg-type|assignment ndarray
    init.glorot_uniform("3x4")  # E: call-overload|arg-type "str"
    init.uniform((2, 3), rng=1.5)  # E: call-overload "float"
    fans: Any = init.compute_fans((3, 4), in_axis="0")  # E: arg-type "in_axis"
