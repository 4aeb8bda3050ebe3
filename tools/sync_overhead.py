"""Overhead of synchronized batch norm over local batch norm, under MPI.

    mpiexec -n P python -m mpi4py tools/sync_overhead.py [--shape 32,64,56,56] [--rounds 15]

The global batch (default (32, 64, 56, 56) float32) is split along the batch axis into P shards;
each process times, in interleaved rounds (after a barrier each), batch_norm_train on its shard,
sync_batch_norm_train on its shard (the same plus one Allgather of 3*C float64), and the bare
Allgather of 3*C doubles; rank 0 prints the medians over rounds of the slowest process per
round, and the bytes gathered per call (3*C*8*P).  Timings need an idle machine with at least P
cores: on fewer cores the processes share them and every number includes waiting for a core.
"""
import argparse
import time

import numpy as np
from mpi4py import MPI

import fastbn
from fastbn.distributed import _allgather, sync_batch_norm_train


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="32,64,56,56")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--latency-reps", type=int, default=200)
    args = p.parse_args()
    comm = MPI.COMM_WORLD
    P, rank = comm.Get_size(), comm.Get_rank()
    shape = tuple(int(s) for s in args.shape.split(","))
    N, C = shape[0], shape[1]
    rows = N // P + (rank < N % P)
    x = np.random.default_rng(rank).standard_normal((rows,) + shape[1:]).astype(np.float32)
    local_stats = np.zeros(3 * C)

    def timed(fn):
        comm.Barrier()
        t = time.perf_counter()
        fn()
        return comm.allreduce(time.perf_counter() - t, op=MPI.MAX)   # the slowest process

    def gather_many():
        for _ in range(args.latency_reps):
            _allgather(comm, local_stats)

    local, sync, gather = [], [], []
    timed(lambda: fastbn.batch_norm_train(x))          # warm-up
    timed(lambda: sync_batch_norm_train(x, comm=comm))
    for _ in range(args.rounds):
        local.append(timed(lambda: fastbn.batch_norm_train(x)))
        sync.append(timed(lambda: sync_batch_norm_train(x, comm=comm)))
        gather.append(timed(gather_many) / args.latency_reps)
    sweep = {}
    for c in (16, 64, 256, 1024, 4096, 16384):   # the latency model's alpha and beta
        buf = np.zeros(3 * c)
        sweep[c] = np.median([timed(lambda: [_allgather(comm, buf) for _ in range(50)]) / 50
                              for _ in range(7)])
    if rank == 0:
        ml, ms, mg = np.median(local), np.median(sync), np.median(gather)
        print(f"P={P} shard {(rows,) + shape[1:]} float32, threads/process "
              f"{fastbn.get_num_threads()}, {args.rounds} interleaved rounds (medians, slowest "
              f"process per round)")
        print(f"  batch_norm_train (local):   {ml * 1e3:8.3f} ms")
        print(f"  sync_batch_norm_train:      {ms * 1e3:8.3f} ms   overhead {(ms - ml) * 1e3:+.3f} ms "
              f"({(ms / ml - 1) * 100:+.1f} %)")
        print(f"  Allgather of 3*C = {3 * C} doubles: {mg * 1e6:8.1f} us per call "
              f"({3 * C * 8} B sent, {3 * C * 8 * P} B gathered per process)")
        for c, t in sweep.items():
            print(f"  Allgather, C = {c:5d}: {3 * c * 8 * P:8d} B gathered: {t * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
