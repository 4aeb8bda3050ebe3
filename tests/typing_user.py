"""User code that calls every public function and layer method, checked by ``mypy --strict``.

Read by tests/test_typing.py, never run (the bodies are functions nobody calls, so collecting
this file for doctests executes nothing).  Each ``reveal_type(...)`` line ends with
``# T: <type>``: the type mypy must reveal there, written as a user would annotate it (one
``reveal_type`` a line, on one line).
"""
# fastbn's generic types (BatchNorm[np.float32], BatchNormResult[...]) are not subscriptable at
# run time: annotations that use them are left unevaluated.
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

import fastbn
from fastbn import BatchNorm, BatchNormGrads, BatchNormResult, init, reference
from fastbn.distributed import SyncBatchNorm, sync_batch_norm_backward, sync_batch_norm_train


def batch_norm_functions(x32: NDArray[np.float32], x64: NDArray[np.float64],
                         xf: NDArray[np.floating[Any]]) -> None:
    c32 = np.ones(3, dtype=np.float32)
    reveal_type(fastbn.batch_norm_train(x32))  # T: BatchNormResult[np.float32]
    reveal_type(fastbn.batch_norm_train(x64, axis=-1).y)  # T: NDArray[np.float64]
    reveal_type(fastbn.batch_norm_train(xf).mean)  # T: NDArray[np.floating[Any]]
    reveal_type(fastbn.batch_norm_train([[1.0, 2.0], [3.0, 4.0]]))  # T: BatchNormResult[np.floating[Any]]
    y, mean, invstd = fastbn.batch_norm_train(
        x32, c32, [0.0, 0.0, 0.0], axis=np.int64(1), eps=1e-3, running_mean=c32.copy(),
        running_var=c32.copy(), momentum=np.float32(0.1), out=np.empty_like(x32))
    reveal_type(y)  # T: NDArray[np.float32]
    reveal_type(invstd)  # T: NDArray[np.float32]
    reveal_type(fastbn.batch_norm_infer(x32, c32, c32))  # T: NDArray[np.float32]
    reveal_type(fastbn.batch_norm_infer(x64, [0.0], [1.0], axis=1, eps=0.0))  # T: NDArray[np.float64]
    reveal_type(fastbn.batch_norm_infer(xf, c32, c32, c32, c32, out=xf))  # T: NDArray[np.floating[Any]]
    reveal_type(fastbn.batch_norm_backward(x32, x32, mean, invstd))  # T: BatchNormGrads[np.float32]
    dx, dgamma, dbeta = fastbn.batch_norm_backward(x64, x64, [0.0] * 3, [1.0] * 3, None, axis=1)
    reveal_type(dx)  # T: NDArray[np.float64]
    reveal_type(dbeta)  # T: NDArray[np.float64]
    reveal_type(fastbn.batch_norm_backward(xf, xf, mean, invstd).dgamma)  # T: NDArray[np.floating[Any]]
    fused = fastbn.batch_norm_train(x32, relu=True, residual=x32)
    reveal_type(fused)  # T: BatchNormResult[np.float32]
    reveal_type(fastbn.batch_norm_infer(x64, [0.0], [1.0], relu=False, residual=x64))  # T: NDArray[np.float64]
    reveal_type(fastbn.batch_norm_backward(x32, x32, mean, invstd, y=fused.y, dresidual=np.empty_like(x32)))  # T: BatchNormGrads[np.float32]


def result_annotations(result: BatchNormResult, grads: BatchNormGrads[np.float64]) -> None:
    reveal_type(result.y)  # T: NDArray[np.floating[Any]]
    reveal_type(grads.dx)  # T: NDArray[np.float64]


