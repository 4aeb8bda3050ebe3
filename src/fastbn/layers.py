"""Layers for NumPy networks built on the fastbn kernels."""
import numpy as np

from fastbn import _validation as v
from fastbn.batchnorm import batch_norm_backward, batch_norm_infer, batch_norm_train


class BatchNorm:
    """Batch normalization layer for NumPy networks (PyTorch's ``BatchNorm*d`` semantics).

    Parameters
    ----------
    num_features : int
        Number of channels C.
    axis : int, default 1
        The channel axis of the inputs (-1 for channels-last).
    eps : float, default 1e-5
    momentum : float in [0, 1], default 0.1
        Weight of the new batch in the running statistics.
    affine : bool, default True
        Learn ``gamma`` (ones) and ``beta`` (zeros); without it they are None.
    track_running_stats : bool, default True
        Keep ``running_mean`` (zeros) and ``running_var`` (ones) for inference; without them
        inference also normalizes with the batch statistics.
    dtype : float32 or float64, default float32

    Attributes
    ----------
    gamma, beta : ndarray or None
    running_mean, running_var : ndarray or None
    dgamma, dbeta : ndarray or None
        Gradients stored by the last :meth:`backward`.

    Examples
    --------
    >>> import numpy as np, fastbn
    >>> bn = fastbn.BatchNorm(3)
    >>> x = np.random.default_rng(0).normal(5.0, 2.0, (8, 3)).astype(np.float32)
    >>> y = bn(x)
    >>> bool(np.allclose(y.mean(axis=0), 0, atol=1e-5))
    True
    >>> dx = bn.backward(np.ones_like(y))
    >>> bn.dbeta
    array([8., 8., 8.], dtype=float32)
    """

    def __init__(self, num_features, *, axis=1, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        self.num_features = v.integer(num_features, "num_features", minimum=1)
        self.axis = v.integer(axis, "axis")
        self.eps = v.real(eps, "eps", lo=0.0)
        self.momentum = v.real(momentum, "momentum", lo=0.0, hi=1.0)
        dtype = np.dtype(dtype)
        if dtype not in v.FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        self.dtype = dtype
        C = self.num_features
        self.gamma = np.ones(C, dtype) if affine else None
        self.beta = np.zeros(C, dtype) if affine else None
        self.running_mean = np.zeros(C, dtype) if track_running_stats else None
        self.running_var = np.ones(C, dtype) if track_running_stats else None
        self.dgamma = self.dbeta = None
        self._cache = None

    def forward(self, x, training=True):
        """Normalize ``x``; in training mode with batch statistics (updating the running ones).

        Parameters
        ----------
        x : ndarray of float32 or float64, ndim >= 2
            Same dtype as the layer, ``num_features`` channels along the layer's ``axis``.
        training : bool, default True
            True: :func:`~fastbn.batch_norm_train` with the batch statistics, and the running
            statistics (if tracked) updated in place.  False: :func:`~fastbn.batch_norm_infer`
            with the running statistics (or the batch ones when they are not tracked).

        Returns
        -------
        y : ndarray, same shape and dtype as ``x``

        Examples
        --------
        >>> import numpy as np, fastbn
        >>> bn = fastbn.BatchNorm(2, eps=0.0, momentum=0.5)
        >>> x = np.array([[0.0, 10.0], [2.0, 30.0]], dtype=np.float32)
        >>> bn.forward(x)                        # batch means 1, 20; variances 1, 100
        array([[-1., -1.],
               [ 1.,  1.]], dtype=float32)
        >>> bn.running_mean                      # 0.5 * 0 + 0.5 * batch mean
        array([ 0.5, 10. ], dtype=float32)
        >>> bn.running_var                       # 0.5 * 1 + 0.5 * unbiased variance (2, 200)
        array([  1.5, 100.5], dtype=float32)
        >>> bn.forward(x, training=False).shape  # inference: the running statistics
        (2, 2)
        """
        if training or self.running_mean is None:
            y, mean, invstd = batch_norm_train(
                x, self.gamma, self.beta, axis=self.axis, eps=self.eps,
                running_mean=self.running_mean if training else None,
                running_var=self.running_var if training else None, momentum=self.momentum)
            self._cache = ("batch", x, mean, invstd)
        else:
            y = batch_norm_infer(x, self.running_mean, self.running_var, self.gamma, self.beta,
                                 axis=self.axis, eps=self.eps)
            self._cache = ("running", x, None, None)
        return y

    __call__ = forward

    def backward(self, dy):
        """Return dL/dx for the last :meth:`forward` and store ``dgamma`` and ``dbeta``.

        Parameters
        ----------
        dy : ndarray
            Gradient of the loss with respect to the last output; its shape and dtype.

        Returns
        -------
        dx : ndarray, same shape and dtype as the last input
            Through the batch statistics after a training forward; after an inference forward
            the running statistics are constants and the layer is affine in ``x``.

        Raises
        ------
        RuntimeError
            If :meth:`forward` was never called.

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
            raise RuntimeError("backward: call forward first")
        kind, x, mean, invstd = self._cache
        if kind == "batch":
            dx, dgamma, dbeta = batch_norm_backward(dy, x, mean, invstd, self.gamma, axis=self.axis)
        else:  # the running statistics are constants: the layer is affine in x
            axis = self.axis % x.ndim
            shape = [1] * x.ndim
            shape[axis] = -1
            axes = tuple(i for i in range(x.ndim) if i != axis)
            invstd = 1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)
            xhat = (x - self.running_mean.reshape(shape)) * invstd.reshape(shape)
            g = 1.0 if self.gamma is None else self.gamma.reshape(shape)
            dx = (dy * g * invstd.reshape(shape)).astype(x.dtype)
            dgamma = (dy * xhat).sum(axis=axes).astype(x.dtype)
            dbeta = dy.sum(axis=axes).astype(x.dtype)
        if self.gamma is not None:
            self.dgamma, self.dbeta = dgamma, dbeta
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
        return (f"BatchNorm({self.num_features}, axis={self.axis}, eps={self.eps}, "
                f"momentum={self.momentum}, affine={self.gamma is not None}, "
                f"track_running_stats={self.running_mean is not None}, dtype={self.dtype.name})")
