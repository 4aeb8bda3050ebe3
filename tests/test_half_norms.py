"""float16 and bfloat16 tensors in the normalization kernels (issue 17).

Specification:
- Every normalization function -- batch norm's train, infer and backward, its parts
  (batch_norm_stats, batch_norm_apply, batch_norm_backward_reduce, batch_norm_backward_apply),
  layer, RMS, group and instance norm forward and backward -- takes float16 (NumPy's) and
  bfloat16 (``ml_dtypes.bfloat16``) x and dy; y, dx and ``out`` are of that dtype.  gamma, beta,
  running statistics, mean and invstd are float32 (lists are converted, ndarrays of another
  dtype are a TypeError naming them), and the per-channel results (mean, invstd, dgamma, dbeta)
  come back float32; statistics are accumulated in float64 as for float32.
- A half kernel is the float64 kernel on the widened inputs, each output rounded to float32 and
  then to the half type: statistics, coefficients and the elementwise arithmetic in float64.
  Bit for bit, for every kernel on every layout; the per-channel results (mean, invstd, dgamma,
  dbeta) are the float64 kernel's rounded to float32.
- Accuracy.  With b64 the float64 bound of the pass (the formulas of tests/bn_helpers.py and
  tests/norm_helpers.py at u = 2^-53, plus 1e-12 of their terms for the float64 statistics) and
  y* the exact value, every output obeys

      |y - y*| <= ulp_h(|y*| + b64) / 2 + ulp_32(|y*| + b64) / 2 + b64

  (ulp_h, ulp_32: the spacing of the half type and of float32 -- the two roundings).  So y is
  within one ulp_h of y* wherever b64 <= ulp_h(y*) / 4: everywhere but at outputs below ~2^-35 of
  the terms that make them.  Both are asserted; the largest error in ulps is printed (0.500).
- Bits: the same for 1 and 2 threads and every instruction set this CPU runs (float16 uses F16C
  on AVX2, portable integer code on the SSE2 path: the same rounding).
- The parts compose as for float32: batch_norm_apply with train's statistics gives train's y,
  batch_norm_backward_apply with backward_reduce's sums gives backward's dx, bit for bit.
- A result beyond the half type's range is +-inf, as ``astype`` rounds it.
- Layers (``BatchNorm``, ``LayerNorm``, ...) with ``dtype=float16/bfloat16``: float32 parameters
  and buffers, half activations, the functions' results.
- ``fastbn.reference`` twins take half tensors (computed in float64, rounded once).
- PyTorch's CPU bfloat16 batch_norm and layer_norm on the same inputs (when torch is importable):
  fastbn within the bound above; torch's largest error is measured and printed, not asserted.
- Bad input: dy of another dtype, float16 gamma, out of another dtype, and bfloat16 without
  ml_dtypes are TypeErrors naming the argument; nothing is written.
"""
import subprocess
import sys

import numpy as np
import pytest

import fastbn
from fastbn import _config, reference

import bn_helpers as bh
import norm_helpers as nh

try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:
    BF16 = None

NO_ML_DTYPES = pytest.mark.skipif(BF16 is None, reason="ml_dtypes is not installed (test extra)")
HALF = [pytest.param(np.dtype(np.float16), id="f16"),
        pytest.param(BF16, id="bf16", marks=NO_ML_DTYPES)]
F32 = np.dtype(np.float32)
U32 = 2.0 ** -24


def bits(a):
    return np.ascontiguousarray(a).view(np.uint16)


def ulp_h(v, dtype):
    """The spacing of ``dtype`` (float16 or bfloat16) at the magnitude of each float64 ``v``."""
    mant, emin = (10, -14) if dtype == np.float16 else (7, -126)
    e = np.frexp(np.abs(np.asarray(v, np.float64)))[1] - 1     # floor(log2 |v|)
    return np.ldexp(1.0, np.maximum(e, emin) - mant)


