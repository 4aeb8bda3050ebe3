"""Synchronized batch norm across processes on MPI (through mpi4py).

Each process holds a shard of the batch; the statistics are those of the whole (global) batch,
as if batch norm ran once on the concatenation of the shards in rank order.  Built from
:mod:`fastbn.batchnorm_parts`:

- forward: ONE ``Allgather`` of the local float64 (count, mean, M2) per channel, 3*C doubles per
  process (3*C*8*P bytes gathered on every process), merged by Chan's formula in rank order;
- backward: ONE ``Allgather`` of the local float64 sum(dy) and sum(dy * xhat) per channel and
  the local count, 2*C + 1 doubles per process, added in rank order.

Every process computes the same merge of the same gathered bytes, so the statistics, ``dgamma``
and ``dbeta`` are bitwise the same on every process (an ``Allreduce`` would not promise that:
MPI may add in any order).  Latency model of one call on P processes: about
``alpha * log2(P) + beta * bytes`` (recursive doubling), with ``bytes = 3 * C * 8 * P`` forward.

``comm`` is an ``mpi4py.MPI.Comm`` (e.g. ``MPI.COMM_WORLD``), or any object with mpi4py's
``Allgather(sendbuf, recvbuf)`` and ``Get_size()``; every process of ``comm`` must make the same
calls in the same order with the same number of channels, as with any collective.  This module
does not import mpi4py itself, except for :class:`SyncBatchNorm`'s default communicator
(``pip install "fastbn[mpi]"`` brings mpi4py with the MPICH runtime from PyPI).
"""
import numpy as np

from fastbn import _validation as v
from fastbn.batchnorm import BatchNormGrads, BatchNormResult, _train_args, _update_running
from fastbn import batchnorm_parts as _parts
from fastbn.layers import BatchNorm

__all__ = ["sync_batch_norm_train", "sync_batch_norm_backward", "SyncBatchNorm"]

_INSTALL = 'pip install "fastbn[mpi]"'


def _mpi():
    """mpi4py's MPI module, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"fastbn.distributed needs mpi4py and an MPI runtime: {_INSTALL} "
                          f"(or pip install mpi4py mpich) ({e})") from e
    return MPI


def _check_comm(comm, name="comm"):
    """``comm`` must be a communicator: something with ``Allgather`` and ``Get_size``."""
    if not (callable(getattr(comm, "Allgather", None)) and callable(getattr(comm, "Get_size", None))):
        raise TypeError(f"{name}: expected an MPI communicator (e.g. mpi4py.MPI.COMM_WORLD), "
                        f"got {type(comm).__name__}")
    return comm


def _allgather(comm, local):
    """(P, *local.shape) float64: every process's ``local``, in rank order (one Allgather; mpi4py
    reads the MPI datatype, DOUBLE, from the arrays' buffer format)."""
    local = np.ascontiguousarray(local, dtype=np.float64)
    gathered = np.empty((comm.Get_size(),) + local.shape, dtype=np.float64)
    comm.Allgather(local, gathered)
    return gathered


def _global_stats(x, axis, comm):
    """Count, mean and M2 of the global batch, merged in rank order; bitwise equal everywhere."""
    g = _allgather(comm, np.stack(_parts.batch_norm_stats(x, axis=axis)))   # (P, 3, C)
    return _parts.merge_stats(g[:, 0], g[:, 1], g[:, 2])


