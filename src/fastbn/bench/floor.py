"""The report's "x floor": fastbn's time over the time of its minimal memory traffic.

A batch-norm kernel on float32 must at least read its inputs and write its output; when its
statistics must see the whole batch before the first output is written, it must read its input
twice.  The floor of a row is :mod:`fastbn._stream` doing exactly that traffic and nothing else
-- the same arrays, the same passes, on fastbn's pool at the same thread count, timed like every
contender (interleaved, after the same state step) -- so the column is fastbn's time over the time
of the traffic it cannot avoid, at the bandwidth the machine gives in that state:

- train NCHW, NCDHW: read x + write y, 8 bytes per element (a channel's slab -- 401 KB of
  (32,64,56,56), 200 KB of (8,64,8,28,28) -- stays in L2 between its statistics and its
  normalization);
- train NC, NHWC: read x; then read x + write y, 12 (the statistics need the whole batch first);
- infer, any layout: read x + write y, 8;
- backward NCHW, NCDHW: read x, dy + write dx, 12 (blocked: a channel's slabs stay in L2);
- backward NC, NHWC: read x, dy; then read x, dy + write dx, 20 (streaming);
- fused with a ReLU (issue 17): train as train; with a residual add, the residual is read too in
  the output pass: 12 (blocked), 16 (streaming); backward through the ReLU reads y beside x and
  dy in each pass: 16 (blocked), 28 (streaming);
- the other norms (layer, RMS, group, instance), whose groups stay in cache between their
  statistics and their output: forward read x + write y, 8; backward read x, dy + write dx, 12.

Each pass is one call's worth of tasks on fastbn's pool, the second after every task of the
first, like fastbn's two-pass kernels.  Read passes sum what they read (the checksum the tests
check); write passes store the element-wise sum of their inputs, with non-temporal stores from
4 MB as fastbn's outputs.  A floor of 1.0 is the memory's speed; fastbn's per-channel
arithmetic, small-slab overheads and waking threads are what lies above it.
"""
import numpy as np

from fastbn import _config, _stream

_config._register(_stream)   # the floor runs at fastbn's instruction set, like the kernels

# Bytes of memory traffic per float32 element, by (kernel, layout family).
BYTES = {("bn train", "blocked"): 8, ("bn train", "streaming"): 12,
         ("bn infer", "blocked"): 8, ("bn infer", "streaming"): 8,
         ("bn backward", "blocked"): 12, ("bn backward", "streaming"): 20,
         ("bn+relu train", "blocked"): 8, ("bn+relu train", "streaming"): 12,
         ("bn+add+relu train", "blocked"): 12, ("bn+add+relu train", "streaming"): 16,
         ("bn+relu backward", "blocked"): 16, ("bn+relu backward", "streaming"): 28,
         ("norm forward", "blocked"): 8, ("norm backward", "blocked"): 12}


def family(layout):
    """"streaming" for batch norm's NC and NHWC (the statistics need the whole batch), "blocked"
    for the layouts whose groups stay in cache: NCHW and NCDHW (a channel's slab is contiguous),
    "groups" (the other norms)."""
    return "streaming" if layout in ("NC", "NHWC") else "blocked"


def spec(kernel, layout, x, dy, out, more=()):
    """The passes of the floor of ``kernel`` on ``layout`` over x (and dy, and the fused kernels'
    ``more``: the residual, or y), writing ``out``."""
    fam = family(layout)
    backward = kernel.endswith("backward")
    ins = ((x, dy) if backward else (x,)) + tuple(more)
    write = [(ins, out)]
    if kernel == "bn infer" or fam == "blocked":
        return write
    # the statistics read x (the backward's sums x, dy and the y that masks dy); the residual
    # is read by the output pass alone
    return [(ins if backward else (x,), None)] + write


def traffic(passes):
    """Bytes per element of a spec: 4 for every array read or written in every pass."""
    return sum(4 * (len(ins) + (out is not None)) for ins, out in passes)


def floor_timer(kernel, layout, x, dy=None, more=()):
    """A callable running the floor of ``kernel`` on ``layout`` over x (and dy, and ``more``) at
    fastbn's current thread count, writing an array of its own."""
    out = np.empty_like(x)
    passes = spec(kernel, layout, x, dy, out, more)
    assert traffic(passes) == BYTES[(kernel, family(layout))]
    return lambda: _stream.passes(passes, _config.get_num_threads())