def check_half(actual, exact, b32, dtype, what):
    """The documented bound for every element; one ulp where the float64 work is below a quarter
    of one.  ``b32``: the float32 bound of the pass, whose formulas at u = 2^-53 are 2^-29 of it
    (the u^2 terms only shrink), plus 1e-12 of its terms (b32 / U32) for the float64 statistics.
    Returns the largest error in ulps (for the printed figures)."""
    assert actual.dtype == dtype, (actual.dtype, dtype)
    exact = np.asarray(exact, np.float64)
    b32 = np.broadcast_to(b32, exact.shape)
    b64 = b32 * 2.0 ** -29 + 1e-12 * (b32 / U32 + np.abs(exact))
    err = np.abs(actual.astype(np.float64) - exact)
    u = ulp_h(exact, dtype)
    top = np.abs(exact) + b64
    bound = ulp_h(top, dtype) / 2 + np.spacing(top.astype(F32)).astype(np.float64) / 2 + b64
    bad = ~(err <= bound)
    assert not bad.any(), (f"{what}: {bad.sum()} of {bad.size} beyond the bound; worst excess "
                           f"{np.max(err - bound):.3g}")
    sure = b64 <= u / 4
    assert np.mean(sure) > 0.99, f"{what}: the one-ulp claim checked on {np.mean(sure):.3f} only"
    assert np.all(err[sure] <= u[sure]), f"{what}: over 1 ulp where the float64 work is below 1/4"
    return float(np.max(err / u))


def make_bn(rng, shape, axis, dtype):
    x = (rng.standard_normal(shape) * 2.0 + 0.5).astype(dtype)
    C = shape[axis]
    gamma = rng.uniform(0.5, 2.0, C).astype(F32)
    beta = rng.uniform(-1.0, 1.0, C).astype(F32)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dy


def one_ulp_f32(actual, exact):
    """Per-channel float32 results: float64 values rounded once (within one float32 ulp)."""
    assert actual.dtype == F32
    exact = np.asarray(exact, np.float64)
    assert np.all(np.abs(actual - exact) <= np.spacing(np.abs(exact).astype(F32)))


# ---- batch norm: accuracy over every layout ----------------------------------------------------

@pytest.mark.parametrize("shape, axis", bh.LAYOUT_PARAMS, ids=bh.LAYOUT_IDS)
@pytest.mark.parametrize("dtype", HALF)
def test_batch_norm_half_within_the_bound_of_float64(dtype, shape, axis, rng):
    x, gamma, beta, dy = make_bn(rng, shape, axis, dtype)
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis)
    ref = bh.oracle_train(x, gamma, beta, axis=axis)
    one_ulp_f32(mean, ref.mean)
    one_ulp_f32(invstd, ref.invstd)
    worst = check_half(y, ref.y, bh.train_bound(x, gamma, beta, ref.mean, ref.invstd, axis),
                       dtype, "train y")

    rm, rv = mean, (1.0 / invstd.astype(np.float64) ** 2).astype(F32)
    yi = fastbn.batch_norm_infer(x, rm, rv, gamma, beta, axis=axis, eps=1e-3)
    worst = max(worst, check_half(yi, bh.oracle_infer(x, rm, rv, gamma, beta, axis=axis, eps=1e-3),
                                  bh.infer_bound(x, rm, rv, gamma, beta, 1e-3, axis), dtype,
                                  "infer y"))

    dx, dgamma, dbeta = fastbn.batch_norm_backward(dy, x, ref.mean.astype(F32),
                                                   ref.invstd.astype(F32), gamma, axis=axis)
    m32, s32 = ref.mean.astype(F32), ref.invstd.astype(F32)
    rb = bh.oracle_backward(dy, x, m32, s32, gamma, axis=axis)
    one_ulp_f32(dgamma, rb.dgamma)
    one_ulp_f32(dbeta, rb.dbeta)
    worst = max(worst, check_half(dx, rb.dx, bh.backward_bound(dy, x, m32, s32, gamma, axis),
                                  dtype, "backward dx"))
    print(f"{dtype.name} {shape} axis {axis}: largest error {worst:.3f} ulp")


