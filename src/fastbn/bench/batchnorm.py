"""Benchmark cases for batch norm: training forward, inference forward, backward, and the fused
forms of issue 17 (BN+ReLU and BN+add+ReLU training forward, the backward through the ReLU) on
NCHW, NHWC and NC.

Each case names its inputs (x; x and dy for the backward), which the "producer" state rewrites
before each timed call, and its floor (:mod:`fastbn.bench.floor`).  NCHW, NHWC and NC also have
float16 and bfloat16 rows of training and backward (``f16``, ``bf16``: the same values rounded,
float32 parameters; no PyTorch column), whose floor moves their own, halved, bytes."""
import numpy as np

import fastbn
from fastbn import reference
from fastbn.bench._harness import Case
from fastbn.bench.floor import floor_timer

# (label, shape, channel axis)
SHAPES = [
    ("NCHW", (32, 64, 56, 56), 1),
    ("NHWC", (32, 56, 56, 64), -1),
    ("NC", (4096, 1024), 1),
    ("NCDHW", (8, 64, 8, 28, 28), 1),   # 3-D convolutions (video, volumes)
]
FUSED_LAYOUTS = ("NCHW", "NHWC", "NC")   # the fused rows' inputs (issue 17)
QUICK_SHAPES = [("NCHW", (8, 16, 14, 14), 1), ("NHWC", (8, 14, 14, 16), -1), ("NC", (256, 64), 1),
                ("NCDHW", (4, 8, 4, 7, 7), 1)]
# The layouts with float16 and bfloat16 rows (training forward and backward) beside float32.
HALF_LABELS = ("NCHW", "NHWC", "NC")


def _half_dtypes():
    """(suffix, dtype) of the half types: float16, and bfloat16 where ml_dtypes is installed."""
    out = [("f16", np.dtype(np.float16))]
    try:
        import ml_dtypes
        out.append(("bf16", np.dtype(ml_dtypes.bfloat16)))
    except ImportError:
        pass
    return out


def _as_bytes(a):
    """A float32 view of a half array's memory (even size): the floor moves the same bytes."""
    return a.reshape(-1).view(np.float32)


def _half_cases(label, shape, axis, x, dy):
    """bn train and bn backward on the float16 / bfloat16 rounding of x and dy (float32
    parameters), no PyTorch column; the floor is the same passes over the same bytes."""
    out = []
    C = shape[axis]
    g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    for suffix, dt in _half_dtypes():
        xh, dyh = x.astype(dt), dy.astype(dt)
        y = np.empty_like(xh)
        _, mean, invstd = fastbn.batch_norm_train(xh, axis=axis)
        name = "(" + ",".join(map(str, shape)) + f") {label} {suffix}"
        out += [
            Case("bn train", name,
                 lambda xh=xh, y=y: fastbn.batch_norm_train(xh, g, b, axis=axis, running_mean=rm,
                                                            running_var=rv, out=y),
                 lambda xh=xh: reference.batch_norm_train(xh, g, b, axis=axis),
                 copy_of=xh, inputs=[xh], floor=floor_timer("bn train", label, _as_bytes(xh))),
            Case("bn backward", name,
                 lambda xh=xh, dyh=dyh, y=y, mean=mean, invstd=invstd: fastbn.batch_norm_backward(
                     dyh, xh, mean, invstd, g, axis=axis, out=y),
                 lambda xh=xh, dyh=dyh, mean=mean, invstd=invstd: reference.batch_norm_backward(
                     dyh, xh, mean, invstd, g, axis=axis),
                 copy_of=xh, inputs=[xh, dyh],
                 floor=floor_timer("bn backward", label, _as_bytes(xh), _as_bytes(dyh))),
        ]
    return out


def _torch_fns(x, dy, axis, C, mean, invstd):
    import torch
    tx = torch.from_numpy(x)
    if axis != 1:   # channels-last: torch's native NHWC memory format, or (N, C) as is
        tx = tx.permute(0, 3, 1, 2) if x.ndim == 4 else tx
    tdy = torch.from_numpy(dy)
    tdy = tdy.permute(0, 3, 1, 2) if (axis != 1 and x.ndim == 4) else tdy
    w, b = torch.ones(C), torch.zeros(C)
    rm, rv = torch.zeros(C), torch.ones(C)

    def train():
        with torch.no_grad():
            return torch.nn.functional.batch_norm(tx, rm, rv, w, b, training=True, momentum=0.1)

    def infer():
        with torch.no_grad():
            return torch.nn.functional.batch_norm(tx, rm, rv, w, b, training=False)

    save_mean, save_invstd = torch.from_numpy(mean), torch.from_numpy(invstd)

    def backward():
        return torch.ops.aten.native_batch_norm_backward(
            tdy, tx, w, rm, rv, save_mean, save_invstd, True, 1e-5, [True, True, True])

    return train, infer, backward


def _torch_fused_fns(x, dy, r, y, axis, C, mean, invstd):
    """PyTorch's unfused forms: relu(batch_norm(x)) and relu(batch_norm(x) + r); the backward
    threshold_backward(dy, y, 0) then native_batch_norm_backward."""
    import torch

    def t(a):   # channels-last as torch's NHWC memory format, as _torch_fns does
        a = torch.from_numpy(a)
        return a.permute(0, 3, 1, 2) if (axis != 1 and a.ndim == 4) else a
    tx, tdy, tr, ty = t(x), t(dy), t(r), t(y)
    w, b = torch.ones(C), torch.zeros(C)
    rm, rv = torch.zeros(C), torch.ones(C)

    def relu():
        with torch.no_grad():
            return torch.relu(torch.nn.functional.batch_norm(tx, rm, rv, w, b, training=True))

    def add_relu():
        with torch.no_grad():
            return torch.relu(torch.nn.functional.batch_norm(tx, rm, rv, w, b, training=True)
                              + tr)

    save_mean, save_invstd = torch.from_numpy(mean), torch.from_numpy(invstd)

    def backward():
        g = torch.ops.aten.threshold_backward(tdy, ty, 0)
        return torch.ops.aten.native_batch_norm_backward(
            g, tx, w, rm, rv, save_mean, save_invstd, True, 1e-5, [True, True, True])

    return relu, add_relu, backward


