"""Benchmark cases for the normalization family: layer, RMS, group and instance norm, forward
and backward, in the three states of the batch-norm rows.

Each case normalizes groups that stay in cache between their statistics and their output (a row
of layer/RMS norm, a (sample, group) of group norm, a (sample, channel) of instance norm), so its
floor (:mod:`fastbn.bench.floor`) is one pass: 8 bytes per float32 element forward (read x,
write y), 12 backward (read x and dy, write dx).  torch's contenders are its CPU kernels
(``native_layer_norm``, ``native_group_norm`` and their backwards; ``F.rms_norm`` and autograd
through its graph, as torch has no CPU RMS-norm backward kernel; instance norm is torch's batch
norm over (1, N*C, H, W), as ``F.instance_norm`` computes it)."""
import numpy as np

import fastbn
from fastbn import reference
from fastbn.bench._harness import Case
from fastbn.bench.floor import floor_timer

# (kind, label, shape, options)
SHAPES = [
    ("layer", "", (8192, 1024), {}),
    ("layer", "", (64, 128, 768), {}),
    ("rms", "", (8192, 1024), {}),
    ("rms", "", (64, 128, 768), {}),
    ("group", "NCHW G=32", (32, 64, 56, 56), {"num_groups": 32, "axis": 1}),
    ("group", "NHWC G=32", (32, 56, 56, 64), {"num_groups": 32, "axis": -1}),
    ("instance", "", (16, 64, 128, 128), {"axis": 1}),
]
QUICK_SHAPES = [
    ("layer", "", (64, 96), {}),
    ("rms", "", (64, 96), {}),
    ("group", "NCHW G=4", (4, 16, 7, 7), {"num_groups": 4, "axis": 1}),
    ("group", "NHWC G=4", (4, 7, 7, 16), {"num_groups": 4, "axis": -1}),
    ("instance", "", (4, 8, 16, 16), {"axis": 1}),
]
SHORT = {"layer": "ln", "rms": "rms", "group": "gn", "instance": "in"}


def _fastbn_fns(kind, x, dy, opts, y):
    """fastbn's forward and backward on x (writing y), and the NumPy reference's."""
    C = x.shape[opts.get("axis", -1)]
    g, b = np.ones(C, x.dtype), np.zeros(C, x.dtype)   # per channel (layer/RMS: the last axis)
    if kind == "layer":
        _, mean, invstd = fastbn.layer_norm(x, g, b)
        return ((lambda: fastbn.layer_norm(x, g, b, out=y)),
                (lambda: fastbn.layer_norm_backward(dy, x, mean, invstd, g, out=y)),
                (lambda: reference.layer_norm(x, g, b)),
                (lambda: reference.layer_norm_backward(dy, x, mean, invstd, g)))
    if kind == "rms":
        _, invrms = fastbn.rms_norm(x, g)
        return ((lambda: fastbn.rms_norm(x, g, out=y)),
                (lambda: fastbn.rms_norm_backward(dy, x, invrms, g, out=y)),
                (lambda: reference.rms_norm(x, g)),
                (lambda: reference.rms_norm_backward(dy, x, invrms, g)))
    if kind == "group":
        G, axis = opts["num_groups"], opts["axis"]
        _, mean, invstd = fastbn.group_norm(x, G, g, b, axis=axis)
        return ((lambda: fastbn.group_norm(x, G, g, b, axis=axis, out=y)),
                (lambda: fastbn.group_norm_backward(dy, x, mean, invstd, G, g, axis=axis, out=y)),
                (lambda: reference.group_norm(x, G, g, b, axis=axis)),
                (lambda: reference.group_norm_backward(dy, x, mean, invstd, G, g, axis=axis)))
    axis = opts["axis"]
    _, mean, invstd = fastbn.instance_norm(x, g, b, axis=axis)
    return ((lambda: fastbn.instance_norm(x, g, b, axis=axis, out=y)),
            (lambda: fastbn.instance_norm_backward(dy, x, mean, invstd, g, axis=axis, out=y)),
            (lambda: reference.instance_norm(x, g, b, axis=axis)),
            (lambda: reference.instance_norm_backward(dy, x, mean, invstd, g, axis=axis)))