@pytest.mark.parametrize("dtype", HALF)
def test_batch_norm_parts_compose_to_the_fused_kernels_bits(dtype, rng):
    for shape, axis in (((6, 4, 9, 9), 1), ((5, 7, 6, 4), -1), ((300, 5), 1)):
        x, gamma, beta, dy = make_bn(rng, shape, axis, dtype)
        y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta, axis=axis)
        count, m64, m2 = fastbn.batch_norm_stats(x, axis=axis)
        assert np.array_equal(m64.astype(F32), mean)
        stats_ref = reference.batch_norm_stats(x.astype(np.float64), axis=axis)
        assert np.allclose(m2, stats_ref[2], rtol=1e-12, atol=0)
        inv64 = 1.0 / np.sqrt(m2 / count + 1e-5)
        ya = fastbn.batch_norm_apply(x, m64, inv64, gamma, beta, axis=axis)
        assert ya.dtype == dtype and bits(ya).tobytes() == bits(y).tobytes()

        dx, dgamma, dbeta = fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis)
        sum_dy, sum_dy_xhat = fastbn.batch_norm_backward_reduce(dy, x, mean, invstd, axis=axis)
        dxa = fastbn.batch_norm_backward_apply(dy, x, mean, invstd, gamma, sum_dy, sum_dy_xhat,
                                               count[0], axis=axis)
        assert dxa.dtype == dtype and bits(dxa).tobytes() == bits(dx).tobytes()
        assert np.array_equal(sum_dy.astype(F32), dbeta)


# ---- the normalization core: accuracy over its layouts -----------------------------------------

def _norm_exact(norm, x, gamma, beta, kw, eps):
    xg, m, s, c, _, _ = nh.exact_forward_terms(norm, x, gamma, beta, kw, eps)
    a, cm, ms = np.abs((xg - m) * s), np.abs(c), np.abs(m * s)
    return (xg - m) * s + c, 4 * U32 * a + 2 * U32 * cm + 4 * U32 * U32 * ms


def _norm_grad_exact(norm, dy, x, gamma, kw, eps):
    xg, m, _, _, r, ch = nh.exact_forward_terms(norm, x, gamma, None, kw, eps)
    dyg = norm.groups(dy.astype(np.float64), kw)[0]
    gm = np.ones_like(xg) if gamma is None else gamma.astype(np.float64).reshape(-1)[ch]
    w = dyg * gm
    s = -r ** 3 * (w * (xg - m)).sum(axis=1, keepdims=True) / xg.shape[1]
    c = -r * w.sum(axis=1, keepdims=True) / xg.shape[1] if norm.centered else 0 * s
    g = r * gm
    t1, t2, t3 = np.abs(dyg * g), np.abs((xg - m) * s), np.abs(c) + 0 * xg
    return dyg * g + ((xg - m) * s + c), 8 * U32 * (t1 + t2 + t3) + 4 * U32 * U32 * np.abs(m * s)


@pytest.mark.parametrize("norm, shape, kw", nh.CASES, ids=nh.CASE_IDS)
@pytest.mark.parametrize("dtype", HALF)
def test_norms_half_within_the_bound_of_float64(dtype, norm, shape, kw, rng):
    x, gamma, beta = nh.make(norm, shape, kw, np.float32, rng, loc=0.5)
    x = x.astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    eps = 1e-5 if norm.centered else 1e-6
    y, *stats = norm.forward(norm.fb(), x, gamma, beta, kw)
    assert all(s.dtype == F32 for s in stats)
    exact, b32 = _norm_exact(norm, x, gamma, beta, kw, eps)
    worst = check_half(norm.groups(y, kw)[0].astype(dtype), exact, b32, dtype, "forward y")
    dx, dgamma, *dbeta = norm.backward(norm.fb(True), dy, x, stats, gamma, kw)
    assert dgamma.dtype == F32 and all(d.dtype == F32 for d in dbeta)
    # the backward from the float32 statistics it was given: their float64 values
    ref = norm.backward(norm.ref(True), dy.astype(np.float64), x.astype(np.float64),
                        [s.astype(np.float64) for s in stats], gamma.astype(np.float64), kw)
    one_ulp_f32(dgamma, ref[1])
    exact, b32 = _norm_grad_exact(norm, dy, x, gamma, kw, eps)
    b32 = b32 + 1e-6 * np.abs(norm.groups(ref[0], kw)[0] - exact)   # float32 statistics vs exact
    worst = max(worst, check_half(norm.groups(dx, kw)[0].astype(dtype),
                                  norm.groups(ref[0], kw)[0], b32, dtype, "backward dx"))
    print(f"{norm.name} {dtype.name} {shape} {kw}: largest error {worst:.3f} ulp")