def _fused_cases(label, shape, axis, x, dy, g, b, rm, rv, name, torch):
    """The fused rows of one input: BN+ReLU and BN+add+ReLU training forward, the backward
    through the ReLU (y given: dy masked in the same passes)."""
    rng = np.random.default_rng(1)
    r = rng.standard_normal(shape, dtype=np.float32)
    out = np.empty_like(x)
    y, mean, invstd = fastbn.batch_norm_train(x, g, b, axis=axis, relu=True, residual=r)
    t_relu = t_add = t_back = None
    if torch:
        t_relu, t_add, t_back = _torch_fused_fns(x, dy, r, y, axis, shape[axis], mean, invstd)
    return [
        Case("bn+relu train", name,
             lambda: fastbn.batch_norm_train(x, g, b, axis=axis, running_mean=rm, running_var=rv,
                                             out=out, relu=True),
             lambda: reference.batch_norm_train(x, g, b, axis=axis, running_mean=rm,
                                                running_var=rv, relu=True),
             torch=t_relu, copy_of=x, inputs=[x],
             floor=floor_timer("bn+relu train", label, x)),
        Case("bn+add+relu train", name,
             lambda: fastbn.batch_norm_train(x, g, b, axis=axis, running_mean=rm, running_var=rv,
                                             out=out, relu=True, residual=r),
             lambda: reference.batch_norm_train(x, g, b, axis=axis, running_mean=rm,
                                                running_var=rv, relu=True, residual=r),
             torch=t_add, copy_of=x, inputs=[x, r],
             floor=floor_timer("bn+add+relu train", label, x, more=(r,))),
        Case("bn+relu backward", name,
             lambda: fastbn.batch_norm_backward(dy, x, mean, invstd, g, axis=axis, out=out, y=y),
             lambda: reference.batch_norm_backward(dy, x, mean, invstd, g, axis=axis, y=y),
             torch=t_back, copy_of=x, inputs=[x, dy, y],
             floor=floor_timer("bn+relu backward", label, x, dy, more=(y,))),
    ]


def big_shapes(nbytes):
    """NCHW (32,C,56,56) and NC (M,1024) float32 inputs of at least ``nbytes`` each: on a machine
    with a last-level cache of nbytes/4, what the standard inputs are to a cache 4x larger than
    theirs -- the other side of the picture (``--big``).  NCHW grows in channels, so that a
    channel's slab stays 401 KB (in L2) as in the standard input."""
    c = -(-nbytes // (32 * 56 * 56 * 4))
    m = -(-nbytes // (1024 * 4))
    return [("NCHW", (32, c, 56, 56), 1), ("NC", (m, 1024), 1)]


def cases(quick=False, torch=False, big=None):
    """The batch-norm cases: the standard inputs (small ones with ``quick``), or with ``big``
    (bytes) those of :func:`big_shapes`."""
    out = []
    shapes = big_shapes(big) if big else (QUICK_SHAPES if quick else SHAPES)
    for label, shape, axis in shapes:
        out += _input_cases(label, shape, axis, torch, more=not big)
    return out


def _input_cases(label, shape, axis, torch, more):
    """The cases of one input (with ``more``, its fused and half rows too).  A function of its
    own: its lambdas bind this call's arrays, where lambdas written in the loop of :func:`cases`
    would all see the loop's last input."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32) * 2 + 3
    dy = rng.standard_normal(shape, dtype=np.float32)
    C = shape[axis]
    g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y = np.empty_like(x)
    _, mean, invstd = fastbn.batch_norm_train(x, axis=axis)
    name = "(" + ",".join(map(str, shape)) + f") {label} f32"
    t_train = t_infer = t_back = None
    if torch:
        t_train, t_infer, t_back = _torch_fns(x, dy, axis, C, mean, invstd)
    out = [
        Case("bn train", name,
             lambda: fastbn.batch_norm_train(x, g, b, axis=axis, running_mean=rm,
                                             running_var=rv, out=y),
             lambda: reference.batch_norm_train(x, g, b, axis=axis, running_mean=rm,
                                                running_var=rv),
             torch=t_train, copy_of=x, inputs=[x],
             floor=floor_timer("bn train", label, x)),
        Case("bn infer", name,
             lambda: fastbn.batch_norm_infer(x, rm, rv, g, b, axis=axis, out=y),
             lambda: reference.batch_norm_infer(x, rm, rv, g, b, axis=axis),
             torch=t_infer, copy_of=x, inputs=[x],
             floor=floor_timer("bn infer", label, x)),
        Case("bn backward", name,
             lambda: fastbn.batch_norm_backward(dy, x, mean, invstd, g, axis=axis, out=y),
             lambda: reference.batch_norm_backward(dy, x, mean, invstd, g, axis=axis),
             torch=t_back, copy_of=x, inputs=[x, dy],
             floor=floor_timer("bn backward", label, x, dy)),
    ]
    if label in FUSED_LAYOUTS and more:
        out += _fused_cases(label, shape, axis, x, dy, g, b, rm, rv, name, torch)
    if label in HALF_LABELS and more:
        out += _half_cases(label, shape, axis, x, dy)
    return out
