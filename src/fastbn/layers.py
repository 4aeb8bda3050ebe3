"""Layers for NumPy networks built on the fastbn kernels."""
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from fastbn import _half
from fastbn import _validation as v
from fastbn.batchnorm import (_update_running, batch_norm_backward, batch_norm_infer,
                              batch_norm_train)
from fastbn import norm as _nm

__all__ = ["BatchNorm", "LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm"]


def _flag(value, name):
    """``value`` as a Python bool; anything but a bool (or numpy bool) is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _layer_array(a, name, dtype, whose):
    """``a`` as an ndarray of ``dtype`` in native byte order (a swapped-order copy if needed).

    Any other dtype is a TypeError naming ``a``; ``whose`` says where ``dtype`` comes from.
    """
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name}: expected an array of {dtype} ({e})") from None
    if v.native_dtype(a.dtype) != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} ({whose}), got {a.dtype}")
    return v.to_native(a)


def _running_backward(layer, dy, x, y, dres):
    """(dx, dgamma, dbeta) of a forward with the layer's running statistics: constants, so the
    layer is affine in x (BatchNorm's and a tracking InstanceNorm's evaluation mode)."""
    if y is not None:   # through the ReLU: threshold_backward(dy, y, 0)
        dy = np.where(y <= 0, layer.dtype.type(0), dy)
    if dres is not None:
        np.copyto(dres, dy)
    axis = layer.axis % x.ndim
    shape = [1] * x.ndim
    shape[axis] = -1
    axes = tuple(i for i in range(x.ndim) if i != axis)
    invstd = 1.0 / np.sqrt(layer.running_var.astype(np.float64) + layer.eps)
    xhat = (x - layer.running_mean.reshape(shape)) * invstd.reshape(shape)
    scale = invstd if layer.gamma is None else layer.gamma * invstd   # float64
    dx = (dy * scale.reshape(shape)).astype(layer.dtype)
    dgamma = (dy * xhat).sum(axis=axes).astype(v.param_dtype(layer.dtype))
    dbeta = dy.sum(axis=axes, dtype=np.float64).astype(v.param_dtype(layer.dtype))
    return dx, dgamma, dbeta


# PyTorch's state_dict names of the layers' arrays (key -> attribute), in PyTorch's order.
_STATE_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "running_mean",
                "running_var": "running_var", "num_batches_tracked": "num_batches_tracked"}
_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _StateDict:
    """state_dict / load_state_dict under PyTorch's names, for every layer."""

    def state_dict(self):
        """The layer's arrays under PyTorch's names: ``weight`` (gamma), ``bias`` (beta),
        ``running_mean``, ``running_var``, ``num_batches_tracked`` -- those the layer has.

        The arrays are the layer's own, as PyTorch's ``state_dict`` shares its tensors: copy
        them to keep a snapshot.  ``num_batches_tracked`` is a 0-d int64 array (a copy).

        Examples
        --------
        >>> import fastbn
        >>> sorted(fastbn.BatchNorm(3).state_dict())
        ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
        >>> fastbn.LayerNorm(4, bias=False).state_dict()
        {'weight': array([1., 1., 1., 1.], dtype=float32)}
        """
        out = {}
        for key, attr in _STATE_NAMES.items():
            value = getattr(self, attr, None)
            if value is not None:
                out[key] = np.array(value, np.int64) if key == "num_batches_tracked" else value
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy ``state_dict`` (PyTorch's names, as :meth:`state_dict`) into the layer's arrays.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            Values of the layer's shapes (a PyTorch module's ``state_dict()`` converted with
            ``{k: t.numpy() for k, t in sd.items()}``, or CPU tensors as they are); cast to the
            layer's dtypes (``same_kind``: float64 into float32 rounds).
        strict : bool, default True
            Every key of :meth:`state_dict` present and no other; else missing keys are left
            as they are and unexpected ones ignored.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, as PyTorch's.

        Raises
        ------
        TypeError, ValueError
            For a bad value (named by its key) or, with ``strict``, missing or unexpected keys;
            nothing is written then.

        Examples
        --------
        >>> import numpy as np, fastbn
        >>> bn = fastbn.BatchNorm(2)
        >>> bn.load_state_dict({"weight": [2.0, 3.0], "bias": [0.0, 1.0], "running_mean": [1, 1],
        ...                     "running_var": [4.0, 4.0], "num_batches_tracked": 10})
        IncompatibleKeys(missing_keys=[], unexpected_keys=[])
        >>> bn.gamma, bn.num_batches_tracked
        (array([2., 3.], dtype=float32), 10)
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping, got {type(state_dict).__name__}")
        strict = _flag(strict, "strict")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {unexpected}")
        values = {}
        for key in (k for k in own if k in state_dict):   # every value checked before any write
            name = f"state_dict[{key!r}]"
            try:
                a = np.asarray(state_dict[key])
            except (ValueError, TypeError, RuntimeError) as e:
                raise TypeError(f"{name}: expected an array ({e})") from None
            if key == "num_batches_tracked":
                if a.shape != () or a.dtype.kind not in "iu":
                    raise TypeError(f"{name}: expected an integer, got {a.dtype} of shape "
                                    f"{a.shape}")
                values[key] = v.integer(int(a), name, minimum=0)
                continue
            if a.dtype.kind not in "fiu" and not v.is_half(a.dtype):
                raise TypeError(f"{name}: expected real numbers, got dtype {a.dtype}")
            if a.shape != own[key].shape:
                raise ValueError(f"{name}: expected shape {own[key].shape}, got {a.shape}")
            values[key] = a.astype(own[key].dtype)
        for key, a in values.items():
            if key == "num_batches_tracked":
                self.num_batches_tracked = a
            else:
                own[key][...] = a
        return _IncompatibleKeys(missing, unexpected)


