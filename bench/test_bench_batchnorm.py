"""fastbn against fastbn.reference: training forward, inference forward, backward.

One benchmark group per (kernel, shape), holding the fastbn and the reference implementation
side by side; ``pytest bench --benchmark-only`` prints them grouped.  Mid-size float32 shapes:
dense (N, C), convolutional NCHW and channels-last NHWC.
"""
import numpy as np
import pytest

import fastbn
from fastbn import reference

# layout: (shape, channel axis); the test ids name the layout, the group names the shape too
SHAPES = {
    "NC": ((1024, 512), 1),
    "NCHW": ((16, 32, 28, 28), 1),
    "NHWC": ((16, 28, 28, 32), -1),
}
IMPLS = {"fastbn": fastbn, "reference": reference}


def _data(shape, axis):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape, dtype=np.float32) * 2 + 3)
    dy = rng.standard_normal(shape, dtype=np.float32)
    C = shape[axis]
    return dict(x=x, dy=dy, gamma=np.ones(C, np.float32), beta=np.zeros(C, np.float32),
                rm=np.zeros(C, np.float32), rv=np.ones(C, np.float32))


def _call(kernel, mod, d, axis):
    """A zero-argument callable running ``kernel`` of module ``mod`` on the data ``d``."""
    x, g, b, rm, rv = d["x"], d["gamma"], d["beta"], d["rm"], d["rv"]
    if kernel == "train":
        return lambda: mod.batch_norm_train(x, g, b, axis=axis, running_mean=rm, running_var=rv)
    if kernel == "infer":
        return lambda: mod.batch_norm_infer(x, rm, rv, g, b, axis=axis)
    _, mean, invstd = fastbn.batch_norm_train(x, g, b, axis=axis)
    return lambda: mod.batch_norm_backward(d["dy"], x, mean, invstd, g, axis=axis)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("kernel", ["train", "infer", "backward"])
def test_bn(benchmark, kernel, shape_name, impl):
    shape, axis = SHAPES[shape_name]
    benchmark.group = f"bn {kernel} {shape_name}({','.join(map(str, shape))}) f32"
    benchmark.extra_info["elements"] = int(np.prod(shape))
    fn = _call(kernel, IMPLS[impl], _data(shape, axis), axis)
    result = benchmark(fn)
    assert result is not None
