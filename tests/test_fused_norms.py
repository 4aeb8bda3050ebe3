"""Layer, RMS, group and instance norm fused with a residual add and a ReLU (issue 17).

Specification (batch norm's, tests/test_fused.py, for the rest of the family):
- ``layer_norm``, ``rms_norm``, ``group_norm`` and ``instance_norm`` with ``relu`` and/or
  ``residual`` return ``relu(t + residual)``, ``t`` the unfused output in x's dtype, the add
  rounded once in that dtype, ``relu`` torch's (+0 where negative, NaN and -0.0 kept).  Bit for
  bit that composition on every layout of the core (rows, whole-channel runs, per-element runs,
  channels-last columns), dtype, thread count and instruction set; the statistics are those of
  ``x`` alone.  float16 / bfloat16: ``t`` and ``residual`` widened to float32, added and relu'd
  there, rounded once to the half type.
- The backward functions with ``y`` mask ``dy`` as ``threshold_backward(dy, y, 0)`` (+0 where
  ``y <= 0``, also -0.0; ``dy`` where ``y`` is NaN): every result is bit for bit the unfused
  backward of the masked ``dy``, and ``dresidual`` receives that masked ``dy`` (``dy`` itself
  without ``y``).
- Against PyTorch (when installed): ``relu(F.layer_norm(x) + r)`` etc. and the autograd
  gradients within the bounds of tests/norm_helpers.py; the residual's gradient exactly.
- Bad ``relu``, ``residual``, ``y`` or ``dresidual`` raise an error naming the argument and
  nothing is written; any strides and byte order give the bits of the C-contiguous call.
- ``LayerNorm``, ``RMSNorm``, ``GroupNorm``, ``InstanceNorm`` with ``relu=True``:
  ``forward(x, residual=...)`` is the fused function, ``backward`` returns dx and stores
  ``dresidual`` (None when no residual was added).
"""
import copy
import pickle

import numpy as np
import pytest

import fastbn
from fastbn import reference
from norm_helpers import NORMS, check_backward_bound, exact_forward_terms, make
from test_fused import FUSIONS, assert_bitwise, composed, half_composed, half_dtype, relu_grad

BY_NAME = {n.name: n for n in NORMS}
# One case per layout of the core (csrc/norm_body.h): rows (layer / RMS norm, a long row, several
# rows per task, normalized axes not last), whole-channel runs (NCHW group / instance norm),
# per-element runs (inner < 32) and the columns layout (channels-last, > 1024 rows).
LAYOUTS = [
    ("layer_norm", (6, 10), {}), ("layer_norm", (3, 4100), {}), ("layer_norm", (64, 40), {}),
    ("layer_norm", (5, 6, 7), {"axis": 0}), ("rms_norm", (4, 3, 40), {}),
    ("rms_norm", (3, 4, 5), {"axis": (-2, -1)}),
    ("group_norm", (2, 4, 70, 70), {"num_groups": 2}), ("group_norm", (4, 6, 5, 5), {"num_groups": 3}),
    ("group_norm", (2, 40, 40, 4), {"num_groups": 2, "axis": -1}),
    ("group_norm", (2, 20, 4, 3), {"num_groups": 2, "axis": 2}),
    ("instance_norm", (2, 3, 40), {}), ("instance_norm", (2, 1100, 3), {"axis": -1}),
]
LAYOUT_IDS = [f"{n}-{'x'.join(map(str, s))}-{kw}" for n, s, kw in LAYOUTS]
DTYPES = [np.float32, np.float64]
HALF = [pytest.param("float16", id="f16"), pytest.param("bfloat16", id="bf16")]


def fwd(norm, x, gamma, beta, kw, **extra):
    return norm.forward(norm.fb(), x, gamma, beta, kw, **extra)


def bwd(norm, dy, x, stats, gamma, kw, **extra):
    return norm.backward(norm.fb(True), dy, x, stats, gamma, kw, **extra)


def inputs(rng, name, shape, kw, dtype, affine=True):
    norm = BY_NAME[name]
    pdtype = np.float32 if np.dtype(dtype).itemsize == 2 else dtype
    x, gamma, beta = make(norm, shape, kw, pdtype, rng, affine=affine)
    r = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return norm, x.astype(dtype), gamma, beta, r, dy