class _Running:
    """The running statistics' reset and weight, for BatchNorm and InstanceNorm."""

    def reset_running_stats(self):
        """Set ``running_mean`` to zeros, ``running_var`` to ones and the counter to 0.

        The buffers are overwritten in place (references to them stay valid); nothing happens
        when the layer does not track running statistics.

        Examples
        --------
        >>> import numpy as np, fastbn
        >>> bn = fastbn.BatchNorm(2)
        >>> _ = bn(np.array([[0.0, 10.0], [2.0, 30.0]], dtype=np.float32))
        >>> bn.reset_running_stats()
        >>> bn.running_mean, bn.running_var, bn.num_batches_tracked
        (array([0., 0.], dtype=float32), array([1., 1.], dtype=float32), 0)
        """
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked = 0

    def _momentum(self):
        # this training step's weight; momentum None: the cumulative average, 1 / count
        if self.momentum is None:
            return 1.0 / (self.num_batches_tracked + 1)
        return self.momentum


class BatchNorm(_Running, _StateDict):
    """Batch normalization layer for NumPy networks (PyTorch's ``BatchNorm*d`` semantics).

    A new layer is in training mode: calling it normalizes with the statistics of the batch and
    updates the running statistics.  :meth:`eval` switches it to evaluation mode, where it
    normalizes with the running statistics and changes nothing (without running statistics it
    keeps normalizing with the batch ones); :meth:`train` switches back.

    Parameters
    ----------
    num_features : int
        Number of channels C.
    axis : int, default 1
        The channel axis of the inputs (-1 for channels-last).
    eps : float > 0, default 1e-5
        Added to the variance.
    momentum : float in [0, 1] or None, default 0.1
        Weight of the new batch in the running statistics:
        ``running = (1 - momentum) * running + momentum * batch``.  None means the cumulative
        (equally weighted) average of all training batches so far, i.e. the weight
        ``1 / num_batches_tracked``.
    affine : bool, default True
        Learn ``gamma`` (ones) and ``beta`` (zeros); without it they are None.
    track_running_stats : bool, default True
        Keep ``running_mean`` (zeros) and ``running_var`` (ones, from the unbiased batch
        variance) for evaluation; without them both modes normalize with the batch statistics.
    dtype : float32, float64, float16 or bfloat16, default float32
        The dtype of the inputs and outputs, and of the parameters and buffers -- float32 for
        float16 and bfloat16 (``"bfloat16"`` or ``ml_dtypes.bfloat16``: needs ml_dtypes).
    relu : bool, default False
        Follow the normalization by a ReLU in the same pass (``relu(bn(x) + residual)`` when
        :meth:`forward` is given a residual), and :meth:`backward` through it.

    Attributes
    ----------
    training : bool
        The mode: True after construction, set by :meth:`train` and :meth:`eval`.
    gamma, beta : ndarray or None
        The affine parameters, shape (C,).
    running_mean, running_var : ndarray or None
        The running statistics, shape (C,), updated in place.
    num_batches_tracked : int or None
        Number of training forwards that updated the running statistics (None when they are
        not tracked).
    dgamma, dbeta : ndarray or None
        Gradients stored by the last :meth:`backward`.
    dresidual : ndarray or None
        The gradient of the residual of the last :meth:`forward`, stored by the last
        :meth:`backward` (None when that forward added no residual).
    num_features, axis, eps, momentum, affine, track_running_stats, dtype, relu
        The constructor arguments.

    Notes
    -----
    Pickling (and ``copy.deepcopy``) keeps the parameters, their gradients, the buffers, the
    mode, the counter and the hyper-parameters, but not the input saved for :meth:`backward`:
    a restored layer needs a new :meth:`forward` before :meth:`backward`.  With ``relu`` the
    output is saved too (the ReLU's mask): change neither ``x`` nor the output in place before
    :meth:`backward`.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> bn = fastbn.BatchNorm(3)
    >>> bn  # doctest: +NORMALIZE_WHITESPACE
    BatchNorm(3, axis=1, eps=1e-05, momentum=0.1, affine=True,
              track_running_stats=True, dtype='float32')
    >>> x = np.random.default_rng(0).normal(5.0, 2.0, (8, 3)).astype(np.float32)
    >>> y = bn(x)                                # training mode: batch statistics
    >>> bool(np.allclose(y.mean(axis=0), 0, atol=1e-5)), bn.num_batches_tracked
    (True, 1)
    >>> dx = bn.backward(np.ones_like(y))
    >>> bn.dbeta
    array([8., 8., 8.], dtype=float32)
    >>> rm = bn.running_mean.copy()
    >>> y = bn.eval()(x)                         # evaluation mode: running statistics
    >>> bn.training, bool(np.array_equal(bn.running_mean, rm)), bn.num_batches_tracked
    (False, True, 1)

    Fused with a ReLU and a residual add (a residual block's ``relu(bn(x) + shortcut)``):

    >>> block = fastbn.BatchNorm(3, relu=True)
    >>> y = block(x, residual=np.ones_like(x))
    >>> bool((y >= 0).all())
    True
    >>> dx = block.backward(np.ones_like(y))
    >>> bool(np.array_equal(block.dresidual, (y > 0).astype(np.float32)))
    True
    """

    def __init__(self, num_features, *, axis=1, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32, relu=False):
        self.num_features = v.integer(num_features, "num_features", minimum=1, maximum=v.MAX_DIM)
        self.axis = v.integer(axis, "axis")
        self.eps = v.real(eps, "eps", lo=0.0, lo_open=True)
        self.momentum = None if momentum is None else v.real(momentum, "momentum", lo=0.0, hi=1.0)
        self.affine = _flag(affine, "affine")
        self.track_running_stats = _flag(track_running_stats, "track_running_stats")
        self.relu = _flag(relu, "relu")
        self.dtype = dtype = _layer_dtype(dtype)
        pdtype = v.param_dtype(dtype)   # float32 parameters and buffers for half activations
        C = self.num_features
        self.training = True
        self.gamma = np.ones(C, pdtype) if affine else None
        self.beta = np.zeros(C, pdtype) if affine else None
        self.running_mean = np.zeros(C, pdtype) if track_running_stats else None
        self.running_var = np.ones(C, pdtype) if track_running_stats else None
        self.num_batches_tracked = 0 if track_running_stats else None
        self.dgamma = self.dbeta = self.dresidual = None
        self._cache = self._fused = None

    # ---- mode ---------------------------------------------------------------------------------

    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode (``mode=False``).

        Parameters
        ----------
        mode : bool, default True

        Returns
        -------
        self : BatchNorm
            The layer itself, so that ``bn = BatchNorm(C).train()`` and chaining work.

        Examples
        --------
        >>> import fastbn
        >>> bn = fastbn.BatchNorm(2)
        >>> bn.train(False).training, bn.train().training
        (False, True)
        """
        self.training = _flag(mode, "mode")
        return self

    def eval(self):
        """Set evaluation mode; the same as ``train(False)``.

        Returns
        -------
        self : BatchNorm

        Examples
        --------
        >>> import fastbn
        >>> fastbn.BatchNorm(2).eval().training
        False
        """
        return self.train(False)

    # ---- state --------------------------------------------------------------------------------

    def reset_parameters(self):
        """Reset the running statistics and set ``gamma`` to ones and ``beta`` to zeros.

        Everything is overwritten in place (an optimizer's references stay valid).

        Examples
        --------
        >>> import fastbn
        >>> bn = fastbn.BatchNorm(2)
        >>> bn.gamma[:] = 3.0
        >>> bn.reset_parameters()
        >>> bn.gamma, bn.beta
        (array([1., 1.], dtype=float32), array([0., 0.], dtype=float32))
        """
        self.reset_running_stats()
        if self.affine:
            self.gamma[...] = 1
            self.beta[...] = 0

    def __getstate__(self):
        # The input saved for backward is not state: a pickle of the layer must not carry it.
        state = self.__dict__.copy()
        state["_cache"] = state["_fused"] = None
        return state

    def __setstate__(self, state):
        # Pickles of layers older than the modes lack these: derive them as __init__ would.
        tracked = state.get("running_mean") is not None
        state.setdefault("training", True)
        state.setdefault("affine", state.get("gamma") is not None)
        state.setdefault("track_running_stats", tracked)
        state.setdefault("num_batches_tracked", 0 if tracked else None)
        state.setdefault("relu", False)
        state.setdefault("dresidual", None)
        self.__dict__.update(state)
        self._cache = self._fused = None

    # ---- computation --------------------------------------------------------------------------

    def _input(self, x):
        """``x`` checked against the layer (dtype, dimensions, channel count), native order."""
        x = _layer_array(x, "x", self.dtype, "the layer's dtype")
        if x.ndim < 2:
            raise ValueError(f"x: expected an array with at least 2 dimensions (batch, channels, "
                             f"...), got {x.ndim}-d shape {x.shape}")
        if not -x.ndim <= self.axis < x.ndim:
            need = self.axis + 1 if self.axis >= 0 else -self.axis
            raise ValueError(f"x: expected at least {need} dimensions for the layer's axis "
                             f"{self.axis}, got {x.ndim}-d shape {x.shape}")
        if x.shape[self.axis] != self.num_features:
            raise ValueError(f"x: expected {self.num_features} channels along axis {self.axis}, "
                             f"got {x.shape[self.axis]} (shape {x.shape})")
        return x

    def forward(self, x, training=None, *, residual=None):
        """Normalize ``x``, with the batch statistics or the running ones depending on the mode.

        With a ``residual`` it is added to the normalized output, and with the layer's ``relu``
        a ReLU follows: ``relu(bn(x) + residual)`` in one pass (:func:`~fastbn.batch_norm_train`
        defines it exactly).

        Parameters
        ----------
        x : ndarray of the layer's dtype, ndim >= 2
            ``num_features`` channels along the layer's ``axis``; any strides and byte order.
        training : bool or None, default None
            The mode of this call; None means the layer's mode (:attr:`training`).
            True: :func:`~fastbn.batch_norm_train` with the batch statistics and, if they are
            tracked, ``num_batches_tracked`` incremented and the running statistics updated in
            place with weight ``momentum`` (or ``1 / num_batches_tracked`` when it is None).
            False: :func:`~fastbn.batch_norm_infer` with the running statistics, which are left
            unchanged; without running statistics, the batch statistics as in training.
        residual : ndarray, optional
            Added before the ReLU (if any): the shape of ``x``, the layer's dtype (any strides
            and byte order).  :meth:`backward` then stores its gradient in ``dresidual``.

        Returns
        -------
        y : ndarray, same shape as ``x``, the layer's dtype

        Raises
        ------
        TypeError, ValueError
            For an ``x`` of another dtype, too few dimensions or the wrong number of channels,
            a ``training`` that is not a bool, or a ``residual`` not shaped and typed as ``x``;
            the message names the argument, and nothing (buffers, counter, saved input) is
            changed.

        Examples
        --------
        >>> import numpy as np, fastbn
        >>> bn = fastbn.BatchNorm(2, eps=1e-30, momentum=0.5)
        >>> x = np.array([[0.0, 10.0], [2.0, 30.0]], dtype=np.float32)
        >>> bn.forward(x)                        # batch means 1, 20; variances 1, 100
        array([[-1., -1.],
               [ 1.,  1.]], dtype=float32)
        >>> bn.running_mean                      # 0.5 * 0 + 0.5 * batch mean
        array([ 0.5, 10. ], dtype=float32)
        >>> bn.running_var                       # 0.5 * 1 + 0.5 * unbiased variance (2, 200)
        array([  1.5, 100.5], dtype=float32)
        >>> bn.forward(x, training=False).shape  # this call only: the running statistics
        (2, 2)
        >>> bn.num_batches_tracked
        1

        With ``momentum=None`` the running statistics are the plain average over the batches:

        >>> bn = fastbn.BatchNorm(1, momentum=None)
        >>> for m in [1.0, 2.0, 6.0]:
        ...     _ = bn(np.array([[m - 1], [m + 1]], dtype=np.float32))
        >>> bn.running_mean, bn.num_batches_tracked
        (array([3.], dtype=float32), 3)
        """
        training = self.training if training is None else _flag(training, "training")
        x = self._input(x)
        if residual is not None:
            residual = _layer_array(residual, "residual", self.dtype, "the layer's dtype")
            if residual.shape != x.shape:
                raise ValueError(f"residual: expected the shape of x {x.shape}, "
                                 f"got {residual.shape}")
        if training or self.running_mean is None:
            update = training and self.track_running_stats
            y, mean, invstd = self._batch_forward(
                x, self.running_mean if update else None, self.running_var if update else None,
                self._momentum() if update else 0.0, residual)
            if update:     # as PyTorch: every training forward counts, whatever the momentum
                self.num_batches_tracked += 1
            kind = "batch"
        else:
            y = batch_norm_infer(x, self.running_mean, self.running_var, self.gamma, self.beta,
                                 axis=self.axis, eps=self.eps, relu=self.relu, residual=residual)
            kind, mean, invstd = "running", None, None
        self._cache = (kind, x, mean, invstd)
        # the output as the ReLU's mask for backward, and whether a residual was added
        self._fused = (y if self.relu else None, residual is not None)
        return y

    __call__ = forward

    # The training-mode computation, replaced by fastbn.distributed.SyncBatchNorm (statistics
    # of the batch over all processes).
    def _batch_forward(self, x, running_mean, running_var, momentum, residual=None):
        return batch_norm_train(x, self.gamma, self.beta, axis=self.axis, eps=self.eps,
                                running_mean=running_mean, running_var=running_var,
                                momentum=momentum, relu=self.relu, residual=residual)

    def _batch_backward(self, dy, x, mean, invstd, y=None, dresidual=None):
        return batch_norm_backward(dy, x, mean, invstd, self.gamma, axis=self.axis, y=y,
                                   dresidual=dresidual)

    def backward(self, dy):
        """Return dL/dx for the last :meth:`forward` and store ``dgamma``, ``dbeta`` and
        ``dresidual``.

        Through the layer's ReLU (if any) first: ``dy`` counts only where the output was
        positive (PyTorch's ``threshold_backward``).  ``dresidual``, the gradient of the last
        forward's residual, is that masked ``dy``; None when no residual was added.

        Parameters
        ----------
        dy : ndarray
            Gradient of the loss with respect to the last output: its shape, the layer's dtype
            (any strides and byte order).

        Returns
        -------
        dx : ndarray, same shape as the last input, the layer's dtype
            Through the batch statistics after a forward that used them; after a forward with
            the running statistics these are constants and the layer is affine in ``x``.

        Raises
        ------
        RuntimeError
            If there is no forward to differentiate: none was called since the layer was made
            or unpickled.
        TypeError, ValueError
            For a ``dy`` of another dtype or shape; nothing is stored then.

        Examples
        --------
        >>> import numpy as np, fastbn
        >>> bn = fastbn.BatchNorm(2)
        >>> x = np.array([[0.0, 10.0], [2.0, 30.0]], dtype=np.float32)
        >>> y = bn(x)
        >>> dx = bn.backward(np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32))
        >>> dx                                   # a constant shift of y has no gradient
        array([[0., 0.],
               [0., 0.]], dtype=float32)
        >>> bn.dbeta, bn.dgamma
        (array([2., 0.], dtype=float32), array([0., 0.], dtype=float32))
        """
        if self._cache is None:
            raise RuntimeError("backward: call forward first (the layer has no saved input)")
        kind, x, mean, invstd = self._cache
        y, has_residual = self._fused
        dy = _layer_array(dy, "dy", self.dtype, "the layer's dtype")
        if dy.shape != x.shape:
            raise ValueError(f"dy: expected the shape of the last input x {x.shape}, "
                             f"got {dy.shape}")
        dres = v.empty_aligned_like(x, x.dtype, away=(dy, x, y)) if has_residual else None
        if kind == "batch":
            dx, dgamma, dbeta = self._batch_backward(dy, x, mean, invstd, y, dres)
        else:
            dx, dgamma, dbeta = _running_backward(self, dy, x, y, dres)
        if self.gamma is not None:
            self.dgamma, self.dbeta = dgamma, dbeta
        self.dresidual = dres
        return dx

    def parameters(self):
        """``[(gamma, dgamma), (beta, dbeta)]`` for an optimizer (empty when not affine).

        Returns
        -------
        list of (ndarray, ndarray or None)
            Each parameter with its gradient from the last :meth:`backward` (None before one);
            update the parameters in place.

        Examples
        --------
        >>> import numpy as np, fastbn
        >>> bn = fastbn.BatchNorm(2)
        >>> x = np.array([[0.0, 10.0], [2.0, 30.0]], dtype=np.float32)
        >>> _ = bn.backward(np.ones_like(bn(x)))
        >>> for p, g in bn.parameters():         # one step of gradient descent
        ...     p -= 0.1 * g
        >>> bn.beta
        array([-0.2, -0.2], dtype=float32)
        >>> fastbn.BatchNorm(2, affine=False).parameters()
        []
        """
        if self.gamma is None:
            return []
        return [(self.gamma, self.dgamma), (self.beta, self.dbeta)]

    def __repr__(self):
        # PyTorch's repr: the constructor arguments, not the mode; this one also evaluates back.
        # relu only when set: the reprs of unfused layers stay as they were
        return (f"BatchNorm({self.num_features}, axis={self.axis}, eps={self.eps!r}, "
                f"momentum={self.momentum!r}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}, dtype='{self.dtype.name}'"
                f"{', relu=True' if self.relu else ''})")


def _layer_dtype(dtype):
    """``dtype`` (the activations') as float32, float64, float16 or bfloat16 (``"bfloat16"`` or
    ``ml_dtypes.bfloat16``: a TypeError naming ``dtype`` without ml_dtypes); anything else is a
    TypeError naming ``dtype``.  The parameters of a half layer are float32 (v.param_dtype)."""
    try:
        dtype = _half.requested(dtype, "dtype")
    except TypeError as e:
        if str(e).startswith("dtype: "):
            raise
        raise TypeError(f"dtype: expected {_half.EXPECTED}, got {dtype!r}") from None
    if dtype not in v.FLOAT_DTYPES and not _half.kind(dtype, "dtype"):
        raise TypeError(f"dtype: expected {_half.EXPECTED}, got {dtype}")
    return dtype


def _shape(value, name):
    """``value`` (an int or a sequence of ints, each >= 1) as a tuple."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    shape = tuple(v.integer(d, name, minimum=1, maximum=v.MAX_DIM) for d in items)
    if not shape:
        raise ValueError(f"{name}: expected at least one dimension, got ()")
    return shape