# ---- the float64 kernels, rounded ---------------------------------------------------------------

BIG = [((16, 8, 40, 40), 1, "NCHW"), ((16, 40, 40, 8), -1, "NHWC"), ((4096, 64), 1, "NC"),
       ((4, 4, 6, 20, 20), 1, "NCDHW")]


def _kernel_outputs(x, dy, gamma, beta, axis, given, groups):
    """Every kernel's outputs on one input; ``given``: float32 statistics, taken by the kernels
    that receive statistics (as float64 for float64 x), so both runs see the same values."""
    wide = x.dtype == np.float64
    cast = (lambda a: a.astype(np.float64)) if wide else (lambda a: a)
    g, b = cast(gamma), cast(beta)
    m, s = (cast(a) for a in given["bn"])
    out = list(fastbn.batch_norm_train(x, g, b, axis=axis))
    rv = (1.0 / s.astype(np.float64) ** 2).astype(F32)
    out.append(fastbn.batch_norm_infer(x, m, cast(rv), g, b, axis=axis))
    out.extend(fastbn.batch_norm_backward(dy, x, m, s, g, axis=axis))
    count, m64, m2 = fastbn.batch_norm_stats(x, axis=axis)
    out += [m64, m2, fastbn.batch_norm_apply(x, m, s, g, b, axis=axis)]
    sums = fastbn.batch_norm_backward_reduce(dy, x, m, s, axis=axis)
    out += list(sums) + [fastbn.batch_norm_backward_apply(dy, x, m, s, g, *sums, count[0],
                                                           axis=axis)]
    last = tuple(range(1, x.ndim))
    C = x.shape[axis]
    for name, fwd, bwd, args, kw, pshape in (
            ("ln", fastbn.layer_norm, fastbn.layer_norm_backward, (), {"axis": last},
             x.shape[1:]),
            ("gn", fastbn.group_norm, fastbn.group_norm_backward, (groups,), {"axis": axis},
             (C,)),
            ("in", fastbn.instance_norm, fastbn.instance_norm_backward, (), {"axis": axis},
             (C,))):
        gp = cast(np.resize(gamma, pshape))
        out += list(fwd(x, *args, gp, **kw))
        out += list(bwd(dy, x, *(cast(a) for a in given[name]), *args, gp, **kw))
    gp = cast(np.resize(gamma, x.shape[-1:]))
    out += list(fastbn.rms_norm(x, gp, axis=-1))
    out += list(fastbn.rms_norm_backward(dy, x, cast(given["rms"][0]), gp, axis=-1))
    return out


@pytest.mark.parametrize("shape, axis", [b[:2] for b in BIG] + bh.LAYOUT_PARAMS[::3],
                         ids=["big-" + b[2] for b in BIG] + bh.LAYOUT_IDS[::3])
