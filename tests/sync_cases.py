"""The synchronized batch-norm test matrix, shared by tests/test_distributed.py (P ranks as
threads over an in-process communicator) and tests/mpi/check_sync.py (P ranks under mpiexec).

A case: a global batch of N rows (same seed on every rank), cut along the batch axis into shards
of the given row counts, rank r taking shard r; every rank runs sync_batch_norm_train and
sync_batch_norm_backward on its shard.  The specification (check_case):

- the global statistics equal those of the concatenated batch: count exactly, mean and M2 within
  1e-12 relative (float64, batch_norm_stats of the whole batch as the reference);
- the returned mean and invstd, and dgamma and dbeta, within the tolerances of the single-process
  tests (bn_helpers.assert_close against the float64 oracle);
- each rank's y and dx within the documented per-element bound of the float64 oracle on the
  whole batch (bn_helpers.train_bound / backward_bound);
- mean, invstd, dgamma, dbeta and the running statistics bitwise the same on every rank.
"""
import threading

import numpy as np

import fastbn
from fastbn import distributed
from bn_helpers import (assert_close, backward_bound, oracle_backward, oracle_train, train_bound)

# (per-sample shape, channel axis, id): the global batch is (N, *shape)
LAYOUTS = [((3, 4, 5), 1, "NCHW"), ((4, 5, 3), -1, "NHWC"), ((5,), 1, "NC")]
# process count -> shard row counts (empty and 1-row shards included)
SHARDS = {1: [(64,)], 2: [(0, 64), (1, 63), (40, 24)], 3: [(0, 7, 57), (21, 0, 1)],
          4: [(0, 1, 7, 56), (16, 16, 16, 16)]}
DTYPES = [np.float32, np.float64]


def global_batch(layout, dtype, n, seed=7):
    """x (per-channel offsets far from the scale), dy, gamma, beta of the global batch."""
    shape, axis, _ = layout
    rng = np.random.default_rng([seed, n, len(shape), int(np.dtype(dtype).itemsize)])
    full = (n,) + shape
    C = full[axis]
    ch = [1] * len(full)
    ch[axis] = C
    x = (rng.standard_normal(full) * rng.uniform(0.5, 3.0, C).reshape(ch)
         + rng.uniform(-50, 50, C).reshape(ch)).astype(dtype)
    dy = rng.standard_normal(full).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, C).astype(dtype)
    beta = rng.uniform(-1.0, 1.0, C).astype(dtype)
    return x, dy, gamma, beta


def shard_bounds(rows, rank):
    start = sum(rows[:rank])
    return start, start + rows[rank]


def run_rank(comm, rank, rows, layout, dtype):
    """This rank's part of a case: its results as a dict of arrays."""
    x, dy, gamma, beta = global_batch(layout, dtype, sum(rows))
    lo, hi = shard_bounds(rows, rank)
    axis = layout[1]
    C = x.shape[axis]
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
    stats = distributed._global_stats(x[lo:hi], axis % x.ndim, comm)
    y, mean, invstd = distributed.sync_batch_norm_train(
        x[lo:hi], gamma, beta, comm=comm, axis=axis, running_mean=rm, running_var=rv)
    dx, dgamma, dbeta = distributed.sync_batch_norm_backward(
        dy[lo:hi], x[lo:hi], mean, invstd, gamma, comm=comm, axis=axis)
    return {"y": y, "dx": dx, "mean": mean, "invstd": invstd, "dgamma": dgamma, "dbeta": dbeta,
            "running_mean": rm, "running_var": rv, "count": stats[0], "smean": stats[1],
            "m2": stats[2]}


def check_case(results, rows, layout, dtype):
    """Assert the specification (module docstring) on the results of every rank, in rank order."""
    x, dy, gamma, beta = global_batch(layout, dtype, sum(rows))
    axis = layout[1]
    count, smean, m2 = fastbn.batch_norm_stats(x, axis=axis)
    r0 = results[0]
    assert np.array_equal(r0["count"], count)
    np.testing.assert_allclose(r0["smean"], smean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(r0["m2"], m2, rtol=1e-12, atol=0)
    ey, emean, einvstd = oracle_train(x, gamma, beta, axis=axis)
    assert_close(r0["mean"], emean, dtype)
    assert_close(r0["invstd"], einvstd, dtype)
    # backward: the oracle from the statistics the ranks used (rounded to dtype), as the local
    # tests do; dx is a difference of sums, whose float64 slack scales with the count
    n = x.size // x.shape[axis]
    edx, edgamma, edbeta = oracle_backward(dy, x, r0["mean"], r0["invstd"], gamma, axis=axis)
    assert_close(r0["dgamma"], edgamma, dtype, rel64=1e-13 * n)
    assert_close(r0["dbeta"], edbeta, dtype, rel64=1e-13 * n)
    ybound = train_bound(x, gamma, beta, emean, einvstd, axis)
    dxbound = backward_bound(dy, x, r0["mean"], r0["invstd"], gamma, axis)
    for rank, r in enumerate(results):
        lo, hi = shard_bounds(rows, rank)
        assert_close(r["y"], ey[lo:hi], dtype, bound32=ybound[lo:hi])
        assert_close(r["dx"], edx[lo:hi], dtype, rel64=1e-13 * n, bound32=dxbound[lo:hi])
        for key in ("count", "smean", "m2", "mean", "invstd", "dgamma", "dbeta",
                    "running_mean", "running_var"):
            assert r[key].tobytes() == r0[key].tobytes(), (key, rank)


def cases():
    """Every (P, rows, layout, dtype) of the matrix."""
    return [(len(rows), rows, layout, dtype) for P, shard_list in SHARDS.items()
            for rows in shard_list for layout in LAYOUTS for dtype in DTYPES]


class ThreadComm:
    """An in-process communicator for P ranks that are threads: ``Allgather`` and ``Get_size``
    (what fastbn.distributed uses), on NumPy arrays as mpi4py takes them."""

    TIMEOUT = 60   # seconds a rank waits for the others in Allgather

    def __init__(self, shared, rank):
        self._shared, self.rank = shared, rank

    @classmethod
    def group(cls, size):
        # the timeout turns a rank left waiting (a deadlock under MPI) into BrokenBarrierError
        shared = {"size": size, "slots": [None] * size,
                  "barrier": threading.Barrier(size, timeout=cls.TIMEOUT),
                  "calls": 0}
        return [cls(shared, r) for r in range(size)]

    def Get_size(self):
        return self._shared["size"]

    def Get_rank(self):
        return self.rank

    def Allgather(self, sendbuf, recvbuf):
        send, recv = sendbuf, recvbuf
        sh = self._shared
        sh["slots"][self.rank] = np.array(send)
        sh["barrier"].wait()
        recv[...] = np.stack(sh["slots"]).reshape(recv.shape)
        if self.rank == 0:
            sh["calls"] += 1
        sh["barrier"].wait()   # nobody overwrites a slot before everyone has read them


def run_threads(size, fn):
    """Run ``fn(comm, rank)`` on ``size`` threads over one ThreadComm group; results in rank
    order (an exception in any rank is raised here)."""
    comms = ThreadComm.group(size)
    results, errors = [None] * size, []

    def body(r):
        try:
            results[r] = fn(comms[r], r)
        except BaseException as e:   # noqa: BLE001 -- re-raised in the caller
            errors.append(e)
            comms[r]._shared["barrier"].abort()

    threads = [threading.Thread(target=body, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results