class _NormLayer(_StateDict):
    """What the layers on the normalization core share: forward saves what backward needs,
    backward stores the parameters' gradients, parameters() pairs them.  A subclass sets gamma,
    beta (or None), dtype, relu (_init_fused), and defines _check(x),
    _forward(x, residual) -> (y, *stats) and
    _backward(dy, x, stats, y, dresidual) -> (dx, dgamma, dbeta or None)."""

    def _init_fused(self, relu):
        self.relu = _flag(relu, "relu")
        self.dresidual = None
        self._fused = None
        self.training = True

    def train(self, mode=True):
        """Set ``training`` to ``mode`` and return the layer.  A flag for code that switches
        every layer's mode: these layers compute the same in both, as PyTorch's do, except an
        :class:`InstanceNorm` with ``track_running_stats``.

        Examples
        --------
        >>> import fastbn
        >>> fastbn.LayerNorm(4).eval().training
        False
        """
        self.training = _flag(mode, "mode")
        return self

    def eval(self):
        """``train(False)``."""
        return self.train(False)

    def forward(self, x, *, residual=None):
        """Normalize ``x``; keep it (and its statistics) for :meth:`backward`.

        With a ``residual`` (shape of ``x``, the layer's dtype, any strides and byte order) it
        is added to the normalized output, and with the layer's ``relu`` a ReLU follows:
        ``relu(norm(x) + residual)`` in one pass, as :class:`BatchNorm`'s.  :meth:`backward`
        then stores the residual's gradient in ``dresidual``.
        """
        x = _layer_array(x, "x", self.dtype, "the layer's dtype")
        self._check(x)
        if residual is not None:
            residual = _layer_array(residual, "residual", self.dtype, "the layer's dtype")
            if residual.shape != x.shape:
                raise ValueError(f"residual: expected the shape of x {x.shape}, "
                                 f"got {residual.shape}")
        y, *stats = self._forward(x, residual)
        self._cache = (x, stats)
        # the output as the ReLU's mask for backward, and whether a residual was added
        self._fused = (y if self.relu else None, residual is not None)
        return y

    __call__ = forward

    def backward(self, dy):
        """Return dL/dx for the last :meth:`forward`; store ``dgamma`` (and ``dbeta``) and
        ``dresidual`` (the masked ``dy`` after a forward with a residual, else None).

        Through the layer's ReLU (if any) first: ``dy`` counts only where the output was
        positive (PyTorch's ``threshold_backward``)."""
        if self._cache is None:
            raise RuntimeError("backward: call forward first (the layer has no saved input)")
        x, stats = self._cache
        y, has_residual = self._fused if self._fused is not None else (None, False)
        dy = _layer_array(dy, "dy", self.dtype, "the layer's dtype")
        if dy.shape != x.shape:
            raise ValueError(f"dy: expected the shape of the last input x {x.shape}, "
                             f"got {dy.shape}")
        dres = v.empty_aligned_like(x, x.dtype, away=(dy, x, y)) if has_residual else None
        dx, dgamma, dbeta = self._backward(dy, x, stats, y, dres)
        if self.gamma is not None:
            self.dgamma = dgamma
        if self.beta is not None:
            self.dbeta = dbeta
        self.dresidual = dres
        return dx

    def parameters(self):
        """``[(gamma, dgamma), (beta, dbeta)]`` (those the layer has) for an optimizer."""
        pairs = [(self.gamma, self.dgamma)] if self.gamma is not None else []
        return pairs + ([(self.beta, self.dbeta)] if self.beta is not None else [])

    def reset_parameters(self):
        """Set ``gamma`` to ones and ``beta`` to zeros (those the layer has), in place.

        Examples
        --------
        >>> import fastbn
        >>> ln = fastbn.LayerNorm(2)
        >>> ln.gamma[:] = 3.0
        >>> ln.reset_parameters()
        >>> ln.gamma, ln.beta
        (array([1., 1.], dtype=float32), array([0., 0.], dtype=float32))
        """
        if self.gamma is not None:
            self.gamma[...] = 1
        if self.beta is not None:
            self.beta[...] = 0

    def __getstate__(self):
        state = self.__dict__.copy()   # the saved input (and output) is not state
        state["_cache"] = state["_fused"] = None
        return state

    def __setstate__(self, state):
        # Pickles of layers older than the fused ReLU / residual (or the mode) lack these.
        state.setdefault("relu", False)
        state.setdefault("training", True)
        state.setdefault("dresidual", None)
        self.__dict__.update(state)
        self._cache = self._fused = None

    def _relu_repr(self):
        # relu only when set: the reprs of unfused layers stay as they were
        return ", relu=True" if self.relu else ""


