"""fastbn.fold_batch_norm: an inference batch norm folded into the layer before it.

Specification:
- the folded layer's output equals layer-then-``batch_norm_infer`` within the rounding of the
  folded float32 weights and bias (the bound is derived below, not guessed), for a linear layer
  (PyTorch's (out, in), ``x @ W.T + b``) and for convolutions written in NumPy: NCHW with
  (out, in, kh, kw) weights (``axis=0``) and NHWC with HWIO weights (``axis=-1``);
- the results are the float64 values rounded once to the dtype of ``weight``
  (float32, float64, float16, bfloat16), bias included; ``bias=None`` is a zero bias and
  ``gamma``/``beta`` None are 1 and 0;
- PyTorch's ``fuse_linear_bn_weights`` / ``fuse_conv_bn_weights`` agree to float64 rounding;
- every bad argument is a TypeError/ValueError naming it, and no input is ever modified.
"""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fastbn

U32, U64 = 2.0 ** -24, 2.0 ** -53    # unit roundoffs


def bn_params(rng, C):
    return dict(running_mean=rng.normal(0, 2, C), running_var=rng.uniform(0.01, 4, C),
                gamma=rng.normal(1, 0.5, C), beta=rng.normal(0, 1, C))


def scale(p, eps):
    return p["gamma"] / np.sqrt(p["running_var"] + eps)


def conv_nchw(x, w):
    """Valid 2-d cross-correlation, x (N, Cin, H, W), w (Cout, Cin, kh, kw): (N, Cout, H', W')."""
    win = sliding_window_view(x, w.shape[2:], axis=(2, 3))        # (N, Cin, H', W', kh, kw)
    return np.einsum("nchwij,ocij->nohw", win, w)


def conv_nhwc(x, w):
    """The same for x (N, H, W, Cin) and HWIO weights (kh, kw, Cin, Cout): (N, H', W', Cout)."""
    win = sliding_window_view(x, w.shape[:2], axis=(1, 2))        # (N, H', W', Cin, kh, kw)
    return np.einsum("nhwcij,ijco->nhwo", win, w)


def linear(x, w):
    return x @ w.T


# (layer, weight shape, input shape, output-channel axis of the weight, channel axis of the output)
LAYERS = {
    "linear": (linear, (24, 40), (16, 40), 0, 1),
    "conv_nchw": (conv_nchw, (12, 5, 3, 3), (4, 5, 9, 8), 0, 1),
    "conv_hwio": (conv_nhwc, (3, 3, 5, 12), (4, 9, 8, 5), -1, -1),
}


def per_channel(v, ndim, axis):
    shape = [1] * ndim
    shape[axis] = v.size
    return v.reshape(shape)