# ---- the fused forward is the unfused composition, bit for bit ---------------------------------

@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, shape, kw", LAYOUTS, ids=LAYOUT_IDS)
def test_forward_is_the_composition_bitwise(rng, name, shape, kw, dtype, affine, threads, isa):
    norm, x, gamma, beta, r, _ = inputs(rng, name, shape, kw, dtype, affine)
    t, *stats = fwd(norm, x, gamma, beta, kw)
    for relu, add in FUSIONS:
        res = r if add else None
        y, *got = fwd(norm, x, gamma, beta, kw, relu=relu, residual=res)
        assert_bitwise(y, composed(t, relu, res))
        for a, b in zip(got, stats):
            assert_bitwise(a, b)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, shape, kw", LAYOUTS, ids=LAYOUT_IDS)
def test_backward_is_the_backward_of_the_masked_dy_bitwise(rng, name, shape, kw, dtype, affine,
                                                           threads, isa):
    norm, x, gamma, beta, r, dy = inputs(rng, name, shape, kw, dtype, affine)
    y, *stats = fwd(norm, x, gamma, beta, kw, relu=True, residual=r)
    assert (y == 0).any() and (y > 0).any()   # the mask has both sides
    g = relu_grad(dy, y)
    want = bwd(norm, g, x, stats, gamma, kw)
    dres = np.full_like(x, np.nan)
    got = bwd(norm, dy, x, stats, gamma, kw, y=y, dresidual=dres)
    for a, b in zip(got, want):
        assert_bitwise(a, b)
    assert_bitwise(dres, g)
    for a, b in zip(bwd(norm, dy, x, stats, gamma, kw, y=y), want):   # y alone: scratch inside
        assert_bitwise(a, b)
    plain = bwd(norm, dy, x, stats, gamma, kw)   # dresidual alone: dy itself, results unchanged
    for a, b in zip(bwd(norm, dy, x, stats, gamma, kw, dresidual=dres), plain):
        assert_bitwise(a, b)
    assert_bitwise(dres, dy)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, shape, kw", LAYOUTS[::3], ids=LAYOUT_IDS[::3])
def test_mask_is_threshold_backward_at_zero_minus_zero_and_nan(rng, name, shape, kw, dtype, isa):
    norm, x, gamma, beta, _, dy = inputs(rng, name, shape, kw, dtype)
    stats = fwd(norm, x, gamma, beta, kw)[1:]
    y = rng.standard_normal(shape).astype(dtype)
    flat = y.reshape(-1)
    flat[::6], flat[1::6], flat[2::6] = 0.0, -0.0, np.nan
    g = relu_grad(dy, y)
    assert (g.reshape(-1)[2::6] == dy.reshape(-1)[2::6]).all()   # NaN y passes dy
    assert (g.reshape(-1)[1::6] == 0).all() and not np.signbit(g.reshape(-1)[1::6]).any()
    dres = np.empty_like(x)
    got = bwd(norm, dy, x, stats, gamma, kw, y=y, dresidual=dres)
    assert_bitwise(dres, g)
    for a, b in zip(got, bwd(norm, g, x, stats, gamma, kw)):
        assert_bitwise(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, shape, kw", [LAYOUTS[0], LAYOUTS[6], LAYOUTS[8]],
                         ids=[LAYOUT_IDS[0], LAYOUT_IDS[6], LAYOUT_IDS[8]])
def test_redone_and_nonfinite_outputs_are_the_composition(rng, name, shape, kw, dtype, isa):
    # a gamma near the dtype's largest value overflows in T: those vectors are redone by element;
    # NaN and inf residuals pass through the add and the relu as the composition says
    norm, x, gamma, beta, r, _ = inputs(rng, name, shape, kw, dtype)
    gamma = np.full_like(gamma, np.finfo(dtype).max)
    r.flat[::7], r.flat[3::11], r.flat[5::13] = np.nan, np.inf, -np.inf
    with np.errstate(over="ignore", invalid="ignore"):
        t = fwd(norm, x, gamma, beta, kw)[0]
    assert not np.isfinite(t).all()
    for relu, _ in FUSIONS:
        y = fwd(norm, x, gamma, beta, kw, relu=relu, residual=r)[0]
        assert_bitwise(y, composed(t, relu, r))