class LayerNorm(_NormLayer):
    """Layer normalization over the trailing axes (PyTorch's ``LayerNorm``).

    Parameters
    ----------
    normalized_shape : int or tuple of ints
        The shape of the trailing axes normalized over: inputs end with it.
    eps : float > 0, default 1e-5
    elementwise_affine : bool, default True
        Learn ``gamma`` (ones) and ``beta`` (zeros) of ``normalized_shape``; else both None.
    bias : bool, default True
        With ``elementwise_affine``, learn ``beta`` too; ``bias=False`` scales only (``beta``
        None), as PyTorch's ``LayerNorm(..., bias=False)``.
    dtype : float32, float64, float16 or bfloat16, default float32
        The activations' dtype; the parameters are float32 for float16 and bfloat16.
    relu : bool, default False
        Follow the normalization by a ReLU in the same pass (``relu(norm(x) + residual)`` when
        :meth:`forward` is given a residual), and :meth:`backward` through it.

    Attributes
    ----------
    gamma, beta, dgamma, dbeta : ndarray or None
        The parameters and the gradients of the last :meth:`backward`.
    dresidual : ndarray or None
        The gradient of the residual of the last :meth:`forward`, stored by the last
        :meth:`backward` (None when that forward added no residual).

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> ln = fastbn.LayerNorm(4)
    >>> x = np.arange(8, dtype=np.float32).reshape(2, 4)
    >>> y = ln(x)
    >>> bool(np.allclose(y.mean(axis=-1), 0, atol=1e-6))
    True
    >>> dx = ln.backward(np.ones_like(y))
    >>> ln.dbeta
    array([2., 2., 2., 2.], dtype=float32)
    >>> [p.shape for p, g in ln.parameters()]
    [(4,), (4,)]

    Fused with a ReLU and a residual add (``relu(layer_norm(x) + shortcut)``):

    >>> block = fastbn.LayerNorm(4, relu=True)
    >>> y = block(x, residual=np.ones_like(x))
    >>> bool((y >= 0).all())
    True
    >>> dx = block.backward(np.ones_like(y))
    >>> bool(np.array_equal(block.dresidual, (y > 0).astype(np.float32)))
    True
    """

    _has_bias = True   # RMSNorm: no beta whatever bias says

    def __init__(self, normalized_shape, *, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float32, relu=False):
        self.normalized_shape = _shape(normalized_shape, "normalized_shape")
        self.eps = v.real(eps, "eps", lo=0.0, lo_open=True)
        self.elementwise_affine = _flag(elementwise_affine, "elementwise_affine")
        self.bias = _flag(bias, "bias")
        self.dtype = _layer_dtype(dtype)
        affine, pdt = self.elementwise_affine, v.param_dtype(self.dtype)
        self.gamma = np.ones(self.normalized_shape, pdt) if affine else None
        self.beta = np.zeros(self.normalized_shape, pdt) if affine and self.bias else None
        self.dgamma = self.dbeta = None
        self._cache = None
        self._init_fused(relu)

    def _axes(self):
        k = len(self.normalized_shape)
        return -1 if k == 1 else tuple(range(-k, 0))   # one axis as an int: the plain path's

    def _check(self, x):
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k:] != self.normalized_shape or x.ndim < k:
            raise ValueError(f"x: expected a shape ending with {self.normalized_shape}, "
                             f"got {x.shape}")

    def _forward(self, x, residual):
        return _nm.layer_norm(x, self.gamma, self.beta, axis=self._axes(), eps=self.eps,
                              relu=self.relu, residual=residual)

    def _backward(self, dy, x, stats, y, dres):
        return _nm.layer_norm_backward(dy, x, *stats, self.gamma, axis=self._axes(), y=y,
                                       dresidual=dres)

    def __setstate__(self, state):
        # Pickles of layers older than bias=: a beta exactly where the layer is affine.
        state.setdefault("bias", self._has_bias)
        super().__setstate__(state)

    def __repr__(self):
        bias = ", bias=False" if self._has_bias and not self.bias else ""   # only when set
        return (f"LayerNorm({self.normalized_shape}, eps={self.eps!r}, "
                f"elementwise_affine={self.elementwise_affine}{bias}, dtype='{self.dtype.name}'"
                f"{self._relu_repr()})")


