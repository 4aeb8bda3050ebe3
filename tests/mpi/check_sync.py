"""Run under MPI: ``mpiexec -n P python -m mpi4py tests/mpi/check_sync.py``.

Every case of the synchronized batch-norm matrix (tests/sync_cases.py) for this P: each rank runs
its shard through sync_batch_norm_train / sync_batch_norm_backward over MPI.COMM_WORLD, the
results of all ranks are gathered, and every rank checks them against batch norm on the
concatenated batch (and bitwise equality across ranks).  Exit status 0 only if every case passed
on every rank; ``-m mpi4py`` aborts the whole job on an uncaught exception (no rank is left
waiting in a collective).
"""
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # tests/

from mpi4py import MPI  # noqa: E402

import numpy as np  # noqa: E402

from sync_cases import cases, check_case, run_rank  # noqa: E402


def main():
    comm = MPI.COMM_WORLD
    P, rank = comm.Get_size(), comm.Get_rank()
    mine = [c for c in cases() if c[0] == P]
    failed = []
    for _, rows, layout, dtype in mine:
        name = f"P{P} rows {rows} {layout[2]} {np.dtype(dtype).name}"
        results = comm.allgather(run_rank(comm, rank, rows, layout, dtype))
        try:
            check_case(results, rows, layout, dtype)
        except AssertionError:
            failed.append(name)
            print(f"rank {rank}: FAILED {name}\n{traceback.format_exc()}", flush=True)
    total = comm.allreduce(len(failed), op=MPI.SUM)
    if rank == 0:
        print(f"check_sync: {len(mine)} cases on {P} processes, "
              f"{'all passed' if total == 0 else f'{total} failures'}", flush=True)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