@pytest.mark.parametrize("case", list(LAYERS))
@pytest.mark.parametrize("with_bias", [True, False])
def test_folded_layer_matches_layer_then_batch_norm(case, with_bias):
    layer, wshape, xshape, waxis, yaxis = LAYERS[case]
    rng = np.random.default_rng(1)
    C, eps = wshape[waxis], 1e-3
    w = rng.normal(0, 1, wshape).astype(np.float32)
    b = rng.normal(0, 1, C).astype(np.float32) if with_bias else None
    x = rng.normal(0, 1, xshape).astype(np.float32)
    p = bn_params(rng, C)
    wf, bf = fastbn.fold_batch_norm(w, b, **p, eps=eps, axis=waxis)
    assert wf.dtype == bf.dtype == np.float32 and wf.shape == w.shape and bf.shape == (C,)

    # Reference: the layer in float64 (exact inputs), then fastbn's batch norm in float64.
    z = layer(x.astype(np.float64), w.astype(np.float64))
    b64 = np.zeros(C) if b is None else b.astype(np.float64)
    z = z + per_channel(b64, z.ndim, yaxis)
    ref = fastbn.batch_norm_infer(z, p["running_mean"], p["running_var"], p["gamma"], p["beta"],
                                  axis=yaxis, eps=eps)
    # The folded layer, evaluated in float64 on its float32 weights.
    got = layer(x.astype(np.float64), wf.astype(np.float64)) + per_channel(bf.astype(np.float64),
                                                                          z.ndim, yaxis)
    # Bound: wf and bf are within U32 (relative) of the exact folded values, so the folded layer
    # is off by at most U32 * (|x| * |wf| + |bf|); both float64 evaluations add at most
    # (K + 8) U64 times the magnitudes involved (K terms per output, a few roundings in the
    # batch norm and the folding).
    s = scale(p, eps)
    mags = layer(np.abs(x).astype(np.float64), np.abs(wf).astype(np.float64)) \
        + per_channel(np.abs(bf) + np.abs(s) * (np.abs(b64) + np.abs(p["running_mean"]))
                      + np.abs(p["beta"]), z.ndim, yaxis)
    K = int(np.prod(wshape)) // C
    tol = (U32 * 1.0001 + (K + 8) * U64) * mags
    err = np.abs(got - ref)
    assert np.all(err <= tol), float(np.max(err / tol))
    # The bound is tight enough to matter: a folding that ignored eps would break it.
    wrong = fastbn.fold_batch_norm(w, b, **p, eps=1e-12, axis=waxis)
    got_wrong = layer(x.astype(np.float64), wrong[0].astype(np.float64))
    assert not np.all(np.abs(got_wrong + per_channel(wrong[1].astype(np.float64), z.ndim, yaxis)
                             - ref) <= tol)


HALF = [np.float16]
try:
    import ml_dtypes
    HALF.append(ml_dtypes.bfloat16)
except ImportError:      # the bfloat16 case is reported as skipped below
    HALF.append(pytest.param(None, marks=pytest.mark.skip(reason="ml_dtypes is not installed")))


@pytest.mark.parametrize("dtype", [np.float32, np.float64] + HALF)
@pytest.mark.parametrize("waxis", [0, -1])
def test_values_are_the_float64_folding_rounded_once(dtype, waxis):
    rng = np.random.default_rng(2)
    w = rng.normal(0, 1, (6, 4, 3)).astype(dtype)
    C = w.shape[waxis]
    b = rng.normal(0, 1, C).astype(np.float32)
    p = bn_params(rng, C)
    wf, bf = fastbn.fold_batch_norm(w, b, **p, eps=1e-4, axis=waxis)
    s = scale(p, 1e-4)
    want_w = w.astype(np.float64) * per_channel(s, 3, waxis)
    want_b = (b.astype(np.float64) - p["running_mean"]) * s + p["beta"]
    assert wf.dtype == bf.dtype == np.dtype(dtype)
    assert wf.tobytes() == want_w.astype(dtype).tobytes()
    assert bf.tobytes() == want_b.astype(dtype).tobytes()


def test_defaults_none_bias_gamma_beta():
    w = np.arange(6.0).reshape(2, 3)
    mean, var = np.array([1.0, 2.0]), np.array([3.0, 8.0])
    wf, bf = fastbn.fold_batch_norm(w, None, mean, var, eps=1.0)
    s = 1 / np.sqrt(var + 1.0)                         # 1/2 and 1/3: gamma 1, beta 0
    assert np.array_equal(wf, w * s[:, None]) and np.array_equal(bf, -mean * s)