class RMSNorm(LayerNorm):
    """RMS normalization over the trailing axes (PyTorch's ``RMSNorm``): ``x * invrms * gamma``.

    Parameters
    ----------
    normalized_shape : int or tuple of ints
        The shape of the trailing axes normalized over.
    eps : float > 0 or None, default 1e-6
        None: the machine epsilon of each input's dtype (PyTorch's ``RMSNorm`` default).
    elementwise_affine : bool, default True
        Learn ``gamma`` (ones); there is no ``beta`` (always None).
    dtype : float32, float64, float16 or bfloat16, default float32
        The activations' dtype; the parameters are float32 for float16 and bfloat16.
    relu : bool, default False
        A ReLU after the normalization (and the residual add), as :class:`LayerNorm`'s.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> rms = fastbn.RMSNorm(2, eps=1e-12)
    >>> rms(np.array([[3.0, 4.0]], dtype=np.float32)).round(4)
    array([[0.8485, 1.1314]], dtype=float32)
    >>> dx = rms.backward(np.ones((1, 2), dtype=np.float32))
    >>> rms.dgamma.round(4), rms.beta is None
    (array([0.8485, 1.1314], dtype=float32), True)
    """

    _has_bias = False

    def __init__(self, normalized_shape, *, eps=1e-6, elementwise_affine=True, dtype=np.float32,
                 relu=False):
        super().__init__(normalized_shape, eps=1.0 if eps is None else eps, bias=False,
                         elementwise_affine=elementwise_affine, dtype=dtype, relu=relu)
        if eps is None:   # rms_norm's None: x's machine epsilon at each call
            self.eps = None

    def _forward(self, x, residual):
        return _nm.rms_norm(x, self.gamma, axis=self._axes(), eps=self.eps, relu=self.relu,
                            residual=residual)

    def _backward(self, dy, x, stats, y, dres):
        dx, dgamma = _nm.rms_norm_backward(dy, x, *stats, self.gamma, axis=self._axes(), y=y,
                                           dresidual=dres)
        return dx, dgamma, None

    def __repr__(self):
        return "RMS" + super().__repr__()[len("Layer"):]