def layer(x32: NDArray[np.float32], x64: NDArray[np.float64]) -> None:
    bn = BatchNorm(3)
    reveal_type(bn)  # T: BatchNorm[np.float32]
    plain = BatchNorm(3, axis=-1, eps=1e-3, momentum=None, affine=False,
                      track_running_stats=False, dtype=np.float32)
    reveal_type(plain)  # T: BatchNorm[np.float32]
    bn64 = BatchNorm(3, dtype=np.float64)
    reveal_type(bn64)  # T: BatchNorm[np.float64]
    reveal_type(BatchNorm(3, dtype="float64"))  # T: BatchNorm[np.float64]
    reveal_type(bn.forward(x32))  # T: NDArray[np.float32]
    reveal_type(bn(x32, training=False))  # T: NDArray[np.float32]
    reveal_type(bn64.forward(x64, True))  # T: NDArray[np.float64]
    reveal_type(bn.backward(x32))  # T: NDArray[np.float32]
    reveal_type(bn.train())  # T: BatchNorm[np.float32]
    block = BatchNorm(3, relu=True)
    reveal_type(block(x32, residual=x32))  # T: NDArray[np.float32]
    reveal_type(block.dresidual)  # T: NDArray[np.float32] | None
    reveal_type(block.relu)  # T: bool
    lblock = fastbn.LayerNorm(3, relu=True)
    reveal_type(lblock(x32, residual=x32))  # T: NDArray[np.float32]
    reveal_type(lblock.dresidual)  # T: NDArray[np.float32] | None
    reveal_type(fastbn.RMSNorm(3, relu=False, dtype=np.float64).forward(x64, residual=None))  # T: NDArray[np.float64]
    reveal_type(fastbn.GroupNorm(1, 3, relu=True).relu)  # T: bool
    reveal_type(fastbn.InstanceNorm(3, relu=True)(x32, residual=x32))  # T: NDArray[np.float32]
    reveal_type(bn64.train(False))  # T: BatchNorm[np.float64]
    reveal_type(bn.eval())  # T: BatchNorm[np.float32]
    reveal_type(bn.parameters())  # T: list[tuple[NDArray[np.float32], NDArray[np.float32] | None]]
    bn.reset_running_stats()
    bn.reset_parameters()
    reveal_type(bn.training)  # T: bool
    reveal_type(bn.num_batches_tracked)  # T: int | None
    reveal_type(bn.gamma)  # T: NDArray[np.float32] | None
    reveal_type(bn.beta)  # T: NDArray[np.float32] | None
    reveal_type(bn.running_mean)  # T: NDArray[np.float32] | None
    reveal_type(bn.running_var)  # T: NDArray[np.float32] | None
    reveal_type(bn64.dgamma)  # T: NDArray[np.float64] | None
    reveal_type(bn64.dbeta)  # T: NDArray[np.float64] | None
    reveal_type(bn.num_features)  # T: int
    reveal_type(bn.axis)  # T: int
    reveal_type(bn.eps)  # T: float
    reveal_type(bn.momentum)  # T: float | None
    reveal_type(bn.dtype)  # T: np.dtype[np.float32]


def annotated_layer(bn: BatchNorm, x: NDArray[np.floating[Any]]) -> None:
    reveal_type(bn(x))  # T: NDArray[np.floating[Any]]


def clipping(g32: NDArray[np.float32], g64: NDArray[np.float64]) -> None:
    # Mixed dtypes: annotated, since mypy joins float32 and float64 arrays to `object`.
    grads: list[NDArray[np.floating[Any]]] = [g32, g64]
    reveal_type(fastbn.global_norm(grads))  # T: float
    reveal_type(fastbn.global_norm(g32, norm_type=np.inf))  # T: float
    reveal_type(fastbn.clip_grad_norm(grads, 1.0))  # T: float
    total = fastbn.clip_grad_norm((g for g in grads), 1, norm_type=1.0, error_if_nonfinite=True)
    reveal_type(total)  # T: float
    fastbn.clip_grad_value(grads, 0.5)
    fastbn.clip_grad_value(g64, np.float64(0.5))
    reveal_type(fastbn.clip_by_norm(g32, 1.0))  # T: NDArray[np.float32]
    reveal_type(fastbn.clip_by_norm(g64, 1.0, out=np.empty_like(g64)))  # T: NDArray[np.float64]
    reveal_type(fastbn.clip_by_norm(np.ones(3, np.float16), 1.0))  # T: NDArray[np.float16]


def folding(w32: NDArray[np.float32], w16: NDArray[np.float16]) -> None:
    c = np.ones(4, dtype=np.float32)
    reveal_type(fastbn.fold_batch_norm(w32, None, c, c))  # T: tuple[NDArray[np.float32], NDArray[np.float32]]
    w, b = fastbn.fold_batch_norm(w16, [0.0] * 4, c, [1.0] * 4, c, c, eps=1e-3, axis=-1)
    reveal_type(b)  # T: NDArray[np.float16]


def configuration() -> None:
    fastbn.set_num_threads(2)
    reveal_type(fastbn.get_num_threads())  # T: int
    fastbn.show_config()
    reveal_type(fastbn.__version__)  # T: str


