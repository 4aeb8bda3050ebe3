"""Where an output lies relative to its inputs changes no bit.

Outputs of 4 MiB and more are written with non-temporal stores, and a pass whose output lies up
to 112 bytes above one of its inputs modulo 4096 runs last element first, or where the CPU does
not reverse, stores each pair of vectors after the next pair's loads (4K aliasing, csrc/simd.h's
fb_run_reverse and FB_RUN_HELD); layer and RMS norm's backward rows reverse on every CPU
(FB_RUN_PLACE_REV).  Each kernel here writes one output placed 16, 64 or 112 bytes
above x modulo 4096 (the reversed order), 240 or 4080 bytes above (the forward order, either
side of the window) and at 0 (forward), and each result must be the bits of the forward one.
An output not 64-byte aligned like x (16, 112, 240, 4080) also takes the leftover-line step
(FB_RUN_LOOP streams the whole line its vector pairs leave over as one vector, or for the half
types forward through a pair whose second vector it drops), the fused backward's dresidual
included.
Whether a CPU reverses or holds is chosen when the module loads (csrc/cpu.h's
fb_alias_reverse); the tests run both choices on any host.

The outputs fastbn allocates itself (``out=None``, ``dresidual`` of a layer) of 4 MiB and more
start at their first input's line modulo 4096 (x, or the backward's dy), moved below any other
input read with them that starts up to 128 bytes under it: no input starts in the window below
the output.
"""
import numpy as np
import pytest

import fastbn
from fastbn import _config, _norm
from bn_helpers import x86_cpu

PAGE = 4096
OFFSETS = [16, 64, 112, 240, 4080]


class Arena:
    """Arrays carved from one buffer at chosen byte offsets modulo 4096."""

    def __init__(self):
        self.blocks = []

    def place(self, shape, dtype, offset):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        buf = np.empty(nbytes + 2 * PAGE, np.uint8)
        self.blocks.append(buf)
        start = (-buf.ctypes.data) % PAGE + offset
        return buf[start:start + nbytes].view(dtype).reshape(shape)


def _inputs(shape, axis, dtype, arena):
    rng = np.random.default_rng(7)
    x = arena.place(shape, dtype, 0)
    x[...] = rng.standard_normal(shape) * 2 + 3
    dy = arena.place(shape, dtype, 2048)   # far from the window on either side of the outputs
    dy[...] = rng.standard_normal(shape)
    C, D = shape[axis], shape[-1]
    params = [rng.uniform(0.5, 2, n).astype(dtype) for n in (C, D)]
    params += [rng.standard_normal(n).astype(dtype) for n in (C, D)]
    return x, dy, params


# 2^20 elements and more: the outputs are streamed in float32 and float64 alike.
SHAPES = {"NC": ((1280, 1024), 1), "NCHW": ((8, 32, 64, 80), 1), "NHWC": ((8, 64, 80, 32), -1)}


def _batch_norms(x, dy, params, axis):
    """name -> a call writing `out` and returning the array it wrote"""
    g, _, b, _ = params
    _, mean, invstd = fastbn.batch_norm_train(x, g, b, axis=axis)
    rm, rv = mean.astype(x.dtype), (1 / invstd ** 2).astype(x.dtype)
    return {
        "train": lambda out: fastbn.batch_norm_train(x, g, b, axis=axis, out=out).y,
        "train-add-relu": lambda out: fastbn.batch_norm_train(x, g, b, axis=axis, residual=dy,
                                                              relu=True, out=out).y,
        "infer": lambda out: fastbn.batch_norm_infer(x, rm, rv, g, b, axis=axis, out=out),
        "backward": lambda out: fastbn.batch_norm_backward(dy, x, mean, invstd, g, axis=axis,
                                                           out=out)[0],
        "backward-relu": lambda out: _relu_backward(dy, x, mean, invstd, g, axis, out),
    }


def _relu_backward(dy, x, mean, invstd, g, axis, out):
    """dx of the fused backward; its dresidual, placed 16 bytes past out's offset, must be dy
    masked by y > 0 (+0 elsewhere) bit for bit"""
    y = np.maximum(x - 3, 0).astype(x.dtype)
    buf = np.empty(out.nbytes + 2 * PAGE, np.uint8)
    start = ((out.ctypes.data + 16) - buf.ctypes.data) % PAGE
    dres = buf[start:start + out.nbytes].view(out.dtype).reshape(out.shape)
    dx = fastbn.batch_norm_backward(dy, x, mean, invstd, g, axis=axis, out=out, y=y,
                                    dresidual=dres)[0]
    assert dres.tobytes() == np.where(y > 0, dy, 0).astype(out.dtype).tobytes()
    return dx