class GroupNorm(_NormLayer):
    """Group normalization (PyTorch's ``GroupNorm``), channels along ``axis``.

    Parameters
    ----------
    num_groups : int >= 1
        Divides ``num_channels``.
    num_channels : int >= 1
    axis : int, default 1
        The channel axis of the inputs (-1 for channels-last); not 0 (the samples).
    eps : float > 0, default 1e-5
    affine : bool, default True
        Learn per-channel ``gamma`` (ones) and ``beta`` (zeros).
    dtype : float32, float64, float16 or bfloat16, default float32
        The activations' dtype; the parameters are float32 for float16 and bfloat16.
    relu : bool, default False
        A ReLU after the normalization (and the residual add), as :class:`LayerNorm`'s.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> gn = fastbn.GroupNorm(2, 4)
    >>> x = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    >>> y = gn(x)
    >>> bool(np.allclose(y.reshape(3, 2, 10).mean(axis=-1), 0, atol=1e-6))
    True
    >>> dx = gn.backward(np.ones_like(y))
    >>> gn.dbeta
    array([15., 15., 15., 15.], dtype=float32)
    """

    def __init__(self, num_groups, num_channels, *, axis=1, eps=1e-5, affine=True,
                 dtype=np.float32, relu=False):
        self.num_groups = v.integer(num_groups, "num_groups", minimum=1, maximum=v.MAX_DIM)
        self.num_channels = v.integer(num_channels, "num_channels", minimum=1, maximum=v.MAX_DIM)
        if self.num_channels % self.num_groups:
            raise ValueError(f"num_groups: expected a divisor of num_channels "
                             f"{self.num_channels}, got {self.num_groups}")
        self._init_common(axis, eps, affine, dtype, self.num_channels, relu)

    def _init_common(self, axis, eps, affine, dtype, C, relu):
        self.axis = v.integer(axis, "axis")
        self.eps = v.real(eps, "eps", lo=0.0, lo_open=True)
        self.affine = _flag(affine, "affine")
        self.dtype = _layer_dtype(dtype)
        self.gamma = np.ones(C, v.param_dtype(self.dtype)) if self.affine else None
        self.beta = np.zeros(C, v.param_dtype(self.dtype)) if self.affine else None
        self.dgamma = self.dbeta = None
        self._cache = None
        self._init_fused(relu)

    def _check(self, x):
        C = self.gamma.shape[0] if self.gamma is not None else self._channels()
        if x.ndim < 2 or not -x.ndim <= self.axis < x.ndim:
            raise ValueError(f"x: expected at least 2 dimensions and the layer's axis {self.axis},"
                             f" got {x.ndim}-d shape {x.shape}")
        if x.shape[self.axis] != C:
            raise ValueError(f"x: expected {C} channels along axis {self.axis}, got "
                             f"{x.shape[self.axis]} (shape {x.shape})")

    def _channels(self):
        return self.num_channels

    def _forward(self, x, residual):
        return _nm.group_norm(x, self.num_groups, self.gamma, self.beta, axis=self.axis,
                              eps=self.eps, relu=self.relu, residual=residual)

    def _backward(self, dy, x, stats, y, dres):
        return _nm.group_norm_backward(dy, x, *stats, self.num_groups, self.gamma, axis=self.axis,
                                       y=y, dresidual=dres)

    def __repr__(self):
        return (f"GroupNorm({self.num_groups}, {self.num_channels}, axis={self.axis}, "
                f"eps={self.eps!r}, affine={self.affine}, dtype='{self.dtype.name}'"
                f"{self._relu_repr()})")