def test_pytorch_oracle_linear_and_conv():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    fusion = pytest.importorskip("torch.nn.utils.fusion")
    rng = np.random.default_rng(3)
    for wshape, fuse in (((7, 5), fusion.fuse_linear_bn_weights),
                         ((7, 5, 3, 2), fusion.fuse_conv_bn_weights)):
        w, b = rng.normal(0, 1, wshape), rng.normal(0, 1, 7)
        p = bn_params(rng, 7)
        wf, bf = fastbn.fold_batch_norm(w, b, **p, eps=1e-5)
        t = {k: torch.from_numpy(val) for k, val in p.items()}
        tw, tb = fuse(torch.from_numpy(w), torch.from_numpy(b), t["running_mean"],
                      t["running_var"], 1e-5, t["gamma"], t["beta"])
        # Both take a few float64 roundings (PyTorch uses rsqrt, fastbn 1/sqrt): 8 ulps of the
        # terms involved.
        s = np.abs(scale(p, 1e-5))
        assert np.all(np.abs(tw.detach().numpy() - wf) <= 8 * U64 * np.abs(wf))
        tol = 8 * U64 * (np.abs(b - p["running_mean"]) * s + np.abs(p["beta"]))
        assert np.all(np.abs(tb.detach().numpy() - bf) <= tol)


# ---- bad input -------------------------------------------------------------------------------

def call(**changes):
    rng = np.random.default_rng(4)
    args = dict(weight=rng.normal(0, 1, (3, 2)).astype(np.float32), bias=np.zeros(3, np.float32),
                running_mean=np.zeros(3), running_var=np.ones(3), gamma=np.ones(3),
                beta=np.zeros(3))
    args.update(changes)
    before = {k: a.copy() for k, a in args.items() if isinstance(a, np.ndarray)}
    try:
        return fastbn.fold_batch_norm(args.pop("weight"), args.pop("bias"),
                                      args.pop("running_mean"), args.pop("running_var"), **args)
    finally:
        for k, a in before.items():
            cur = changes.get(k, None)
            if isinstance(cur, np.ndarray):
                assert cur.tobytes() == a.tobytes(), f"{k} was modified"


@pytest.mark.parametrize("changes,exc,name", [
    (dict(weight=np.ones((3, 2), np.int32)), TypeError, "weight"),
    (dict(weight=np.float32(1.0)), ValueError, "weight"),
    (dict(weight="abc"), TypeError, "weight"),
    (dict(bias=np.zeros(4)), ValueError, "bias"),
    (dict(bias=np.zeros(3, np.int64)), TypeError, "bias"),
    (dict(running_mean=np.zeros(2)), ValueError, "running_mean"),
    (dict(running_mean=None), TypeError, "running_mean"),
    (dict(running_var=np.ones((3, 1))), ValueError, "running_var"),
    (dict(running_var=np.array([1.0, -0.5, 1.0])), ValueError, "running_var"),
    (dict(gamma=np.ones(2)), ValueError, "gamma"),
    (dict(beta=np.zeros(3, np.complex128)), TypeError, "beta"),
    (dict(beta=["a", "b", "c"]), TypeError, "beta"),
    (dict(eps=0.0), ValueError, "eps"),
    (dict(eps=-1e-5), ValueError, "eps"),
    (dict(eps=float("inf")), ValueError, "eps"),
    (dict(eps="1e-5"), TypeError, "eps"),
    (dict(axis=2), ValueError, "axis"),
    (dict(axis=-3), ValueError, "axis"),
    (dict(axis=1.0), TypeError, "axis"),
    (dict(weight=np.full((3, 2), 60000, np.float16), running_var=np.full(3, 0.01)), ValueError,
     "weight"),
    (dict(weight=np.ones((3, 2), np.float16), bias=np.full(3, 1e5), running_var=np.full(3, 0.5)),
     ValueError, "bias"),
])
def test_bad_arguments_are_named_and_nothing_is_modified(changes, exc, name):
    with pytest.raises(exc) as info:
        call(**changes)
    assert str(info.value).startswith(name + ":"), str(info.value)


def test_inputs_are_never_modified_and_results_are_new():
    rng = np.random.default_rng(5)
    w, b = rng.normal(0, 1, (4, 3)), rng.normal(0, 1, 4)
    p = bn_params(rng, 4)
    saved = [a.copy() for a in (w, b, *p.values())]
    wf, bf = fastbn.fold_batch_norm(w, b, **p)
    for a, s in zip((w, b, *p.values()), saved):
        assert a.tobytes() == s.tobytes()
    assert not np.shares_memory(wf, w) and not np.shares_memory(bf, b)