@pytest.mark.parametrize("dtype", HALF)
def test_half_kernels_are_the_float64_kernels_rounded_twice(dtype, shape, axis):
    rng = np.random.default_rng(11)
    x, gamma, beta, dy = make_bn(rng, shape, axis, dtype)
    last = tuple(range(1, x.ndim))
    groups = 2 if shape[axis] % 2 == 0 else 1
    given = {"bn": fastbn.batch_norm_train(x, gamma, beta, axis=axis)[1:],
             "ln": fastbn.layer_norm(x, axis=last)[1:],
             "gn": fastbn.group_norm(x, groups, axis=axis)[1:],
             "in": fastbn.instance_norm(x, axis=axis)[1:],
             "rms": fastbn.rms_norm(x, axis=-1)[1:]}
    half = _kernel_outputs(x, dy, gamma, beta, axis, given, groups)
    wide = _kernel_outputs(x.astype(np.float64), dy.astype(np.float64), gamma, beta, axis, given,
                           groups)
    assert len(half) == len(wide)
    for i, (h, w) in enumerate(zip(half, wide)):
        if h is None:
            assert w is None
        elif h.dtype == dtype:   # a tensor: rounded to float32, then to the half type
            assert bits(h).tobytes() == bits(w.astype(F32).astype(dtype)).tobytes(), i
        elif h.dtype == F32:     # per-channel results: rounded once
            assert np.array_equal(h.view(np.uint32), w.astype(F32).view(np.uint32)), i
        else:                    # batch_norm_stats' float64 moments, count
            assert np.array_equal(h, w), i


# ---- the same bits on every path ---------------------------------------------------------------

def _every_kernel(dtype, shape, axis, seed):
    """Every kernel's outputs (bits) on one input."""
    rng = np.random.default_rng(seed)
    x, gamma, beta, dy = make_bn(rng, shape, axis, dtype)
    out = list(fastbn.batch_norm_train(x, gamma, beta, axis=axis))
    y, mean, invstd = out
    out.append(fastbn.batch_norm_infer(x, mean, invstd, gamma, beta, axis=axis))
    out.extend(fastbn.batch_norm_backward(dy, x, mean, invstd, gamma, axis=axis))
    count, m64, m2 = fastbn.batch_norm_stats(x, axis=axis)
    out += [m64, m2, fastbn.batch_norm_apply(x, m64, 1.0 / np.sqrt(m2 / count + 1e-5), gamma,
                                             beta, axis=axis)]
    sums = fastbn.batch_norm_backward_reduce(dy, x, mean, invstd, axis=axis)
    out += list(sums) + [fastbn.batch_norm_backward_apply(dy, x, mean, invstd, gamma, *sums,
                                                           count[0], axis=axis)]
    last = tuple(range(1, x.ndim))
    for fwd, bwd, args in ((fastbn.layer_norm, fastbn.layer_norm_backward, ()),
                           (fastbn.group_norm, fastbn.group_norm_backward, (2,)),
                           (fastbn.instance_norm, fastbn.instance_norm_backward, ())):
        kw = {"axis": axis} if fwd is not fastbn.layer_norm else {"axis": last}
        res = fwd(x, *args, **kw)
        out += list(res) + list(bwd(dy, x, *res[1:], *args, **kw))
    res = fastbn.rms_norm(x, axis=-1)
    out += list(res) + list(fastbn.rms_norm_backward(dy, x, res[1], axis=-1))
    return [np.ascontiguousarray(a).tobytes() for a in out]


@pytest.mark.parametrize("shape, axis", [b[:2] for b in BIG], ids=[b[2] for b in BIG])
@pytest.mark.parametrize("dtype", HALF)
def test_half_kernels_same_bits_any_thread_count_and_isa(dtype, shape, axis):
    saved_threads, saved_isa = fastbn.get_num_threads(), _config.get_isa()
    try:
        runs = {}
        for isa in _config.available_isas():
            _config.set_isa(isa)
            for n in (1, 2):
                fastbn.set_num_threads(n)
                runs[(isa, n)] = _every_kernel(dtype, shape, axis, 7)
    finally:
        fastbn.set_num_threads(saved_threads)
        _config.set_isa(saved_isa)
    first = next(iter(runs.values()))
    for key, run in runs.items():
        assert run == first, key


# ---- range, in place, layers, reference ---------------------------------------------------------

