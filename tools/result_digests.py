"""Print a short SHA-256 of fastbn's results on a fixed corpus of calls, one "name digest" a line.

    python tools/result_digests.py > here.txt      # then on another machine, and diff

Every kernel family forward and backward (batch norm plain and fused, layer, RMS, group and
instance norm), in float16, float32 and float64; the clipping functions; every initializer law;
and three larger calls on two threads.  Used by tools/aarch64_check.py to compare aarch64 with
the x86-64 it runs on.
"""
import hashlib

import numpy as np

import fastbn
from fastbn import init


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def corpus():
    rng = np.random.default_rng(123)
    out = {}
    for dt in (np.float16, np.float32, np.float64):
        name = np.dtype(dt).name
        pt = np.float32 if dt == np.float16 else dt   # parameters' dtype
        x = (rng.standard_normal((4, 6, 5, 7)) * 3 + 2).astype(dt)
        dy = rng.standard_normal(x.shape).astype(dt)
        g, b, gl = (rng.standard_normal(n).astype(pt) for n in (6, 6, 7))
        y, m, s = fastbn.batch_norm_train(x, g, b)
        out[f"bn_{name}"] = digest(y, m, s, *fastbn.batch_norm_backward(dy, x, m, s, g))
        y, m, s = fastbn.batch_norm_train(x, g, b, relu=True, residual=dy)
        out[f"bn_relu_add_{name}"] = digest(
            y, m, s, *fastbn.batch_norm_backward(dy, x, m, s, g, y=y))
        y, m, s = fastbn.layer_norm(x, gl, gl)
        out[f"ln_{name}"] = digest(y, m, s, *fastbn.layer_norm_backward(dy, x, m, s, gl))
        y, r = fastbn.rms_norm(x, gl)
        out[f"rms_{name}"] = digest(y, r, *fastbn.rms_norm_backward(dy, x, r, gl))
        y, m, s = fastbn.group_norm(x, 3, g, b)
        out[f"gn_{name}"] = digest(y, m, s, *fastbn.group_norm_backward(dy, x, m, s, 3, g))
        xl, dyl = np.moveaxis(x, 1, -1), np.moveaxis(dy, 1, -1)   # channels last
        y, m, s = fastbn.group_norm(xl, 2, g, b, axis=-1)
        out[f"gn_last_{name}"] = digest(
            y, m, s, *fastbn.group_norm_backward(dyl, xl, m, s, 2, g, axis=-1))
        y, m, s = fastbn.instance_norm(x, g, b)
        out[f"in_{name}"] = digest(y, m, s, *fastbn.instance_norm_backward(dy, x, m, s, g))
        grads = [dy.copy(), 2 * dy]
        norms = [fastbn.global_norm(grads, p) for p in (1.0, 2.0, float("inf"))]
        norms.append(fastbn.clip_grad_norm(grads, 1.0))
        out[f"clip_{name}"] = digest(np.array(norms), *grads)
    for law in ("uniform", "normal", "truncated_normal", "glorot_uniform", "glorot_normal",
                "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "orthogonal"):
        for dt in (np.float16, np.float32, np.float64):
            w = getattr(init, law)((64, 33), dtype=dt, rng=7)
            out[f"init_{law}_{np.dtype(dt).name}"] = digest(w)
    before = fastbn.get_num_threads()
    fastbn.set_num_threads(2)
    big = rng.standard_normal((64, 32, 20, 20)).astype(np.float32)
    out["bn_big_2_threads"] = digest(*fastbn.batch_norm_train(big, None, None))
    out["ln_big_2_threads"] = digest(*fastbn.layer_norm(big.reshape(2048, 400)))
    out["init_normal_big_2_threads"] = digest(init.normal((1000, 1000), rng=3))
    fastbn.set_num_threads(before)
    return out


if __name__ == "__main__":
    for k, d in sorted(corpus().items()):
        print(k, d)