# ---- float16 and bfloat16 ----------------------------------------------------------------------

@pytest.mark.parametrize("half", HALF)
@pytest.mark.parametrize("name, shape, kw", LAYOUTS, ids=LAYOUT_IDS)
def test_half_forward_and_backward_are_the_half_composition_bitwise(rng, name, shape, kw, half,
                                                                     threads, isa):
    dt = half_dtype(half)
    norm, x, gamma, beta, r, dy = inputs(rng, name, shape, kw, dt)
    r.reshape(-1)[3::17], r.reshape(-1)[11::31] = np.nan, -0.0
    t, *stats = fwd(norm, x, gamma, beta, kw)
    for relu, add in FUSIONS:
        res = r if add else None
        y = fwd(norm, x, gamma, beta, kw, relu=relu, residual=res)[0]
        assert_bitwise(y, half_composed(t, relu, res))
    y = fwd(norm, x, gamma, beta, kw, relu=True, residual=r)[0]
    g = np.where(y.astype(np.float32) <= 0, np.float32(0), dy.astype(np.float32)).astype(dt)
    dres = np.empty_like(x)
    got = bwd(norm, dy, x, stats, gamma, kw, y=y, dresidual=dres)
    assert_bitwise(dres, g)
    for a, b in zip(got, bwd(norm, g, x, stats, gamma, kw)):
        assert_bitwise(a, b)


# ---- against PyTorch ---------------------------------------------------------------------------

TORCH_CASES = [("layer_norm", (6, 10), {}), ("rms_norm", (6, 10), {}),
               ("group_norm", (2, 4, 40), {"num_groups": 2}), ("instance_norm", (2, 3, 40), {})]


def _torch_forward(torch, name, tx, shape, kw, tg, tb, eps):
    F = torch.nn.functional
    if name == "layer_norm":
        return F.layer_norm(tx, (shape[-1],), tg, tb, eps)
    if name == "rms_norm":
        return F.rms_norm(tx, (shape[-1],), tg, eps)
    G = kw.get("num_groups", shape[1])
    return F.group_norm(tx, G, tg, tb, eps)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, shape, kw", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_against_torch_relu_of_norm_plus_residual(rng, name, shape, kw, dtype, affine):
    torch = pytest.importorskip("torch", reason="torch not installed: the oracle needs it")
    norm, x, gamma, beta, _, dy = inputs(rng, name, shape, kw, dtype, affine)
    eps = 1e-5 if norm.centered else 1e-6
    # the residual keeps relu's argument away from 0 (|t* + r| >= 0.05, far beyond rounding), so
    # the masks of the exact and the rounded computations agree
    t_exact = fwd(norm, x.astype(np.float64), *(None if a is None else a.astype(np.float64)
                                                for a in (gamma, beta)), kw)[0]
    side = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    r = (side * rng.uniform(0.05, 2.0, shape) - t_exact).astype(dtype)

    def tt(a):
        return None if a is None else torch.tensor(np.asarray(a, np.float64), requires_grad=True)
    tx, tr, tg, tb = tt(x), tt(r), tt(gamma), tt(beta if norm.has_beta else None)
    ty = torch.relu(_torch_forward(torch, name, tx, shape, kw, tg, tb, eps) + tr)
    ty.backward(torch.from_numpy(dy.astype(np.float64)))
    y_exact = ty.detach().numpy()

    y, *stats = fwd(norm, x, gamma, beta, kw, relu=True, residual=r)
    # t's bound (norm_helpers / csrc/norm.h), then half an ulp of the sum (relu is 1-Lipschitz)
    xg, m, s, c, _, _ = exact_forward_terms(norm, x, gamma, beta, kw, eps)
    u = 2.0 ** -24 if dtype == np.float32 else 2.0 ** -53
    a, cm, ms = np.abs((xg - m) * s), np.abs(c), np.abs(m * s)
    bound = 4 * u * a + 2 * u * cm + 4 * u * u * ms + 1e-12 * (a + cm + ms)
    yg, yeg = norm.groups(y.astype(np.float64), kw)[0], norm.groups(y_exact, kw)[0]
    assert np.all(np.abs(yg - yeg) <= bound + u * np.abs(yeg))

    dres = np.empty_like(x)
    dx, dgamma, *rest = bwd(norm, dy, x, stats, gamma, kw, y=y, dresidual=dres)
    assert_bitwise(dres.astype(np.float64), tr.grad.numpy())   # the masked dy, exactly
    g = relu_grad(dy, y)
    check_backward_bound(norm, g, x, dx, gamma, kw, eps, stats)   # at the statistics handed back
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    if dtype == np.float64:
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-9)
    if affine:
        np.testing.assert_allclose(dgamma, tg.grad.numpy(), **tol)
        if norm.has_beta:
            np.testing.assert_allclose(rest[0], tb.grad.numpy(), **tol)