@pytest.mark.parametrize("dtype", HALF)
def test_half_outputs_beyond_the_range_are_infinite_as_a_cast(dtype, rng):
    x = rng.standard_normal((64, 3, 5)).astype(dtype)
    big = float(np.finfo(np.float32).max) if dtype == BF16 else 1e6
    gamma = np.array([1.0, big, -big], F32)
    y, mean, invstd = fastbn.batch_norm_train(x, gamma, axis=1)
    exact = reference.batch_norm_train(x.astype(np.float64), gamma.astype(np.float64), axis=1).y
    with np.errstate(over="ignore"):
        assert bits(y).tobytes() == bits(exact.astype(dtype)).tobytes() or \
            np.array_equal(np.isinf(y), np.isinf(exact.astype(dtype)))
    assert np.isinf(y[:, 1:].astype(np.float64)).any()
    assert np.isfinite(y[:, 0].astype(np.float64)).all()


@pytest.mark.parametrize("dtype", HALF)
def test_half_in_place_gives_the_same_bits(dtype, rng):
    x, gamma, beta, dy = make_bn(rng, (8, 3, 40), 1, dtype)
    y = fastbn.batch_norm_train(x, gamma, beta).y
    xc = x.copy()
    assert fastbn.batch_norm_train(xc, gamma, beta, out=xc).y is xc
    assert bits(xc).tobytes() == bits(y).tobytes()
    yl = fastbn.layer_norm(x, axis=-1)[0]
    xc = x.copy()
    fastbn.layer_norm(xc, axis=-1, out=xc)
    assert bits(xc).tobytes() == bits(yl).tobytes()


@pytest.mark.parametrize("dtype", HALF)
def test_half_layers_keep_float32_parameters(dtype, rng):
    x = rng.standard_normal((6, 4, 5)).astype(dtype)
    bn = fastbn.BatchNorm(4, dtype=dtype)
    assert bn.gamma.dtype == bn.beta.dtype == bn.running_mean.dtype == bn.running_var.dtype == F32
    y = bn(x)
    assert y.dtype == dtype
    assert bits(y).tobytes() == bits(fastbn.batch_norm_train(x, bn.gamma, bn.beta).y).tobytes()
    assert not np.array_equal(bn.running_mean, np.zeros(4, F32))   # updated, still float32
    dx = bn.backward(np.ones_like(x))
    assert dx.dtype == dtype and bn.dgamma.dtype == bn.dbeta.dtype == F32
    bn.eval()
    assert bn(x).dtype == dtype and bn.backward(np.ones_like(x)).dtype == dtype
    for layer in (fastbn.LayerNorm(5, dtype=dtype), fastbn.GroupNorm(2, 4, dtype=dtype),
                  fastbn.InstanceNorm(4, affine=True, dtype=dtype), fastbn.RMSNorm(5, dtype=dtype)):
        assert layer.gamma.dtype == F32
        assert layer(x).dtype == dtype and layer.backward(np.ones_like(x)).dtype == dtype
        assert layer.dgamma.dtype == F32


@pytest.mark.parametrize("dtype", HALF)
def test_reference_twins_take_half_tensors(dtype, rng):
    x, gamma, beta, dy = make_bn(rng, (7, 3, 4), 1, dtype)
    r = reference.batch_norm_train(x, gamma, beta)
    r64 = reference.batch_norm_train(x.astype(np.float64), gamma, beta)
    assert r.y.dtype == dtype and r.mean.dtype == r.invstd.dtype == F32
    assert bits(r.y).tobytes() == bits(r64.y.astype(dtype)).tobytes()
    g = reference.layer_norm_backward(dy, x, *reference.layer_norm(x)[1:])
    assert g[0].dtype == dtype and g[1].dtype == F32
    out = np.empty_like(x)
    assert reference.batch_norm_infer(x, r.mean, r.invstd, out=out) is out
    assert out.dtype == dtype