def _norms(x, dy, params, axis):
    """layer and RMS norm over the last axis, group (8 groups) and instance norm over `axis`
    (not of NC: each of its 1.3e6 instances is one element, 0.3 s a call, and its passes are
    group norm's with one-element runs)"""
    g, gl, b, bl = params
    _, m, r = fastbn.layer_norm(x, gl, bl)
    _, q = fastbn.rms_norm(x, gl)
    _, gm, gr = fastbn.group_norm(x, 8, g, b, axis=axis)
    calls = {
        "layer": lambda out: fastbn.layer_norm(x, gl, bl, out=out)[0],
        "layer-backward": lambda out: fastbn.layer_norm_backward(dy, x, m, r, gl, out=out)[0],
        "rms": lambda out: fastbn.rms_norm(x, gl, out=out)[0],
        "rms-backward": lambda out: fastbn.rms_norm_backward(dy, x, q, gl, out=out)[0],
        "group": lambda out: fastbn.group_norm(x, 8, g, b, axis=axis, out=out)[0],
        "group-backward": lambda out: fastbn.group_norm_backward(dy, x, gm, gr, 8, g, axis=axis,
                                                                 out=out)[0],
    }
    if x.ndim > 2:
        _, im, ir = fastbn.instance_norm(x, g, b, axis=axis)
        calls["instance"] = lambda out: fastbn.instance_norm(x, g, b, axis=axis, out=out)[0]
        calls["instance-backward"] = lambda out: fastbn.instance_norm_backward(
            dy, x, im, ir, g, axis=axis, out=out)[0]
    return calls


@pytest.fixture(params=[True, False], ids=["reversing", "forward-only"])
def alias_reverse(request):
    """The CPU's choice of whether to reverse, forced either way for one test."""
    chosen = _norm.get_alias_reverse()
    _norm.set_alias_reverse(request.param)
    yield request.param
    _norm.set_alias_reverse(chosen)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("family", [_batch_norms, _norms], ids=["batch-norm", "other-norms"])
def test_an_output_near_its_input_modulo_4096_gives_the_same_bits(family, layout, dtype, isa,
                                                                  alias_reverse):
    arena = Arena()
    shape, axis = SHAPES[layout]
    x, dy, params = _inputs(shape, axis, dtype, arena)
    for name, call in family(x, dy, params, axis).items():
        want = call(arena.place(shape, dtype, 0)).copy()
        for offset in OFFSETS:
            out = arena.place(shape, dtype, offset)
            out[...] = np.nan   # an element the pass skipped would stay NaN
            got = call(out)
            assert got.ctypes.data == out.ctypes.data, (name, offset)
            assert got.tobytes() == want.tobytes(), (name, offset)


@pytest.mark.parametrize("alias_reverse", [False], indirect=True, ids=["forward-only"])
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("family", [_batch_norms, _norms], ids=["batch-norm", "other-norms"])
def test_pairs_redone_element_by_element_among_held_ones_give_the_same_bits(family, layout, isa,
                                                                            alias_reverse):
    """Where the CPU does not reverse, the window's outputs are stored a pair late (FB_RUN_HELD);
    a pair that is not finite is redone element by element and stored at once, between held
    ones.  Infinities scattered through x make such pairs (their channels' or rows' statistics
    turn NaN), next to finite ones: every result keeps the bits of the output at offset 0, NaNs
    included."""
    arena = Arena()
    shape, axis = SHAPES[layout]
    x, dy, params = _inputs(shape, axis, np.float32, arena)
    flat = x.reshape(-1)
    flat[np.random.default_rng(3).choice(flat.size, 5, replace=False)] = np.inf
    for name, call in family(x, dy, params, axis).items():
        want = call(arena.place(shape, np.float32, 0)).copy()
        assert not np.isfinite(want).all() and np.isfinite(want).any(), name
        for offset in (16, 64, 112):
            out = arena.place(shape, np.float32, offset)
            out[...] = 0
            assert call(out).tobytes() == want.tobytes(), (name, offset)