# ---- the reference twins define the same thing -------------------------------------------------

@pytest.mark.parametrize("name, shape, kw", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_reference_twins_take_the_same_arguments(rng, name, shape, kw):
    norm, x, gamma, beta, r, dy = inputs(rng, name, shape, kw, np.float64)
    fn, bfn = norm.ref(), norm.ref(True)
    t, *stats = norm.forward(fn, x, gamma, beta, kw)
    y = norm.forward(fn, x, gamma, beta, kw, relu=True, residual=r)[0]
    assert_bitwise(y, composed(t, True, r))
    np.testing.assert_allclose(y, fwd(norm, x, gamma, beta, kw, relu=True, residual=r)[0],
                               rtol=1e-12, atol=1e-12)
    dres = np.empty_like(x)
    got = norm.backward(bfn, dy, x, stats, gamma, kw, y=y, dresidual=dres)
    assert_bitwise(dres, relu_grad(dy, y))
    for a, b in zip(got, norm.backward(bfn, dres, x, stats, gamma, kw)):
        assert_bitwise(a, b)


# ---- strides, byte order, in place -------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, shape, kw", [LAYOUTS[3], LAYOUTS[6], LAYOUTS[9]],
                         ids=[LAYOUT_IDS[3], LAYOUT_IDS[6], LAYOUT_IDS[9]])
def test_residual_y_and_dresidual_of_any_strides_and_byte_order(rng, name, shape, kw, dtype):
    norm, x, gamma, beta, r, dy = inputs(rng, name, shape, kw, dtype)
    y, *stats = fwd(norm, x, gamma, beta, kw, relu=True, residual=r)
    dres = np.empty_like(x)
    want = bwd(norm, dy, x, stats, gamma, kw, y=y, dresidual=dres)
    swapped = np.dtype(dtype).newbyteorder()
    for view in [np.asfortranarray(r), np.repeat(r, 2, -1)[..., ::2], r.astype(swapped)]:
        assert_bitwise(fwd(norm, x, gamma, beta, kw, relu=True, residual=view)[0], y)
    for yv in [np.asfortranarray(y), y.astype(swapped)]:
        for dv in [np.empty(shape, dtype, order="F"), np.empty(shape, swapped),
                   np.empty(shape + (2,), dtype)[..., 0]]:
            got = bwd(norm, dy, x, stats, gamma, kw, y=yv, dresidual=dv)
            for a, b in zip(got, want):
                assert_bitwise(a, b)
            assert_bitwise(dv.astype(dtype), dres)


@pytest.mark.parametrize("name, shape, kw", [LAYOUTS[0], LAYOUTS[6], LAYOUTS[8]],
                         ids=[LAYOUT_IDS[0], LAYOUT_IDS[6], LAYOUT_IDS[8]])
def test_in_place_fused_calls_give_the_same_bits(rng, name, shape, kw):
    norm, x, gamma, beta, r, dy = inputs(rng, name, shape, kw, np.float32)
    y, *stats = fwd(norm, x, gamma, beta, kw, relu=True, residual=r)
    xc = x.copy()
    assert fwd(norm, xc, gamma, beta, kw, relu=True, residual=r, out=xc)[0] is xc
    assert_bitwise(xc, y)
    dres, dres2 = np.empty_like(x), np.empty_like(x)
    want = bwd(norm, dy, x, stats, gamma, kw, y=y, dresidual=dres)
    dyc = dy.copy()
    bwd(norm, dyc, x, stats, gamma, kw, out=dyc, y=y, dresidual=dres2)
    assert_bitwise(dyc, want[0])
    assert_bitwise(dres2, dres)