def sync_batch_norm_train(x, gamma=None, beta=None, *, comm, axis=1, eps=1e-5, running_mean=None,
                          running_var=None, momentum=0.1, out=None):
    """:func:`~fastbn.batch_norm_train` with the statistics of the batch over all processes.

    ``x`` is this process's shard; the shards of the processes of ``comm``, concatenated in
    rank order along any non-channel axis, make the global batch.  Shards may be uneven, and
    empty (no rows) on some processes.

    Parameters
    ----------
    x : ndarray of float32 or float64, ndim >= 2
        The local shard (any strides, either byte order; may have 0 rows).
    gamma, beta : array_like, shape (C,), optional
        Scale and shift (dtype of ``x``), the same on every process.
    comm : mpi4py.MPI.Comm
        The processes that share the batch (keyword only, required).
    axis : int, default 1
    eps : float > 0, default 1e-5
    running_mean, running_var : ndarray, shape (C,), optional
        Updated in place from the global statistics, as :func:`~fastbn.batch_norm_train` does
        (unbiased variance with the global count); the same update on every process.
    momentum : float in [0, 1], default 0.1
    out : ndarray, optional
        Where to write ``y``, as in :func:`~fastbn.batch_norm_train` (``out=x`` in place).

    Returns
    -------
    BatchNormResult
        ``(y, mean, invstd)``: ``y`` the local shard normalized; ``mean`` and ``invstd`` those of
        the global batch, in the dtype of ``x``, bitwise the same on every process.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message, raised before any communication (the other
        processes then wait in the collective: check arguments the same way everywhere).  A
        global batch of fewer than 2 values per channel is a ValueError on every process.

    Warns
    -----
    RuntimeWarning
        When running buffers are given and a channel's global statistics are not finite.

    Notes
    -----
    One ``Allgather`` of 3*C float64 per process.  With one process (``MPI.COMM_SELF``) the
    results are bitwise those of :func:`~fastbn.batch_norm_train`.

    Examples
    --------
    >>> import numpy as np
    >>> from mpi4py import MPI
    >>> from fastbn.distributed import sync_batch_norm_train
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> y, mean, invstd = sync_batch_norm_train(x, comm=MPI.COMM_SELF)
    >>> mean
    array([ 2., 20.])
    """
    _check_comm(comm)
    x, axis, dtype, outer, C, inner = _parts._layout(x, axis)
    eps = v.real(eps, "eps", lo=0.0, lo_open=True)
    momentum = v.real(momentum, "momentum", lo=0.0, hi=1.0)
    g, b, rm, rv = _train_args(x, C, dtype, gamma, beta, running_mean, running_var, out)

    count, mean, m2 = _global_stats(x, axis, comm)
    n = float(count[0]) if C else 2.0
    if n < 2:
        raise ValueError(f"x: expected more than 1 value per channel in training over all "
                         f"processes, got {n:g} (local shape {x.shape}, channel axis {axis})")
    invstd = 1.0 / np.sqrt(m2 / n + eps)   # float64, as the fused kernel computes it
    y = _parts.batch_norm_apply(x, mean, invstd, g, b, axis=axis, out=out)
    if (rm is not None or rv is not None) and C:
        stats = np.stack([mean, m2 / n, invstd])
        _update_running(rm, rv, stats, int(n), momentum, who="sync_batch_norm_train")
    return BatchNormResult(y, mean.astype(dtype), invstd.astype(dtype))


def sync_batch_norm_backward(dy, x, mean, invstd, gamma=None, *, comm, axis=1, out=None):
    """:func:`~fastbn.batch_norm_backward` through the statistics of the global batch.

    Parameters
    ----------
    dy, x : ndarray of float32 or float64
        This process's shard of the output gradient and of the forward's input (same shape and
        dtype; may have 0 rows).
    mean, invstd : array_like, shape (C,)
        As returned by :func:`sync_batch_norm_train` (the global statistics).
    gamma : array_like, shape (C,), optional
    comm : mpi4py.MPI.Comm
        The communicator of the forward pass.
    axis : int, default 1
    out : ndarray, optional
        Where to write ``dx`` (``out=dy`` in place).

    Returns
    -------
    BatchNormGrads
        ``(dx, dgamma, dbeta)``: ``dx`` for the local shard; ``dgamma`` and ``dbeta`` summed
        over all processes in rank order, bitwise the same on every process (do not add them up
        across processes again).

    Raises
    ------
    TypeError, ValueError
        For a bad argument, named in the message, before any communication.

    Notes
    -----
    One ``Allgather`` of 2*C + 1 float64 per process (the two sums and the local count).

    Examples
    --------
    >>> import numpy as np
    >>> from mpi4py import MPI
    >>> from fastbn.distributed import sync_batch_norm_backward, sync_batch_norm_train
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> y, mean, invstd = sync_batch_norm_train(x, comm=MPI.COMM_SELF)
    >>> dx, dgamma, dbeta = sync_batch_norm_backward(np.ones_like(x), x, mean, invstd,
    ...                                              comm=MPI.COMM_SELF)
    >>> dbeta
    array([2., 2.])
    """
    _check_comm(comm)
    x, dy, axis, dtype, outer, C, inner, m, s = _parts._grad_inputs(dy, x, mean, invstd, axis)
    g = v.optional_vector_any_order(gamma, "gamma", C, dtype)
    if out is not None:
        v.output_any_order(out, "out", x.shape, dtype)
    in_place = out is not None and v.same_view(out, dy)
    v.no_overlap([("out", out)], [("dy", None if in_place else dy), ("x", x),
                                  ("mean", _parts._nd(mean)), ("invstd", _parts._nd(invstd)),
                                  ("gamma", g)])
    # sum(dy) and the unscaled sum(dy * (x - mean)) (see batchnorm_parts._grad_sums), and the
    # local count: one message of 2*C + 1 doubles
    sum_dy, sum_dy_xmu = _parts._grad_sums(dy, x, dtype, outer, C, inner, m, s)
    local = np.concatenate([sum_dy, sum_dy_xmu, [float(outer * inner)]])
    gathered = _allgather(comm, local)
    total = gathered[0].copy()
    for row in gathered[1:]:   # rank order: the same bits on every process
        total += row
    sdy, sdxmu, n = total[:C], total[C:2 * C], total[2 * C]
    if n < 1:
        raise ValueError(f"x: expected a non-empty batch over all processes, got local shape "
                         f"{x.shape} and 0 values per channel in total")
    dx = _parts._grad_apply(dy, x, dtype, outer, C, inner, m, s, g, sdy, sdxmu, n, out)
    return BatchNormGrads(dx, (sdxmu * s).astype(dtype), sdy.astype(dtype))