def test_byte_swapped_and_strided_weight():
    rng = np.random.default_rng(6)
    w = rng.normal(0, 1, (5, 4)).astype(np.float32)
    p = bn_params(rng, 5)
    ref = fastbn.fold_batch_norm(w, None, **p)
    swapped = w.astype(w.dtype.newbyteorder())
    got = fastbn.fold_batch_norm(swapped, None, **p)
    assert got[0].dtype == np.float32 and got[0].tobytes() == ref[0].tobytes()
    big = np.zeros((4, 10), np.float32)
    big[:, ::2] = w.T
    got = fastbn.fold_batch_norm(big[:, ::2], None, **p, axis=1)
    assert got[0].T.tobytes() == np.ascontiguousarray(ref[0]).tobytes()


def test_scale_beyond_float64_raises_naming_gamma():
    """gamma = DBL_MAX over sqrt(0.13): the scale passes float64's range, and a zero weight
    folded to 0 * inf = NaN (found by tests/test_fuzz_parts.py); refused now, nothing returned."""
    w = np.zeros((1, 2), np.float32)
    with pytest.raises(ValueError, match=r"^gamma: .*overflows float64 at channel 0"):
        fastbn.fold_batch_norm(w, None, np.array([0.125], np.float32),
                               np.array([0.13], np.float32), np.array([np.finfo(np.float64).max]),
                               axis=0)


DBL_MAX = float(np.finfo(np.float64).max)


def test_bias_minus_mean_beyond_float64_folds_exactly():
    """bias = DBL_MAX, running_mean = -DBL_MAX: bias - mean overflows float64 though the folded
    bias does not (found by a long run of tests/test_fuzz_parts.py: inf, with a warning); now
    halved and doubled back, within float64 rounding; a zero scale gives beta exactly."""
    args = (np.array([DBL_MAX, DBL_MAX]), np.array([-DBL_MAX, -DBL_MAX]), np.array([0.25, 1.0]),
            np.array([0.125, 0.0]), np.array([0.5, 5e-324]))
    w, b = fastbn.fold_batch_norm(np.ones((2, 3)), *args, eps=1e-300)
    assert b[0] == DBL_MAX / 2      # (2 DBL_MAX) 0.125 / sqrt(0.25) + 0.5, rounded
    assert b[1] == 5e-324
    with pytest.raises(ValueError, match=r"^bias: a folded bias value \(8\.98\d*e\+307\) "
                                         r"overflows float32; fold into a wider dtype"):
        fastbn.fold_batch_norm(np.ones((2, 3), np.float32), *args, eps=1e-300)


def test_a_fold_beyond_float64_raises_naming_the_output():
    # weight DBL_MAX times a scale of 10: beyond float64 (was inf, silently)
    with pytest.raises(ValueError, match=r"^weight: a folded weight value \(beyond float64's "
                                         r"range\) overflows float64$"):
        fastbn.fold_batch_norm(np.array([[DBL_MAX]]), None, [0.0], [0.01], eps=1e-300)
    with pytest.raises(ValueError, match=r"^bias: .*beyond float64's range"):
        fastbn.fold_batch_norm(np.ones((1, 1)), [DBL_MAX], [-DBL_MAX], [0.01], eps=1e-300)


def test_running_var_plus_eps_beyond_float64():
    # Found by a long run of test_fuzz_parts (fixed): running_var = DBL_MAX, eps = 1e300 made
    # var + eps inf and the scale 0, folding the weight to 0 where it is 9.4e-156; that sum is
    # now taken over 4 (sqrt(d / 4) * 2 is exactly sqrt(d))
    w, b = fastbn.fold_batch_norm(np.array([0.125]), None, [0.0], [DBL_MAX], eps=1e300)
    exact = 0.125 / np.sqrt(np.longdouble(DBL_MAX) + np.longdouble(1e300))
    assert abs(w[0] - exact) <= 2 ** -52 * exact