# ---- bad input: named, nothing written ----------------------------------------------------------

SENTINEL = -12345.0


def _arrays():
    rng = np.random.default_rng(7)
    shape = (6, 4, 5)
    x = rng.standard_normal(shape).astype(np.float32)
    return dict(x=x, dy=rng.standard_normal(shape).astype(np.float32),
                y=np.abs(rng.standard_normal(shape)).astype(np.float32),
                mean=np.zeros((6, 2), np.float32), invstd=np.ones((6, 2), np.float32),
                residual=rng.standard_normal(shape).astype(np.float32),
                out=np.full(shape, SENTINEL, np.float32),
                dresidual=np.full(shape, SENTINEL, np.float32))


def _forward_call(name):
    def call(a, **kw):
        args = dict(residual=a["residual"], relu=True, out=a["out"])
        args.update(kw)
        if name == "group_norm":
            return fastbn.group_norm(a["x"], 2, **args)
        if name == "instance_norm":
            return fastbn.instance_norm(a["x"], **args)
        if name == "layer_norm":
            return fastbn.layer_norm(a["x"], axis=(1, 2), **args)
        return fastbn.rms_norm(a["x"], axis=(1, 2), **args)
    call.__name__ = name
    return call


def _backward_call(name):
    def call(a, **kw):
        args = dict(y=a["y"], dresidual=a["dresidual"], out=a["out"])
        args.update(kw)
        dy, x = a["dy"], a["x"]
        if name == "group_norm":
            return fastbn.group_norm_backward(dy, x, a["mean"], a["invstd"], 2, **args)
        if name == "instance_norm":
            return fastbn.instance_norm_backward(dy, x, np.zeros((6, 4), np.float32),
                                                 np.ones((6, 4), np.float32), **args)
        if name == "layer_norm":
            return fastbn.layer_norm_backward(dy, x, a["mean"][:, 0], a["invstd"][:, 0],
                                              axis=(1, 2), **args)
        return fastbn.rms_norm_backward(dy, x, a["invstd"][:, 0], axis=(1, 2), **args)
    call.__name__ = name + "_backward"
    return call


def _read_only(a):
    a.flags.writeable = False
    return a


FORWARD_BAD = [
    ("relu", TypeError, lambda a: dict(relu=1)),
    ("relu", TypeError, lambda a: dict(relu="yes")),
    ("residual", ValueError, lambda a: dict(residual=a["residual"][:3])),
    ("residual", TypeError, lambda a: dict(residual=a["residual"].astype(np.float64))),
    ("residual", TypeError, lambda a: dict(residual=a["residual"].astype(np.int32))),
    ("out", ValueError, lambda a: dict(residual=a["out"])),
    ("out", ValueError, lambda a: dict(residual=a["out"][::-1])),
]
BACKWARD_BAD = [
    ("y", ValueError, lambda a: dict(y=a["y"][:, :2])),
    ("y", TypeError, lambda a: dict(y=a["y"].astype(np.float64))),
    ("y", TypeError, lambda a: dict(y="a string")),
    ("dresidual", ValueError, lambda a: dict(dresidual=a["dresidual"][:2])),
    ("dresidual", TypeError, lambda a: dict(dresidual=a["dresidual"].astype(np.float64))),
    ("dresidual", TypeError, lambda a: dict(dresidual=a["dresidual"].tolist())),
    ("dresidual", ValueError, lambda a: dict(dresidual=_read_only(a["dresidual"]))),
    ("dresidual", ValueError, lambda a: dict(dresidual=a["dy"])),
    ("dresidual", ValueError, lambda a: dict(dresidual=a["x"])),
    ("dresidual", ValueError, lambda a: dict(dresidual=a["y"])),
    ("out", ValueError, lambda a: dict(dresidual=a["out"])),
    ("out", ValueError, lambda a: dict(out=a["y"])),
]
NAMES = ["layer_norm", "rms_norm", "group_norm", "instance_norm"]
BAD = ([(_forward_call(n), *b) for n in NAMES for b in FORWARD_BAD]
       + [(_backward_call(n), *b) for n in NAMES for b in BACKWARD_BAD])