def initializers(out64: NDArray[np.float64]) -> None:
    reveal_type(init.compute_fans((3, 3, 16, 32)))  # T: tuple[int, int]
    reveal_type(init.compute_fans([32, 16, 3, 3], in_axis=1, out_axis=0))  # T: tuple[int, int]
    reveal_type(init.calculate_gain("leaky_relu", 0.2))  # T: float
    reveal_type(init.zeros(3))  # T: NDArray[np.float32]
    reveal_type(init.zeros((2, 3), dtype=np.float64))  # T: NDArray[np.float64]
    reveal_type(init.ones([2, 3], dtype="float32"))  # T: NDArray[np.float32]
    reveal_type(init.ones((2, 3), out=out64))  # T: NDArray[np.float64]
    reveal_type(init.constant((2, 3), 0.5, dtype=float))  # T: NDArray[np.float64]
    reveal_type(init.uniform((2, 3), -1.0, 1.0, rng=0))  # T: NDArray[np.float32]
    reveal_type(init.uniform((2, 3), dtype=np.dtype(np.float64)))  # T: NDArray[np.float64]
    reveal_type(init.normal((2, 3), 0.0, 0.1, rng=np.random.default_rng(0)))  # T: NDArray[np.float32]
    reveal_type(init.truncated_normal((2, 3), 0.0, 1.0, -2.0, 2.0, dtype="f8"))  # T: NDArray[np.float64]
    reveal_type(init.glorot_uniform((3, 4), 1.0, in_axis=0, out_axis=1))  # T: NDArray[np.float32]
    reveal_type(init.glorot_normal((3, 4), dtype=np.float64))  # T: NDArray[np.float64]
    reveal_type(init.he_uniform((3, 4), 0.1, "fan_out", "leaky_relu"))  # T: NDArray[np.float32]
    reveal_type(init.he_normal((3, 4), gain=1.0, out=out64))  # T: NDArray[np.float64]
    reveal_type(init.lecun_uniform((3, 4), rng=None))  # T: NDArray[np.float32]
    reveal_type(init.lecun_normal((3, 4), dtype="float64"))  # T: NDArray[np.float64]
    reveal_type(init.variance_scaling((3, 4), 2.0, "fan_avg", "uniform"))  # T: NDArray[np.float32]
    reveal_type(init.orthogonal((4, 4), 1.0, out_axis=0, dtype=np.float64))  # T: NDArray[np.float64]
    reveal_type(init.xavier_uniform((3, 4)))  # T: NDArray[np.float32]
    reveal_type(init.xavier_normal((3, 4), dtype=np.float64))  # T: NDArray[np.float64]
    reveal_type(init.kaiming_uniform((3, 4)))  # T: NDArray[np.float32]
    reveal_type(init.kaiming_normal((3, 4), mode="fan_in", dtype=np.float64))  # T: NDArray[np.float64]
    dtype: DTypeLike = np.float32   # a dtype not known statically: some float array
    reveal_type(init.zeros(3, dtype=dtype))  # T: NDArray[np.floating[Any]]


def reference_twins(x32: NDArray[np.float32], g64: NDArray[np.float64]) -> None:
    rng = np.random.default_rng(0)
    reveal_type(reference.batch_norm_train(x32))  # T: BatchNormResult[np.float32]
    reveal_type(reference.batch_norm_infer(x32, [0.0], [1.0]))  # T: NDArray[np.float32]
    reveal_type(reference.batch_norm_backward(x32, x32, [0.0], [1.0]))  # T: BatchNormGrads[np.float32]
    reveal_type(reference.global_norm([g64]))  # T: float
    reveal_type(reference.clip_grad_norm([g64], 1.0))  # T: float
    reference.clip_grad_value(g64, 1.0)
    reveal_type(reference.clip_by_norm(g64, 1.0))  # T: NDArray[np.float64]
    reveal_type(reference.uniform((3, 4), -1.0, 1.0, rng))  # T: NDArray[np.float32]
    reveal_type(reference.normal((3, 4), 0.0, 1.0, rng, np.float64))  # T: NDArray[np.float64]
    reveal_type(reference.truncated_normal((3, 4), 0.0, 1.0, -2.0, 2.0, rng))  # T: NDArray[np.float32]
    reveal_type(reference.glorot_uniform((3, 4), rng))  # T: NDArray[np.float32]
    reveal_type(reference.glorot_normal((3, 4), rng, dtype=np.float64))  # T: NDArray[np.float64]
    reveal_type(reference.he_uniform((3, 4), rng))  # T: NDArray[np.float32]
    reveal_type(reference.he_normal((3, 4), rng, np.float64))  # T: NDArray[np.float64]
    reveal_type(reference.orthogonal((4, 4), rng))  # T: NDArray[np.float32]
    reveal_type(reference.orthogonal((4, 4), rng, 2.0, np.float64))  # T: NDArray[np.float64]
    reveal_type(reference.orthogonal((4, 4), rng, dtype=np.float64))  # T: NDArray[np.float64]


