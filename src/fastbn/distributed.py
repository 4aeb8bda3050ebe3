"""Synchronized batch norm across processes on MPI (through mpi4py).

Each process holds a shard of the batch; the statistics are those of the whole (global) batch,
as if batch norm ran once on the concatenation of the shards in rank order.  Built from
:mod:`fastbn.batchnorm_parts`:

- first, in both directions, an ``Allgather`` of a fixed header of 8 int64 per process (argument
  checks passed or failed, which call, C, dtype, channel axis, ndim): every process checks its
  arguments without raising yet, and then EVERY process raises if any process failed or
  disagrees (no process is left waiting in a collective, and the data exchange below is never
  called with different sizes).  This second collective is the price of that: 64 bytes and one
  more latency per call, instead of issue 18's single collective;
- forward: then ONE ``Allgather`` of the local float64 (count, mean, M2) per channel, 3*C doubles
  per process (3*C*8*P bytes gathered on every process), merged by Chan's formula in rank order;
- backward: then ONE ``Allgather`` of the local float64 sum(dy) and sum(dy * (x - mean)) per
  channel (unscaled: the form the kernels take, so one process gives batch norm's bits) and the
  local count, 2*C + 1 doubles per process, added in rank order.

Every process computes the same merge of the same gathered bytes, so the statistics, ``dgamma``
and ``dbeta`` are bitwise the same on every process (an ``Allreduce`` would not promise that:
MPI may add in any order).  Latency model of one call on P processes: about
``2 * alpha * log2(P) + beta * bytes`` (two collectives, recursive doubling), with
``bytes = (8 + 3 * C) * 8 * P`` forward.

Shards of one batch must agree on the number of channels, the dtype of ``x`` (a float32 shard
among float64 ones would still gather well-formed float64 statistics, but the results would not
be those of one batch norm on one array: a TypeError) and the channel axis and ``ndim``.

``comm`` is an ``mpi4py.MPI.Comm`` (e.g. ``MPI.COMM_WORLD``), or any object with mpi4py's
``Allgather(sendbuf, recvbuf)`` and ``Get_size()``; every process of ``comm`` must make the same
calls in the same order, as with any collective.  This module
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


def _allgather(comm, local, dtype=np.float64):
    """(P, *local.shape) of ``dtype``: every process's ``local``, in rank order (one Allgather;
    mpi4py reads the MPI datatype from the arrays' buffer format)."""
    local = np.ascontiguousarray(local, dtype=dtype)
    gathered = np.empty((comm.Get_size(),) + local.shape, dtype=dtype)
    comm.Allgather(local, gathered)
    return gathered


# The header every process sends before the data: [failed, call, C, dtype, axis, ndim, name...].
# failed: 0 ok, else the kind of the local error (_ERRORS); name: the argument the local error
# names (its message's prefix), NUL-padded ASCII in the last _NAME_WORDS words.
_NAME_WORDS = 2
_HEADER = 6 + _NAME_WORDS
_CALLS = {"sync_batch_norm_train": 1, "sync_batch_norm_backward": 2}
_CALL_NAMES = {code: name for name, code in _CALLS.items()}
_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "float16", 4: "bfloat16"}


def _dtype_code(dtype):
    """The header's code of a validated dtype of x (native byte order)."""
    if dtype == np.float32:
        return 1
    if dtype == np.float64:
        return 2
    return 3 if dtype == np.float16 else 4   # the other half type: bfloat16
_ERRORS = {TypeError: 1, ValueError: 2}   # any other exception: 3, a RuntimeError elsewhere
_ERROR_TYPES = {1: TypeError, 2: ValueError, 3: RuntimeError}


def _error_header(call, error):
    """The header of a process whose argument checks raised ``error``."""
    header = np.zeros(_HEADER, np.int64)
    header[0] = next((code for cls, code in _ERRORS.items() if isinstance(error, cls)), 3)
    header[1] = _CALLS[call]
    name = str(error).split(":", 1)[0]
    if name.isidentifier() and name.isascii() and len(name) <= 8 * _NAME_WORDS:
        header[6:] = np.frombuffer(name.encode().ljust(8 * _NAME_WORDS, b"\0"), np.int64)
    return header