@pytest.mark.parametrize("fn, name, exc, change", BAD,
                         ids=[f"{fn.__name__}-{name}-{i}" for i, (fn, name, _, _) in enumerate(BAD)])
def test_bad_fused_argument_is_named_and_nothing_is_written(fn, name, exc, change):
    a = _arrays()
    before = {k: v.copy() for k, v in a.items()}
    kw = change(a)
    with pytest.raises(exc, match=rf"^{name}: "):
        fn(a, **kw)
    for k, v in a.items():   # outputs and inputs as they were
        assert_bitwise(v, before[k])


# ---- the layers ----------------------------------------------------------------------------------

LAYERS = [
    ("layer_norm", lambda **kw: fastbn.LayerNorm((4, 5), **kw), (6, 4, 5), {"axis": (-2, -1)}),
    ("rms_norm", lambda **kw: fastbn.RMSNorm(5, **kw), (6, 4, 5), {}),
    ("group_norm", lambda **kw: fastbn.GroupNorm(2, 4, **kw), (6, 4, 5), {"num_groups": 2}),
    ("instance_norm", lambda **kw: fastbn.InstanceNorm(4, affine=True, **kw), (6, 4, 5), {}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, make_layer, shape, kw", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_forward_and_backward_are_the_fused_functions(rng, name, make_layer, shape, kw,
                                                            dtype):
    norm = BY_NAME[name]
    layer = make_layer(relu=True, dtype=dtype)
    layer.gamma[...] = rng.uniform(0.5, 2.0, layer.gamma.shape)
    if layer.beta is not None:
        layer.beta[...] = rng.uniform(-1.0, 1.0, layer.beta.shape)
    x = rng.standard_normal(shape).astype(dtype)
    r, dy = rng.standard_normal((2,) + shape).astype(dtype)
    y = layer(x, residual=r)
    want, *stats = fwd(norm, x, layer.gamma, layer.beta, kw, relu=True, residual=r)
    assert_bitwise(y, want)
    dx = layer.backward(dy)
    wdx, wdg, *wdb = bwd(norm, relu_grad(dy, y), x, stats, layer.gamma, kw)
    assert_bitwise(dx, wdx)
    assert_bitwise(layer.dgamma, wdg)
    if layer.beta is not None:
        assert_bitwise(layer.dbeta, wdb[0])
    assert_bitwise(layer.dresidual, relu_grad(dy, y))
    y2 = layer(x)                  # no residual this time: no gradient of one; the relu stays
    assert_bitwise(y2, fwd(norm, x, layer.gamma, layer.beta, kw, relu=True)[0])
    layer.backward(dy)
    assert layer.dresidual is None
    plain = make_layer(dtype=dtype)   # a residual without relu: dresidual is dy
    plain(x, residual=r)
    plain.backward(dy)
    assert_bitwise(plain.dresidual, dy)


@pytest.mark.parametrize("name, make_layer, shape, kw", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_bad_residual_pickle_and_repr(rng, name, make_layer, shape, kw):
    layer = make_layer(relu=True)
    x = rng.standard_normal(shape).astype(np.float32)
    for bad, exc in [(np.zeros(shape[:-1] + (2,), np.float32), ValueError),
                     (np.zeros(shape), TypeError)]:
        with pytest.raises(exc, match="^residual: "):
            layer(x, residual=bad)
        assert layer._cache is None
    with pytest.raises(TypeError, match="^relu: "):
        make_layer(relu=1)
    layer.backward(np.ones_like(layer(x, residual=x)))
    assert repr(layer).endswith(", relu=True)")
    assert "relu" not in repr(make_layer())
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert clone.relu is True
        assert_bitwise(clone.dresidual, layer.dresidual)
        assert_bitwise(clone(x, residual=x), make_layer(relu=True)(x, residual=x))
    old = pickle.loads(pickle.dumps(make_layer()))
    del old.__dict__["relu"], old.__dict__["dresidual"]   # a pickle from before the fusion
    restored = pickle.loads(pickle.dumps(old))
    assert restored.relu is False and restored.dresidual is None
    assert_bitwise(restored(x), make_layer()(x))