class InstanceNorm(_Running, GroupNorm):
    """Instance normalization (PyTorch's ``InstanceNorm*d``), channels along ``axis``.

    Each sample's channel is normalized with its own statistics.  With
    ``track_running_stats`` the layer also keeps running statistics, as PyTorch's: training
    forwards update them from the batch (the average over the samples of each channel's mean
    and unbiased variance), and in evaluation mode it normalizes every sample with them, as
    batch norm's inference does.

    Parameters
    ----------
    num_features : int >= 1
        Number of channels C.
    axis : int, default 1
        The channel axis; not 0.
    eps : float > 0, default 1e-5
    momentum : float in [0, 1] or None, default 0.1
        Weight of the new batch in the running statistics, as :class:`BatchNorm`'s (None: the
        cumulative average, weight ``1 / num_batches_tracked``).
    affine : bool, default False
        Learn per-channel ``gamma`` and ``beta`` (PyTorch's default: no).
    track_running_stats : bool, default False
        Keep ``running_mean`` (zeros) and ``running_var`` (ones) and use them in evaluation
        mode (PyTorch's default: no; then both modes compute the same).
    dtype : float32, float64, float16 or bfloat16, default float32
        The activations' dtype; the parameters and buffers are float32 for float16 and
        bfloat16.
    relu : bool, default False
        A ReLU after the normalization (and the residual add), as :class:`LayerNorm`'s.

    Attributes
    ----------
    running_mean, running_var : ndarray or None
        Shape (C,), updated in place by training forwards (None when not tracked).
    num_batches_tracked : int or None
        Training forwards that updated them.  PyTorch's ``InstanceNorm*d`` leaves its counter
        at 0 and treats ``momentum=None`` as 0 (no update); this layer counts, as
        :class:`BatchNorm` does, so that None means the cumulative average here too.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> inorm = fastbn.InstanceNorm(2, affine=True)
    >>> x = np.array([[[1.0, 3.0], [10.0, 30.0]]], dtype=np.float32)
    >>> inorm(x).round(3)
    array([[[-1.,  1.],
            [-1.,  1.]]], dtype=float32)
    >>> _ = inorm.backward(np.ones_like(x))
    >>> inorm.dbeta
    array([2., 2.], dtype=float32)

    With running statistics (momentum 0.5: half the batch's per-channel mean 2 and 20 and
    unbiased variance 2 and 200):

    >>> tracked = fastbn.InstanceNorm(2, momentum=0.5, track_running_stats=True)
    >>> _ = tracked(x)
    >>> tracked.running_mean, tracked.running_var
    (array([ 1., 10.], dtype=float32), array([  1.5, 100.5], dtype=float32))
    >>> tracked.eval()(x).round(2)             # (x - running_mean) / sqrt(running_var + eps)
    array([[[0.  , 1.63],
            [0.  , 2.  ]]], dtype=float32)
    """

    def __init__(self, num_features, *, axis=1, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, dtype=np.float32, relu=False):
        self.num_features = v.integer(num_features, "num_features", minimum=1, maximum=v.MAX_DIM)
        self.momentum = None if momentum is None else v.real(momentum, "momentum", lo=0.0, hi=1.0)
        self.track_running_stats = _flag(track_running_stats, "track_running_stats")
        self._init_common(axis, eps, affine, dtype, self.num_features, relu)
        pdtype, C, tracked = v.param_dtype(self.dtype), self.num_features, self.track_running_stats
        self.running_mean = np.zeros(C, pdtype) if tracked else None
        self.running_var = np.ones(C, pdtype) if tracked else None
        self.num_batches_tracked = 0 if tracked else None

    def _channels(self):
        return self.num_features

    def reset_parameters(self):
        """Reset the running statistics (if tracked) and set ``gamma`` to ones and ``beta`` to
        zeros (if affine), in place.

        Examples
        --------
        >>> import numpy as np, fastbn
        >>> inorm = fastbn.InstanceNorm(1, track_running_stats=True)
        >>> _ = inorm(np.array([[[1.0, 3.0]]], dtype=np.float32))
        >>> inorm.num_batches_tracked
        1
        >>> inorm.reset_parameters()
        >>> inorm.running_mean, inorm.running_var, inorm.num_batches_tracked
        (array([0.], dtype=float32), array([1.], dtype=float32), 0)
        """
        self.reset_running_stats()
        super().reset_parameters()

    def _forward(self, x, residual):
        if self.track_running_stats and not self.training:
            return batch_norm_infer(x, self.running_mean, self.running_var, self.gamma, self.beta,
                                    axis=self.axis, eps=self.eps, relu=self.relu,
                                    residual=residual), None
        if not self.track_running_stats:
            return _nm.instance_norm(x, self.gamma, self.beta, axis=self.axis, eps=self.eps,
                                     relu=self.relu, residual=residual)
        n = x.size // max(x.shape[0] * x.shape[self.axis], 1)   # values per instance
        if n < 2 or x.shape[0] == 0:
            raise ValueError(f"x: expected at least one sample and more than 1 value per instance "
                             f"to update the running statistics, got shape {x.shape}")
        y, mean, invstd, mean64, var64 = _nm._instance_norm_var(
            x, self.gamma, self.beta, self.axis, self.eps, self.relu, residual)
        # per channel: the samples' float64 means and (biased) variances averaged, in order
        stats = np.stack([mean64.mean(axis=0), var64.mean(axis=0), np.zeros(mean64.shape[1])])
        _update_running(self.running_mean, self.running_var, stats, n, self._momentum(),
                        who="InstanceNorm", stacklevel=5)
        self.num_batches_tracked += 1
        return y, mean, invstd

    def _backward(self, dy, x, stats, y, dres):
        if len(stats) == 1:   # the forward used the running statistics (stats [None])
            return _running_backward(self, dy, x, y, dres)
        return _nm.instance_norm_backward(dy, x, *stats, self.gamma, axis=self.axis, y=y,
                                          dresidual=dres)

    def __setstate__(self, state):
        # Pickles of layers older than the running statistics lack these.
        for key in ("running_mean", "running_var", "num_batches_tracked"):
            state.setdefault(key, None)
        state.setdefault("momentum", 0.1)
        state.setdefault("track_running_stats", False)
        super().__setstate__(state)

    def __repr__(self):
        tracked = (f", momentum={self.momentum!r}, track_running_stats=True"
                   if self.track_running_stats else "")
        return (f"InstanceNorm({self.num_features}, axis={self.axis}, eps={self.eps!r}, "
                f"affine={self.affine}{tracked}, dtype='{self.dtype.name}'{self._relu_repr()})")