def _agree(comm, call, error=None, C=0, dtype=None, axis=0, ndim=0):
    """Exchange the header (one Allgather of _HEADER int64) and raise on every process if any
    process's checks failed or the processes disagree; return only if all agree.

    ``error``: this process's own exception from its checks (raised here, after the exchange);
    otherwise C, dtype, axis (normalized) and ndim of this process's ``x``.  Every process that
    did not fail raises the same error, about the lowest rank at fault, so the message is the
    same everywhere.
    """
    if error is not None:
        header = _error_header(call, error)
    else:
        header = np.array([0, _CALLS[call], C, _dtype_code(dtype), axis, ndim]
                          + [0] * _NAME_WORDS, np.int64)
    gathered = _allgather(comm, header, np.int64)
    if error is not None:
        raise error
    for rank, h in enumerate(gathered):
        if h[0]:
            name = h[6:].tobytes().rstrip(b"\0").decode("ascii", "replace") or "comm"
            cls = _ERROR_TYPES.get(int(h[0]), RuntimeError)
            raise cls(f"{name}: rank {rank} failed its argument checks ({cls.__name__} there, "
                      f"see that rank's message); the call was abandoned on every rank")
    h0 = gathered[0]
    for rank, h in enumerate(gathered):
        if h[1] != h0[1]:
            raise ValueError(f"comm: rank {rank} called {_CALL_NAMES.get(int(h[1]), '?')}, "
                             f"rank 0 {_CALL_NAMES.get(int(h0[1]), '?')} (every rank must make "
                             f"the same calls in the same order)")
        if h[2] != h0[2]:
            raise ValueError(f"x: rank {rank} has {h[2]} channels, rank 0 has {h0[2]}")
        if h[3] != h0[3]:
            raise TypeError(f"x: rank {rank} has dtype {_DTYPE_NAMES.get(int(h[3]), '?')}, "
                            f"rank 0 has {_DTYPE_NAMES.get(int(h0[3]), '?')} (the shards of one "
                            f"batch share a dtype)")
        if h[4] != h0[4] or h[5] != h0[5]:
            raise ValueError(f"axis: rank {rank} has channel axis {h[4]} of a {h[5]}-d x, "
                             f"rank 0 has axis {h0[4]} of a {h0[5]}-d x")


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
    x : ndarray of float32, float64, float16 or bfloat16, ndim >= 2
        The local shard (any strides, either byte order; may have 0 rows).
    gamma, beta : array_like, shape (C,), optional
        Scale and shift (dtype of ``x``; float32 for the half types), the same on every process.
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
        On EVERY process, before the data is exchanged and before anything is written, when
        any process fails its argument checks or the processes disagree: the failing process
        raises its own error (named argument); the others raise the same kind of error naming
        the argument and the rank, e.g. ``eps: rank 1 failed its argument checks (...)``,
        ``x: rank 2 has 32 channels, rank 0 has 64``, ``x: rank 1 has dtype float32, rank 0
        has float64`` (TypeError) or ``axis: rank 1 has channel axis 3 of a 4-d x, ...``.  A
        ``comm`` that is not a communicator is a TypeError on that process alone (there is
        nothing to exchange over).  A global batch of fewer than 2 values per channel is a
        ValueError on every process.

    Warns
    -----
    RuntimeWarning
        When running buffers are given and a channel's global statistics are not finite.

    Notes
    -----
    Two ``Allgather`` calls: a header of 8 int64 (the checks' outcome and the layout), then
    3*C float64 per process.  With one process (``MPI.COMM_SELF``) the
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
    try:   # checked here, raised after the header exchange (on every rank)
        x, axis, dtype, outer, C, inner = _parts._layout(x, axis)
        eps = v.real(eps, "eps", lo=0.0, lo_open=True)
        momentum = v.real(momentum, "momentum", lo=0.0, hi=1.0)
        g, b, rm, rv = _train_args(x, C, dtype, gamma, beta, running_mean, running_var, out)
    except Exception as e:  # noqa: BLE001 -- re-raised by _agree
        _agree(comm, "sync_batch_norm_train", e)
    _agree(comm, "sync_batch_norm_train", None, C, dtype, axis, x.ndim)

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
    pdtype = v.param_dtype(dtype)
    return BatchNormResult(y, mean.astype(pdtype), invstd.astype(pdtype))


def sync_batch_norm_backward(dy, x, mean, invstd, gamma=None, *, comm, axis=1, out=None):
    """:func:`~fastbn.batch_norm_backward` through the statistics of the global batch.

    Parameters
    ----------
    dy, x : ndarray of float32, float64, float16 or bfloat16
        This process's shard of the output gradient and of the forward's input (same shape and
        dtype; may have 0 rows).  The per-channel arrays of the half types are float32.
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
        As for :func:`sync_batch_norm_train`: on every process when any process fails its
        argument checks or the processes disagree (channels, dtype, axis), before the data is
        exchanged and before anything is written.

    Notes
    -----
    Two ``Allgather`` calls: the header of 8 int64, then 2*C + 1 float64 per process (the two
    sums and the local count).

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
    try:   # checked here, raised after the header exchange (on every rank)
        x, dy, axis, dtype, outer, C, inner, m, s = _parts._grad_inputs(dy, x, mean, invstd, axis)
        g = v.optional_vector_any_order(gamma, "gamma", C, v.param_dtype(dtype))
        if out is not None:
            v.output_any_order(out, "out", x.shape, dtype)
        in_place = out is not None and v.same_view(out, dy)
        v.no_overlap([("out", out)], [("dy", None if in_place else dy), ("x", x),
                                      ("mean", _parts._nd(mean)), ("invstd", _parts._nd(invstd)),
                                      ("gamma", g)])
    except Exception as e:  # noqa: BLE001 -- re-raised by _agree
        _agree(comm, "sync_batch_norm_backward", e)
    _agree(comm, "sync_batch_norm_backward", None, C, dtype, axis, x.ndim)
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
    pdtype = v.param_dtype(dtype)
    return BatchNormGrads(dx, (sdxmu * s).astype(pdtype), sdy.astype(pdtype))


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
    axis, eps, momentum, affine, track_running_stats, dtype, relu
        As for :class:`~fastbn.BatchNorm` (the ReLU and the residual add run after the
        synchronized batch norm, bitwise as the fused layer defines them).

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
                 track_running_stats=True, dtype=np.float32, relu=False):
        self.comm = _mpi().COMM_WORLD if comm is None else _check_comm(comm)
        super().__init__(num_features, axis=axis, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, dtype=dtype, relu=relu)

    def forward(self, x, training=None, *, residual=None):
        # A training-mode call whose layer checks (x's dtype, channels, training) fail before
        # the synchronized function is reached still joins the header exchange, so that the
        # other processes raise instead of waiting in the collective.
        self._synced = False
        try:
            return super().forward(x, training, residual=residual)
        except Exception as e:
            evaluating = training is False or (training is None and not self.training)
            if self._synced or self.comm is None or (evaluating and self.running_mean is not None):
                raise   # raised in the collective's stead, or a call that never communicates
            _agree(self.comm, "sync_batch_norm_train", e)

    __call__ = forward

    def backward(self, dy):
        self._synced = False
        try:
            return super().backward(dy)
        except Exception as e:
            if self._synced or self.comm is None or self._cache is None \
                    or self._cache[0] != "batch":
                raise
            _agree(self.comm, "sync_batch_norm_backward", e)

    def _batch_forward(self, x, running_mean, running_var, momentum, residual=None):
        self._synced = True
        if self.comm is None:
            raise RuntimeError("forward: the layer has no communicator (set layer.comm after "
                               "unpickling)")
        result = sync_batch_norm_train(x, self.gamma, self.beta, comm=self.comm, axis=self.axis,
                                       eps=self.eps, running_mean=running_mean,
                                       running_var=running_var, momentum=momentum)
        if residual is not None:   # the fused epilogue's definition, in x's dtype
            np.add(result.y, residual, out=result.y)
        if self.relu:
            result.y[result.y < 0] = 0
        return result

    def _batch_backward(self, dy, x, mean, invstd, y=None, dresidual=None):
        self._synced = True
        if y is not None:   # threshold_backward(dy, y, 0), as batch_norm_backward's y=
            dy = np.where(y <= 0, dy.dtype.type(0), dy)
        if dresidual is not None:
            np.copyto(dresidual, dy)
        return sync_batch_norm_backward(dy, x, mean, invstd, self.gamma, comm=self.comm,
                                        axis=self.axis)

    def __getstate__(self):
        state = super().__getstate__()
        state["comm"] = None
        state.pop("_synced", None)
        return state

    def __setstate__(self, state):
        state.setdefault("comm", None)
        super().__setstate__(state)

    def __repr__(self):
        return f"Sync{super().__repr__()[:-1]}, comm={self.comm!r})"