class SyncBatchNorm(BatchNorm):
    """:class:`~fastbn.BatchNorm` whose training-mode statistics are those of the global batch.

    The same interface, plus ``comm``: in training mode, :meth:`forward` calls
    :func:`sync_batch_norm_train` and :meth:`backward` :func:`sync_batch_norm_backward` (so
    ``dgamma`` and ``dbeta`` are already the global gradients, the same on every process);
    evaluation mode is local (running statistics, no communication).  Every process of ``comm``
    must call forward and backward in training mode together.

    Parameters
    ----------
    num_features : int
    comm : mpi4py.MPI.Comm, optional
        The processes that share each batch; None (the default) means ``MPI.COMM_WORLD``.
    axis, eps, momentum, affine, track_running_stats, dtype
        As for :class:`~fastbn.BatchNorm`.

    Raises
    ------
    ImportError
        For ``comm=None`` when mpi4py is not installed (the message says how to install it).
    TypeError, ValueError
        For a bad argument, named in the message.

    Notes
    -----
    A pickled layer does not keep ``comm`` (communicators are not picklable): set
    ``layer.comm`` after unpickling, before a training-mode forward.

    Examples
    --------
    >>> import numpy as np
    >>> from mpi4py import MPI
    >>> from fastbn.distributed import SyncBatchNorm
    >>> bn = SyncBatchNorm(3)                          # comm=MPI.COMM_WORLD
    >>> y = bn(np.ones((4, 3), np.float32))
    """

    def __init__(self, num_features, *, comm=None, axis=1, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        self.comm = _mpi().COMM_WORLD if comm is None else _check_comm(comm)
        super().__init__(num_features, axis=axis, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, dtype=dtype)

    def _batch_forward(self, x, running_mean, running_var, momentum):
        if self.comm is None:
            raise RuntimeError("forward: the layer has no communicator (set layer.comm after "
                               "unpickling)")
        return sync_batch_norm_train(x, self.gamma, self.beta, comm=self.comm, axis=self.axis,
                                     eps=self.eps, running_mean=running_mean,
                                     running_var=running_var, momentum=momentum)

    def _batch_backward(self, dy, x, mean, invstd):
        return sync_batch_norm_backward(dy, x, mean, invstd, self.gamma, comm=self.comm,
                                        axis=self.axis)

    def __getstate__(self):
        state = super().__getstate__()
        state["comm"] = None
        return state

    def __setstate__(self, state):
        state.setdefault("comm", None)
        super().__setstate__(state)

    def __repr__(self):
        return f"Sync{super().__repr__()[:-1]}, comm={self.comm!r})"