# ---- PyTorch's bfloat16 ------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["batch_norm", "layer_norm"])
@NO_ML_DTYPES
def test_bfloat16_against_pytorch(op, rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional comparison)")
    shape = (32, 64, 14, 14) if op == "batch_norm" else (4096, 256)
    x = (rng.standard_normal(shape) * 2.0 + 0.5).astype(BF16)
    C = shape[1] if op == "batch_norm" else shape[-1]
    # parameters that bfloat16 holds exactly: PyTorch's layer_norm takes them in x's dtype
    gamma = rng.uniform(0.5, 2.0, C).astype(BF16).astype(F32)
    beta = rng.uniform(-1.0, 1.0, C).astype(BF16).astype(F32)
    xt = torch.from_numpy(bits(x).view(np.int16)).view(torch.bfloat16)
    gt, bt = torch.from_numpy(gamma), torch.from_numpy(beta)
    if op == "batch_norm":
        yt = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
        y, mean, invstd = fastbn.batch_norm_train(x, gamma, beta)
        ref = bh.oracle_train(x, gamma, beta)
        b32 = bh.train_bound(x, gamma, beta, ref.mean, ref.invstd, 1)
        exact = ref.y
    else:
        yt = torch.nn.functional.layer_norm(xt, (C,), gt.to(torch.bfloat16), bt.to(torch.bfloat16))
        y = fastbn.layer_norm(x, gamma, beta)[0]
        norm = nh.NORMS[0]
        exact, b32 = _norm_exact(norm, x, gamma, beta, {}, 1e-5)
        exact, b32 = exact.reshape(shape), b32.reshape(shape)
    y_torch = yt.contiguous().view(torch.int16).numpy().view(np.uint16).view(BF16)
    ours = check_half(y, exact, b32, BF16, f"fastbn {op}")
    u = ulp_h(exact, BF16)
    theirs = np.abs(y_torch.astype(np.float64) - exact) / u
    print(f"bfloat16 {op} {shape}: largest error fastbn {ours:.3f} ulp, PyTorch "
          f"{theirs.max():.3f} ulp ({np.mean(theirs > 1):.2e} of PyTorch's beyond 1 ulp)")


# ---- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", HALF)
def test_half_bad_arguments_are_named_and_nothing_is_written(dtype, rng):
    x, gamma, beta, dy = make_bn(rng, (4, 3, 5), 1, dtype)
    mean, invstd = np.zeros(3, F32), np.ones(3, F32)
    other = np.float32 if dtype == np.float16 else np.float16
    out = np.zeros_like(x)
    rm = np.zeros(3, F32)
    cases = [
        ("dy", lambda: fastbn.batch_norm_backward(dy.astype(other), x, mean, invstd, out=out)),
        ("gamma", lambda: fastbn.batch_norm_train(x, gamma.astype(dtype), out=out,
                                                  running_mean=rm)),
        ("running_var", lambda: fastbn.batch_norm_train(x, out=out, running_mean=rm,
                                                        running_var=np.ones(3, dtype))),
        ("mean", lambda: fastbn.batch_norm_backward(dy, x, mean.astype(dtype), invstd, out=out)),
        ("out", lambda: fastbn.batch_norm_train(x, out=np.zeros(x.shape, F32), running_mean=rm)),
        ("gamma", lambda: fastbn.batch_norm_apply(x, mean, invstd, gamma.astype(dtype), out=out)),
        ("dy", lambda: fastbn.layer_norm_backward(dy.astype(other), x, mean[:1], invstd[:1],
                                                  out=out)),
        ("gamma", lambda: fastbn.layer_norm(x, np.ones(5, dtype), out=out)),
    ]
    for name, call in cases:
        with pytest.raises(TypeError, match=f"^{name}: "):
            call()
        assert not out.astype(np.float64).any() and not rm.any(), name


def test_without_ml_dtypes_half_norms_work_and_bfloat16_is_a_named_error():
    code = """
import sys
sys.modules["ml_dtypes"] = None          # import ml_dtypes now raises ImportError
import numpy as np, fastbn
x = np.ones((4, 3), np.float16)
assert fastbn.batch_norm_train(x).y.dtype == np.float16
assert fastbn.layer_norm(x)[0].dtype == np.float16
try:
    fastbn.BatchNorm(3, dtype="bfloat16")
except TypeError as e:
    print(e)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    msg = proc.stdout.strip()
    assert msg.startswith("dtype:") and "ml_dtypes" in msg and "pip install" in msg, msg