def test_the_order_is_chosen_per_cpu_family():
    """Reversed where it was measured to help (AMD family 17h: Zen 1 and 2), forward elsewhere."""
    vendor, family, _ = x86_cpu()
    assert _norm.get_alias_reverse() == (vendor == "AuthenticAMD" and family == 0x17)


def _reads(name, x, dy):
    """The tensors a call reads element by element with its output: x, and dy (the backward's,
    or the residual).  Gamma and beta, where read per element, are read from copies the kernel
    places beside the output (csrc/norm_body.h's params_placed)."""
    arrays = [x, dy] if name.endswith("backward") or name == "train-add-relu" else [x]
    return [a.ctypes.data % PAGE for a in arrays]


@pytest.mark.parametrize("dy_offset", [0, 48, 1040, 2064, 4048])
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("family", [_batch_norms, _norms], ids=["batch-norm", "other-norms"])
def test_a_new_output_starts_far_from_its_inputs_modulo_4096(family, layout, dy_offset):
    """x 16 bytes into a page (NumPy's own large arrays), dy (also the residual) elsewhere: each
    new output starts on a line with no array read with it 1-128 bytes below, modulo 4096, and
    at most a line and 128 bytes per other input below the first one (x, or the backward's dy);
    it gives the bits of an output placed by the caller."""
    arena = Arena()
    shape, axis = SHAPES[layout]
    x0, dy0, params = _inputs(shape, axis, np.float32, arena)
    x = arena.place(shape, np.float32, 16)
    x[...] = x0
    dy = arena.place(shape, np.float32, dy_offset)
    dy[...] = dy0
    for name, call in family(x, dy, params, axis).items():
        if name == "backward-relu":   # its y is made inside the call; its dresidual is given
            continue
        want = call(arena.place(shape, np.float32, 0)).copy()
        got = call(None)
        start = got.ctypes.data % PAGE
        reads = _reads(name, x, dy)
        first = dy_offset if name.endswith("backward") else 16
        assert start % 64 == 0, name
        assert (first - start) % PAGE < 64 + 128 * (len(reads) - 1), (name, start)
        for offset in reads:
            assert not 0 < (start - offset) % PAGE <= 128, (name, start, offset)
        assert got.tobytes() == want.tobytes(), name


def test_a_small_output_is_not_moved_within_its_page():
    """Under 4 MiB (not streamed: no stall was measured there) a new output is only line-aligned:
    its buffer holds 64 bytes more, not a page."""
    x = np.ones((1024, 1023), np.float32)   # just under 4 MiB
    y = fastbn.layer_norm(x)[0]
    assert y.ctypes.data % 64 == 0 and y.base.nbytes == y.nbytes + 64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_streamed_with_their_parameters_copied_give_the_bits_of_rows_in_cache(dtype, isa):
    """A streamed layer / RMS norm (4 MiB and more) reads copies of gamma and beta placed next to
    its output (csrc/norm_body.h's params_placed); each half of the rows alone (not streamed,
    the caller's gamma and beta) gives the same bits, forward and backward."""
    rng = np.random.default_rng(11)
    rows = (4 << 20) // (1024 * np.dtype(dtype).itemsize) + 32
    x = (rng.standard_normal((rows, 1024)) * 2 + 3).astype(dtype)
    dy = rng.standard_normal((rows, 1024)).astype(dtype)
    g, b = rng.uniform(0.5, 2, 1024).astype(dtype), rng.standard_normal(1024).astype(dtype)
    y, m, r = fastbn.layer_norm(x, g, b)
    yr, q = fastbn.rms_norm(x, g)
    whole = [y, fastbn.layer_norm_backward(dy, x, m, r, g)[0], yr,
             fastbn.rms_norm_backward(dy, x, q, g)[0]]
    h = rows // 2
    for part in (slice(0, h), slice(h, rows)):
        xs, dys = x[part].copy(), dy[part].copy()
        assert xs.nbytes < 4 << 20
        ys, ms, rs = fastbn.layer_norm(xs, g, b)
        yrs, qs = fastbn.rms_norm(xs, g)
        halves = [ys, fastbn.layer_norm_backward(dys, xs, ms, rs, g)[0], yrs,
                  fastbn.rms_norm_backward(dys, xs, qs, g)[0]]
        for got, want in zip(halves, whole):
            assert got.tobytes() == want[part].tobytes()
