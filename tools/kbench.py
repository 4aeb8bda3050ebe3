"""Batch norm against torch and np.copyto in three cache states, interleaved (issue 15 item 2).

    PYTHONPATH=src python tools/kbench.py [--shapes NC,NHWC,NCHW] [--ops train,infer,backward]
                                          [--states b2b,producer,cold] [--threads 1,2] [--rounds 15]

b2b: an untimed call of the same contender first; producer: np.copyto of the inputs from a
source right before; cold: a 96 MB buffer (3x the last-level cache) written before.  Each round
times fastbn, torch and copyto once each, in that order; the table gives medians (ms) and the
ratios torch/fastbn and fastbn/copyto.  Freed memory is reused, as in the report (torch allocates
its outputs: without this a call could pay the zeroing of new pages).
"""
import argparse
import time

import numpy as np

import fastbn
from fastbn.bench._harness import reuse_freed_memory

SHAPES = {"NC": ((4096, 1024), 1), "NHWC": ((32, 56, 56, 64), -1), "NCHW": ((32, 64, 56, 56), 1)}
FLUSH = np.ones(96 << 20 >> 3)


def contenders(label, op):
    import torch
    shape, axis = SHAPES[label]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32) * 2 + 3
    dy = rng.standard_normal(shape, dtype=np.float32)
    src_x, src_dy = x.copy(), dy.copy()
    C = shape[axis]
    g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    y, cy = np.empty_like(x), np.empty_like(x)
    _, mean, invstd = fastbn.batch_norm_train(x, axis=axis)
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    if axis != 1 and x.ndim == 4:
        tx, tdy = tx.permute(0, 3, 1, 2), tdy.permute(0, 3, 1, 2)
    w, tb = torch.ones(C), torch.zeros(C)
    trm, trv = torch.zeros(C), torch.ones(C)
    sm, si = torch.from_numpy(mean), torch.from_numpy(invstd)
    if op == "train":
        fb = lambda: fastbn.batch_norm_train(x, g, b, axis=axis, running_mean=rm, running_var=rv, out=y)
        tf = lambda: torch.nn.functional.batch_norm(tx, trm, trv, w, tb, training=True, momentum=0.1)
    elif op == "infer":
        fb = lambda: fastbn.batch_norm_infer(x, rm, rv, g, b, axis=axis, out=y)
        tf = lambda: torch.nn.functional.batch_norm(tx, trm, trv, w, tb, training=False)
    else:
        fb = lambda: fastbn.batch_norm_backward(dy, x, mean, invstd, g, axis=axis, out=y)
        tf = lambda: torch.ops.aten.native_batch_norm_backward(
            tdy, tx, w, trm, trv, sm, si, True, 1e-5, [True, True, True])
    inputs = [(x, src_x)] + ([(dy, src_dy)] if op == "backward" else [])
    return {"fastbn": fb, "torch": tf, "copyto": lambda: np.copyto(cy, x)}, inputs


def prepare(state, fn, inputs):
    if state == "b2b":
        fn()
    elif state == "producer":
        for dst, src in inputs:
            np.copyto(dst, src)
    else:
        np.add(FLUSH, 1.0, out=FLUSH)


def main():
    import torch
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="NC,NHWC,NCHW")
    ap.add_argument("--ops", default="train,infer,backward")
    ap.add_argument("--states", default="b2b,producer,cold")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--only", default="fastbn,torch,copyto")
    a = ap.parse_args()
    reuse_freed_memory()
    names = a.only.split(",")
    print(f"{'case':28} {'fastbn':>7} {'torch':>7} {'copyto':>7} {'t/fb':>5} {'fb/cp':>5}")
    with torch.no_grad():
        for th in map(int, a.threads.split(",")):
            fastbn.set_num_threads(th)
            torch.set_num_threads(th)
            for label in a.shapes.split(","):
                for op in a.ops.split(","):
                    fns, inputs = contenders(label, op)
                    for state in a.states.split(","):
                        times = {n: [] for n in names}
                        for _ in range(a.rounds):
                            for n in names:
                                prepare(state, fns[n], inputs)
                                t0 = time.perf_counter()
                                fns[n]()
                                times[n].append(time.perf_counter() - t0)
                        med = {n: 1e3 * float(np.median(times[n])) for n in names}
                        fb, tt, cp = (med.get(n, float("nan")) for n in ("fastbn", "torch", "copyto"))
                        print(f"{label + ' ' + op + ' ' + state + ' ' + str(th) + 't':28} "
                              f"{fb:7.3f} {tt:7.3f} {cp:7.3f} {tt / fb:5.2f} {fb / cp:5.2f}", flush=True)


if __name__ == "__main__":
    main()