def norm_functions(x32: NDArray[np.float32], x64: NDArray[np.float64],
                   xf: NDArray[np.floating[Any]]) -> None:
    g32 = np.ones(3, dtype=np.float32)
    y, mean, invstd = fastbn.layer_norm(x32, g32, g32, axis=(-2, -1), eps=1e-6, out=None)
    reveal_type(y)  # T: NDArray[np.float32]
    reveal_type(fastbn.layer_norm(x64)[1])  # T: NDArray[np.float64]
    reveal_type(fastbn.layer_norm([[1.0, 2.0]])[0])  # T: NDArray[np.floating[Any]]
    reveal_type(fastbn.layer_norm_backward(x32, x32, mean, invstd, g32, axis=-1)[0])  # T: NDArray[np.float32]
    yr, invrms = fastbn.rms_norm(x64, None, axis=np.int64(-1))
    reveal_type(invrms)  # T: NDArray[np.float64]
    reveal_type(fastbn.rms_norm_backward(x64, x64, invrms)[1])  # T: NDArray[np.float64]
    yg, gm, gs = fastbn.group_norm(x32, 2, g32, None, axis=1, eps=1e-5)
    reveal_type(fastbn.group_norm_backward(x32, x32, gm, gs, 2, g32)[2])  # T: NDArray[np.float32]
    yi, im, is_ = fastbn.instance_norm(xf, axis=-1)
    reveal_type(yi)  # T: NDArray[np.floating[Any]]
    reveal_type(fastbn.instance_norm_backward(x64, x64, im, is_, out=x64)[0])  # T: NDArray[np.float64]
    fy, fm, fs = fastbn.layer_norm(x32, relu=True, residual=x32)
    reveal_type(fastbn.layer_norm_backward(x32, x32, fm, fs, y=fy, dresidual=np.empty_like(x32))[0])  # T: NDArray[np.float32]
    ry, rs = fastbn.rms_norm(x64, relu=True, residual=x64)
    reveal_type(fastbn.rms_norm_backward(x64, x64, rs, y=ry, dresidual=None)[1])  # T: NDArray[np.float64]
    gy, _, _ = fastbn.group_norm(x32, 2, relu=False, residual=x32)
    reveal_type(gy)  # T: NDArray[np.float32]
    reveal_type(fastbn.group_norm_backward(x32, x32, gm, gs, 2, y=gy, dresidual=x32)[2])  # T: NDArray[np.float32]
    reveal_type(fastbn.instance_norm(x64, relu=True, residual=x64)[0])  # T: NDArray[np.float64]
    reveal_type(fastbn.instance_norm_backward(x64, x64, im, is_, y=x64)[0])  # T: NDArray[np.float64]
    reveal_type(reference.layer_norm(x32)[0])  # T: NDArray[np.float32]
    reveal_type(reference.layer_norm_backward(x32, x32, mean, invstd)[1])  # T: NDArray[np.float32]
    reveal_type(reference.rms_norm(x32)[1])  # T: NDArray[np.float32]
    reveal_type(reference.rms_norm_backward(x32, x32, mean)[0])  # T: NDArray[np.float32]
    reveal_type(reference.group_norm(x64, 1)[0])  # T: NDArray[np.float64]
    reveal_type(reference.group_norm_backward(x64, x64, gm, gs, 1)[0])  # T: NDArray[np.float64]
    reveal_type(reference.instance_norm(x64)[2])  # T: NDArray[np.float64]
    reveal_type(reference.instance_norm_backward(x64, x64, im, is_)[1])  # T: NDArray[np.float64]


