"""Run under MPI: ``mpiexec -n P python -m mpi4py tests/mpi/check_mismatch.py DIR`` (P >= 2).

Each scenario makes one rank disagree with the others (channels, dtype of x, channel axis) or
fail its own argument checks (eps; dy in the backward), then every rank calls the synchronized
function.  Every rank must raise (none may wait in a collective); each writes one line
``rank R | scenario | ErrorType | message`` to DIR/rankR.txt (and to stdout, where mpiexec may
interleave the ranks' lines) for tests/test_mpi.py to judge, and after the
scenarios a well-formed call must still work on the same communicator.  An exception other
than TypeError/ValueError is uncaught: ``-m mpi4py`` then aborts the whole job.
"""
import os
import sys

from mpi4py import MPI

import numpy as np

from fastbn.distributed import sync_batch_norm_backward, sync_batch_norm_train


def nchw(dtype=np.float64, shape=(2, 3, 4, 5)):
    return (np.arange(np.prod(shape)) % 7).astype(dtype).reshape(shape)


def scenarios(P, rank):
    """name -> a call of this rank (the odd rank's call differs)."""
    last = P - 1
    x = nchw()
    return {
        "channels": lambda: sync_batch_norm_train(nchw(shape=(2, 5, 4, 5)) if rank == last else x,
                                                  comm=MPI.COMM_WORLD),
        "dtype": lambda: sync_batch_norm_train(nchw(np.float32) if rank == 1 else x,
                                               comm=MPI.COMM_WORLD),
        "axis": lambda: (sync_batch_norm_train(nchw(shape=(2, 4, 5, 3)), comm=MPI.COMM_WORLD,
                                               axis=-1) if rank == 1
                         else sync_batch_norm_train(x, comm=MPI.COMM_WORLD, axis=1)),
        "eps": lambda: sync_batch_norm_train(x, comm=MPI.COMM_WORLD,
                                             eps=-1.0 if rank == last else 1e-5),
        "backward-dy": lambda: sync_batch_norm_backward(x[:1] if rank == 0 else x, x, np.zeros(3),
                                                        np.ones(3), comm=MPI.COMM_WORLD),
    }


def main():
    comm = MPI.COMM_WORLD
    P, rank = comm.Get_size(), comm.Get_rank()
    with open(os.path.join(sys.argv[1], f"rank{rank}.txt"), "w") as f:
        def report(*fields):
            line = " | ".join(map(str, (f"rank {rank}",) + fields))
            print(line, flush=True)
            print(line, file=f, flush=True)

        for name, call in scenarios(P, rank).items():
            try:
                call()
            except (TypeError, ValueError) as e:
                report(name, type(e).__name__, e)
            else:
                report(name, "returned", "no error")
        # the communicator is still in step: a well-formed call works on every rank
        y, mean, invstd = sync_batch_norm_train(nchw(), comm=comm)
        report("after", "ok", f"mean {mean.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