def _torch_fns(kind, x, dy, opts):
    """torch's CPU forward and backward kernels on the same data (channels-last as torch's own
    memory format)."""
    import torch
    aten = torch.ops.aten
    channels_last = opts.get("axis", 1) == -1 and kind == "group"
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    if channels_last:   # (N, H, W, C) memory as torch's NCHW channels_last tensor
        tx, tdy = tx.permute(0, 3, 1, 2), tdy.permute(0, 3, 1, 2)
    C = tx.shape[-1] if kind in ("layer", "rms") else tx.shape[1]
    w, b = torch.ones(C), torch.zeros(C)
    with torch.no_grad():
        if kind == "layer":
            _, mean, rstd = aten.native_layer_norm(tx, [C], w, b, 1e-5)
            return ((lambda: aten.native_layer_norm(tx, [C], w, b, 1e-5)),
                    (lambda: aten.native_layer_norm_backward(tdy, tx, [C], mean, rstd, w, b,
                                                             [True, True, True])))
        if kind == "rms":   # no CPU backward kernel: autograd through F.rms_norm's graph
            return ((lambda: torch.nn.functional.rms_norm(tx, [C], w, 1e-6)), _rms_grad(tx, tdy, w))
        N = tx.shape[0]
        HxW = tx[0, 0].numel()
        G = opts["num_groups"] if kind == "group" else C
        _, mean, rstd = aten.native_group_norm(tx, w, b, N, C, HxW, G, 1e-5)
        if kind == "group":
            return ((lambda: aten.native_group_norm(tx, w, b, N, C, HxW, G, 1e-5)),
                    (lambda: aten.native_group_norm_backward(tdy, tx, mean, rstd, w, N, C, HxW, G,
                                                             [True, True, True])))
        # instance norm: torch runs batch norm over (1, N*C, H, W) (torch.nn.functional.instance_norm)
        tx1, tdy1 = tx.reshape(1, N * C, *tx.shape[2:]), tdy.reshape(1, N * C, *tx.shape[2:])
        w1, b1 = w.repeat(N), b.repeat(N)
        _, m1, r1 = aten.native_batch_norm(tx1, w1, b1, None, None, True, 0.1, 1e-5)
        return ((lambda: torch.nn.functional.instance_norm(tx, weight=w, bias=b, eps=1e-5)),
                (lambda: aten.native_batch_norm_backward(tdy1, tx1, w1, None, None, m1, r1, True,
                                                         1e-5, [True, True, True])))


def _rms_grad(tx, tdy, w):
    """torch's rms_norm backward alone: the gradients of a graph built once, kept for reuse."""
    import torch
    leaf_x, leaf_w = tx.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    with torch.enable_grad():
        y = torch.nn.functional.rms_norm(leaf_x, [w.shape[0]], leaf_w, 1e-6)
    return lambda: torch.autograd.grad(y, (leaf_x, leaf_w), tdy, retain_graph=True)


def cases(quick=False, torch=False):
    """The forward and backward cases of each norm on its standard inputs (small with ``quick``)."""
    out = []
    for kind, label, shape, opts in (QUICK_SHAPES if quick else SHAPES):
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=np.float32) * 2 + 3
        dy = rng.standard_normal(shape, dtype=np.float32)
        y = np.empty_like(x)
        fwd, bwd, ref_fwd, ref_bwd = _fastbn_fns(kind, x, dy, opts, y)
        t_fwd = t_bwd = None
        if torch:
            t_fwd, t_bwd = _torch_fns(kind, x, dy, opts)
        name = "(" + ",".join(map(str, shape)) + ")" + (f" {label}" if label else "") + " f32"
        k = SHORT[kind]
        out += [
            Case(f"{k} forward", name, fwd, ref_fwd, torch=t_fwd, copy_of=x, inputs=[x],
                 floor=floor_timer("norm forward", "groups", x)),
            Case(f"{k} backward", name, bwd, ref_bwd, torch=t_bwd, copy_of=x, inputs=[x, dy],
                 floor=floor_timer("norm backward", "groups", x, dy)),
        ]
    return out