def norm_layers(x32: NDArray[np.float32], x64: NDArray[np.float64]) -> None:
    ln = fastbn.LayerNorm((3, 4), eps=1e-5, elementwise_affine=True)
    reveal_type(ln)  # T: fastbn.LayerNorm[np.float32]
    reveal_type(ln.forward(x32))  # T: NDArray[np.float32]
    reveal_type(ln(x32))  # T: NDArray[np.float32]
    reveal_type(ln.backward(x32))  # T: NDArray[np.float32]
    reveal_type(ln.parameters())  # T: list[tuple[NDArray[np.float32], NDArray[np.float32] | None]]
    reveal_type(fastbn.LayerNorm(4, bias=False, dtype=np.float64))  # T: fastbn.LayerNorm[np.float64]
    reveal_type(fastbn.RMSNorm(4, eps=None).eps)  # T: float | None
    reveal_type(ln.state_dict())  # T: dict[str, NDArray[Any]]
    reveal_type(ln.load_state_dict(ln.state_dict()).missing_keys)  # T: list[str]
    reveal_type(fastbn.rms_norm(x32, eps=None)[1])  # T: NDArray[np.float32]
    rms = fastbn.RMSNorm(4, dtype=np.float64)
    reveal_type(rms(x64))  # T: NDArray[np.float64]
    gn = fastbn.GroupNorm(2, 4, axis=-1, affine=False, dtype="float64")
    reveal_type(gn)  # T: fastbn.GroupNorm[np.float64]
    reveal_type(gn.backward(x64))  # T: NDArray[np.float64]
    inorm = fastbn.InstanceNorm(4, affine=True)
    reveal_type(inorm(x32))  # T: NDArray[np.float32]
    tracked = fastbn.InstanceNorm(4, momentum=None, track_running_stats=True, dtype=np.float64)
    reveal_type(tracked.running_var)  # T: NDArray[np.float64] | None
    tracked.reset_running_stats()


def batch_norm_parts(x32: NDArray[np.float32], x64: NDArray[np.float64],
                     xf: NDArray[np.floating[Any]]) -> None:
    count, mean, m2 = fastbn.batch_norm_stats(x32, axis=-1)
    reveal_type(mean)  # T: NDArray[np.float64]
    reveal_type(fastbn.merge_stats([count], [mean], [m2])[2])  # T: NDArray[np.float64]
    invstd = 1.0 / np.sqrt(m2 / count + 1e-5)
    reveal_type(fastbn.batch_norm_apply(x32, mean, invstd))  # T: NDArray[np.float32]
    reveal_type(fastbn.batch_norm_apply(x64, mean, invstd, [1.0], [0.0], axis=1, out=x64))  # T: NDArray[np.float64]
    reveal_type(fastbn.batch_norm_apply(xf, mean, invstd))  # T: NDArray[np.floating[Any]]
    fastbn.update_running_stats(np.zeros(3), None, count, mean, m2, momentum=0.1)
    fastbn.update_running_stats(None, np.ones(3, np.float32), 10, mean, m2)
    sum_dy, sum_dy_xhat = fastbn.batch_norm_backward_reduce(x32, x32, mean, invstd, axis=1)
    reveal_type(sum_dy_xhat)  # T: NDArray[np.float64]
    reveal_type(fastbn.batch_norm_backward_apply(x32, x32, mean, invstd, None, sum_dy, sum_dy_xhat, 64))  # T: NDArray[np.float32]
    reveal_type(fastbn.batch_norm_backward_apply(x64, x64, mean, invstd, [1.0], sum_dy, sum_dy_xhat, count, out=x64))  # T: NDArray[np.float64]
    rc, rmean, rm2 = reference.batch_norm_stats(x32, axis=-1)
    reveal_type(reference.merge_stats([rc], [rmean], [rm2])[1])  # T: NDArray[np.float64]
    reveal_type(reference.batch_norm_apply(x32, rmean, invstd, None, None, axis=-1))  # T: NDArray[np.float32]
    reference.update_running_stats(np.zeros(3), None, rc, rmean, rm2, momentum=0.1)
    reveal_type(reference.batch_norm_backward_reduce(x64, x64, rmean, invstd)[0])  # T: NDArray[np.float64]
    reveal_type(reference.batch_norm_backward_apply(x64, x64, mean, invstd, None, sum_dy, sum_dy_xhat, count))  # T: NDArray[np.float64]


def synchronized(comm: Any, x32: NDArray[np.float32], x64: NDArray[np.float64]) -> None:
    y, mean, invstd = sync_batch_norm_train(x32, comm=comm, running_mean=np.zeros(3, np.float32))
    reveal_type(y)  # T: NDArray[np.float32]
    reveal_type(sync_batch_norm_train(x64, [1.0], [0.0], comm=comm, axis=-1, eps=1e-3))  # T: BatchNormResult[np.float64]
    reveal_type(sync_batch_norm_backward(x32, x32, mean, invstd, comm=comm).dgamma)  # T: NDArray[np.float32]
    bn = SyncBatchNorm(3, comm=comm)
    reveal_type(bn)  # T: SyncBatchNorm[np.float32]
    reveal_type(SyncBatchNorm(3, comm=comm, dtype=np.float64)(x64))  # T: NDArray[np.float64]
    reveal_type(bn.backward(x32))  # T: NDArray[np.float32]
